#include "wharf/sync/mutex.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/sync/mutex_shared_state.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/internal/thread_identity.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using testing::HelperPath;
using testing::MutexSharedState;
using testing::Subprocess;
using testing::UniqueName;
using testing::Watchdog;

// Runs `fn` on a thread that exits without unlocking what it locked.
template <class Fn>
void OnDyingThread(Fn fn) {
  std::thread t(fn);
  t.join();
}

TEST(MutexTest, ZeroedMemoryIsAnUnlockedMutex) {
  alignas(Mutex) unsigned char storage[sizeof(Mutex)];
  std::memset(storage, 0, sizeof(storage));
  Mutex* mu = std::launder(reinterpret_cast<Mutex*>(storage));
  EXPECT_EQ(mu->TryLock(), LockResult::kOk);
  mu->Unlock();
}

TEST(MutexTest, LockUnlockAndHeldByCurrentThread) {
  Mutex mu;
  EXPECT_FALSE(mu.HeldByCurrentThread());
  EXPECT_EQ(mu.Lock(), LockResult::kOk);
  EXPECT_TRUE(mu.HeldByCurrentThread());
  mu.Unlock();
  EXPECT_FALSE(mu.HeldByCurrentThread());
  EXPECT_EQ(mu.RawWordForTesting(), 0u);
}

TEST(MutexTest, WorksWithStandardLockGuards) {
  Mutex a, b;
  {
    std::scoped_lock lock(a, b);
    EXPECT_TRUE(a.HeldByCurrentThread());
    EXPECT_TRUE(b.HeldByCurrentThread());
  }
  EXPECT_FALSE(a.HeldByCurrentThread());
  std::unique_lock<Mutex> lock(a, std::defer_lock);
  EXPECT_TRUE(lock.try_lock_for(std::chrono::milliseconds(1)));
}

TEST(MutexTest, TryLockIsBusyWhileAnotherThreadHoldsIt) {
  Mutex mu;
  ASSERT_EQ(mu.Lock(), LockResult::kOk);
  std::thread([&] {
    EXPECT_EQ(mu.TryLock(), LockResult::kBusy);
    EXPECT_FALSE(mu.try_lock());
    // The owner is alive: checking it changes nothing.
    EXPECT_EQ(mu.TryLock(/*check_owner=*/true), LockResult::kBusy);
  }).join();
  mu.Unlock();
}

TEST(MutexTest, LockUntilTimesOutWhileHeld) {
  Watchdog dog("LockUntilTimesOutWhileHeld", absl::Seconds(30));
  Mutex mu;
  ASSERT_EQ(mu.Lock(), LockResult::kOk);
  std::thread([&] {
    const absl::Time start = absl::Now();
    EXPECT_EQ(mu.LockFor(absl::Milliseconds(20)), LockResult::kTimedOut);
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
    EXPECT_FALSE(mu.try_lock_for(std::chrono::milliseconds(5)));
    EXPECT_EQ(mu.LockUntil(absl::Now() - absl::Seconds(1)), LockResult::kTimedOut);
  }).join();
  mu.Unlock();
}

TEST(MutexTest, HandsOverToASleepingWaiter) {
  Watchdog dog("HandsOverToASleepingWaiter", absl::Seconds(30));
  Mutex mu;
  std::atomic<bool> acquired{false};
  ASSERT_EQ(mu.Lock(), LockResult::kOk);
  std::thread waiter([&] {
    EXPECT_EQ(mu.Lock(), LockResult::kOk);
    acquired = true;
    mu.Unlock();
  });
  // Let the waiter go to sleep (it sets the waiters bit first).
  while ((mu.RawWordForTesting() & Mutex::kWaitersBit) == 0) std::this_thread::yield();
  EXPECT_FALSE(acquired.load());
  mu.Unlock();
  waiter.join();
  EXPECT_TRUE(acquired.load());
  EXPECT_EQ(mu.RawWordForTesting(), 0u);
}

