#include "wharf/sync/internal/wait_loop.h"

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <optional>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/futex.h"
#include "wharf/sync/interrupt.h"

namespace wharf::sync_internal {
namespace {

using testing::Watchdog;

// Wakes `word` until a sleeper is found, without changing it.
void WakeUntilFound(const void* word) {
  while (FutexWake(word, 1, FutexScope::kPrivate) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

TEST(SpinTest, PausesCallsReadyAfterEachPause) {
  int calls = 0;
  EXPECT_FALSE(SpinPauses(7, [&] { return ++calls > 100; }));
  EXPECT_EQ(calls, 7);
  calls = 0;
  EXPECT_TRUE(SpinPauses(7, [&] { return ++calls == 3; }));
  EXPECT_EQ(calls, 3);
  calls = 0;
  EXPECT_FALSE(SpinPauses(0, [&] { return ++calls > 0; }));
  EXPECT_EQ(calls, 0);
}

TEST(SpinTest, ForSpinsAtLeastTheDurationOrUntilTheDeadline) {
  int calls = 0;
  EXPECT_FALSE(SpinFor(absl::ZeroDuration(), absl::InfiniteFuture(), [&] { return ++calls > 0; }));
  EXPECT_EQ(calls, 0);
  absl::Time start = absl::Now();
  EXPECT_FALSE(SpinFor(absl::Milliseconds(2), absl::InfiniteFuture(), [] { return false; }));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(2));
  start = absl::Now();
  EXPECT_FALSE(SpinFor(absl::Seconds(100), start + absl::Milliseconds(2), [] { return false; }));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(2));
  calls = 0;
  EXPECT_TRUE(SpinFor(absl::Seconds(100), absl::InfiniteFuture(), [&] { return ++calls == 500; }));
  EXPECT_EQ(calls, 500);
}

TEST(WaitLoopTest, ReadyDuringTheSpinNeverAnnounces) {
  std::atomic<uint32_t> word{0};
  int ready_calls = 0;
  int announces = 0;
  const WaitEnd end = WaitLoop(
      {.word = &word, .scope = FutexScope::kPrivate, .spin_pauses = 10}, absl::InfiniteFuture(),
      [&] { return ++ready_calls == 3; },
      [&]() -> std::optional<uint32_t> {
        ++announces;
        return 0;
      });
  EXPECT_EQ(end, WaitEnd::kReady);
  EXPECT_EQ(ready_calls, 3);
  EXPECT_EQ(announces, 0);
}

TEST(WaitLoopTest, AnnounceEndsTheWait) {
  std::atomic<uint32_t> word{0};
  const WaitEnd end = WaitLoop(
      {.word = &word, .scope = FutexScope::kPrivate, .spin_pauses = 0}, absl::InfiniteFuture(),
      [] { return false; }, []() -> std::optional<uint32_t> { return std::nullopt; });
  EXPECT_EQ(end, WaitEnd::kReady);
}

TEST(WaitLoopTest, TimesOutAtTheDeadline) {
  std::atomic<uint32_t> word{0};
  const absl::Time deadline = absl::Now() + absl::Milliseconds(5);
  int announces = 0;
  const WaitEnd end = WaitLoop(
      {.word = &word, .scope = FutexScope::kShared}, deadline, [] { return false; },
      [&]() -> std::optional<uint32_t> {
        ++announces;
        return 0;
      });
  EXPECT_EQ(end, WaitEnd::kTimedOut);
  EXPECT_GE(absl::Now(), deadline);
  EXPECT_GE(announces, 1);
}

// After a wake the loop announces (and re-checks) again; a stale value makes
// the kernel return at once, which also goes back to announce().
TEST(WaitLoopTest, WakeGoesBackToAnnounce) {
  Watchdog dog("WaitLoopTest.WakeGoesBackToAnnounce", absl::Seconds(60));
  std::atomic<uint32_t> word{0};
  int announces = 0;
  std::thread waker([&] {
    WakeUntilFound(&word);  // a wake without a change: sleep again
    word.store(1);
    FutexWake(&word, 1, FutexScope::kPrivate);
  });
  const WaitEnd end = WaitLoop(
      {.word = &word, .scope = FutexScope::kPrivate, .spin_pauses = 0}, absl::InfiniteFuture(),
      [] { return false; },
      [&]() -> std::optional<uint32_t> {
        ++announces;
        if (word.load() != 0) return std::nullopt;
        return 0;
      });
  waker.join();
  EXPECT_EQ(end, WaitEnd::kReady);
  EXPECT_GE(announces, 2);
}

TEST(WaitLoopTest, SingleSleepReportsTheWake) {
  Watchdog dog("WaitLoopTest.SingleSleepReportsTheWake", absl::Seconds(60));
  std::atomic<uint32_t> word{0};
  std::thread waker([&] { WakeUntilFound(&word); });
  const WaitEnd end = WaitLoop(
      {.word = &word, .scope = FutexScope::kPrivate, .spin_pauses = 0, .single_sleep = true},
      absl::InfiniteFuture(), [] { return false; },
      []() -> std::optional<uint32_t> { return 0; });
  waker.join();
  EXPECT_EQ(end, WaitEnd::kWoken);
}

TEST(WaitLoopTest, WaitsOnSixtyFourBitWords) {
  Watchdog dog("WaitLoopTest.WaitsOnSixtyFourBitWords", absl::Seconds(60));
  std::atomic<uint64_t> word{7};
  std::thread changer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    word.store(7 + (uint64_t{1} << 32));  // the high half only
    FutexWake64(&word, 1, FutexScope::kShared);
  });
  const WaitEnd end = WaitLoop(
      {.word = &word, .scope = FutexScope::kShared, .spin_pauses = 0}, absl::InfiniteFuture(),
      [] { return false; },
      [&]() -> std::optional<uint64_t> {
        if (word.load() != 7) return std::nullopt;
        return 7;
      });
  changer.join();
  EXPECT_EQ(end, WaitEnd::kReady);
}

