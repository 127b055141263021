#include "wharf/sync/futex.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"

namespace wharf {
namespace {

using testing::Watchdog;

TEST(FutexTest, NotEqualReturnsAtOnce) {
  std::atomic<uint32_t> word{1};
  EXPECT_EQ(FutexWait(&word, 0, FutexScope::kPrivate), FutexWaitResult::kNotEqual);
  EXPECT_EQ(FutexWait(&word, 0, FutexScope::kShared), FutexWaitResult::kNotEqual);
}

TEST(FutexTest, DeadlineInThePastTimesOut) {
  std::atomic<uint32_t> word{0};
  EXPECT_EQ(FutexWait(&word, 0, FutexScope::kShared, absl::Now() - absl::Seconds(1)),
            FutexWaitResult::kTimedOut);
  EXPECT_EQ(FutexWait(&word, 0, FutexScope::kShared, absl::InfinitePast()),
            FutexWaitResult::kTimedOut);
}

TEST(FutexTest, TimesOutAfterTheDeadline) {
  std::atomic<uint32_t> word{0};
  const absl::Time deadline = absl::Now() + absl::Milliseconds(10);
  EXPECT_EQ(FutexWait(&word, 0, FutexScope::kPrivate, deadline), FutexWaitResult::kTimedOut);
  EXPECT_GE(absl::Now(), deadline);
}

TEST(FutexTest, WakeWithNoWaiterWakesNone) {
  std::atomic<uint32_t> word{0};
  EXPECT_EQ(FutexWake(&word, 1, FutexScope::kShared), 0);
  EXPECT_EQ(FutexWake(&word, 0, FutexScope::kShared), 0);
  EXPECT_EQ(FutexWake(&word, -5, FutexScope::kShared), 0);
}

// One waiter per scope: a wake in the same scope finds it.
class FutexScopeTest : public ::testing::TestWithParam<FutexScope> {};

TEST_P(FutexScopeTest, WakeFindsTheWaiter) {
  Watchdog dog("FutexScopeTest.WakeFindsTheWaiter", absl::Seconds(30));
  std::atomic<uint32_t> word{0};
  std::thread waiter([&] {
    while (word.load() == 0) {
      FutexWait(&word, 0, GetParam());
    }
  });
  // If the waiter is not asleep yet, it sees the store (kNotEqual) instead.
  word.store(1);
  FutexWake(&word, INT_MAX, GetParam());
  waiter.join();
}

INSTANTIATE_TEST_SUITE_P(Scopes, FutexScopeTest,
                         ::testing::Values(FutexScope::kPrivate, FutexScope::kShared));

TEST(FutexTest, SharedScopeWakesAnotherProcess) {
  Watchdog dog("SharedScopeWakesAnotherProcess", absl::Seconds(30));
  void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* word = new (mem) std::atomic<uint32_t>(0);
  // The test process is single-threaded here (the watchdog thread only waits
  // on a condition variable), and the child only uses async-signal-safe calls
  // and the futex.
  const pid_t pid = ::fork();
  if (pid == 0) {
    while (word->load() == 0) FutexWait(word, 0, FutexScope::kShared);
    ::_exit(word->load() == 7 ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  word->store(7);
  FutexWake(word, 1, FutexScope::kShared);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::munmap(mem, 4096);
}

TEST(Futex64Test, NotEqualOnEitherHalf) {
  std::atomic<uint64_t> word{0x0000000100000002ull};
  EXPECT_EQ(FutexWait64(&word, 0x0000000100000003ull, FutexScope::kShared),
            FutexWaitResult::kNotEqual);  // low half differs
  EXPECT_EQ(FutexWait64(&word, 0x0000000200000002ull, FutexScope::kShared),
            FutexWaitResult::kNotEqual);  // high half differs
  EXPECT_EQ(FutexWait64(&word, 0x0000000100000002ull, FutexScope::kShared,
                        absl::Now() + absl::Milliseconds(5)),
            FutexWaitResult::kTimedOut);
}

TEST(Futex64Test, HighHalfChangeAndWakeEndsTheWait) {
  Watchdog dog("HighHalfChangeAndWake", absl::Seconds(30));
  std::atomic<uint64_t> word{5};
  std::thread waiter([&] {
    while (word.load() == 5) FutexWait64(&word, 5, FutexScope::kShared);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  word.store(5 + (uint64_t{1} << 32));  // low half unchanged
  FutexWake64(&word, 1, FutexScope::kShared);
  waiter.join();
}

}  // namespace
}  // namespace wharf
