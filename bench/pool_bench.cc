// Worker pools: Wharf's WorkerPool (thread and process isolation) against
// the pools a C++ user would otherwise pick, in one binary:
//
//   BM_TinyTasks/<peer>    one iteration = 10⁵ tasks returning x+1,
//                          submitted one by one, then a wait for all of
//                          them; items/s is the figure. submit_per_second:
//                          the submitting loop alone.
//   BM_SubmitBlocked/<peer>  the submitting loop of BM_TinyTasks alone, with
//                          every worker held inside a task meanwhile: what
//                          one submission costs the caller when no worker
//                          has to be woken (manual time: the loop only).
//                          Wharf, asio and std_pool (a task_group has no
//                          such state: its caller is one of its workers).
//   BM_TaskLatency/<peer>  one task's round trip (submit, run, result back)
//                          on a pool with nothing else to do, back to back.
//   BM_TaskLatencyAfterIdle/<peer>  the same after 2 ms with nothing to do
//                          (the workers have gone to sleep); manual time:
//                          the round trip only.
//   BM_Fib/<peer>          kFibTasksPerCore × cores tasks of fib(27) (0.3 to
//                          1.5 ms each, as the VM's speed goes), one by
//                          one, then a wait.
//                          Each iteration also measures, untimed, just
//                          before and just after the pool's run, the
//                          serial rate (this thread, unpinned) and the ideal
//                          (one thread pinned to each allowed CPU with
//                          sched_setaffinity, all at once: the sum of their
//                          rates) — in the same run, because the cores of
//                          these VMs are neither equal nor steady. Counters:
//                            speedup             pool rate / serial rate
//                            speedup_over_ideal  pool rate / ideal rate
//                            ideal_speedup       ideal rate / serial rate
//                            busy_fraction       time inside tasks /
//                                                (workers × wall time);
//                                                Wharf's from Stats().run_time,
//                                                the peers' timed in the task.
//   BM_Fib/serial_per_core_ideal  the ideal alone: per-core rates core<i>.
//
//   Peers (every pool has one worker per allowed CPU):
//     wharf_thread          WorkerPool, Isolation::kThread, the named task
//                           (Run("pool_bench_add_one", Value(x))), one
//                           Future per task; wharf::Wait on all of them.
//     wharf_thread_callable the same with a lambda (Run([x] { ... })).
//     wharf_process         WorkerPool, Isolation::kProcess, named tasks.
//     asio                  boost::asio::thread_pool + post; the tiny and
//                           CPU tasks count down a std::latch, the latency
//                           task sets a std::promise.
//     asio_futures          (tiny tasks only) asio with a std::future per
//                           task, read one by one: the per-task future
//                           Wharf's API always has.
//     tbb                   oneTBB: tbb::task_group inside a task_arena
//                           (the caller runs tasks too while it waits) for
//                           the tiny and CPU tasks; task_arena::enqueue +
//                           std::promise for the latency (a task_group's
//                           wait would run the one task on the caller).
//     std_pool              std::thread workers over a mutex, a condvar and
//                           a deque of std::function (StdPool below).
//
// Core count: every figure in docs/benchmarks.md names it (2 on the
// development VM); it is also the `cores` counter of every benchmark.

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "boost/asio/post.hpp"
#include "boost/asio/thread_pool.hpp"
#include "oneapi/tbb/task_arena.h"
#include "oneapi/tbb/task_group.h"
#include "wharf/runtime/future.h"
#include "wharf/runtime/future_wait.h"
#include "wharf/runtime/init_process.h"
#include "wharf/runtime/task.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker_pool.h"

namespace {

constexpr int kTinyTasks = 100'000;
constexpr int kFibN = 27;
constexpr int kFibTasksPerCore = 300;
// How long the serial and the pinned measurements of BM_Fib run per iteration.
constexpr absl::Duration kRateWindow = absl::Milliseconds(100);

using Clock = std::chrono::steady_clock;

// --- The machine ----------------------------------------------------------------

// The CPUs this process may run on, read once at start-up (before any
// thread pins itself).
const std::vector<int>& AllowedCpus() {
  static const std::vector<int> cpus = [] {
    std::vector<int> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) out.push_back(c);
      }
    }
    if (out.empty()) out.push_back(0);
    return out;
  }();
  return cpus;
}

