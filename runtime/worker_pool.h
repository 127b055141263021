// WorkerPool: Piscina's and ProcessPoolExecutor's pool — registered tasks
// (task.h) or, for thread pools, plain callables, run on up to max_workers
// workers, threads or processes (PoolOptions::isolation); each Run returns a
// Future (future.h: Get, Cancel, done-callbacks, Then on an EventLoop).
//
//   auto pool = wharf::WorkerPool::Create({.isolation = wharf::Isolation::kProcess}).value();
//   wharf::Future<wharf::Value> f = pool->Run("add_one", wharf::Value(41));
//   int64_t x = f.Get()->AsInt().value();                   // 42
//   auto h = pool->Submit(&HashPassword, "hunter2", salt);  // Future<std::string>
//   auto g = thread_pool->Run([] { return 6 * 7; });        // Future<int>, threads only
//
// Semantics (docs/pools.md has the whole story and the Piscina /
// ProcessPoolExecutor mapping):
// - A task's exception fails that task only: its future holds kUnknown
//   "task 'name' failed: <type>: <message>" with the worker's ErrorRecord as
//   a payload (TaskErrorRecord). A task returning an error status fails
//   with it. The argument is moved into the task: Buffers inside it are
//   handed over, not copied (to a process: through shared memory).
// - Future::Cancel() on a queued task removes it at once (kCancelled); on a
//   running one it fails (Python). A process pool's task already handed to
//   a busy worker's pipeline (tasks of at most 5 ms, deep queue) counts as
//   running, as Python's call queue does. RunOptions::cancel (a std::stop_token)
//   and RunOptions::timeout (counted from Run) reach running tasks too: the
//   future holds kCancelled / kDeadlineExceeded at once, the task's
//   TaskContext::StopRequested() turns true, and if it has not returned
//   after PoolOptions::cancel_grace its worker is replaced — a process
//   worker is killed, a thread worker abandoned (the thread ends when the
//   task returns; its result is dropped). No other task is affected.
// - A process worker that dies (a crash, kill -9, a resource limit) is
//   replaced; the task it was running fails with kAborted naming the cause
//   ("worker killed by signal 9 (SIGKILL)"), or runs once more when
//   RunOptions::idempotent; tasks handed to it but not started run
//   elsewhere. The pool is never broken.
// - Back-pressure: with max_queue tasks waiting, Run fails with
//   ResourceExhausted (FullPolicy::kFail) or blocks until there is room
//   (kWait; an interruption point). NeedsDrain() is true while the queue is
//   full; OnDrain handlers run as soon as it falls below the limit.
// - Close(): no new tasks (FailedPrecondition), queued and running ones
//   finish, then the workers stop; returns when they have. Destroy(): queued
//   tasks fail with kCancelled, running ones are asked to stop and, past
//   cancel_grace, replaced as above; returns then. The destructor is
//   Destroy().
//
// Errors: Create returns InvalidArgument for inconsistent options. Run's
// future holds NotFound for an unregistered task, FailedPrecondition after
// Close, ResourceExhausted when full (kFail), InvalidArgument for a callable
// on a process pool.
//
// Thread-safety: every method from any thread. Run never blocks except
// under FullPolicy::kWait. Scheduling: one lock-free MPMC queue (moodycamel)
// and a list of idle workers, each woken on its own futex word
// (internal/idle_workers.h); one heap allocation per task; no lock on the
// submit or dispatch path beyond the idle list's when a worker is woken. A process pool
// adds one dispatcher thread, which hands tasks to the least busy worker in
// batches when the queue is deep.

#ifndef WHARF_RUNTIME_WORKER_POOL_H_
#define WHARF_RUNTIME_WORKER_POOL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <stop_token>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/runtime/error_record.h"
#include "wharf/runtime/future.h"
#include "wharf/runtime/latency_histogram.h"
#include "wharf/runtime/map_results.h"
#include "wharf/runtime/task.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"

