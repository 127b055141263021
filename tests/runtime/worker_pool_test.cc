// WorkerPool over both isolations (the same tests run on threads and on
// processes), plus what only one of them has: callables (threads), crashes
// and kill -9 (processes). After Piscina's tests and CPython's
// test_concurrent_futures (executor, shutdown, initializer,
// max_tasks_per_child, broken-pool tests).
#include "wharf/runtime/worker_pool.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstdint>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/future_wait.h"
#include "wharf/sync/notification.h"
#include "wharf/sync/shared_buffer.h"

extern char** environ;

namespace {

namespace w = ::wharf;
using ::wharf::testing::Watchdog;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;  // 10^6 tasks: normal builds only
#else
constexpr bool kSanitized = false;
#endif

// --- Tasks (registered in every process: workers re-execute this binary) ----

WHARF_TASK(pool_test_add_one) { return w::Value(arg.AsInt().value() + 1); }
WHARF_TASK(pool_test_throw) { throw std::runtime_error("boom in task"); }
WHARF_TASK(pool_test_error) { return absl::InvalidArgumentError("bad input 7"); }
WHARF_TASK(pool_test_until_stop) {
  while (!ctx.StopRequested()) absl::SleepFor(absl::Milliseconds(1));
  return w::Value("stopped");
}
// Returns the moment it sees the stop.
WHARF_TASK(pool_test_spin_until_stop) {
  while (!ctx.StopRequested()) {
  }
  return w::Value("returned");
}
// Sleeps arg ms, deaf to stop requests.
WHARF_TASK(pool_test_sleep_ms) {
  absl::SleepFor(absl::Milliseconds(arg.AsInt().value()));
  return w::Value(int64_t{getpid()});
}
WHARF_TASK(pool_test_pid) { return w::Value(int64_t{getpid()}); }
WHARF_TASK(pool_test_segv) {
  std::raise(SIGSEGV);
  return w::Value();
}
// [shared, i, sleep_us]: counts a run in cell i of a SharedBuffer, so the
// parent sees how often each task ran whichever process ran it.
WHARF_TASK(pool_test_mark) {
  const w::ValueArray& a = *arg.GetArray();
  const w::SharedBuffer& shared = *a[0].GetSharedBuffer();
  auto* cells = reinterpret_cast<std::atomic<int32_t>*>(shared.data());
  cells[a[1].AsInt().value()].fetch_add(1);
  if (const int64_t us = a[2].AsInt().value(); us > 0) absl::SleepFor(absl::Microseconds(us));
  return w::Value(a[1].AsInt().value());
}
// The sum of a Buffer's bytes (it arrives by transfer).
WHARF_TASK(pool_test_sum_buffer) {
  const w::Buffer* b = arg.GetBuffer();
  if (b == nullptr) return absl::InvalidArgumentError("expected a Buffer");
  int64_t sum = 0;
  for (size_t i = 0; i < b->size(); ++i) sum += static_cast<int64_t>(b->data()[i]);
  return w::Value(sum);
}

std::atomic<int64_t> g_initialized{0};  // per process (threads of a pool share it)
WHARF_TASK(pool_test_init) {
  g_initialized.store(42);
  return w::Value();
}
WHARF_TASK(pool_test_init_fails) { throw std::runtime_error("no database"); }
WHARF_TASK(pool_test_read_init) { return w::Value(g_initialized.load()); }
std::atomic<int64_t> g_init_arg{0};  // the initializer's argument's "x", per process
WHARF_TASK(pool_test_init_with) {
  const w::Value* x = arg["x"];
  g_init_arg.store(x != nullptr ? x->AsInt().value_or(-1) : -1);
  return w::Value();
}
WHARF_TASK(pool_test_read_init_arg) { return w::Value(g_init_arg.load()); }
WHARF_TASK(pool_test_getenv) {
  const char* v = std::getenv(arg.GetString()->c_str());
  return v != nullptr ? w::Value(v) : w::Value();
}

std::string Repeat(std::string s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}
WHARF_TYPED_TASK(Repeat);

// --- Helpers ----------------------------------------------------------------

void WaitBusy(w::WorkerPool& pool, int n) {
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (pool.Stats().busy_workers < n && absl::Now() < until) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_GE(pool.Stats().busy_workers, n);
}

template <class F>
bool Eventually(F f, absl::Duration limit = absl::Seconds(30)) {
  const absl::Time until = absl::Now() + limit;
  while (!f()) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

std::unique_ptr<w::WorkerPool> MakePool(w::PoolOptions o) {
  auto p = w::WorkerPool::Create(std::move(o));
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

bool Contains(const absl::Status& s, std::string_view text) {
  return std::string(s.message()).find(text) != std::string::npos;
}

// The pids of this process's children (its process workers).
std::vector<pid_t> ChildPids() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/children");
    pid_t pid;
    while (f >> pid) out.push_back(pid);
  }
  closedir(d);
  return out;
}

w::SharedBuffer Cells(size_t n) {
  return *w::SharedBuffer::Create(n * sizeof(int32_t));
}
int32_t Cell(const w::SharedBuffer& b, size_t i) {
  return reinterpret_cast<std::atomic<int32_t>*>(b.data())[i].load();
}

// --- Both isolations --------------------------------------------------------

class PoolTest : public ::testing::TestWithParam<w::Isolation> {
 protected:
  w::PoolOptions Options(w::PoolOptions o = {}) {
    o.isolation = GetParam();
    return o;
  }
  bool process() const { return GetParam() == w::Isolation::kProcess; }
};

INSTANTIATE_TEST_SUITE_P(Isolation, PoolTest,
                         ::testing::Values(w::Isolation::kThread, w::Isolation::kProcess),
                         [](const auto& info) {
                           return info.param == w::Isolation::kThread ? std::string("Thread")
                                                                      : std::string("Process");
                         });

TEST_P(PoolTest, NamedAndTypedTasks) {
  Watchdog dog("pool basics", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 2}));
  EXPECT_EQ(*pool->Run("pool_test_add_one", w::Value(41)).Get(), w::Value(42));
  EXPECT_EQ(*pool->Submit(&Repeat, "ab", 3).Get(), "ababab");
  const absl::Status missing = pool->Run("no_such_task", w::Value()).Get().status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(missing, "no_such_task")) << missing;
  // A wrong argument for a typed task fails that task, naming it.
  const absl::Status bad = pool->Run("Repeat", w::Value("x")).Get().status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
  if (process()) {
    const int64_t pid = pool->Run("pool_test_pid", w::Value()).Get()->AsInt().value();
    EXPECT_NE(pid, getpid());  // really elsewhere
  }
}