int Cores() { return static_cast<int>(AllowedCpus().size()); }

void CountCores(benchmark::State& state) { state.counters["cores"] = Cores(); }

// --- The CPU-bound task ----------------------------------------------------------

int64_t Fib(int n) { return n < 2 ? n : Fib(n - 1) + Fib(n - 2); }

// Fib(n) with n opaque to the optimiser, so that no call is folded away.
int64_t FibTask(int n) {
  benchmark::DoNotOptimize(n);
  return Fib(n);
}

int64_t FibResult() {
  static const int64_t r = Fib(kFibN);
  return r;
}

// Fib tasks per second of the calling thread, running them back to back for
// kRateWindow.
double RunFor() {
  const Clock::time_point start = Clock::now();
  const Clock::time_point until = start + absl::ToChronoNanoseconds(kRateWindow);
  int64_t done = 0;
  Clock::time_point now;
  do {
    benchmark::DoNotOptimize(FibTask(kFibN));
    ++done;
    now = Clock::now();
  } while (now < until);
  return static_cast<double>(done) / std::chrono::duration<double>(now - start).count();
}

// The ideal: one thread pinned to each allowed CPU, all running at once.
// Their rates, in AllowedCpus() order.
std::vector<double> PinnedRates() {
  const std::vector<int>& cpus = AllowedCpus();
  std::vector<double> rates(cpus.size(), 0.0);
  std::barrier start(static_cast<std::ptrdiff_t>(cpus.size()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < cpus.size(); ++i) {
    threads.emplace_back([&, i] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpus[i], &set);
      const bool pinned = sched_setaffinity(0, sizeof(set), &set) == 0;  // this thread
      start.arrive_and_wait();
      rates[i] = pinned ? RunFor() : 0.0;
    });
  }
  for (std::thread& t : threads) t.join();
  return rates;
}

double Sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

// Time inside the peers' Fib tasks, timed by the task itself.
struct BusyClock {
  std::atomic<int64_t> ns{0};
  template <class F>
  auto Time(F f) {
    const Clock::time_point t0 = Clock::now();
    auto r = f();
    ns.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count(),
                 std::memory_order_relaxed);
    return r;
  }
};

// What BM_Fib/<peer> accumulates over its iterations.
struct FibTotals {
  double pool_seconds = 0;
  int64_t pool_tasks = 0;
  double busy_seconds = 0;
  double serial_rate_sum = 0;  // one per measurement
  double ideal_rate_sum = 0;
  int measurements = 0;

  // Untimed: the serial and the ideal rate, now.
  void MeasureRates(benchmark::State& state) {
    state.PauseTiming();
    serial_rate_sum += RunFor();
    ideal_rate_sum += Sum(PinnedRates());
    ++measurements;
    state.ResumeTiming();
  }
  void Report(benchmark::State& state, int workers) const {
    if (measurements == 0 || pool_seconds <= 0) return;
    const double pool_rate = static_cast<double>(pool_tasks) / pool_seconds;
    const double serial = serial_rate_sum / measurements;
    const double ideal = ideal_rate_sum / measurements;
    state.counters["speedup"] = pool_rate / serial;
    state.counters["speedup_over_ideal"] = pool_rate / ideal;
    state.counters["ideal_speedup"] = ideal / serial;
    state.counters["busy_fraction"] = busy_seconds / (workers * pool_seconds);
    state.SetItemsProcessed(pool_tasks);
    CountCores(state);
  }
};

