#include "wharf/sync/latch.h"

#include <atomic>
#include <barrier>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/sync/lock_shared_state.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/notification.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using testing::HelperPath;
using testing::Subprocess;
using testing::UniqueName;
using testing::Watchdog;

TEST(LatchTest, ZeroIsOpen) {
  Latch latch(0);
  EXPECT_TRUE(latch.try_wait());
  latch.wait();
  EXPECT_TRUE(latch.WaitUntil(absl::InfinitePast()));
  latch.count_down(0);  // n == 0 is allowed and does nothing
  EXPECT_EQ(latch.Count(), 0u);
}

TEST(LatchTest, CountsDownToOpen) {
  Latch latch(3);
  EXPECT_FALSE(latch.try_wait());
  latch.count_down();
  EXPECT_EQ(latch.Count(), 2u);
  latch.count_down(2);
  EXPECT_TRUE(latch.try_wait());
  latch.wait();
  EXPECT_EQ(Latch::max(), 0x7fffffff);
}

TEST(LatchTest, ArriveAndWaitByTheLast) {
  Latch latch(2);
  latch.count_down();
  latch.arrive_and_wait();  // the last arrival does not block
  EXPECT_TRUE(latch.try_wait());
}

TEST(LatchTest, WaitForTimesOut) {
  Watchdog dog("WaitForTimesOut", absl::Seconds(30));
  Latch latch(1);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(latch.WaitFor(absl::Milliseconds(20)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
  EXPECT_FALSE(latch.try_wait());
  latch.count_down();
  EXPECT_TRUE(latch.WaitFor(absl::Milliseconds(20)));
}

TEST(LatchTest, WakesSleepingWaiters) {
  Watchdog dog("WakesSleepingWaiters", absl::Seconds(30));
  Latch latch(1);
  std::atomic<int> done{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] {
      latch.wait();
      done.fetch_add(1);
    });
  }
  while ((latch.RawWordForTesting() & Latch::kWaitersBit) == 0) std::this_thread::yield();
  EXPECT_EQ(done.load(), 0);
  latch.count_down();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(done.load(), 3);
  EXPECT_EQ(latch.RawWordForTesting(), 0u);  // opening clears the waiter bit
}

// N threads start on a barrier, then run many rounds, each with a fresh
// latch: a thread writes its slot, arrive_and_wait()s; after the latch opens
// every thread sees every slot of the round (TSan checks the plain writes).
TEST(LatchTest, StressAllArriveAllSeeAllWrites) {
  Watchdog dog("StressAllArriveAllSeeAllWrites", absl::Seconds(60));
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::vector<std::unique_ptr<Latch>> latches;
  for (int r = 0; r < kRounds; ++r) latches.push_back(std::make_unique<Latch>(kThreads));
  std::barrier start(kThreads);
  // slots[r % 2][t]: written by t in round r, read by all after latch r. It
  // is written again in round r + 2, after latch r + 1 opened, which needs
  // every thread to have finished its reads of round r.
  int slots[2][kThreads] = {};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int r = 0; r < kRounds; ++r) {
        slots[r % 2][t] = r + 1;
        latches[r]->arrive_and_wait();
        for (int v : slots[r % 2]) {
          if (v != r + 1) errors.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (const auto& latch : latches) EXPECT_EQ(latch->RawWordForTesting(), 0u);
}

// Counters on one side, waiters on the other, counts of n > 1.
TEST(LatchTest, StressCountDownByManyWithWaiters) {
  Watchdog dog("StressCountDownByManyWithWaiters", absl::Seconds(60));
  constexpr int kCounters = 3;
  constexpr int kPerCounter = 500;
  Latch latch(kCounters * kPerCounter * 2);
  std::barrier start(kCounters + 2);
  std::vector<std::thread> threads;
  for (int c = 0; c < kCounters; ++c) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerCounter; ++i) latch.count_down(2);
    });
  }
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      latch.wait();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(latch.try_wait());
}

TEST(LatchDeathTest, CountingBelowZeroAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Latch latch(2);
  latch.count_down();
  EXPECT_DEATH(latch.count_down(2), "greater than the remaining count");
  Latch open(0);
  EXPECT_DEATH(open.count_down(), "greater than the remaining count");
  EXPECT_DEATH(latch.count_down(-1), "negative");
}

TEST(LatchDeathTest, CountAboveMaxAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH((void)Latch(0x80000000u), "larger than Latch::kMax");
}

// ---- Cross-process: children count down a Latch in a named buffer ----

using ::wharf::testing::EventShared;  // tests/sync/lock_shared_state.h

TEST(LatchProcessTest, ParentWaitsForChildren) {
  Watchdog dog("ParentWaitsForChildren", absl::Seconds(60));
  constexpr int kChildren = 4;
  const std::string name = UniqueName("latch");
  auto buffer = SharedBuffer::CreateNamed(name, 4096);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  auto* s = new (buffer->data()) EventShared{Latch(kChildren), Notification(), 0, 0};
  std::vector<Subprocess> children;
  for (int i = 0; i < kChildren; ++i) {
    auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                   {"event_arrive_wait", name});
    ASSERT_TRUE(child.ok()) << child.status();
    children.push_back(*std::move(child));
  }
  // The latch opens only after every child counted down: then all of them
  // have incremented `counted` (before their count_down, release).
  ASSERT_TRUE(s->arrived.WaitFor(absl::Seconds(30)));
  EXPECT_EQ(atomics::Load(s->counted), static_cast<uint32_t>(kChildren));
  s->payload = 42;
  s->go.Notify();
  for (auto& child : children) {
    auto code = child.Wait(absl::Seconds(30));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }
  buffer = SharedBuffer();
  EXPECT_FALSE(SharedBuffer::OpenNamed(name).ok());
}

}  // namespace
}  // namespace wharf
