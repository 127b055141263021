// wharf::AsCompleted, after CPython's test_concurrent_futures AsCompletedTests:
// completion order, already-done futures first, the overall timeout, and the
// object outliving nothing it should not.
#include "wharf/runtime/as_completed.h"

#include <algorithm>
#include <memory>
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

TEST(AsCompletedTest, DoneFirstInInputOrderThenInCompletionOrder) {
  Watchdog dog("AsCompleted order", absl::Seconds(30));
  std::vector<Promise<int>> ps(4);
  std::vector<Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.GetFuture());
  (void)ps[3].SetValue(3);
  (void)ps[1].SetValue(1);
  AsCompleted<int> order(fs);
  EXPECT_EQ(order.Next().value(), 1u);
  EXPECT_EQ(order.Next().value(), 3u);
  std::thread t([&] {
    (void)ps[2].SetValue(2);
    absl::SleepFor(absl::Milliseconds(10));
    (void)ps[0].SetError(absl::InternalError("zero failed"));
  });
  EXPECT_EQ(order.Next().value(), 2u);
  EXPECT_EQ(order.Next().value(), 0u);
  t.join();
  EXPECT_EQ(fs[0].Get().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(order.remaining(), 0u);
  EXPECT_EQ(order.Next().status().code(), absl::StatusCode::kOutOfRange);
}

TEST(AsCompletedTest, OverallTimeoutThenLateCompletionsStillCome) {
  Watchdog dog("AsCompleted timeout", absl::Seconds(30));
  std::vector<Promise<int>> ps(2);
  std::vector<Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.GetFuture());
  (void)ps[0].SetValue(0);
  AsCompleted<int> order(fs, absl::Milliseconds(30));
  EXPECT_EQ(order.Next().value(), 0u);
  absl::StatusOr<size_t> late = order.Next();
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(std::string(late.status().message()).find("1 of 2"), std::string::npos)
      << late.status();
  (void)ps[1].SetValue(1);
  EXPECT_EQ(order.Next().value(), 1u);  // done now: returned without waiting
}

TEST(AsCompletedTest, EmptyFutureIsNamedAfterTheOthers) {
  std::vector<Promise<int>> ps(1);
  std::vector<Future<int>> fs;
  fs.push_back(ps[0].GetFuture());
  fs.emplace_back();
  (void)ps[0].SetValue(0);
  AsCompleted<int> order(fs);
  EXPECT_EQ(order.Next().value(), 0u);
  absl::StatusOr<size_t> bad = order.Next();
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find("future 1 is empty"), std::string::npos);
}

TEST(AsCompletedTest, TheObjectMayDieBeforeItsFuturesComplete) {
  std::vector<Promise<int>> ps(3);
  std::vector<Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.GetFuture());
  { AsCompleted<int> order(fs); }
  for (int i = 0; i < 3; ++i) (void)ps[i].SetValue(i);  // no use after free (ASan)
  EXPECT_EQ(*fs[2].Get(), 2);
}

// Completions from four threads: every index exactly once.
TEST(AsCompletedTest, StressEveryIndexOnce) {
  Watchdog dog("AsCompleted stress", absl::Seconds(120));
  constexpr int kN = 5000;
  std::vector<Promise<int>> ps(kN);
  std::vector<Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.GetFuture());
  AsCompleted<int> order(fs);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kN; i += 4) (void)ps[i].SetValue(i);
    });
  }
  std::vector<int> seen(kN, 0);
  for (int k = 0; k < kN; ++k) {
    absl::StatusOr<size_t> i = order.Next();
    ASSERT_TRUE(i.ok()) << i.status();
    ++seen[*i];
    EXPECT_EQ(*fs[*i].Get(), static_cast<int>(*i));
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
  EXPECT_EQ(order.Next().status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace wharf
