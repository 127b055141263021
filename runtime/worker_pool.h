// WorkerPool: Piscina's and ProcessPoolExecutor's pool — registered tasks
// (task.h) or, for threads, plain callables, run on up to max_workers
// workers; each Run returns a Future. Work in progress (branch wip/pools):
// thread isolation first; see docs/pools-design-draft.md.
//
//   auto pool = wharf::WorkerPool::Create({.max_workers = 4}).value();
//   wharf::Future<wharf::Value> f = pool->Run("add_one", wharf::Value(41));
//   int64_t x = f.Get()->AsInt().value();                   // 42
//   auto g = pool->Run([] { return 6 * 7; });               // Future<int>
//
// Semantics:
// - A task's exception fails that task only: its future holds kUnknown
//   "task 'name' failed: <type>: <message>" with the worker's ErrorRecord as
//   a payload (TaskErrorRecord). A task returning an error status fails
//   with it.
// - Future::Cancel() on a queued task removes it at once (kCancelled); on a
//   running one it fails (Python). RunOptions::timeout counts from Run: past
//   it the future holds DeadlineExceeded at once, a running task's
//   TaskContext::StopRequested() turns true, and if it has not returned
//   after PoolOptions::cancel_grace its worker is abandoned (the thread ends
//   when the task returns; its result is dropped) and replaced — no other
//   task is affected.
// - Back-pressure: with max_queue tasks waiting, Run fails with
//   ResourceExhausted (FullPolicy::kFail) or blocks until there is room
//   (kWait; an interruption point). NeedsDrain() is true while the queue is
//   full; OnDrain handlers run as soon as it falls below the limit.
// - Close(): no new tasks (FailedPrecondition), queued and running ones
//   finish, then the workers stop; returns when they have. Destroy(): queued
//   tasks fail with kCancelled, running ones are asked to stop and, past
//   cancel_grace, abandoned; returns then. The destructor is Destroy().
//
// Thread-safety: every method from any thread. Run never blocks except
// under FullPolicy::kWait. Scheduling: one lock-free MPMC queue (moodycamel)
// and an event count; no lock on the submit or dispatch path.

#ifndef WHARF_RUNTIME_WORKER_POOL_H_
#define WHARF_RUNTIME_WORKER_POOL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/runtime/error_record.h"
#include "wharf/runtime/future.h"
#include "wharf/runtime/latency_histogram.h"
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
  // A task past its timeout or cancelled while running gets this long to
  // return before its worker is abandoned and replaced.
  absl::Duration cancel_grace = absl::Seconds(1);
  // Default RunOptions::timeout (infinite: none).
  absl::Duration task_timeout = absl::InfiniteDuration();
  std::string name = "pool";
};

struct RunOptions {
  // Infinite: PoolOptions::task_timeout.
  absl::Duration timeout = absl::InfiniteDuration();
};

struct PoolStats {
  int workers = 0;
  int busy_workers = 0;
  size_t queued = 0;
  uint64_t completed = 0;  // returned a value
  uint64_t failed = 0;     // exception or error status
  uint64_t cancelled = 0;  // cancelled or timed out (queued or running)
  uint64_t abandoned = 0;  // workers given up on past cancel_grace
  LatencyHistogram::Snapshot run_time;
  LatencyHistogram::Snapshot wait_time;
};

// The ErrorRecord a failed task's status carries (nullopt if none).
std::optional<ErrorRecord> TaskErrorRecord(const absl::Status& status);

namespace pool_internal {
struct Core;
// One queued unit of work, type-erased.
struct Job {
  uint64_t id = 0;
  std::string name;
  absl::Time enqueued;
  absl::Time deadline = absl::InfiniteFuture();
  // Runs the task and completes its future (exceptions caught inside),
  // calling `account(succeeded)` just before it does (so Stats agree with
  // a Get() that returned).
  absl::AnyInvocable<void(TaskContext&, absl::FunctionRef<void(bool)> account)> run;
  // Promise::OnCancel: the pool's hook, to drop the job from the queue.
  absl::AnyInvocable<void(absl::AnyInvocable<void()>)> on_cancel;
  // Set by the pool.
  std::atomic<int> phase{0};  // kQueued, kRunning, kDone (worker_pool.cc)
  std::atomic<bool> timed_out{false};
  std::shared_ptr<std::atomic<bool>> stop = std::make_shared<std::atomic<bool>>(false);
  std::atomic<void*> slot{nullptr};  // the WorkerSlot running it
  // Completes the future with `status` unless already done; true if it did.
  absl::AnyInvocable<bool(absl::Status)> fail;
  // Promise::SetRunning.
  absl::AnyInvocable<bool()> set_running;
};
}  // namespace pool_internal

class WorkerPool {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerPool>> Create(PoolOptions options = {});
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // A registered task (TaskRegistry) with `arg`.
  Future<Value> Run(std::string_view task, Value arg, RunOptions options = {}) {
    return RunNamed<Value>(std::string(task), std::move(arg), options,
                           [](Value v) -> absl::StatusOr<Value> { return v; });
  }

  // A typed task registered with WHARF_TYPED_TASK; arguments checked at
  // compile time against its parameters.
  template <class R, class... A, class... Args>
  Future<std::conditional_t<std::is_void_v<R>, void, std::remove_cvref_t<R>>> Submit(
      R (*fn)(A...), Args&&... args);