TEST_P(PoolTest, AnExceptionOrAnErrorFailsOnlyItsTask) {
  Watchdog dog("pool exception", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 2}));
  w::Future<w::Value> bad = pool->Run("pool_test_throw", w::Value());
  w::Future<w::Value> err = pool->Run("pool_test_error", w::Value());
  w::Future<w::Value> good = pool->Run("pool_test_add_one", w::Value(1));
  const absl::Status s = bad.Get().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_TRUE(Contains(s, "task 'pool_test_throw' failed: std::runtime_error: boom in task")) << s;
  std::optional<w::ErrorRecord> rec = w::TaskErrorRecord(s);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->type, "std::runtime_error");
  EXPECT_EQ(rec->message, "boom in task");
  EXPECT_EQ(err.Get().status(), absl::InvalidArgumentError("bad input 7"));
  EXPECT_EQ(*good.Get(), w::Value(2));
  EXPECT_EQ(pool->Stats().failed, 2u);
  EXPECT_EQ(pool->Stats().completed, 1u);
}

TEST_P(PoolTest, CancelAQueuedTaskRemovesItAtOnce) {
  Watchdog dog("pool cancel", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 1, .min_workers = 1, .max_queue = 16}));
  std::stop_source release;
  auto blocker = pool->Run("pool_test_until_stop", w::Value(), {.cancel = release.get_token()});
  WaitBusy(*pool, 1);
  w::Future<w::Value> queued = pool->Run("pool_test_add_one", w::Value(1));
  EXPECT_TRUE(queued.Cancel());
  EXPECT_EQ(queued.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(pool->Stats().queued, 0u);
  release.request_stop();  // the running one: stopped through its token
  EXPECT_EQ(blocker.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(*pool->Run("pool_test_add_one", w::Value(2)).Get(), w::Value(3));
  EXPECT_EQ(pool->Stats().cancelled, 2u);
}

TEST_P(PoolTest, OneStopTokenCancelsQueuedAndRunningTasks) {
  Watchdog dog("pool stop token", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 2, .min_workers = 2, .max_queue = 64}));
  std::stop_source source;
  std::vector<w::Future<w::Value>> fs;
  for (int i = 0; i < 6; ++i) {
    fs.push_back(pool->Run("pool_test_until_stop", w::Value(), {.cancel = source.get_token()}));
  }
  w::Future<w::Value> other = pool->Run("pool_test_add_one", w::Value(9));
  WaitBusy(*pool, 2);
  source.request_stop();
  for (auto& f : fs) EXPECT_EQ(f.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(*other.Get(), w::Value(10));  // not part of it
  // Already stopped: refused at once.
  EXPECT_EQ(pool->Run("pool_test_add_one", w::Value(1), {.cancel = source.get_token()})
                .Get()
                .status()
                .code(),
            absl::StatusCode::kCancelled);
}