// N threads x M lock/increment/unlock gives exactly N x M.
TEST(MutexTest, StressCountsExactly) {
  Watchdog dog("StressCountsExactly", absl::Seconds(120));
  constexpr int kThreads = 4;
  constexpr int kIterations = 50000;
  Mutex mu;
  int64_t counter = 0;        // guarded by mu
  int64_t shadow = 0;         // guarded by mu: always equal to counter outside
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < kIterations; ++i) {
        ASSERT_EQ(mu.Lock(), LockResult::kOk);
        ASSERT_EQ(counter, shadow);
        ++counter;
        ++shadow;
        mu.Unlock();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, int64_t{kThreads} * kIterations);
  EXPECT_EQ(mu.RawWordForTesting(), 0u);
}

TEST(MutexTest, TimedLockersUnderContentionNeverBothHoldIt) {
  Watchdog dog("TimedLockersUnderContention", absl::Seconds(120));
  Mutex mu;
  std::atomic<int> inside{0};
  std::atomic<int> acquired{0};
  std::barrier start(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < 3000; ++i) {
        if (mu.LockFor(absl::Microseconds(50)) != LockResult::kOk) continue;
        EXPECT_EQ(inside.fetch_add(1), 0);
        acquired.fetch_add(1);
        inside.fetch_sub(1);
        mu.Unlock();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(acquired.load(), 0);
}

TEST(MutexTest, ThreadDyingWithTheLockGivesOwnerDied) {
  Watchdog dog("ThreadDyingWithTheLock", absl::Seconds(30));
  Mutex mu;
  OnDyingThread([&] { ASSERT_EQ(mu.Lock(), LockResult::kOk); });
  EXPECT_EQ(mu.Lock(), LockResult::kOwnerDied);
  EXPECT_TRUE(mu.HeldByCurrentThread());
  EXPECT_TRUE(mu.MarkConsistent().ok());
  mu.Unlock();
  EXPECT_EQ(mu.Lock(), LockResult::kOk);
  mu.Unlock();
}

TEST(MutexTest, TryLockWithOwnerCheckRecoversADeadOwner) {
  Mutex mu;
  OnDyingThread([&] { ASSERT_EQ(mu.Lock(), LockResult::kOk); });
  EXPECT_EQ(mu.TryLock(), LockResult::kBusy);
  EXPECT_EQ(mu.TryLock(/*check_owner=*/true), LockResult::kOwnerDied);
  EXPECT_TRUE(mu.MarkConsistent().ok());
  mu.Unlock();
}

TEST(MutexTest, ExactlyOneOfManyWaitersGetsOwnerDied) {
  Watchdog dog("ExactlyOneOfManyWaiters", absl::Seconds(30));
  Mutex mu;
  std::atomic<bool> holder_locked{false};
  std::atomic<int> owner_died{0}, ok{0};
  std::thread holder([&] {
    ASSERT_EQ(mu.Lock(), LockResult::kOk);
    holder_locked = true;
    // Give the waiters time to go to sleep behind a live owner, then die.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  });
  while (!holder_locked) std::this_thread::yield();
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] {
      const LockResult r = mu.Lock();
      if (r == LockResult::kOwnerDied) {
        owner_died.fetch_add(1);
        EXPECT_TRUE(mu.MarkConsistent().ok());
      } else {
        EXPECT_EQ(r, LockResult::kOk);
        ok.fetch_add(1);
      }
      mu.Unlock();
    });
  }
  holder.join();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(owner_died.load(), 1);
  EXPECT_EQ(ok.load(), 2);
}

TEST(MutexTest, UnlockWithoutMarkConsistentMakesItNotRecoverable) {
  Watchdog dog("NotRecoverable", absl::Seconds(30));
  Mutex mu;
  OnDyingThread([&] { ASSERT_EQ(mu.Lock(), LockResult::kOk); });
  ASSERT_EQ(mu.Lock(), LockResult::kOwnerDied);
  mu.Unlock();  // no MarkConsistent()
  EXPECT_TRUE(mu.IsNotRecoverable());
  EXPECT_EQ(mu.Lock(), LockResult::kNotRecoverable);
  EXPECT_EQ(mu.TryLock(), LockResult::kNotRecoverable);
  EXPECT_EQ(mu.LockFor(absl::Milliseconds(1)), LockResult::kNotRecoverable);
  EXPECT_FALSE(mu.try_lock());
  try {
    mu.lock();
    ADD_FAILURE() << "lock() on a not-recoverable mutex must throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::state_not_recoverable);
  }
}

