// wharf::Wait, after CPython's test_concurrent_futures WaitTests: the three
// modes, timeouts, already-done futures, and completions from other threads.
#include "wharf/runtime/future_wait.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/future.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

struct Set {
  explicit Set(int n) : promises(n) {
    for (auto& p : promises) futures.push_back(p.GetFuture());
  }
  std::vector<Promise<int>> promises;
  std::vector<Future<int>> futures;
};

TEST(FutureWaitTest, FirstCompletedReturnsOnTheFirstAndNamesTheRest) {
  Watchdog dog("Wait first completed", absl::Seconds(30));
  Set s(3);
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(20));
    (void)s.promises[1].SetValue(1);
  });
  absl::StatusOr<DoneAndNotDone> r = Wait(s.futures, WaitMode::kFirstCompleted);
  t.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->done, (std::vector<size_t>{1}));
  EXPECT_EQ(r->not_done, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(*s.futures[1].Get(), 1);  // not consumed
}

TEST(FutureWaitTest, AlreadyDoneFuturesCountAtOnce) {
  Set s(3);
  (void)s.promises[0].SetValue(0);
  (void)s.promises[2].SetError(absl::InternalError("x"));
  absl::StatusOr<DoneAndNotDone> r = Wait(s.futures, WaitMode::kFirstCompleted, absl::Seconds(30));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(r->not_done, (std::vector<size_t>{1}));
}

TEST(FutureWaitTest, FirstExceptionWaitsPastValuesAndCancellations) {
  Watchdog dog("Wait first exception", absl::Seconds(30));
  Set s(4);
  (void)s.promises[0].SetValue(0);
  EXPECT_TRUE(s.futures[1].Cancel());  // cancelled: done, but not an exception
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(20));
    (void)s.promises[2].SetError(absl::UnavailableError("worker died"));
  });
  absl::StatusOr<DoneAndNotDone> r = Wait(s.futures, WaitMode::kFirstException);
  t.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(r->not_done, (std::vector<size_t>{3}));
}

TEST(FutureWaitTest, FirstExceptionWithoutAnyErrorWaitsForAll) {
  Watchdog dog("Wait first exception, none", absl::Seconds(30));
  Set s(3);
  std::thread t([&] {
    for (int i = 0; i < 3; ++i) {
      absl::SleepFor(absl::Milliseconds(5));
      (void)s.promises[i].SetValue(i);
    }
  });
  absl::StatusOr<DoneAndNotDone> r = Wait(s.futures, WaitMode::kFirstException);
  t.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done.size(), 3u);
  EXPECT_TRUE(r->not_done.empty());
}

TEST(FutureWaitTest, AllCompletedAcrossThreads) {
  Watchdog dog("Wait all", absl::Seconds(60));
  Set s(200);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 200; i += 4) {
        if (i % 7 == 0) {
          (void)s.promises[i].SetError(absl::InternalError("e"));
        } else {
          (void)s.promises[i].SetValue(i);
        }
      }
    });
  }
  absl::StatusOr<DoneAndNotDone> r = Wait(s.futures);  // kAllCompleted by default
  for (auto& t : threads) t.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done.size(), 200u);
  EXPECT_TRUE(r->not_done.empty());
  for (size_t i = 0; i < 200; ++i) EXPECT_EQ(r->done[i], i);  // input order
}

TEST(FutureWaitTest, TimeoutReturnsWhatIsDoneWithoutAnError) {
  Watchdog dog("Wait timeout", absl::Seconds(30));
  Set s(2);
  (void)s.promises[0].SetValue(0);
  const absl::Time start = absl::Now();
  absl::StatusOr<DoneAndNotDone> r = Wait(s.futures, WaitMode::kAllCompleted, absl::Milliseconds(30));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(29));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done, (std::vector<size_t>{0}));
  EXPECT_EQ(r->not_done, (std::vector<size_t>{1}));
  // The promise completing after Wait returned touches nothing freed (ASan).
  (void)s.promises[1].SetValue(1);
}

TEST(FutureWaitTest, NoFuturesAndEmptyFutures) {
  std::vector<Future<int>> none;
  absl::StatusOr<DoneAndNotDone> r = Wait(none, WaitMode::kFirstCompleted);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->done.empty());
  EXPECT_TRUE(r->not_done.empty());

  Set s(2);
  s.futures.emplace_back();  // empty: it could never complete
  absl::StatusOr<DoneAndNotDone> bad = Wait(s.futures);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find("future 2 is empty"), std::string::npos)
      << bad.status();
}

TEST(FutureWaitTest, VoidFutures) {
  std::vector<Promise<void>> ps(2);
  std::vector<Future<void>> fs;
  for (auto& p : ps) fs.push_back(p.GetFuture());
  (void)ps[1].SetError(absl::AbortedError("x"));
  absl::StatusOr<DoneAndNotDone> r = Wait(fs, WaitMode::kFirstException, absl::Seconds(30));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done, (std::vector<size_t>{1}));
}

// Many waits racing many completions: never a lost wake-up, never a double
// notify (which aborts), and every Wait sees its first completion.
TEST(FutureWaitTest, StressWaitsRaceCompletions) {
  Watchdog dog("Wait stress", absl::Seconds(120));
  for (int round = 0; round < 2000; ++round) {
    Set s(4);
    std::thread t([&] {
      for (int i = 0; i < 4; ++i) (void)s.promises[i].SetValue(i);
    });
    absl::StatusOr<DoneAndNotDone> r = Wait(s.futures, round % 2 == 0 ? WaitMode::kFirstCompleted
                                                                  : WaitMode::kAllCompleted);
    t.join();
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->done.empty()) << round;
    if (round % 2 == 1) {
      EXPECT_EQ(r->done.size(), 4u) << round;
    }
  }
}

}  // namespace
}  // namespace wharf
