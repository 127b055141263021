#include "wharf/sync/internal/event_count.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"

namespace wharf::sync_internal {
namespace {

using ::wharf::testing::Watchdog;

TEST(EventCountTest, NotifyWithoutWaitersIsANoOp) {
  EventCount ec;
  ec.Notify();
  ec.NotifyAll();
  EXPECT_EQ(ec.WaitersForTesting(), 0u);
}

TEST(EventCountTest, CancelWaitWithdrawsTheWaiter) {
  EventCount ec;
  auto key = ec.PrepareWait();
  (void)key;
  EXPECT_EQ(ec.WaitersForTesting(), 1u);
  ec.CancelWait();
  EXPECT_EQ(ec.WaitersForTesting(), 0u);
}

TEST(EventCountTest, CommitWaitTimesOut) {
  EventCount ec;
  auto key = ec.PrepareWait();
  EXPECT_FALSE(ec.CommitWait(key, absl::Now() + absl::Milliseconds(10)));
  EXPECT_EQ(ec.WaitersForTesting(), 0u);
}

TEST(EventCountTest, NotifyAfterPrepareMakesCommitReturnAtOnce) {
  EventCount ec;
  auto key = ec.PrepareWait();
  ec.Notify();  // sees the announced waiter: bumps the epoch
  Watchdog dog("stale-key CommitWait", absl::Seconds(30));
  EXPECT_TRUE(ec.CommitWait(key));
}

TEST(EventCountTest, NotifyWakesASleeper) {
  EventCount ec;
  std::atomic<bool> flag{false};
  Watchdog dog("EventCount wake", absl::Seconds(30));
  std::thread waiter([&] {
    while (!flag.load()) {
      auto key = ec.PrepareWait();
      if (flag.load()) {
        ec.CancelWait();
        break;
      }
      ec.CommitWait(key);
    }
  });
  while (ec.WaitersForTesting() == 0) std::this_thread::yield();
  flag.store(true);
  ec.Notify();
  waiter.join();
  EXPECT_EQ(ec.WaitersForTesting(), 0u);
}

TEST(EventCountTest, SharedScopeWorksInProcess) {
  EventCount ec(FutexScope::kShared);
  std::atomic<int> v{0};
  std::thread t([&] {
    v.store(1);
    ec.NotifyAll();
  });
  while (v.load() == 0) {
    auto key = ec.PrepareWait();
    if (v.load() != 0) {
      ec.CancelWait();
      break;
    }
    ec.CommitWait(key, absl::Now() + absl::Seconds(30));
  }
  t.join();
  EXPECT_EQ(v.load(), 1);
}

// Producers push into a lock-free "queue" (a counter of available items) and
// notify; one consumer takes everything and sleeps when it finds nothing.
// A lost wake-up hangs the consumer: the watchdog turns that into a failure.
TEST(EventCountTest, StressNoLostWakeUps) {
  constexpr int kProducers = 4;
  constexpr int64_t kPerProducer = 25'000;  // 10^5 items in all
  EventCount ec;
  std::atomic<int64_t> available{0};
  std::atomic<bool> go{false};
  Watchdog dog("EventCount stress", absl::Seconds(120));
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      while (!go.load()) std::this_thread::yield();
      for (int64_t i = 0; i < kPerProducer; ++i) {
        available.fetch_add(1, std::memory_order_release);
        ec.Notify();
        if ((i + p) % 64 == 0) std::this_thread::yield();  // let the consumer sleep
      }
    });
  }
  int64_t consumed = 0;
  int64_t sleeps = 0;
  go.store(true);
  while (consumed < kProducers * kPerProducer) {
    int64_t got = available.exchange(0, std::memory_order_acquire);
    if (got > 0) {
      consumed += got;
      continue;
    }
    auto key = ec.PrepareWait();
    if (available.load(std::memory_order_acquire) > 0) {
      ec.CancelWait();
      continue;
    }
    ++sleeps;
    ec.CommitWait(key);
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(consumed, kProducers * kPerProducer);
  EXPECT_EQ(available.load(), 0);
  EXPECT_EQ(ec.WaitersForTesting(), 0u);
  RecordProperty("sleeps", static_cast<int>(sleeps));
}

// Two threads hand a token back and forth; each sleeps on its own
// EventCount until the token is its own. Every round needs a wake-up.
TEST(EventCountTest, StressPingPong) {
  constexpr int kRounds = 20'000;
  EventCount ec[2];
  std::atomic<int> turn{0};
  Watchdog dog("EventCount ping-pong", absl::Seconds(120));
  auto player = [&](int me) {
    for (int i = 0; i < kRounds; ++i) {
      while (turn.load(std::memory_order_acquire) != me) {
        auto key = ec[me].PrepareWait();
        if (turn.load(std::memory_order_acquire) == me) {
          ec[me].CancelWait();
          break;
        }
        ec[me].CommitWait(key);
      }
      turn.store(1 - me, std::memory_order_release);
      ec[1 - me].Notify();
    }
  };
  std::thread a(player, 0), b(player, 1);
  a.join();
  b.join();
  EXPECT_EQ(turn.load(), 0);
}

}  // namespace
}  // namespace wharf::sync_internal