TEST(MutexTest, SleepersAreWokenWhenItBecomesNotRecoverable) {
  Watchdog dog("SleepersWokenNotRecoverable", absl::Seconds(30));
  Mutex mu;
  OnDyingThread([&] { ASSERT_EQ(mu.Lock(), LockResult::kOk); });
  ASSERT_EQ(mu.Lock(), LockResult::kOwnerDied);
  std::thread sleeper([&] { EXPECT_EQ(mu.Lock(), LockResult::kNotRecoverable); });
  while ((mu.RawWordForTesting() & Mutex::kWaitersBit) == 0) std::this_thread::yield();
  mu.Unlock();
  sleeper.join();
}

TEST(MutexTest, MarkConsistentErrors) {
  Mutex mu;
  absl::Status s = mu.MarkConsistent();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("does not hold"), std::string::npos) << s;
  ASSERT_EQ(mu.Lock(), LockResult::kOk);
  s = mu.MarkConsistent();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("consistent already"), std::string::npos) << s;
  mu.Unlock();
}

TEST(MutexDeathTest, UnlockByANonOwnerAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Mutex mu;
  EXPECT_DEATH(mu.Unlock(), "does not hold the mutex");
  ASSERT_EQ(mu.Lock(), LockResult::kOk);
  EXPECT_DEATH(std::thread([&] { mu.Unlock(); }).join(), "does not hold the mutex");
  mu.Unlock();
}

TEST(MutexDeathTest, DoubleUnlockAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Mutex mu;
  EXPECT_DEATH(
      {
        (void)mu.Lock();
        mu.Unlock();
        mu.Unlock();
      },
      "does not hold the mutex");
}

TEST(MutexDeathTest, RecursiveLockAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Mutex mu;
  EXPECT_DEATH(
      {
        (void)mu.Lock();
        (void)mu.Lock();
      },
      "not recursive");
}

TEST(ThreadIdentityTest, OwnerIdsAreLiveAndTagged) {
  using sync_internal::CheckOwner;
  using sync_internal::OwnerState;
  const uint64_t me = sync_internal::CurrentOwnerId();
  EXPECT_NE(sync_internal::OwnerTid(me), 0u);
  EXPECT_NE(sync_internal::OwnerTag(me), 0u) << "start time should be readable from /proc";
  EXPECT_EQ(CheckOwner(me), OwnerState::kAlive);
  // The same TID with another start time is a reused TID: its owner is dead.
  const uint64_t reused = me + (uint64_t{1} << 32);
  EXPECT_EQ(CheckOwner(reused), OwnerState::kDead);
  uint64_t dead_thread_id = 0;
  std::thread([&] { dead_thread_id = sync_internal::CurrentOwnerId(); }).join();
  EXPECT_NE(dead_thread_id, me);
  EXPECT_EQ(CheckOwner(dead_thread_id), OwnerState::kDead);
}