TEST(WaitLoopTest, CheckPeriodsCallOnPeriod) {
  Watchdog dog("WaitLoopTest.CheckPeriodsCallOnPeriod", absl::Seconds(60));
  std::atomic<uint32_t> word{0};
  int periods = 0;
  const WaitEnd end = WaitLoop(
      {.word = &word, .scope = FutexScope::kShared, .spin_pauses = 0, .check_periods = true},
      absl::InfiniteFuture(), [] { return false; },
      []() -> std::optional<uint32_t> { return 0; }, [&] { return ++periods == 3; });
  EXPECT_EQ(end, WaitEnd::kReady);
  EXPECT_EQ(periods, 3);
  // Periods never outlast the deadline: it still ends the wait.
  periods = 0;
  EXPECT_EQ(WaitLoop({.word = &word,
                      .scope = FutexScope::kShared,
                      .spin_pauses = 0,
                      .check_periods = true},
                     absl::Now() + absl::Milliseconds(4), [] { return false; },
                     []() -> std::optional<uint32_t> { return 0; },
                     [&] {
                       ++periods;
                       return false;
                     }),
            WaitEnd::kTimedOut);
}

TEST(WaitLoopTest, RecheckAtDeadline) {
  std::atomic<uint32_t> word{0};
  int announces = 0;
  auto announce = [&]() -> std::optional<uint32_t> {
    if (++announces == 2) return std::nullopt;  // the round after the deadline
    return 0;
  };
  EXPECT_EQ(WaitLoop({.word = &word,
                      .scope = FutexScope::kShared,
                      .spin_pauses = 0,
                      .recheck_at_deadline = true},
                     absl::Now() + absl::Milliseconds(2), [] { return false; }, announce),
            WaitEnd::kReady);
  EXPECT_EQ(announces, 2);
  announces = 0;
  EXPECT_EQ(WaitLoop({.word = &word, .scope = FutexScope::kShared, .spin_pauses = 0},
                     absl::Now() + absl::Milliseconds(2), [] { return false; }, announce),
            WaitEnd::kTimedOut);
  EXPECT_EQ(announces, 1);
}

TEST(WaitLoopTest, InterruptedOnlyWhenInterruptible) {
  Interrupter interrupter;
  interrupter.Request();
  InterruptibleScope scope(interrupter);
  std::atomic<uint32_t> word{0};
  auto announce = []() -> std::optional<uint32_t> { return 0; };
  EXPECT_EQ(WaitLoop({.word = &word, .scope = FutexScope::kShared, .spin_pauses = 0},
                     absl::InfiniteFuture(), [] { return false; }, announce),
            WaitEnd::kInterrupted);
  EXPECT_EQ(WaitLoop({.word = &word,
                      .scope = FutexScope::kShared,
                      .spin_pauses = 0,
                      .interruptible = false},
                     absl::Now() + absl::Milliseconds(2), [] { return false; }, announce),
            WaitEnd::kTimedOut);
}

}  // namespace
}  // namespace wharf::sync_internal