// Runs `once` (one pool run of `tasks` tasks) per iteration, timed by hand
// so that MeasureRates' pause does not blur the wall time, with the serial
// and ideal rates measured just before and just after it (the VM's speed
// drifts within seconds); `busy` returns the seconds spent inside tasks so
// far.
template <class Once, class Busy>
void FibLoop(benchmark::State& state, int workers, Once once, Busy busy) {
  FibTotals t;
  const int tasks = kFibTasksPerCore * Cores();
  for (auto _ : state) {
    t.MeasureRates(state);
    const double busy_before = busy();
    const Clock::time_point t0 = Clock::now();
    if (!once(tasks)) {
      state.SkipWithError("a Fib task returned a wrong result");
      return;
    }
    t.pool_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    t.pool_tasks += tasks;
    t.busy_seconds += busy() - busy_before;
    t.MeasureRates(state);
  }
  t.Report(state, workers);
}

// --- The tiny-task loops ------------------------------------------------------------

// `round(&seconds)` runs one round of kTinyTasks tasks, adds the seconds its
// submitting loop took to `seconds`, and returns false if a task failed or
// returned a wrong result. Each loop runs one round untimed first: the first
// round grows the heap (page faults cost ~3 ms per MiB on these VMs, and a
// Wharf round holds ~70-90 MB) and wakes every thread.
template <class Round>
bool WarmUp(benchmark::State& state, Round& round) {
  double ignored = 0;
  if (!round(&ignored)) {
    state.SkipWithError("a tiny task failed or returned a wrong result");
    return false;
  }
  return true;
}

