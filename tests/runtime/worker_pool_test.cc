// WorkerPool over threads (work in progress: branch wip/pools). After
// Piscina's and CPython's test_concurrent_futures' executor tests.
#include "wharf/runtime/worker_pool.h"

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/future_wait.h"
#include "wharf/sync/notification.h"

namespace {

WHARF_TASK(pool_test_add_one) { return wharf::Value(arg.AsInt().value() + 1); }
WHARF_TASK(pool_test_throw) { throw std::runtime_error("boom in task"); }
WHARF_TASK(pool_test_until_stop) {
  while (!ctx.StopRequested()) absl::SleepFor(absl::Milliseconds(1));
  return wharf::Value("stopped");
}

std::string Repeat(std::string s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}
WHARF_TYPED_TASK(Repeat);

using ::wharf::testing::Watchdog;
namespace w = ::wharf;

// Until `n` workers run a task (the tasks left the queue).
void WaitBusy(w::WorkerPool& pool, int n) {
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while (pool.Stats().busy_workers < n && absl::Now() < until) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_GE(pool.Stats().busy_workers, n);
}

std::unique_ptr<w::WorkerPool> MakePool(w::PoolOptions o = {}) {
  auto p = w::WorkerPool::Create(std::move(o));
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

TEST(WorkerPoolTest, NamedTypedAndCallableTasks) {
  Watchdog dog("pool basics", absl::Seconds(60));
  auto pool = MakePool({.max_workers = 2});
  EXPECT_EQ(*pool->Run("pool_test_add_one", w::Value(41)).Get(), w::Value(42));
  EXPECT_EQ(*pool->Submit(&Repeat, "ab", 3).Get(), "ababab");
  EXPECT_EQ(*pool->Run([] { return 6 * 7; }).Get(), 42);
  EXPECT_TRUE(pool->Run([] {}).Get().ok());
  EXPECT_EQ(pool->Run("no_such_task", w::Value()).Get().status().code(),
            absl::StatusCode::kNotFound);
}

TEST(WorkerPoolTest, AnExceptionFailsOnlyItsTask) {
  Watchdog dog("pool exception", absl::Seconds(60));
  auto pool = MakePool({.max_workers = 2});
  w::Future<w::Value> bad = pool->Run("pool_test_throw", w::Value());
  w::Future<w::Value> good = pool->Run("pool_test_add_one", w::Value(1));
  const absl::Status s = bad.Get().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_NE(std::string(s.message()).find("task 'pool_test_throw' failed"), std::string::npos) << s;
  std::optional<w::ErrorRecord> rec = w::TaskErrorRecord(s);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->type, "std::runtime_error");
  EXPECT_EQ(rec->message, "boom in task");
  EXPECT_EQ(*good.Get(), w::Value(2));
  EXPECT_EQ(pool->Stats().failed, 1u);
}

TEST(WorkerPoolTest, CancelAQueuedTaskRemovesItAtOnce) {
  Watchdog dog("pool cancel", absl::Seconds(60));
  auto pool = MakePool({.max_workers = 1, .min_workers = 1, .max_queue = 16});
  w::Notification release;
  auto blocker = pool->Run([&] { release.WaitForNotification(); });
  WaitBusy(*pool, 1);
  w::Future<int> queued = pool->Run([] { return 1; });
  EXPECT_TRUE(queued.Cancel());
  EXPECT_EQ(queued.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(pool->Stats().queued, 0u);
  release.Notify();
  EXPECT_TRUE(blocker.Get().ok());
  EXPECT_FALSE(blocker.Cancel());  // done
  EXPECT_EQ(pool->Stats().cancelled, 1u);
}

TEST(WorkerPoolTest, TimeoutStopsACooperativeTaskAndAbandonsAStuckOne) {
  Watchdog dog("pool timeout", absl::Seconds(60));
  auto pool = MakePool({.max_workers = 1, .min_workers = 1, .max_queue = 16,
                        .cancel_grace = absl::Milliseconds(50)});
  // Cooperative: sees StopRequested, its future already holds DeadlineExceeded.
  w::Future<w::Value> coop =
      pool->Run("pool_test_until_stop", w::Value(), {.timeout = absl::Milliseconds(30)});
  EXPECT_EQ(coop.Get().status().code(), absl::StatusCode::kDeadlineExceeded);
  // Stuck: ignores the stop, is abandoned after the grace; the pool goes on.
  std::atomic<bool> let_go{false};
  w::Future<int> stuck = pool->Run(
      [&] {
        while (!let_go.load()) absl::SleepFor(absl::Milliseconds(1));
        return 1;
      },
      {.timeout = absl::Milliseconds(30)});
  EXPECT_EQ(stuck.Get().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(*pool->Run([] { return 5; }).Get(absl::Seconds(30)), 5);  // the replacement
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (pool->Stats().abandoned == 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(pool->Stats().abandoned, 1u);
  let_go = true;
}

TEST(WorkerPoolTest, BackPressureFailsThenDrains) {
  Watchdog dog("pool back-pressure", absl::Seconds(60));
  auto pool = MakePool({.max_workers = 1, .min_workers = 1, .max_queue = 2});
  w::Notification release;
  std::atomic<int> drains{0};
  pool->OnDrain([&] { drains.fetch_add(1); });
  auto blocker = pool->Run([&] { release.WaitForNotification(); });
  WaitBusy(*pool, 1);
  auto a = pool->Run([] { return 1; });
  auto b = pool->Run([] { return 2; });
  EXPECT_TRUE(pool->NeedsDrain());
  auto c = pool->Run([] { return 3; });
  EXPECT_EQ(c.Get().status().code(), absl::StatusCode::kResourceExhausted);
  release.Notify();
  EXPECT_EQ(*a.Get(), 1);
  EXPECT_EQ(*b.Get(), 2);
  EXPECT_FALSE(pool->NeedsDrain());
  EXPECT_GE(drains.load(), 1);
}

TEST(WorkerPoolTest, CloseFinishesQueuedTasksDestroyCancelsThem) {
  Watchdog dog("pool close/destroy", absl::Seconds(60));
  {
    auto pool = MakePool({.max_workers = 2, .max_queue = 1000});
    std::vector<w::Future<int>> fs;
    for (int i = 0; i < 100; ++i) fs.push_back(pool->Run([i] { return i; }));
    pool->Close();
    for (int i = 0; i < 100; ++i) EXPECT_EQ(*fs[i].Get(), i);
    EXPECT_EQ(pool->Run([] { return 0; }).Get().status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  {
    auto pool = MakePool({.max_workers = 1, .min_workers = 1, .max_queue = 16});
    w::Notification started;
    auto running = pool->Run([&](w::TaskContext& ctx) {
      started.Notify();
      while (!ctx.StopRequested()) absl::SleepFor(absl::Milliseconds(1));
      return 7;
    });
    started.WaitForNotification();
    std::vector<w::Future<int>> queued;
    for (int i = 0; i < 10; ++i) queued.push_back(pool->Run([] { return 0; }));
    pool->Destroy();
    for (auto& f : queued) EXPECT_EQ(f.Get().status().code(), absl::StatusCode::kCancelled);
    EXPECT_EQ(*running.Get(), 7);  // stopped cooperatively within the grace
  }
}

TEST(WorkerPoolTest, StressTinyTasksEachAccountedOnce) {
  Watchdog dog("pool stress", absl::Seconds(120));
  auto pool = MakePool({.max_workers = 4, .max_queue = 1 << 20});
  constexpr int kN = 100000;
  std::vector<std::atomic<int>> runs(kN);
  std::vector<w::Future<void>> fs;
  fs.reserve(kN);
  std::vector<std::thread> submitters;
  std::vector<std::vector<w::Future<void>>> per(4);
  for (int t = 0; t < 4; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = t; i < kN; i += 4) per[t].push_back(pool->Run([&runs, i] { runs[i]++; }));
    });
  }
  for (auto& s : submitters) s.join();
  for (auto& v : per) {
    for (auto& f : v) ASSERT_TRUE(f.Get().ok());
  }
  for (int i = 0; i < kN; ++i) ASSERT_EQ(runs[i].load(), 1) << i;
  EXPECT_EQ(pool->Stats().completed, uint64_t{kN});
  const std::string text = pool->StatsText();
  EXPECT_NE(text.find("wharf_pool_tasks_completed_total{pool=\"pool\"} 100000"), std::string::npos)
      << text;
}

}  // namespace
