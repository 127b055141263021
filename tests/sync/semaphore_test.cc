#include "wharf/sync/semaphore.h"

#include <atomic>
#include <barrier>
#include <chrono>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/sync/lock_shared_state.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using testing::HelperPath;
using testing::Subprocess;
using testing::UniqueName;
using testing::Watchdog;

TEST(SemaphoreTest, CountsPermits) {
  Semaphore sem(2, 5);
  EXPECT_EQ(sem.Count(), 2u);
  EXPECT_EQ(sem.Max(), 5u);
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_FALSE(sem.try_acquire());
  EXPECT_EQ(sem.Count(), 0u);
  sem.release(3);
  EXPECT_EQ(sem.Count(), 3u);
  sem.acquire();
  EXPECT_EQ(sem.Count(), 2u);
  EXPECT_TRUE(sem.Release(0).ok());
  EXPECT_EQ(sem.Count(), 2u);
  EXPECT_EQ(sem.RawWordForTesting(), 2u);  // nobody ever announced a wait
}

TEST(SemaphoreTest, ReleaseAboveMaxIsOutOfRange) {
  Semaphore sem(1, 2);
  EXPECT_TRUE(sem.Release().ok());
  const absl::Status s = sem.Release();
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_EQ(sem.Count(), 2u);  // unchanged
  EXPECT_EQ(sem.Release(5).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(sem.Count(), 2u);
}

TEST(SemaphoreTest, DefaultMaxIsLargest) {
  Semaphore sem(0);
  EXPECT_EQ(sem.Max(), Semaphore::kLargestMax);
  EXPECT_TRUE(sem.Release(Semaphore::kLargestMax).ok());
  EXPECT_EQ(sem.Release(1).code(), absl::StatusCode::kOutOfRange);
}

TEST(SemaphoreTest, TimedAcquireTimesOut) {
  Watchdog dog("TimedAcquireTimesOut", absl::Seconds(30));
  Semaphore sem(0);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(sem.AcquireFor(absl::Milliseconds(20)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
  EXPECT_FALSE(sem.try_acquire_for(std::chrono::milliseconds(5)));
  EXPECT_FALSE(sem.try_acquire_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(5)));
  EXPECT_FALSE(sem.AcquireUntil(absl::InfinitePast()));
  // A timed-out acquirer withdraws its announcement.
  EXPECT_EQ(sem.RawWordForTesting(), 0u);
  sem.release();
  EXPECT_TRUE(sem.AcquireFor(absl::Milliseconds(20)));
}

TEST(SemaphoreTest, ReleaseWakesASleeper) {
  Watchdog dog("ReleaseWakesASleeper", absl::Seconds(30));
  Semaphore sem(0);
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    sem.acquire();
    got = true;
  });
  while ((sem.RawWordForTesting() >> 32) == 0) std::this_thread::yield();  // announced
  EXPECT_FALSE(got.load());
  sem.release();
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(sem.RawWordForTesting(), 0u);  // count 0, no waiter left
}

TEST(SemaphoreTest, ReleaseNWakesN) {
  Watchdog dog("ReleaseNWakesN", absl::Seconds(30));
  constexpr int kWaiters = 4;
  Semaphore sem(0);
  std::atomic<int> got{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      sem.acquire();
      got.fetch_add(1);
    });
  }
  while ((sem.RawWordForTesting() >> 32) != kWaiters) std::this_thread::yield();
  sem.release(kWaiters);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(got.load(), kWaiters);
  EXPECT_EQ(sem.Count(), 0u);
}

// N threads (started on a barrier) share `kSlots` permits: the number inside
// never exceeds kSlots, and every permit comes back.
TEST(SemaphoreTest, StressNeverExceedsCount) {
  Watchdog dog("StressNeverExceedsCount", absl::Seconds(60));
  constexpr int kThreads = 6;
  constexpr uint32_t kSlots = 2;
  constexpr int kIterations = 20000;
  Semaphore sem(kSlots);
  std::barrier start(kThreads);
  std::atomic<uint32_t> inside{0};
  std::atomic<uint32_t> max_inside{0};
  std::atomic<int> violations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kIterations; ++i) {
        // Mix the acquire variants.
        if (t % 3 == 0) {
          sem.acquire();
        } else if (t % 3 == 1) {
          while (!sem.AcquireFor(absl::Microseconds(50))) {
          }
        } else {
          while (!sem.try_acquire()) std::this_thread::yield();
        }
        const uint32_t now = inside.fetch_add(1) + 1;
        if (now > kSlots) violations.fetch_add(1);
        uint32_t seen = max_inside.load();
        while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
        }
        for (int k = 0; k < 50; ++k) asm volatile("" ::: "memory");  // widen the window
        inside.fetch_sub(1);
        sem.release();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_LE(max_inside.load(), kSlots);
  EXPECT_EQ(sem.Count(), kSlots);
  EXPECT_EQ(sem.RawWordForTesting(), uint64_t{kSlots});  // no waiter mark left
}