TEST(ThreadIdentityTest, ForkedChildGetsItsOwnId) {
  const uint64_t parent_id = sync_internal::CurrentOwnerId();
  const pid_t pid = ::fork();  // single-threaded at this point of the test
  if (pid == 0) {
    const uint64_t child_id = sync_internal::CurrentOwnerId();
    ::_exit(child_id != parent_id && sync_internal::OwnerTid(child_id) ==
                                         static_cast<uint32_t>(::getpid())
                ? 0
                : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ---- Cross-process: a Mutex in a named SharedBuffer ----

class MutexProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = UniqueName("mutex");
    auto buffer = SharedBuffer::CreateNamed(name_, 4096);
    ASSERT_TRUE(buffer.ok()) << buffer.status();
    buffer_ = *std::move(buffer);
    state_ = new (buffer_.data()) MutexSharedState{};
  }
  void TearDown() override {
    buffer_ = SharedBuffer();
    (void)SharedBuffer::Unlink(name_);
  }

  absl::StatusOr<Subprocess> Spawn(std::vector<std::string> args) {
    return Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"), args);
  }

  // Waits until a child announced `ready`, then clears it.
  void AwaitReady() {
    while (atomics::Load(state_->ready) == 0) {
      (void)atomics::Wait(state_->ready, 0u, absl::Milliseconds(100));
    }
    atomics::Store(state_->ready, 0u);
  }

  std::string name_;
  SharedBuffer buffer_;
  MutexSharedState* state_ = nullptr;
};

TEST_F(MutexProcessTest, ProcessesContendAndCountExactly) {
  Watchdog dog("ProcessesContendAndCountExactly", absl::Seconds(120));
  constexpr int kChildren = 3;
  constexpr int kIterations = 20000;
  std::vector<Subprocess> children;
  for (int i = 0; i < kChildren; ++i) {
    auto child = Spawn({"mutex_contend", name_, std::to_string(kIterations)});
    ASSERT_TRUE(child.ok()) << child.status();
    children.push_back(*std::move(child));
  }
  // The parent contends too.
  for (int i = 0; i < kIterations; ++i) {
    ASSERT_EQ(state_->mu.Lock(), LockResult::kOk);
    ++state_->a;
    ++state_->b;
    state_->mu.Unlock();
  }
  for (auto& child : children) {
    auto code = child.Wait(absl::Seconds(60));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }
  EXPECT_EQ(state_->a, int64_t{kChildren + 1} * kIterations);
  EXPECT_EQ(state_->b, state_->a);
  EXPECT_EQ(state_->recoveries, 0);
}

// A child SIGKILLed while holding the lock, 100 times: the survivor always gets
// kOwnerDied, repairs, and continues. Half the time the parent is already
// asleep in Lock() when the child dies; half the time it locks afterwards.
TEST_F(MutexProcessTest, ChildKilledHoldingTheLockHundredTimes) {
  Watchdog dog("ChildKilledHoldingTheLock x100", absl::Seconds(240));
  for (int round = 0; round < 100; ++round) {
    auto child = Spawn({"mutex_hold", name_});
    ASSERT_TRUE(child.ok()) << child.status();
    AwaitReady();
    ASSERT_NE(state_->a, state_->b) << "child holds the lock with the invariant broken";
    LockResult result;
    if (round % 2 == 0) {
      std::thread killer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        child->Kill();
      });
      result = state_->mu.Lock();  // asleep when the owner dies
      killer.join();
    } else {
      child->Kill();
      result = state_->mu.Lock();
    }
    ASSERT_EQ(result, LockResult::kOwnerDied) << "round " << round;
    state_->b = state_->a;  // repair
    ASSERT_TRUE(state_->mu.MarkConsistent().ok());
    state_->mu.Unlock();
    auto code = child->Wait(absl::Seconds(10));
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 128 + SIGKILL);
  }
  EXPECT_EQ(state_->a, 100);
  EXPECT_EQ(state_->b, 100);
}

// Children churning through the lock are killed at random points while others
// keep going: whoever finds the lock abandoned repairs it; the invariant holds
// and the survivors finish.
TEST_F(MutexProcessTest, ChurningChildrenKilledAtRandomPoints) {
  Watchdog dog("ChurningChildrenKilled", absl::Seconds(240));
  std::mt19937 rng(42);
  auto survivor = Spawn({"mutex_contend", name_, "200000"});
  ASSERT_TRUE(survivor.ok()) << survivor.status();
  for (int round = 0; round < 30; ++round) {
    auto victim = Spawn({"mutex_churn", name_});
    ASSERT_TRUE(victim.ok()) << victim.status();
    AwaitReady();
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    victim->Kill();
    auto code = victim->Wait(absl::Seconds(10));
    ASSERT_TRUE(code.ok());
  }
  auto code = survivor->Wait(absl::Seconds(120));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  // Take the lock once more (recovering if the last victim died in it).
  const LockResult r = state_->mu.Lock();
  ASSERT_TRUE(Acquired(r)) << LockResultName(r);
  if (r == LockResult::kOwnerDied) {
    state_->b = state_->a;
    ++state_->recoveries;
    ASSERT_TRUE(state_->mu.MarkConsistent().ok());
  }
  EXPECT_EQ(state_->a, state_->b);
  EXPECT_GE(state_->a, 200000);
  state_->mu.Unlock();
}

}  // namespace
}  // namespace wharf
