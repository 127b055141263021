#include "wharf/runtime/internal/idle_workers.h"

#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"

namespace wharf::pool_internal {
namespace {

using testing::Watchdog;

TEST(IdleWorkersTest, NotifyWithNobodyIdleIsFalse) {
  IdleWorkers idle;
  EXPECT_FALSE(idle.NotifyOne());
  idle.NotifyAll();  // nothing to do
  EXPECT_EQ(idle.idle(), 0);
}

TEST(IdleWorkersTest, APostBeforeTheSleepEndsItAtOnce) {
  IdleWorkers idle;
  IdleWorkers::Waiter w;
  idle.Enter(w);
  EXPECT_EQ(idle.idle(), 1);
  EXPECT_TRUE(idle.NotifyOne());
  EXPECT_EQ(idle.idle(), 0);  // popped: the next notify finds nobody
  EXPECT_FALSE(idle.NotifyOne());
  EXPECT_TRUE(idle.Sleep(w, absl::InfiniteFuture()));
  // And it can go idle again.
  idle.Enter(w);
  EXPECT_TRUE(idle.NotifyOne());
  EXPECT_TRUE(idle.Sleep(w, absl::InfiniteFuture()));
}

TEST(IdleWorkersTest, LeaveWithdrawsOrConsumesThePost) {
  IdleWorkers idle;
  IdleWorkers::Waiter w;
  idle.Enter(w);
  idle.Leave(w);
  EXPECT_EQ(idle.idle(), 0);
  EXPECT_FALSE(idle.NotifyOne());
  idle.Enter(w);
  EXPECT_TRUE(idle.NotifyOne());
  idle.Leave(w);  // popped: takes the post, does not block
  EXPECT_EQ(idle.idle(), 0);
}

TEST(IdleWorkersTest, SleepTimesOutAndUnlists) {
  IdleWorkers idle;
  IdleWorkers::Waiter w;
  idle.Enter(w);
  EXPECT_FALSE(idle.Sleep(w, absl::Now() + absl::Milliseconds(5)));
  EXPECT_EQ(idle.idle(), 0);
  EXPECT_FALSE(idle.NotifyOne());
}

TEST(IdleWorkersTest, NotifyOneWakesTheMostRecentlyIdle) {
  IdleWorkers idle;
  IdleWorkers::Waiter a, b;
  idle.Enter(a);
  idle.Enter(b);
  EXPECT_TRUE(idle.NotifyOne());
  EXPECT_EQ(b.state.load(), 1u);  // posted
  EXPECT_EQ(a.state.load(), 0u);
  EXPECT_TRUE(idle.Sleep(b, absl::InfiniteFuture()));
  idle.Leave(a);
}

TEST(IdleWorkersTest, NotifyAllWakesEverySleeper) {
  Watchdog dog("IdleWorkers NotifyAll", absl::Seconds(60));
  IdleWorkers idle;
  constexpr int kThreads = 6;
  std::vector<IdleWorkers::Waiter> waiters(kThreads);
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      idle.Enter(waiters[i]);
      if (idle.Sleep(waiters[i], absl::InfiniteFuture())) woken.fetch_add(1);
    });
  }
  while (idle.idle() < kThreads) absl::SleepFor(absl::Microseconds(100));
  idle.NotifyAll();
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), kThreads);
  EXPECT_EQ(idle.idle(), 0);
}

// Producers add units of work (an atomic count stands for the queue) and
// notify; consumers take units, or go idle as a pool worker does. With
// infinite sleeps a lost wake-up hangs (the watchdog names it); with short
// random deadlines the timeout paths race the notifier's pop.
void Stress(bool timeouts) {
  Watchdog dog(timeouts ? "IdleWorkers stress (timeouts)" : "IdleWorkers stress",
               absl::Seconds(120));
  IdleWorkers idle;
  constexpr int kProducers = 3;
  constexpr int kConsumers = 4;
  constexpr int64_t kPerProducer = 30'000;
  constexpr int64_t kTotal = kProducers * kPerProducer;
  std::atomic<int64_t> available{0}, taken{0};
  std::atomic<bool> done{false};
  std::vector<IdleWorkers::Waiter> waiters(kConsumers);
  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      std::minstd_rand rng(c + 1);
      IdleWorkers::Waiter& me = waiters[c];
      for (;;) {
        int64_t n = available.load(std::memory_order_acquire);
        if (n > 0) {
          if (available.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) {
            if (taken.fetch_add(1, std::memory_order_acq_rel) + 1 == kTotal) {
              done.store(true, std::memory_order_release);
              idle.NotifyAll();
            }
          }
          continue;
        }
        if (done.load(std::memory_order_acquire)) return;
        idle.Enter(me);
        if (available.load(std::memory_order_acquire) > 0 ||
            done.load(std::memory_order_acquire)) {
          idle.Leave(me);
          continue;
        }
        const absl::Time deadline = timeouts && rng() % 2 == 0
                                        ? absl::Now() + absl::Microseconds(rng() % 200)
                                        : absl::InfiniteFuture();
        (void)idle.Sleep(me, deadline);
      }
    });
  }
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      std::minstd_rand rng(100 + p);
      for (int64_t i = 0; i < kPerProducer; ++i) {
        available.fetch_add(1, std::memory_order_acq_rel);
        (void)idle.NotifyOne();
        if (rng() % 64 == 0) std::this_thread::yield();  // let consumers go idle
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(taken.load(), kTotal);
  EXPECT_EQ(available.load(), 0);
  EXPECT_EQ(idle.idle(), 0);
}

TEST(IdleWorkersTest, StressNoLostWakeUp) { Stress(/*timeouts=*/false); }
TEST(IdleWorkersTest, StressWithTimeoutsRacingNotifies) { Stress(/*timeouts=*/true); }

}  // namespace
}  // namespace wharf::pool_internal