TEST_P(PoolTest, TimeoutStopsACooperativeTaskAndReplacesAStuckOne) {
  Watchdog dog("pool timeout", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 1, .min_workers = 1, .max_queue = 16,
                                .cancel_grace = absl::Milliseconds(50)}));
  w::Future<w::Value> coop =
      pool->Run("pool_test_until_stop", w::Value(), {.timeout = absl::Milliseconds(30)});
  EXPECT_EQ(coop.Get().status().code(), absl::StatusCode::kDeadlineExceeded);
  // Stuck (deaf to the stop): its worker is replaced after the grace.
  w::Future<w::Value> stuck =
      pool->Run("pool_test_sleep_ms", w::Value(3000), {.timeout = absl::Milliseconds(30)});
  EXPECT_EQ(stuck.Get().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(*pool->Run("pool_test_add_one", w::Value(4)).Get(absl::Seconds(30)), w::Value(5));
  // (At least: under load the cooperative one may miss its 50 ms grace too.)
  EXPECT_TRUE(Eventually([&] { return pool->Stats().abandoned >= 1; }));
  // A default from PoolOptions::task_timeout.
  auto timed = MakePool(Options({.max_workers = 1, .task_timeout = absl::Milliseconds(20)}));
  EXPECT_EQ(timed->Run("pool_test_until_stop", w::Value()).Get().status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_P(PoolTest, BackPressureFailsThenDrains) {
  Watchdog dog("pool back-pressure", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 1, .min_workers = 1, .max_queue = 2}));
  std::atomic<int> drains{0};
  pool->OnDrain([&] { drains.fetch_add(1); });
  std::stop_source release;
  auto blocker = pool->Run("pool_test_until_stop", w::Value(), {.cancel = release.get_token()});
  WaitBusy(*pool, 1);
  auto a = pool->Run("pool_test_add_one", w::Value(1));
  auto b = pool->Run("pool_test_add_one", w::Value(2));
  EXPECT_TRUE(pool->NeedsDrain());
  auto c = pool->Run("pool_test_add_one", w::Value(3));
  EXPECT_EQ(c.Get().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Contains(c.Get().status(), "max_queue")) << c.Get().status();
  release.request_stop();
  EXPECT_EQ(*a.Get(), w::Value(2));
  EXPECT_EQ(*b.Get(), w::Value(3));
  EXPECT_FALSE(pool->NeedsDrain());
  EXPECT_GE(drains.load(), 1);
}

TEST_P(PoolTest, FullPolicyWaitBlocksUntilThereIsRoom) {
  Watchdog dog("pool kWait", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 1, .max_queue = 1, .on_full = w::FullPolicy::kWait}));
  std::vector<w::Future<w::Value>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(pool->Run("pool_test_add_one", w::Value(i)));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(*fs[i].Get(), w::Value(i + 1));
}