  // A callable `R()` or `R(TaskContext&)` (thread pools only: functions do
  // not cross processes).
  template <class F>
  auto Run(F fn, RunOptions options = {});

  bool NeedsDrain() const;
  void OnDrain(std::function<void()> handler);
  void Close();
  void Destroy();
  PoolStats Stats() const;
  std::string StatsText() const;

 private:
  explicit WorkerPool(std::shared_ptr<pool_internal::Core> core) : core_(std::move(core)) {}
  absl::Status Enqueue(std::shared_ptr<pool_internal::Job> job, absl::Duration timeout);
  static absl::Status TaskFailed(std::string_view name, std::exception_ptr e);
  template <class R>
  static void Complete(Promise<R>& p, std::string_view name,
                       absl::FunctionRef<void(bool)> account, auto&& body);
  template <class T, class Decode>
  Future<T> RunNamed(std::string name, Value arg, RunOptions options, Decode decode);

  std::shared_ptr<pool_internal::Core> core_;
};

// --- Implementation --------------------------------------------------------

template <class R>
void WorkerPool::Complete(Promise<R>& p, std::string_view name,
                          absl::FunctionRef<void(bool)> account, auto&& body) {
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
  account(r.ok());
  (void)p.SetResult(std::move(r));
}

template <class F>
auto WorkerPool::Run(F fn, RunOptions options) {
  constexpr bool kWithContext = std::is_invocable_v<F&, TaskContext&>;
  using Raw = std::conditional_t<kWithContext, std::invoke_result<F&, TaskContext&>,
                                 std::invoke_result<F&>>;
  using R = typename future_internal::Unwrap<std::remove_cvref_t<typename Raw::type>>::type;
  auto promise = std::make_shared<Promise<R>>();
  Future<R> future = promise->GetFuture();
  auto job = std::make_shared<pool_internal::Job>();
  job->name = "<callable>";
  job->run = [promise, fn = std::move(fn)](TaskContext& ctx,
                                            absl::FunctionRef<void(bool)> account) mutable {
    Complete(*promise, ctx.task_name(), account, [&]() -> decltype(auto) {
      if constexpr (kWithContext) {
        return fn(ctx);
      } else {
        return fn();
      }
    });
  };
  job->fail = [promise](absl::Status s) { return promise->SetError(std::move(s)).ok(); };
  job->set_running = [promise] { return promise->SetRunning(); };
  job->on_cancel = [promise](absl::AnyInvocable<void()> hook) {
    promise->OnCancel(std::move(hook));
  };
  if (absl::Status s = Enqueue(std::move(job), options.timeout); !s.ok()) {
    return Future<R>::Ready(FutureResult<R>(std::move(s)));
  }
  return future;
}

template <class T, class Decode>
Future<T> WorkerPool::RunNamed(std::string name, Value arg, RunOptions options, Decode decode) {
  absl::StatusOr<TaskFunction> fn = TaskRegistry::Find(name);
  if (!fn.ok()) return Future<T>::Ready(FutureResult<T>(fn.status()));
  auto promise = std::make_shared<Promise<T>>();
  Future<T> future = promise->GetFuture();
  auto job = std::make_shared<pool_internal::Job>();
  job->name = name;
  job->run = [promise, fn = *std::move(fn), arg = std::move(arg), decode = std::move(decode)](
                 TaskContext& ctx, absl::FunctionRef<void(bool)> account) mutable {
    FutureResult<T> r = [&]() -> FutureResult<T> {
      try {
        absl::StatusOr<Value> v = fn(ctx, std::move(arg));
        if (!v.ok()) return FutureResult<T>(v.status());
        return decode(*std::move(v));
      } catch (...) {
        return FutureResult<T>(TaskFailed(ctx.task_name(), std::current_exception()));
      }
    }();
    account(r.ok());
    (void)promise->SetResult(std::move(r));
  };
  job->fail = [promise](absl::Status s) { return promise->SetError(std::move(s)).ok(); };
  job->set_running = [promise] { return promise->SetRunning(); };
  job->on_cancel = [promise](absl::AnyInvocable<void()> hook) {
    promise->OnCancel(std::move(hook));
  };
  if (absl::Status s = Enqueue(std::move(job), options.timeout); !s.ok()) {
    return Future<T>::Ready(FutureResult<T>(std::move(s)));
  }
  return future;
}

template <class R, class... A, class... Args>
Future<std::conditional_t<std::is_void_v<R>, void, std::remove_cvref_t<R>>> WorkerPool::Submit(
    R (*fn)(A...), Args&&... args) {
  using T = std::conditional_t<std::is_void_v<R>, void, std::remove_cvref_t<R>>;
  absl::StatusOr<std::string> name = TaskRegistry::NameOf(reinterpret_cast<const void*>(fn));
  if (!name.ok()) return Future<T>::Ready(FutureResult<T>(name.status()));
  Value arg = task_internal::EncodeArgs(fn, std::forward<Args>(args)...);
  return RunNamed<T>(*std::move(name), std::move(arg), RunOptions{}, [](Value v) -> FutureResult<T> {
    if constexpr (std::is_void_v<T>) {
      return absl::OkStatus();
    } else {
      return Codec<T>::Decode(v);
    }
  });
}

}  // namespace wharf

#endif  // WHARF_RUNTIME_WORKER_POOL_H_