// BM_TinyTasks: the round, timed whole.
template <class Round>
void TinyLoop(benchmark::State& state, Round round) {
  if (!WarmUp(state, round)) return;
  double submit_seconds = 0;
  for (auto _ : state) {
    if (!round(&submit_seconds)) {
      state.SkipWithError("a tiny task failed or returned a wrong result");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * kTinyTasks);
  state.counters["submit_per_second"] =
      static_cast<double>(state.iterations() * kTinyTasks) / submit_seconds;
  CountCores(state);
}

// BM_SubmitBlocked: the submitting loop only (manual time).
template <class Round>
void BlockedLoop(benchmark::State& state, Round round) {
  if (!WarmUp(state, round)) return;
  for (auto _ : state) {
    double seconds = 0;
    if (!round(&seconds)) {
      state.SkipWithError("a tiny task failed or returned a wrong result");
      return;
    }
    state.SetIterationTime(seconds);
  }
  state.SetItemsProcessed(state.iterations() * kTinyTasks);
  CountCores(state);
}

// Holds each worker of a pool inside a task until Release(). Shared with
// the holding tasks: they may still be returning from the wait when the
// round that made it ends.
struct Blocker {
  std::latch started{Cores()};
  std::atomic<bool> released{false};
  void Hold() {
    started.count_down();
    released.wait(false);
  }
  void Release() {
    released.store(true);
    released.notify_all();
  }
};

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// --- Wharf ----------------------------------------------------------------------

WHARF_TASK(pool_bench_add_one) { return wharf::Value(arg.AsInt().value() + 1); }
WHARF_TASK(pool_bench_fib) { return wharf::Value(FibTask(static_cast<int>(arg.AsInt().value()))); }

// A pool of Cores() workers, all started; nullptr (and the benchmark
// skipped with the pool's error) if Create fails.
std::unique_ptr<wharf::WorkerPool> MakePool(benchmark::State& state, wharf::Isolation isolation) {
  absl::StatusOr<std::unique_ptr<wharf::WorkerPool>> pool =
      wharf::WorkerPool::Create(wharf::PoolOptions{
          .isolation = isolation,
          .max_workers = Cores(),
          .min_workers = Cores(),
          .max_queue = size_t{1} << 20,  // 10⁵ queued at once: no back-pressure
          .name = "pool_bench",
      });
  if (!pool.ok()) {
    state.SkipWithError(absl::StrCat("WorkerPool::Create: ", pool.status().ToString()).c_str());
    return nullptr;
  }
  return *std::move(pool);
}

double RunSeconds(const wharf::WorkerPool& pool) {
  return absl::ToDoubleSeconds(pool.Stats().run_time.sum);
}

// Waits for all, then checks that future i holds expect_each (i + 1 when
// negative).
template <class T>
bool WaitAndCheck(std::vector<wharf::Future<T>>& futures, int64_t expect_each = -1) {
  if (!wharf::Wait(futures).ok()) return false;
  for (size_t i = 0; i < futures.size(); ++i) {
    const auto& r = futures[i].Get();
    if (!r.ok()) return false;
    int64_t v;
    if constexpr (std::is_same_v<T, wharf::Value>) {
      v = r->AsInt().value_or(-1);
    } else {
      v = *r;
    }
    if (v != (expect_each >= 0 ? expect_each : static_cast<int64_t>(i) + 1)) return false;
  }
  return true;
}

// Submits kTinyTasks tasks of x + 1 to `pool`, one by one, into `futures`.
template <bool kCallable, class T>
void SubmitTiny(wharf::WorkerPool& pool, std::vector<wharf::Future<T>>& futures) {
  futures.reserve(kTinyTasks);
  for (int64_t i = 0; i < kTinyTasks; ++i) {
    if constexpr (kCallable) {
      futures.push_back(pool.Run([i] { return i + 1; }));
    } else {
      futures.push_back(pool.Run("pool_bench_add_one", wharf::Value(i)));
    }
  }
}

template <bool kCallable>
using TinyResult = std::conditional_t<kCallable, int64_t, wharf::Value>;

template <bool kCallable>
void TinyWharf(benchmark::State& state, wharf::Isolation isolation) {
  std::unique_ptr<wharf::WorkerPool> pool = MakePool(state, isolation);
  if (pool == nullptr) return;
  TinyLoop(state, [&](double* submit_seconds) {
    std::vector<wharf::Future<TinyResult<kCallable>>> futures;
    const Clock::time_point t0 = Clock::now();
    SubmitTiny<kCallable>(*pool, futures);
    *submit_seconds += SecondsSince(t0);
    return WaitAndCheck(futures);
  });
}

void LatencyWharf(benchmark::State& state, wharf::Isolation isolation, bool after_idle) {
  std::unique_ptr<wharf::WorkerPool> pool = MakePool(state, isolation);
  if (pool == nullptr) return;
  int64_t i = 0;
  for (auto _ : state) {
    if (after_idle) absl::SleepFor(absl::Milliseconds(2));
    const Clock::time_point t0 = Clock::now();
    wharf::Future<wharf::Value> f = pool->Run("pool_bench_add_one", wharf::Value(i));
    const absl::StatusOr<wharf::Value>& r = f.Get();
    const Clock::time_point t1 = Clock::now();
    if (after_idle) state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    if (!r.ok() || r->AsInt().value_or(-1) != i + 1) {
      state.SkipWithError("the task failed or returned a wrong result");
      return;
    }
    ++i;
  }
  CountCores(state);
}

template <bool kCallable>
void SubmitBlockedWharf(benchmark::State& state) {
  std::unique_ptr<wharf::WorkerPool> pool = MakePool(state, wharf::Isolation::kThread);
  if (pool == nullptr) return;
  BlockedLoop(state, [&](double* seconds) {
    auto b = std::make_shared<Blocker>();
    std::vector<wharf::Future<void>> holds;
    for (int c = 0; c < Cores(); ++c) holds.push_back(pool->Run([b] { b->Hold(); }));
    b->started.wait();
    std::vector<wharf::Future<TinyResult<kCallable>>> futures;
    const Clock::time_point t0 = Clock::now();
    SubmitTiny<kCallable>(*pool, futures);
    *seconds += SecondsSince(t0);
    b->Release();
    return wharf::Wait(holds).ok() && WaitAndCheck(futures);
  });
}

void FibWharf(benchmark::State& state, wharf::Isolation isolation) {
  std::unique_ptr<wharf::WorkerPool> pool = MakePool(state, isolation);
  if (pool == nullptr) return;
  FibLoop(
      state, Cores(),
      [&](int tasks) {
        std::vector<wharf::Future<wharf::Value>> futures;
        futures.reserve(tasks);
        for (int i = 0; i < tasks; ++i) futures.push_back(pool->Run("pool_bench_fib", wharf::Value(kFibN)));
        return WaitAndCheck(futures, FibResult());
      },
      [&] { return RunSeconds(*pool); });
}

// --- std::thread + mutex + condvar + deque -----------------------------------------

// The pool a user writes in an afternoon: one queue under one mutex, workers
// waiting on one condition variable; notify_one after each push, outside
// the lock.
class StdPool {
 public:
  explicit StdPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~StdPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  StdPool(const StdPool&) = delete;
  StdPool& operator=(const StdPool&) = delete;

  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_, and nothing left
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
  std::vector<std::thread> threads_;
};

// Post(fn) for each fire-and-forget peer.
struct AsioPeer {
  explicit AsioPeer(int threads) : pool(static_cast<std::size_t>(threads)) {}
  ~AsioPeer() { pool.join(); }
  template <class F>
  void Post(F fn) {
    boost::asio::post(pool, std::move(fn));
  }
  boost::asio::thread_pool pool;
};

struct StdPeer {
  explicit StdPeer(int threads) : pool(threads) {}
  template <class F>
  void Post(F fn) {
    pool.Post(std::move(fn));
  }
  StdPool pool;
};

bool CheckIncremented(const std::vector<int64_t>& out) {
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] != static_cast<int64_t>(i) + 1) return false;
  }
  return true;
}