TEST_P(PoolTest, CloseFinishesQueuedTasksDestroyCancelsThem) {
  Watchdog dog("pool close/destroy", absl::Seconds(60));
  {
    auto pool = MakePool(Options({.max_workers = 2, .max_queue = 1000}));
    std::vector<w::Future<w::Value>> fs;
    for (int i = 0; i < 100; ++i) fs.push_back(pool->Run("pool_test_add_one", w::Value(i)));
    pool->Close();
    for (int i = 0; i < 100; ++i) EXPECT_EQ(*fs[i].Get(), w::Value(i + 1));
    EXPECT_EQ(pool->Run("pool_test_add_one", w::Value(0)).Get().status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(pool->Stats().workers, 0);
  }
  {
    auto pool = MakePool(Options({.max_workers = 1, .min_workers = 1, .max_queue = 16}));
    auto running = pool->Run("pool_test_until_stop", w::Value());
    WaitBusy(*pool, 1);
    std::vector<w::Future<w::Value>> queued;
    for (int i = 0; i < 10; ++i) queued.push_back(pool->Run("pool_test_add_one", w::Value(i)));
    pool->Destroy();
    for (auto& f : queued) EXPECT_EQ(f.Get().status().code(), absl::StatusCode::kCancelled);
    EXPECT_EQ(*running.Get(), w::Value("stopped"));  // stopped cooperatively within the grace
  }
  {
    // Destroyed with a task deaf to the stop: returns after cancel_grace.
    auto pool = MakePool(Options({.max_workers = 1, .cancel_grace = absl::Milliseconds(50)}));
    auto stuck = pool->Run("pool_test_sleep_ms", w::Value(2000));
    WaitBusy(*pool, 1);
    const absl::Time start = absl::Now();
    pool.reset();  // the destructor is Destroy
    EXPECT_LT(absl::Now() - start, absl::Seconds(1.5));
    EXPECT_FALSE(stuck.Get().ok());
  }
}

TEST_P(PoolTest, InitializerRunsOnceInEachWorker) {
  Watchdog dog("pool initializer", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 2, .initializer = "pool_test_init"}));
  EXPECT_EQ(*pool->Run("pool_test_read_init", w::Value()).Get(), w::Value(42));
  // A failing initializer fails the queued tasks, saying why; the pool stays.
  auto broken = MakePool(Options({.max_workers = 1, .initializer = "pool_test_init_fails"}));
  const absl::Status s = broken->Run("pool_test_add_one", w::Value(1)).Get().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(Contains(s, "initializer 'pool_test_init_fails' failed")) << s;
  EXPECT_TRUE(Contains(s, "no database")) << s;
  // An unknown initializer is refused at Create.
  EXPECT_EQ(w::WorkerPool::Create(Options({.initializer = "no_such_init"})).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Python's initargs / Piscina's workerData: every worker's initializer gets
// its own clone of initializer_arg.
TEST_P(PoolTest, TheInitializerGetsItsArgumentInEachWorker) {
  Watchdog dog("pool initializer_arg", absl::Seconds(60));
  w::ValueMap m;
  m.Set("x", w::Value(7));
  auto pool = MakePool(Options({.max_workers = 2, .min_workers = 2, .max_queue = 64,
                                .initializer = "pool_test_init_with",
                                .initializer_arg = w::Value(std::move(m))}));
  std::vector<w::Future<w::Value>> reads;
  for (int i = 0; i < 20; ++i) reads.push_back(pool->Run("pool_test_read_init_arg", w::Value()));
  for (auto& f : reads) {
    ASSERT_TRUE(f.Get().ok()) << f.Get().status();
    EXPECT_EQ(*f.Get(), w::Value(7));
  }
  // One that cannot be cloned for each worker is refused at Create.
  w::Buffer b = w::Buffer::Allocate(8).value();
  w::Buffer taken = std::move(b);  // `b` is detached now
  absl::StatusOr<std::unique_ptr<w::WorkerPool>> bad = w::WorkerPool::Create(
      Options({.initializer = "pool_test_init_with", .initializer_arg = w::Value(std::move(b))}));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bad.status(), "initializer_arg")) << bad.status();
}

TEST_P(PoolTest, MaxTasksPerWorkerRecyclesWorkers) {
  if (!process()) GTEST_SKIP() << "thread workers share a pid; recycling is checked below";
  Watchdog dog("pool recycle", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 1, .max_tasks_per_worker = 2}));
  std::set<int64_t> pids;
  for (int i = 0; i < 6; ++i) pids.insert(pool->Run("pool_test_pid", w::Value()).Get()->AsInt().value());
  EXPECT_EQ(pids.size(), 3u);
}