namespace wharf {

enum class FullPolicy : uint8_t { kFail, kWait };

struct PoolOptions {
  Isolation isolation = Isolation::kThread;
  // 0: AvailableParallelism() (affinity mask and cgroup cpu.max quota).
  int max_workers = 0;
  // Kept alive while idle; at least 0, at most max_workers.
  int min_workers = 1;
  // A worker above min_workers idle this long stops.
  absl::Duration idle_timeout = absl::Seconds(5);
  // Waiting tasks before back-pressure; 0: max_workers².
  size_t max_queue = 0;
  FullPolicy on_full = FullPolicy::kFail;
  // Process workers: tasks handed to one worker at a time while the queue is
  // shallow (Piscina's concurrentTasksPerWorker; a worker runs them one
  // after another). A deep queue is handed over in batches regardless.
  // Thread workers take the next task from the shared queue themselves.
  int concurrent_tasks_per_worker = 1;
  // Python's max_tasks_per_child: a worker that has run this many tasks is
  // replaced by a fresh one (0: never).
  int max_tasks_per_worker = 0;
  // Python's initializer: a registered task run once in each new worker,
  // with a null argument, before it takes tasks. If it fails, the worker
  // stops and the queued tasks fail with FailedPrecondition naming the
  // initializer and its error (the pool stays usable; a later Run starts a
  // worker again).
  std::string initializer{};
  // The initializer's argument (Python's initargs, Piscina's workerData):
  // each worker gets its own clone (Create fails with InvalidArgument if it
  // cannot be cloned: a detached Buffer). Null by default. Makes
  // PoolOptions move-only.
  Value initializer_arg{};
  // A task past its timeout or cancelled while running gets this long to
  // return before its worker is replaced.
  absl::Duration cancel_grace = absl::Seconds(1);
  // Default RunOptions::timeout (infinite: none).
  absl::Duration task_timeout = absl::InfiniteDuration();
  // kProcess: limits of each worker process (worker.h); kThread: must be empty.
  ResourceLimits resource_limits{};
  // kProcess: the workers' environment, "NAME=value" each (Piscina's env);
  // nullopt: this process's. kThread: must be unset (threads share it).
  std::optional<std::vector<std::string>> env{};
  std::string name = "pool";
};

struct RunOptions {
  // Infinite: PoolOptions::task_timeout.
  absl::Duration timeout = absl::InfiniteDuration();
  // A stop request cancels the task: removed if queued, else asked to stop
  // and, past cancel_grace, its worker replaced. One source may cancel many.
  std::stop_token cancel{};
  // Process pools: if its worker dies while running it, run it once more
  // (attempt 2) instead of failing it. Set only for tasks safe to repeat.
  // Not for an argument holding Buffers or ports: they went to the dead
  // worker, so such a task fails with a status saying it cannot run again.
  bool idempotent = false;
};

struct PoolStats {
  int workers = 0;
  int busy_workers = 0;
  size_t queued = 0;
  uint64_t completed = 0;  // returned a value
  uint64_t failed = 0;     // exception or error status
  uint64_t cancelled = 0;  // cancelled or timed out (queued or running)
  uint64_t abandoned = 0;  // workers given up on past cancel_grace
  uint64_t worker_deaths = 0;  // process workers that died with tasks (crash, kill, limit)
  uint64_t retried = 0;        // idempotent tasks run again after such a death
  LatencyHistogram::Snapshot run_time;
  LatencyHistogram::Snapshot wait_time;
  // Time since Create, and Piscina's utilization: time spent inside tasks
  // ÷ (max_workers × uptime), in [0, 1].
  absl::Duration uptime;
  double utilization = 0;
};

namespace pool_internal {
struct Core;
// One unit of work, type-erased. Created by Run (one allocation, which also
// holds the future's state: FutureJob below), owned (shared) by the queue,
// the worker running it, the timers and its future; the typed part (how its
// result completes the future) is a subclass below.
struct Job {
  virtual ~Job() = default;