// Posts kTinyTasks tasks writing out[i] = i + 1 and counting `done` down.
template <class Peer>
void PostTiny(Peer& peer, std::vector<int64_t>& out, std::latch& done) {
  for (int64_t i = 0; i < kTinyTasks; ++i) {
    peer.Post([&out, &done, i] {
      out[i] = i + 1;
      done.count_down();
    });
  }
}

template <class Peer>
void TinyPosted(benchmark::State& state) {
  Peer peer(Cores());
  TinyLoop(state, [&](double* submit_seconds) {
    std::vector<int64_t> out(kTinyTasks, 0);
    std::latch done(kTinyTasks);
    const Clock::time_point t0 = Clock::now();
    PostTiny(peer, out, done);
    *submit_seconds += SecondsSince(t0);
    done.wait();
    return CheckIncremented(out);
  });
}

template <class Peer>
void SubmitBlockedPosted(benchmark::State& state) {
  Peer peer(Cores());
  BlockedLoop(state, [&](double* seconds) {
    auto b = std::make_shared<Blocker>();
    for (int c = 0; c < Cores(); ++c) peer.Post([b] { b->Hold(); });
    b->started.wait();
    std::vector<int64_t> out(kTinyTasks, 0);
    std::latch done(kTinyTasks);
    const Clock::time_point t0 = Clock::now();
    PostTiny(peer, out, done);
    *seconds += SecondsSince(t0);
    b->Release();
    done.wait();
    return CheckIncremented(out);
  });
}

void TinyAsioFutures(benchmark::State& state) {
  AsioPeer peer(Cores());
  TinyLoop(state, [&](double* submit_seconds) {
    std::vector<std::future<int64_t>> futures;
    futures.reserve(kTinyTasks);
    const Clock::time_point t0 = Clock::now();
    for (int64_t i = 0; i < kTinyTasks; ++i) {
      std::packaged_task<int64_t()> task([i] { return i + 1; });
      futures.push_back(task.get_future());
      peer.Post(std::move(task));
    }
    *submit_seconds += SecondsSince(t0);
    bool ok = true;
    for (int64_t i = 0; i < kTinyTasks; ++i) ok &= futures[i].get() == i + 1;
    return ok;
  });
}