TEST_P(PoolTest, OptionErrorsAreInvalidArgument) {
  EXPECT_EQ(w::WorkerPool::Create(Options({.max_workers = -1})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w::WorkerPool::Create(Options({.max_workers = 1, .min_workers = 2})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w::WorkerPool::Create(Options({.idle_timeout = absl::ZeroDuration()})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w::WorkerPool::Create(Options({.concurrent_tasks_per_worker = 0})).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto pool = MakePool(Options({.max_workers = 1}));
  EXPECT_EQ(pool->Run("pool_test_add_one", w::Value(1), {.timeout = absl::ZeroDuration()})
                .Get()
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(PoolTest, IdleWorkersAboveMinimumStop) {
  Watchdog dog("pool idle", absl::Seconds(60));
  auto pool = MakePool(Options({.max_workers = 2, .min_workers = 0,
                                .idle_timeout = absl::Milliseconds(50), .max_queue = 64}));
  std::vector<w::Future<w::Value>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(pool->Run("pool_test_sleep_ms", w::Value(20)));
  for (auto& f : fs) ASSERT_TRUE(f.Get().ok());
  EXPECT_TRUE(Eventually([&] { return pool->Stats().workers == 0; }));
  EXPECT_EQ(*pool->Run("pool_test_add_one", w::Value(1)).Get(), w::Value(2));  // starts again
}

TEST_P(PoolTest, StressTinyTasksEachAccountedOnce) {
  Watchdog dog("pool stress", absl::Seconds(280));
  auto pool = MakePool(Options({.max_workers = 3, .max_queue = 1 << 20}));
  const int n = kSanitized ? (process() ? 30000 : 100000) : 1000000;
  std::vector<std::vector<w::Future<w::Value>>> per(4);
  std::vector<std::thread> submitters;
  for (int t = 0; t < 4; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = t; i < n; i += 4) per[t].push_back(pool->Run("pool_test_add_one", w::Value(i)));
    });
  }
  for (auto& s : submitters) s.join();
  int64_t sum = 0;
  for (auto& v : per) {
    for (auto& f : v) {
      const absl::StatusOr<w::Value>& r = f.Get();
      ASSERT_TRUE(r.ok()) << r.status();
      sum += r->AsInt().value();
    }
  }
  EXPECT_EQ(sum, int64_t{n} * (n + 1) / 2);
  EXPECT_EQ(pool->Stats().completed, static_cast<uint64_t>(n));
  EXPECT_EQ(pool->Stats().run_time.count, static_cast<uint64_t>(n));
  EXPECT_GT(pool->Stats().utilization, 0.0);
  EXPECT_LE(pool->Stats().utilization, 1.0);
  const std::string text = pool->StatsText();
  EXPECT_TRUE(text.find("wharf_pool_tasks_completed_total{pool=\"pool\"} " + std::to_string(n)) !=
              std::string::npos)
      << text;
}

// 10⁴ tasks with random cancellations and timeouts: every future completes,
// with its value, kCancelled or kDeadlineExceeded, and the counts add up.
TEST_P(PoolTest, StressRandomCancellationsAndTimeouts) {
  Watchdog dog("pool cancel stress", absl::Seconds(240));
  auto pool = MakePool(Options({.max_workers = 2, .max_queue = 1 << 16,
                                .cancel_grace = absl::Milliseconds(200)}));
  const int n = process() ? 3000 : 10000;
  std::mt19937 rng(7);
  std::vector<w::Future<w::Value>> fs;
  std::vector<std::stop_source> sources(n);
  for (int i = 0; i < n; ++i) {
    w::RunOptions o;
    const int r = static_cast<int>(rng() % 10);
    if (r == 0) o.timeout = absl::Microseconds(50 + rng() % 500);
    if (r == 1) o.cancel = sources[i].get_token();
    fs.push_back(r == 2 ? pool->Run("pool_test_sleep_ms", w::Value(1), o)
                        : pool->Run("pool_test_add_one", w::Value(i), o));
    if (r == 1 && rng() % 2 == 0) sources[i].request_stop();
    if (r == 3) (void)fs.back().Cancel();
  }
  for (int i = 0; i < n; ++i) {
    if (rng() % 5 == 0) sources[i].request_stop();
  }
  int ok = 0, cancelled = 0;
  for (auto& f : fs) {
    const absl::StatusOr<w::Value>& r = f.Get();
    if (r.ok()) {
      ++ok;
    } else {
      ASSERT_TRUE(r.status().code() == absl::StatusCode::kCancelled ||
                  r.status().code() == absl::StatusCode::kDeadlineExceeded)
          << r.status();
      ++cancelled;
    }
  }
  EXPECT_EQ(ok + cancelled, n);
  pool->Close();
  const w::PoolStats s = pool->Stats();
  EXPECT_EQ(s.completed + s.failed + s.cancelled >= static_cast<uint64_t>(n), true);
  EXPECT_EQ(s.failed, 0u);
}

TEST_P(PoolTest, MapKeepsInputOrderChunksAndReportsEachInputsError) {
  Watchdog dog("pool map", absl::Seconds(120));
  auto pool = MakePool(Options({.max_workers = 2}));
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{1000}}) {
    std::vector<w::Value> inputs;
    for (int i = 0; i < 300; ++i) inputs.emplace_back(i);
    inputs[42] = w::Value("not a number");  // that input fails; the rest go on
    w::MapResults results = pool->Map("pool_test_add_one", std::move(inputs), chunk);
    EXPECT_EQ(results.size(), 300u);
    int i = 0;
    while (std::optional<absl::StatusOr<w::Value>> r = results.Next()) {
      if (i == 42) {
        EXPECT_FALSE(r->ok()) << chunk;
        EXPECT_TRUE(Contains(r->status(), "pool_test_add_one")) << r->status();
      } else {
        ASSERT_TRUE(r->ok()) << r->status();
        EXPECT_EQ(**r, w::Value(i + 1)) << chunk;
      }
      ++i;
    }
    EXPECT_EQ(i, 300);
    EXPECT_EQ(results.remaining(), 0u);
  }
  // An unknown task: every input says so.
  std::vector<w::Value> two;
  two.emplace_back(1);
  two.emplace_back(2);
  w::MapResults missing = pool->Map("no_such_task", std::move(two));
  EXPECT_EQ(missing.Next()->status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.Next()->status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(missing.Next().has_value());
  // Nothing to map.
  EXPECT_FALSE(pool->Map("pool_test_add_one", {}).Next().has_value());
}

// Lazy: with 1000 chunks and a window of two per worker, the first result
// is read while most inputs have not run; a long input list never meets the
// queue limit.
TEST_P(PoolTest, MapIsLazyAndStaysInsideTheQueueLimit) {
  Watchdog dog("pool map lazy", absl::Seconds(120));
  auto pool = MakePool(Options({.max_workers = 1, .max_queue = 4}));
  constexpr int kN = 1000;
  w::SharedBuffer cells = Cells(kN);
  std::vector<w::Value> inputs;
  for (int i = 0; i < kN; ++i) inputs.push_back(w::Value::Array(w::SharedBuffer(cells), i, 1000));
  w::MapResults results = pool->Map("pool_test_mark", std::move(inputs));
  ASSERT_TRUE(results.Next().value().ok());
  int started = 0;
  for (int i = 0; i < kN; ++i) started += Cell(cells, i);
  EXPECT_LE(started, 4);  // the window (2) plus the one topped up, plus one starting
  int n = 1;
  while (std::optional<absl::StatusOr<w::Value>> r = results.Next()) {
    ASSERT_TRUE(r->ok()) << r->status();
    EXPECT_EQ(**r, w::Value(n));
    ++n;
  }
  EXPECT_EQ(n, kN);
  for (int i = 0; i < kN; ++i) ASSERT_EQ(Cell(cells, i), 1) << i;
}

// A task that returns the instant it sees its stop never has its value
// delivered after the timeout, and every task is counted exactly once (a
// stop used to be raised before the future failed: helper report).
TEST_P(PoolTest, AStoppedTaskThatReturnsAtOnceStillTimesOutAndCountsOnce) {
  Watchdog dog("pool stop race", absl::Seconds(120));
  auto pool = MakePool(Options({.max_workers = 2, .max_queue = 1024}));
  const int rounds = 200;
  std::vector<w::Future<w::Value>> fs;
  for (int i = 0; i < rounds; ++i) {
    fs.push_back(pool->Run("pool_test_spin_until_stop", w::Value(),
                           {.timeout = absl::Microseconds(200 + (i % 7) * 100)}));
  }
  for (auto& f : fs) EXPECT_EQ(f.Get().status().code(), absl::StatusCode::kDeadlineExceeded);
  pool->Close();
  const w::PoolStats s = pool->Stats();
  EXPECT_EQ(s.completed + s.failed + s.cancelled, static_cast<uint64_t>(rounds));
  EXPECT_EQ(s.completed, 0u);
}

// --- Threads only -----------------------------------------------------------

TEST(ThreadPoolTest, CallablesRunOnThreadPoolsOnly) {
  Watchdog dog("pool callables", absl::Seconds(60));
  auto pool = MakePool({.max_workers = 2});
  EXPECT_EQ(*pool->Run([] { return 6 * 7; }).Get(), 42);
  EXPECT_TRUE(pool->Run([] {}).Get().ok());
  EXPECT_EQ(*pool->Run([](w::TaskContext& ctx) { return ctx.attempt(); }).Get(), 1);
  auto procs = MakePool({.isolation = w::Isolation::kProcess, .max_workers = 1});
  const absl::Status s = procs->Run([] { return 1; }).Get().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, "register it as a task")) << s;
  // Limits are for processes.
  EXPECT_EQ(w::WorkerPool::Create({.resource_limits = {.max_open_files = 10}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A job holds its future's state (one allocation per task), so it lives as
// long as the future: what the task was given must not. A callable's
// captures go as soon as it has run, or as soon as it is cancelled while
// queued; the futures still hold their results.
TEST(ThreadPoolTest, ACallablesCapturesGoOnceItRanOrWasCancelled) {
  Watchdog dog("pool captures", absl::Seconds(60));
  auto pool = MakePool({.max_workers = 1, .min_workers = 1, .max_queue = 16});
  auto ran = std::make_shared<int>(1);
  std::weak_ptr<int> ran_weak = ran;
  w::Future<int> f = pool->Run([ran = std::move(ran)] { return *ran + 41; });
  EXPECT_EQ(*f.Get(), 42);
  EXPECT_TRUE(Eventually([&] { return ran_weak.expired(); }));
  // A queued one, cancelled behind a task that holds the worker.
  w::Notification release;
  w::Future<void> hold = pool->Run([&] { release.WaitForNotification(); });
  auto queued = std::make_shared<int>(2);
  std::weak_ptr<int> queued_weak = queued;
  w::Future<int> g = pool->Run([queued = std::move(queued)] { return *queued; });
  EXPECT_TRUE(g.Cancel());
  EXPECT_TRUE(queued_weak.expired());  // at once, though the job is still in the queue
  release.Notify();
  EXPECT_TRUE(hold.Get().ok());
  EXPECT_EQ(g.Get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(*f.Get(), 42);  // the futures outlive the work
}

// A number per thread (thread ids may be reused once a thread has ended).
int64_t ThreadSerial() {
  static std::atomic<int64_t> next{1};
  thread_local const int64_t serial = next.fetch_add(1);
  return serial;
}

TEST(ThreadPoolTest, MaxTasksPerWorkerRecyclesThreads) {
  Watchdog dog("thread recycle", absl::Seconds(60));
  auto pool = MakePool({.max_workers = 1, .max_tasks_per_worker = 2});
  std::set<int64_t> serials;
  for (int i = 0; i < 6; ++i) serials.insert(*pool->Run([] { return ThreadSerial(); }).Get());
  EXPECT_EQ(serials.size(), 3u);
}

// --- Processes only ---------------------------------------------------------

// Piscina's env: the workers' environment (here: this one plus a variable).
// Threads share their process's, so env is refused for them.
TEST(ProcessPoolTest, EnvIsTheWorkersEnvironment) {
  Watchdog dog("pool env", absl::Seconds(60));
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);  // sanitizer options too
  env.emplace_back("WHARF_POOL_TEST_ENV=from the pool");
  auto pool = MakePool({.isolation = w::Isolation::kProcess, .max_workers = 1, .env = env});
  EXPECT_EQ(*pool->Run("pool_test_getenv", w::Value("WHARF_POOL_TEST_ENV")).Get(),
            w::Value("from the pool"));
  EXPECT_EQ(std::getenv("WHARF_POOL_TEST_ENV"), nullptr);  // this process's is unchanged
  const absl::Status s = w::WorkerPool::Create({.env = env}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, "env applies to process workers only")) << s;
}

// A sanitizer's own SIGSEGV handler would turn a crash into an exit code:
// switched off for the workers (they inherit this environment). Called
// while no pool (no other thread reading the environment) exists.
void LetWorkersCrash() {
  for (const char* name : {"TSAN_OPTIONS", "ASAN_OPTIONS"}) {
    const char* old = std::getenv(name);
    if (old == nullptr) continue;
    setenv(name, (std::string(old) + ":handle_segv=0").c_str(), 1);
  }
}

TEST(ProcessPoolTest, ACrashFailsItsTaskOnlyAndThePoolGoesOn) {
  Watchdog dog("pool crash", absl::Seconds(60));
  LetWorkersCrash();
  auto pool = MakePool({.isolation = w::Isolation::kProcess, .max_workers = 2, .max_queue = 64});
  w::Future<w::Value> crash = pool->Run("pool_test_segv", w::Value());
  std::vector<w::Future<w::Value>> others;
  for (int i = 0; i < 20; ++i) others.push_back(pool->Run("pool_test_add_one", w::Value(i)));
  const absl::Status s = crash.Get().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_TRUE(Contains(s, "task 'pool_test_segv' failed: its worker process died")) << s;
  EXPECT_TRUE(Contains(s, "SIGSEGV")) << s;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(*others[i].Get(), w::Value(i + 1));
  EXPECT_EQ(*pool->Run("pool_test_add_one", w::Value(100)).Get(), w::Value(101));
  EXPECT_EQ(pool->Stats().worker_deaths, 1u);
}

TEST(ProcessPoolTest, AnIdempotentTaskRunsAgainAfterItsWorkerDies) {
  Watchdog dog("pool idempotent", absl::Seconds(60));
  auto pool = MakePool({.isolation = w::Isolation::kProcess, .max_workers = 1});
  w::SharedBuffer cells = Cells(2);
  auto once = pool->Run("pool_test_mark", w::Value::Array(w::SharedBuffer(cells), 0, 300000));
  ASSERT_TRUE(Eventually([&] { return Cell(cells, 0) == 1; }));
  for (pid_t p : ChildPids()) kill(p, SIGKILL);
  const absl::Status s = once.Get().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_TRUE(Contains(s, "SIGKILL")) << s;
  EXPECT_EQ(Cell(cells, 0), 1);  // not run again
  auto again = pool->Run("pool_test_mark", w::Value::Array(w::SharedBuffer(cells), 1, 300000),
                         {.idempotent = true});
  ASSERT_TRUE(Eventually([&] { return Cell(cells, 1) == 1; }));
  for (pid_t p : ChildPids()) kill(p, SIGKILL);
  EXPECT_EQ(*again.Get(), w::Value(1));
  EXPECT_EQ(Cell(cells, 1), 2);  // attempt 2 ran
  EXPECT_EQ(pool->Stats().retried, 1u);
  EXPECT_EQ(pool->Stats().worker_deaths, 2u);
}

TEST(ProcessPoolTest, ABufferArgumentIsTransferred) {
  Watchdog dog("pool buffer", absl::Seconds(60));
  auto pool = MakePool({.isolation = w::Isolation::kProcess, .max_workers = 2});
  absl::StatusOr<w::Buffer> b = w::Buffer::AllocateShared(1 << 20);  // zero-copy hand-over
  ASSERT_TRUE(b.ok());
  for (std::byte& x : b->span()) x = std::byte{1};
  EXPECT_EQ(*pool->Run("pool_test_sum_buffer", w::Value(*std::move(b))).Get(), w::Value(1 << 20));
}

// kill -9 of random workers during a 10⁴-task run: every task either
// succeeds, having run once, or fails with kAborted naming the death, having
// run at most once; idempotent ones either succeed or ran twice; nothing is
// lost; the pool ends healthy.
TEST(ProcessPoolTest, StressKillRandomWorkersDuringARun) {
  Watchdog dog("pool kill stress", absl::Seconds(300));
  for (int round = 0; round < 2; ++round) {
    auto pool = MakePool({.isolation = w::Isolation::kProcess, .max_workers = 3,
                          .max_queue = 1 << 16});
    constexpr int kN = 10000;
    w::SharedBuffer cells = Cells(kN);
    std::vector<w::Future<w::Value>> fs;
    for (int i = 0; i < kN; ++i) {
      fs.push_back(pool->Run("pool_test_mark",
                             w::Value::Array(w::SharedBuffer(cells), i, i % 50 == 0 ? 2000 : 20),
                             {.idempotent = i % 2 == 0}));
    }
    std::mt19937 rng(round);
    int kills = 0;
    for (int k = 0; k < 8; ++k) {
      absl::SleepFor(absl::Milliseconds(20 + rng() % 30));
      std::vector<pid_t> pids = ChildPids();
      if (pids.empty()) continue;
      if (kill(pids[rng() % pids.size()], SIGKILL) == 0) ++kills;
    }
    int failed = 0;
    for (int i = 0; i < kN; ++i) {
      const absl::StatusOr<w::Value>& r = fs[i].Get();
      const int runs = Cell(cells, i);
      if (r.ok()) {
        EXPECT_EQ(*r, w::Value(i));
        if (i % 2 == 0) {
          EXPECT_TRUE(runs == 1 || runs == 2) << i << " ran " << runs;
        } else {
          EXPECT_EQ(runs, 1) << i;
        }
      } else {
        ++failed;
        EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
        EXPECT_TRUE(Contains(r.status(), "SIGKILL")) << r.status();
        EXPECT_LE(runs, i % 2 == 0 ? 2 : 1) << i;
      }
    }
    EXPECT_LE(failed, kills);
    EXPECT_EQ(*pool->Run("pool_test_add_one", w::Value(1)).Get(), w::Value(2));
    pool->Close();
    EXPECT_TRUE(Eventually([] { return ChildPids().empty(); }));
  }
}

}  // namespace