  uint64_t id = 0;
  // The registry's name (entries are never removed), or "<callable>".
  std::string_view name;
  absl::Time enqueued;
  absl::Time deadline = absl::InfiniteFuture();
  int attempt = 1;
  bool idempotent = false;
  // A named task: its function (the registry's: thread workers call it) and
  // its argument. Null for a callable.
  const TaskFunction* fn = nullptr;
  Value arg;

  // A named task's result completes the future (decoding a typed result),
  // calling `account(succeeded)` just before it does (so Stats agree with a
  // Get() that returned) — and only if it returns true (false: the job was
  // already settled as stopped or failed, the result is dropped).
  virtual void Deliver(absl::StatusOr<Value> result, absl::FunctionRef<bool(bool)> account) = 0;
  // A callable (thread pools): runs it and completes the future likewise.
  virtual void Execute(TaskContext& ctx, absl::FunctionRef<bool(bool)> account) = 0;
  // Completes the future with `status` unless already done; true if it did.
  virtual bool Fail(absl::Status status) = 0;
  // Promise::SetRunning.
  virtual bool SetRunning() = 0;
  // Promise::OnCancel: the pool's hook, to drop the job from the queue.
  virtual void OnCancel(absl::AnyInvocable<void()> hook) = 0;
  // The job will not run (again): what it would have run with goes now,
  // not when its future does (the job lives as long as its future). Called
  // by whoever owns the work at that point (the claimer, or the remover).
  virtual void DropWork() { arg = Value(); }

  // Set by the pool.
  std::weak_ptr<Core> core;  // for the cancel hook (the future may outlive the pool)
  std::atomic<int> phase{0};  // kQueued, kRunning, kDone (worker_pool.cc)
  std::atomic<bool> timed_out{false};  // failed by a timeout or cancel while running
  // Once the job has left the queue, exactly one outcome counts: its own
  // result (delivered), a stop (timeout, cancel token), or its worker's
  // death. Whoever sets this first completes the future and the Stats.
  std::atomic<bool> settled{false};
  // The stop cell a thread worker's TaskContext reads (a process worker
  // reads its own shared one, written by the dispatcher): the id once the
  // job is asked to stop.
  std::atomic<uint64_t> stop{0};
  std::atomic<void*> slot{nullptr};  // thread pools: the WorkerSlot running it
  bool arg_moved = false;  // process pools (dispatcher only): `arg` went to a worker
  std::unique_ptr<std::stop_callback<std::function<void()>>> cancel_callback;
};

// The part of a job that knows the future's type: the future's state lives
// in the job (one allocation per task, freed by whoever drops the last of
// the future and the pool's references — usually the submitter, so a
// worker never frees into another thread's heap). Every path settles it
// (Core::Settle / Finish / Remove, FailQueued): a job is never dropped
// unsettled — the stress tests check each future ends exactly once.
template <class T>
struct FutureJob : Job {
  future_internal::State<T> state;
  // The future of this job (once, by the submitter, before it is queued).
  Future<T> TakeFuture(const std::shared_ptr<FutureJob>& self) {
    return future_internal::FutureOfState(std::shared_ptr<future_internal::State<T>>(self, &state));
  }
  void SetResult(FutureResult<T> r) { (void)state.Set(std::move(r)); }
  bool Fail(absl::Status status) override {
    if (status.ok()) status = absl::InternalError("a pool job failed with OK");
    return state.Set(FutureResult<T>(std::move(status))).ok();
  }
  bool SetRunning() override { return state.SetRunning(); }
  void OnCancel(absl::AnyInvocable<void()> hook) override { state.OnCancel(std::move(hook)); }
};

// A named task; `Decode` turns its Value into the future's T.
template <class T, class Decode>
struct NamedJob final : FutureJob<T> {
  explicit NamedJob(Decode d) : decode(std::move(d)) {}
  Decode decode;
  void Deliver(absl::StatusOr<Value> v, absl::FunctionRef<bool(bool)> account) override {
    FutureResult<T> r = v.ok() ? FutureResult<T>(decode(*std::move(v)))
                               : FutureResult<T>(std::move(v).status());
    if (account(r.ok())) this->SetResult(std::move(r));
  }
  void Execute(TaskContext&, absl::FunctionRef<bool(bool)>) override {}
};

template <class R, class F>
struct CallableJob;

}  // namespace pool_internal

class WorkerPool {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerPool>> Create(PoolOptions options = {});
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // A registered task (TaskRegistry) with `arg`.
  Future<Value> Run(std::string_view task, Value arg, RunOptions options = {}) {
    return RunNamed<Value>(task, std::move(arg), options,
                           [](Value v) -> absl::StatusOr<Value> { return v; });
  }