// Two semaphores hand a token back and forth 10^5 times: a lost wake-up
// hangs (the watchdog names it).
TEST(SemaphoreTest, PingPong100k) {
  Watchdog dog("PingPong100k", absl::Seconds(120));
  constexpr int kRounds = 100000;
  Semaphore ping(0);
  Semaphore pong(0);
  std::thread other([&] {
    for (int i = 0; i < kRounds; ++i) {
      ping.acquire();
      pong.release();
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    ping.release();
    pong.acquire();
  }
  other.join();
  EXPECT_EQ(ping.Count(), 0u);
  EXPECT_EQ(pong.Count(), 0u);
}

// Acquirers with tiny deadlines race releases: a timed-out acquirer must not
// swallow a wake-up meant for a sleeper, and permits are conserved.
TEST(SemaphoreTest, StressTimeoutsConservePermits) {
  Watchdog dog("StressTimeoutsConservePermits", absl::Seconds(60));
  constexpr int kTimed = 3;
  constexpr int kReleases = 4000;
  Semaphore sem(0);
  std::barrier start(kTimed + 2);
  std::atomic<int> taken{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kTimed; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      while (!stop.load()) {
        if (sem.AcquireFor(absl::Microseconds(20))) taken.fetch_add(1);
      }
    });
  }
  // A blocking acquirer that must get exactly its share in the end.
  std::thread blocking([&] {
    start.arrive_and_wait();
    for (int i = 0; i < 100; ++i) {
      sem.acquire();
      taken.fetch_add(1);
    }
  });
  start.arrive_and_wait();
  for (int i = 0; i < kReleases; ++i) sem.release();
  stop = true;
  for (auto& t : threads) t.join();
  // The timed acquirers may have taken the blocking one's share: top it up.
  // If a wake-up had been lost, `blocking` would sleep despite the permits.
  sem.release(100);
  blocking.join();
  EXPECT_EQ(taken.load() + static_cast<int>(sem.Count()), kReleases + 100);
  EXPECT_EQ(sem.RawWordForTesting() >> 32, 0u);
}

TEST(SemaphoreTest, SharedMemoryLayout) {
  static_assert(sizeof(Semaphore) == 16 && alignof(Semaphore) == 8);
  static_assert(std::is_trivially_destructible_v<Semaphore>);
}

TEST(SemaphoreDeathTest, ReleaseAboveMaxAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Semaphore sem(1, 1);
  EXPECT_DEATH(sem.release(), "above max");
  EXPECT_DEATH(sem.release(-1), "out of \\[0, kLargestMax\\]");
}

TEST(SemaphoreDeathTest, BadConstructionAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH((void)Semaphore(3, 2), "initial count larger than max");
  EXPECT_DEATH((void)Semaphore(0, 0x80000000u), "max larger than");
}

// ---- Cross-process: Semaphores in a named SharedBuffer ----

using ::wharf::testing::SemaphoreShared;  // tests/sync/lock_shared_state.h

class SemaphoreProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = UniqueName("semaphore");
    auto buffer = SharedBuffer::CreateNamed(name_, 4096);
    ASSERT_TRUE(buffer.ok()) << buffer.status();
    buffer_ = *std::move(buffer);
    state_ = new (buffer_.data())
        SemaphoreShared{Semaphore(0), Semaphore(0), Semaphore(kSlots), 0, 0, 0};
  }
  void TearDown() override {
    buffer_ = SharedBuffer();  // the creator's last handle removes the name
    EXPECT_FALSE(SharedBuffer::OpenNamed(name_).ok()) << name_ << " left in /dev/shm";
  }
  absl::StatusOr<Subprocess> Spawn(std::vector<std::string> args) {
    return Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"), args);
  }

  static constexpr uint32_t kSlots = 2;
  std::string name_;
  SharedBuffer buffer_;
  SemaphoreShared* state_ = nullptr;
};

TEST_F(SemaphoreProcessTest, PingPongAcrossProcesses) {
  Watchdog dog("PingPongAcrossProcesses", absl::Seconds(60));
  constexpr int kRounds = 20000;
  auto child = Spawn({"sem_pong", name_, std::to_string(kRounds)});
  ASSERT_TRUE(child.ok()) << child.status();
  for (int i = 0; i < kRounds; ++i) {
    state_->ping.release();
    ASSERT_TRUE(state_->pong.AcquireFor(absl::Seconds(30))) << "round " << i;
  }
  auto code = child->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

TEST_F(SemaphoreProcessTest, HoldersNeverExceedCountAcrossProcesses) {
  Watchdog dog("HoldersNeverExceedCountAcrossProcesses", absl::Seconds(60));
  constexpr int kChildren = 3;
  constexpr int kIterations = 5000;
  std::vector<Subprocess> children;
  for (int i = 0; i < kChildren; ++i) {
    auto child = Spawn({"sem_holders", name_, std::to_string(kIterations),
                        std::to_string(kSlots)});
    ASSERT_TRUE(child.ok()) << child.status();
    children.push_back(*std::move(child));
  }
  for (auto& child : children) {
    auto code = child.Wait(absl::Seconds(60));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }
  EXPECT_EQ(atomics::Load(state_->violations), 0u);
  EXPECT_EQ(atomics::Load(state_->entries), uint64_t{kChildren} * kIterations);
  EXPECT_EQ(state_->slots.Count(), kSlots);
}

}  // namespace
}  // namespace wharf