// One task's round trip through `post` (which hands a std::function<void()>
// to the pool); the task sets a std::promise.
template <class PostFn>
void LatencyPosted(benchmark::State& state, bool after_idle, PostFn post) {
  int64_t i = 0;
  for (auto _ : state) {
    if (after_idle) absl::SleepFor(absl::Milliseconds(2));
    const Clock::time_point t0 = Clock::now();
    auto promise = std::make_shared<std::promise<int64_t>>();
    std::future<int64_t> f = promise->get_future();
    post([promise, i] { promise->set_value(i + 1); });
    const int64_t r = f.get();
    const Clock::time_point t1 = Clock::now();
    if (after_idle) state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    if (r != i + 1) {
      state.SkipWithError("the task returned a wrong result");
      return;
    }
    ++i;
  }
  CountCores(state);
}

template <class Peer>
void LatencyPeer(benchmark::State& state, bool after_idle) {
  Peer peer(Cores());
  LatencyPosted(state, after_idle, [&](std::function<void()> fn) { peer.Post(std::move(fn)); });
}

template <class Peer>
void FibPosted(benchmark::State& state) {
  Peer peer(Cores());
  BusyClock busy;
  FibLoop(
      state, Cores(),
      [&](int tasks) {
        std::vector<int64_t> out(tasks, 0);
        std::latch done(tasks);
        for (int i = 0; i < tasks; ++i) {
          peer.Post([&, i] {
            out[i] = busy.Time([] { return FibTask(kFibN); });
            done.count_down();
          });
        }
        done.wait();
        return std::all_of(out.begin(), out.end(), [](int64_t v) { return v == FibResult(); });
      },
      [&] { return static_cast<double>(busy.ns.load()) * 1e-9; });
}

// --- oneTBB ------------------------------------------------------------------------

void TinyTbb(benchmark::State& state) {
  oneapi::tbb::task_arena arena(Cores());
  TinyLoop(state, [&](double* submit_seconds) {
    std::vector<int64_t> out(kTinyTasks, 0);
    arena.execute([&] {
      oneapi::tbb::task_group tg;
      const Clock::time_point t0 = Clock::now();
      for (int64_t i = 0; i < kTinyTasks; ++i) tg.run([&out, i] { out[i] = i + 1; });
      *submit_seconds += SecondsSince(t0);
      tg.wait();
    });
    return CheckIncremented(out);
  });
}

void LatencyTbb(benchmark::State& state, bool after_idle) {
  // This thread never joins the arena (no execute): the enqueued task runs
  // on one of TBB's workers (Cores() - 1 of them by default).
  oneapi::tbb::task_arena arena(Cores());
  LatencyPosted(state, after_idle, [&](std::function<void()> fn) { arena.enqueue(std::move(fn)); });
}

void FibTbb(benchmark::State& state) {
  oneapi::tbb::task_arena arena(Cores());
  BusyClock busy;
  FibLoop(
      state, Cores(),
      [&](int tasks) {
        std::vector<int64_t> out(tasks, 0);
        arena.execute([&] {
          oneapi::tbb::task_group tg;
          for (int i = 0; i < tasks; ++i) {
            tg.run([&, i] { out[i] = busy.Time([] { return FibTask(kFibN); }); });
          }
          tg.wait();
        });
        return std::all_of(out.begin(), out.end(), [](int64_t v) { return v == FibResult(); });
      },
      [&] { return static_cast<double>(busy.ns.load()) * 1e-9; });
}

// --- The ideal alone --------------------------------------------------------------