  // A typed task registered with WHARF_TYPED_TASK; arguments checked at
  // compile time against its parameters.
  template <class R, class... A, class... Args>
  Future<std::conditional_t<std::is_void_v<R>, void, std::remove_cvref_t<R>>> Submit(
      R (*fn)(A...), Args&&... args);
  // The same with RunOptions.
  template <class R, class... A, class... Args>
  Future<std::conditional_t<std::is_void_v<R>, void, std::remove_cvref_t<R>>> SubmitWith(
      RunOptions options, R (*fn)(A...), Args&&... args);

  // A callable `R()` or `R(TaskContext&)` (thread pools only: functions do
  // not cross processes).
  template <class F>
  auto Run(F fn, RunOptions options = {});

  // Python's Executor.map: `task` over `inputs`, in order, lazily; see
  // map_results.h. chunk_size inputs per pool task (>= 1).
  MapResults Map(std::string_view task, std::vector<Value> inputs, size_t chunk_size = 1,
                 RunOptions options = {});

  bool NeedsDrain() const;
  void OnDrain(std::function<void()> handler);
  void Close();
  void Destroy();
  PoolStats Stats() const;
  std::string StatsText() const;
  // PoolOptions::name, and max_workers as resolved by Create.
  const std::string& name() const;
  int max_workers() const;

 private:
  explicit WorkerPool(std::shared_ptr<pool_internal::Core> core) : core_(std::move(core)) {}
  // `wait`: wait for room even under FullPolicy::kFail (Map's own window).
  // Queues `job` (moved from on success; left for the caller to fail
  // otherwise).
  absl::Status Enqueue(std::shared_ptr<pool_internal::Job>& job, const RunOptions& options,
                       bool callable = false, bool wait = false);
  static absl::Status TaskFailed(std::string_view name, std::exception_ptr e);
  template <class R>
  static void Complete(pool_internal::FutureJob<R>& job, std::string_view name,
                       absl::FunctionRef<bool(bool)> account, auto&& body);
  template <class T, class Decode>
  Future<T> RunNamed(std::string_view name, Value arg, RunOptions options, Decode decode,
                     bool wait = false);
  friend class MapResults;
  template <class R, class F>
  friend struct pool_internal::CallableJob;

