#include "wharf/sync/futex.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/internal/str_cat.h"

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

// ---- FutexWaitAny ----

// Wakes `word` until a sleeper is found (a wake with no store: only a sleeper
// queued on `word` can be counted, so the result is deterministic).
void WakeUntilFound(const void* word, FutexScope scope) {
  while (FutexWake(word, 1, scope) == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
}

// Restores futex_waitv detection at the end of a fallback test, even when an
// assertion fails half-way.
struct FallbackMode {
  FallbackMode() { SetFutexWaitvUnsupportedForTesting(true); }
  ~FallbackMode() { SetFutexWaitvUnsupportedForTesting(false); }
};

std::vector<FutexWaitEntry> EntriesFor(std::atomic<uint32_t>* words, int n) {
  std::vector<FutexWaitEntry> entries;
  for (int i = 0; i < n; ++i) {
    // Scopes alternate: one wait may mix private and shared words.
    entries.push_back({&words[i], words[i].load(),
                       i % 2 == 0 ? FutexScope::kPrivate : FutexScope::kShared});
  }
  return entries;
}

TEST(FutexWaitAnyTest, NotEqualOnAnyEntry) {
  std::array<std::atomic<uint32_t>, 4> words{};
  for (int i = 0; i < 4; ++i) words[i].store(10 + i);
  for (int differs = 0; differs < 4; ++differs) {
    std::vector<FutexWaitEntry> entries = EntriesFor(words.data(), 4);
    entries[differs].expected += 1;
    const FutexWaitAnyResult r = FutexWaitAny(entries);
    EXPECT_EQ(r.result, FutexWaitResult::kNotEqual) << "entry " << differs;
    EXPECT_EQ(r.index, -1);
  }
}

TEST(FutexWaitAnyTest, TimesOut) {
  std::array<std::atomic<uint32_t>, 3> words{};
  const std::vector<FutexWaitEntry> entries = EntriesFor(words.data(), 3);
  FutexWaitAnyResult r = FutexWaitAny(entries, absl::Now() - absl::Seconds(1));
  EXPECT_EQ(r.result, FutexWaitResult::kTimedOut);
  EXPECT_EQ(r.index, -1);
  EXPECT_EQ(FutexWaitAny(entries, absl::InfinitePast()).result, FutexWaitResult::kTimedOut);
  const absl::Time deadline = absl::Now() + absl::Milliseconds(10);
  r = FutexWaitAny(entries, deadline);
  EXPECT_EQ(r.result, FutexWaitResult::kTimedOut);
  EXPECT_EQ(r.index, -1);
  EXPECT_GE(absl::Now(), deadline);
}

// A wake of entry k (in k's scope) ends the wait with kWoken and index k.
TEST(FutexWaitAnyTest, ReportsTheWokenIndexWithMixedScopes) {
  Watchdog dog("FutexWaitAnyTest.ReportsTheWokenIndex", absl::Seconds(60));
  std::array<std::atomic<uint32_t>, 5> words{};
  for (int k = 0; k < 5; ++k) {
    const std::vector<FutexWaitEntry> entries = EntriesFor(words.data(), 5);
    FutexWaitAnyResult r{FutexWaitResult::kTimedOut, -2};
    std::thread waiter([&] { r = FutexWaitAny(entries); });
    WakeUntilFound(&words[k], entries[k].scope);
    waiter.join();
    EXPECT_EQ(r.result, FutexWaitResult::kWoken) << "entry " << k;
    EXPECT_EQ(r.index, k);
  }
}

TEST(FutexWaitAnyTest, OneHundredTwentyEightEntries) {
  Watchdog dog("FutexWaitAnyTest.128", absl::Seconds(60));
  static_assert(kMaxFutexWaitEntries == 128);
  std::vector<std::atomic<uint32_t>> words(kMaxFutexWaitEntries);
  std::vector<FutexWaitEntry> entries = EntriesFor(words.data(), kMaxFutexWaitEntries);
  EXPECT_EQ(FutexWaitAny(entries, absl::Now() + absl::Milliseconds(2)).result,
            FutexWaitResult::kTimedOut);
  entries.back().expected = 1;
  EXPECT_EQ(FutexWaitAny(entries).result, FutexWaitResult::kNotEqual);
  entries.back().expected = 0;
  for (int k : {0, 64, 127}) {
    FutexWaitAnyResult r{FutexWaitResult::kTimedOut, -2};
    std::thread waiter([&] { r = FutexWaitAny(entries); });
    WakeUntilFound(&words[k], entries[k].scope);
    waiter.join();
    EXPECT_EQ(r.result, FutexWaitResult::kWoken);
    EXPECT_EQ(r.index, k);
  }
}

TEST(FutexWaitAnyDeathTest, MisuseAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<std::atomic<uint32_t>> words(kMaxFutexWaitEntries + 1);
  const std::vector<FutexWaitEntry> entries =
      EntriesFor(words.data(), kMaxFutexWaitEntries + 1);
  EXPECT_DEATH((void)FutexWaitAny(std::span<const FutexWaitEntry>()), "with 0 entries");
  EXPECT_DEATH((void)FutexWaitAny(entries), "with 129 entries");
  alignas(8) char bytes[16] = {};
  const FutexWaitEntry misaligned[] = {{&words[0], 0, FutexScope::kPrivate},
                                       {bytes + 2, 0, FutexScope::kPrivate}};
  EXPECT_DEATH((void)FutexWaitAny(misaligned), "entry 1's word .* not 4-byte aligned");
}

// A wait on a private word of this process and a shared word that another
// process wakes.
TEST(FutexWaitAnyTest, SharedEntryWokenByAnotherProcess) {
  Watchdog dog("FutexWaitAnyTest.SharedEntryWokenByAnotherProcess", absl::Seconds(30));
  void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* shared = new (mem) std::atomic<uint32_t>(0);
  // As in SharedScopeWakesAnotherProcess: the child uses the futex only.
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::atomic<uint32_t> local{0};
    const FutexWaitEntry entries[] = {{&local, 0, FutexScope::kPrivate},
                                      {shared, 0, FutexScope::kShared}};
    const FutexWaitAnyResult r = FutexWaitAny(entries);
    ::_exit(r.result == FutexWaitResult::kWoken && r.index == 1 ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  WakeUntilFound(shared, FutexScope::kShared);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::munmap(mem, 4096);
}

// Without futex_waitv: sleeps on entries[0] in slices, re-reading the others.
TEST(FutexWaitAnyTest, FallbackWithoutFutexWaitv) {
  Watchdog dog("FutexWaitAnyTest.Fallback", absl::Seconds(60));
  FallbackMode fallback;
  std::array<std::atomic<uint32_t>, 3> words{};
  std::vector<FutexWaitEntry> entries = EntriesFor(words.data(), 3);
  // Timeouts, at and after the deadline.
  EXPECT_EQ(FutexWaitAny(entries, absl::InfinitePast()).result, FutexWaitResult::kTimedOut);
  const absl::Time deadline = absl::Now() + absl::Milliseconds(5);
  EXPECT_EQ(FutexWaitAny(entries, deadline).result, FutexWaitResult::kTimedOut);
  EXPECT_GE(absl::Now(), deadline);
  // A later entry that differs before the sleep.
  entries[2].expected = 7;
  EXPECT_EQ(FutexWaitAny(entries).result, FutexWaitResult::kNotEqual);
  entries[2].expected = 0;
  // A later entry that changes during the sleep: seen within a slice.
  std::thread storer([&] {
    absl::SleepFor(absl::Milliseconds(5));
    words[1].store(1);
    FutexWake(&words[1], 1, entries[1].scope);  // finds nobody: only the store counts
  });
  FutexWaitAnyResult r = FutexWaitAny(entries);
  storer.join();
  EXPECT_EQ(r.result, FutexWaitResult::kNotEqual);
  EXPECT_EQ(r.index, -1);
  // A wake of entries[0] is reported with its index.
  entries = EntriesFor(words.data(), 3);
  std::thread waiter([&] { r = FutexWaitAny(entries); });
  WakeUntilFound(&words[0], entries[0].scope);
  waiter.join();
  EXPECT_EQ(r.result, FutexWaitResult::kWoken);
  EXPECT_EQ(r.index, 0);
  // FutexWait64 in the fallback: a change of the high half alone is seen.
  std::atomic<uint64_t> wide{5};
  std::thread high([&] {
    absl::SleepFor(absl::Milliseconds(5));
    wide.store(5 + (uint64_t{1} << 32));
  });
  while (wide.load() == 5) (void)FutexWait64(&wide, 5, FutexScope::kShared);
  high.join();
}

// Stress: wakers bump random entries (store, then wake); waiters sleep on all
// entries at once and re-read them after every return. Invariant: every
// waiter ends up counting every bump — a wake-up lost by FutexWaitAny would
// leave a waiter asleep with a stale value (the watchdog catches it).
void WakesOnRandomEntriesAreNeverLost(int words_n, int bumps_per_waker) {
  constexpr int kWakers = 2;
  constexpr int kWaiters = 2;
  std::vector<std::atomic<uint32_t>> words(words_n);
  std::atomic<int> ready{0};
  auto scope_of = [](int i) { return i % 3 == 0 ? FutexScope::kPrivate : FutexScope::kShared; };
  std::vector<std::thread> threads;
  std::vector<uint64_t> counted(kWaiters, 0);
  std::atomic<uint64_t> sleeps{0};
  for (int w = 0; w < kWaiters; ++w) {
    threads.emplace_back([&, w] {
      std::vector<uint32_t> seen(words_n, 0);
      std::vector<FutexWaitEntry> entries(words_n);
      const uint64_t total = uint64_t{kWakers} * bumps_per_waker;
      ready.fetch_add(1);
      while (counted[w] < total) {
        bool changed = false;
        for (int i = 0; i < words_n; ++i) {
          const uint32_t v = words[i].load(std::memory_order_acquire);
          if (v != seen[i]) {
            counted[w] += v - seen[i];
            seen[i] = v;
            changed = true;
          }
          entries[i] = {&words[i], seen[i], scope_of(i)};
        }
        if (changed || counted[w] >= total) continue;
        sleeps.fetch_add(1, std::memory_order_relaxed);
        const FutexWaitAnyResult r = FutexWaitAny(entries);
        ASSERT_NE(r.result, FutexWaitResult::kTimedOut);
        ASSERT_GE(r.index, -1);
        ASSERT_LT(r.index, words_n);
      }
    });
  }
  for (int k = 0; k < kWakers; ++k) {
    threads.emplace_back([&, k] {
      std::mt19937 rng(1234 + k);
      std::uniform_int_distribution<int> pick(0, words_n - 1);
      std::uniform_int_distribution<int> pause(0, 7);
      while (ready.load() < kWaiters) std::this_thread::yield();
      for (int n = 0; n < bumps_per_waker; ++n) {
        const int i = pick(rng);
        words[i].fetch_add(1, std::memory_order_release);
        FutexWake(&words[i], INT_MAX, scope_of(i));
        // Now and then, let the waiters fall asleep, so that most bumps
        // race a waiter entering or sitting in FutexWaitAny.
        if (pause(rng) == 0) std::this_thread::sleep_for(std::chrono::microseconds(pick(rng)));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  // For the log: how often the waiters went into FutexWaitAny.
  ::testing::Test::RecordProperty(sync_internal::Cat("waits_", words_n),
                                  std::to_string(sleeps.load()));
  std::printf("%d words: %llu waits for %d bumps\n", words_n,
              static_cast<unsigned long long>(sleeps.load()), kWakers * bumps_per_waker);
  for (int w = 0; w < kWaiters; ++w) {
    EXPECT_EQ(counted[w], uint64_t{kWakers} * bumps_per_waker) << "waiter " << w;
  }
}

TEST(FutexWaitAnyStressTest, WakesOnRandomEntriesAreNeverLost) {
  Watchdog dog("FutexWaitAnyStressTest.WakesOnRandomEntriesAreNeverLost", absl::Seconds(120));
  WakesOnRandomEntriesAreNeverLost(/*words_n=*/16, /*bumps_per_waker=*/20000);
  WakesOnRandomEntriesAreNeverLost(/*words_n=*/kMaxFutexWaitEntries, /*bumps_per_waker=*/5000);
}

TEST(FutexWaitAnyStressTest, FallbackLosesNoChange) {
  Watchdog dog("FutexWaitAnyStressTest.FallbackLosesNoChange", absl::Seconds(120));
  FallbackMode fallback;
  WakesOnRandomEntriesAreNeverLost(/*words_n=*/8, /*bumps_per_waker=*/2000);
}

}  // namespace
}  // namespace wharf