void FibIdeal(benchmark::State& state) {
  std::vector<double> per_core(Cores(), 0.0);
  double serial = 0, ideal = 0;
  for (auto _ : state) {
    serial += RunFor();
    const std::vector<double> rates = PinnedRates();
    for (size_t i = 0; i < rates.size(); ++i) per_core[i] += rates[i];
    ideal += Sum(rates);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["serial_tasks_per_second"] = serial / n;
  state.counters["ideal_tasks_per_second"] = ideal / n;
  state.counters["ideal_speedup"] = ideal / serial;
  for (size_t i = 0; i < per_core.size(); ++i) {
    state.counters[absl::StrCat("core", AllowedCpus()[i])] = per_core[i] / n;
  }
  CountCores(state);
}

// --- Registration -------------------------------------------------------------------

constexpr auto kThread = wharf::Isolation::kThread;
constexpr auto kProcess = wharf::Isolation::kProcess;

void RegisterAll() {
  using benchmark::RegisterBenchmark;
  using benchmark::State;
  const auto tiny = [](const char* peer, auto fn) {
    RegisterBenchmark(absl::StrCat("BM_TinyTasks/", peer).c_str(), fn)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  };
  tiny("wharf_thread", [](State& s) { TinyWharf<false>(s, kThread); });
  tiny("wharf_thread_callable", [](State& s) { TinyWharf<true>(s, kThread); });
  tiny("wharf_process", [](State& s) { TinyWharf<false>(s, kProcess); });
  tiny("asio", [](State& s) { TinyPosted<AsioPeer>(s); });
  tiny("asio_futures", [](State& s) { TinyAsioFutures(s); });
  tiny("tbb", [](State& s) { TinyTbb(s); });
  tiny("std_pool", [](State& s) { TinyPosted<StdPeer>(s); });

  const auto blocked = [](const char* peer, auto fn) {
    RegisterBenchmark(absl::StrCat("BM_SubmitBlocked/", peer).c_str(), fn)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  };
  blocked("wharf_thread", [](State& s) { SubmitBlockedWharf<false>(s); });
  blocked("wharf_thread_callable", [](State& s) { SubmitBlockedWharf<true>(s); });
  blocked("asio", [](State& s) { SubmitBlockedPosted<AsioPeer>(s); });
  blocked("std_pool", [](State& s) { SubmitBlockedPosted<StdPeer>(s); });

  for (const bool after_idle : {false, true}) {
    const auto latency = [after_idle](const char* peer, auto fn) {
      auto* b = RegisterBenchmark(
          absl::StrCat(after_idle ? "BM_TaskLatencyAfterIdle/" : "BM_TaskLatency/", peer).c_str(),
          [fn, after_idle](State& s) { fn(s, after_idle); });
      b->Unit(benchmark::kMicrosecond);
      if (after_idle) {
        b->UseManualTime()->Iterations(500);  // 2 ms idle each: ~1 s
      } else {
        b->UseRealTime();
      }
    };
    latency("wharf_thread", [](State& s, bool idle) { LatencyWharf(s, kThread, idle); });
    latency("wharf_process", [](State& s, bool idle) { LatencyWharf(s, kProcess, idle); });
    latency("asio", [](State& s, bool idle) { LatencyPeer<AsioPeer>(s, idle); });
    latency("tbb", [](State& s, bool idle) { LatencyTbb(s, idle); });
    latency("std_pool", [](State& s, bool idle) { LatencyPeer<StdPeer>(s, idle); });
  }

  const auto fib = [](const char* peer, auto fn) {
    // Each iteration: 0.1-0.5 s of pool work plus ~4 kRateWindow untimed.
    RegisterBenchmark(absl::StrCat("BM_Fib/", peer).c_str(), fn)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
  };
  fib("serial_per_core_ideal", [](State& s) { FibIdeal(s); });
  fib("wharf_thread", [](State& s) { FibWharf(s, kThread); });
  fib("wharf_process", [](State& s) { FibWharf(s, kProcess); });
  fib("asio", [](State& s) { FibPosted<AsioPeer>(s); });
  fib("tbb", [](State& s) { FibTbb(s); });
  fib("std_pool", [](State& s) { FibPosted<StdPeer>(s); });
}

}  // namespace

// Its own main: a process worker is this binary started again, and
// InitProcess must see its command line before anything else does.
int main(int argc, char** argv) {
  wharf::InitProcess(argc, argv);
  (void)AllowedCpus();  // before any thread pins itself
  benchmark::AddCustomContext("cores", absl::StrCat(Cores()));
  RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