  std::shared_ptr<pool_internal::Core> core_;
};

// --- Implementation --------------------------------------------------------

template <class R>
void WorkerPool::Complete(pool_internal::FutureJob<R>& job, std::string_view name,
                          absl::FunctionRef<bool(bool)> account, auto&& body) {
  FutureResult<R> r = [&]() -> FutureResult<R> {
    try {
      using B = std::remove_cvref_t<decltype(body())>;
      if constexpr (std::is_void_v<B>) {
        body();
        return FutureResult<R>(absl::OkStatus());
      } else {
        return FutureResult<R>(body());  // a value, a StatusOr or a Status
      }
    } catch (...) {
      return FutureResult<R>(TaskFailed(name, std::current_exception()));
    }
  }();
  if (account(r.ok())) job.SetResult(std::move(r));
}

namespace pool_internal {
// A callable (thread pools). Its closure is destroyed as soon as it has run
// (what it captured does not live on with the job).
template <class R, class F>
struct CallableJob final : FutureJob<R> {
  explicit CallableJob(F f) : fn(std::move(f)) {}
  std::optional<F> fn;
  void Deliver(absl::StatusOr<Value>, absl::FunctionRef<bool(bool)>) override {}
  void Execute(TaskContext& ctx, absl::FunctionRef<bool(bool)> account) override;
  void DropWork() override { fn.reset(); }
};
}  // namespace pool_internal

template <class F>
auto WorkerPool::Run(F fn, RunOptions options) {
  constexpr bool kWithContext = std::is_invocable_v<F&, TaskContext&>;
  using Raw = std::conditional_t<kWithContext, std::invoke_result<F&, TaskContext&>,
                                 std::invoke_result<F&>>;
  using R = typename future_internal::Unwrap<std::remove_cvref_t<typename Raw::type>>::type;
  auto job = std::make_shared<pool_internal::CallableJob<R, F>>(std::move(fn));
  job->name = "<callable>";
  Future<R> future = job->TakeFuture(job);
  std::shared_ptr<pool_internal::Job> queued = std::move(job);
  if (absl::Status s = Enqueue(queued, options, /*callable=*/true); !s.ok()) {
    (void)queued->Fail(std::move(s));
  }
  return future;
}

template <class R, class F>
void pool_internal::CallableJob<R, F>::Execute(TaskContext& ctx,
                                               absl::FunctionRef<bool(bool)> account) {
  WorkerPool::Complete(*this, ctx.task_name(), account, [&]() -> decltype(auto) {
    if constexpr (std::is_invocable_v<F&, TaskContext&>) {
      return (*fn)(ctx);
    } else {
      return (*fn)();
    }
  });
}

template <class T, class Decode>
Future<T> WorkerPool::RunNamed(std::string_view name, Value arg, RunOptions options,
                               Decode decode, bool wait) {
  absl::StatusOr<task_internal::RegisteredTask> task = task_internal::FindTask(name);
  if (!task.ok()) return Future<T>::Ready(FutureResult<T>(task.status()));
  auto job = std::make_shared<pool_internal::NamedJob<T, Decode>>(std::move(decode));
  job->name = task->name;
  job->fn = task->fn;
  job->arg = std::move(arg);
  Future<T> future = job->TakeFuture(job);
  std::shared_ptr<pool_internal::Job> queued = std::move(job);
  if (absl::Status s = Enqueue(queued, options, /*callable=*/false, wait); !s.ok()) {
    (void)queued->Fail(std::move(s));
  }
  return future;
}

template <class R, class... A, class... Args>
Future<std::conditional_t<std::is_void_v<R>, void, std::remove_cvref_t<R>>> WorkerPool::SubmitWith(
    RunOptions options, R (*fn)(A...), Args&&... args) {
  using T = std::conditional_t<std::is_void_v<R>, void, std::remove_cvref_t<R>>;
  absl::StatusOr<std::string_view> name =
      task_internal::TypedTaskName(reinterpret_cast<const void*>(fn));
  if (!name.ok()) return Future<T>::Ready(FutureResult<T>(name.status()));
  Value arg = task_internal::EncodeArgs(fn, std::forward<Args>(args)...);
  return RunNamed<T>(*name, std::move(arg), std::move(options),
                     [](Value v) -> FutureResult<T> {
                       if constexpr (std::is_void_v<T>) {
                         return absl::OkStatus();
                       } else {
                         return Codec<T>::Decode(v);
                       }
                     });
}

template <class R, class... A, class... Args>
Future<std::conditional_t<std::is_void_v<R>, void, std::remove_cvref_t<R>>> WorkerPool::Submit(
    R (*fn)(A...), Args&&... args) {
  return SubmitWith(RunOptions{}, fn, std::forward<Args>(args)...);
}

}  // namespace wharf

#endif  // WHARF_RUNTIME_WORKER_POOL_H_
