// ProcessBackend: the workers of a process pool. One dispatcher thread runs
// an EventLoop that owns the process Workers (their messages and exits land
// there); it moves jobs from the pool's submit queue to the least busy
// worker and completes their futures from the workers' replies.
//
// Protocol (over each worker's port; the worker runs the registered entry
// "wharf.pool.worker", in process_pool_backend.cc):
//   worker_data   {"stop": SharedBuffer(8), "initializer": name or null}
//   to worker     [[id, task, arg, attempt], ...]   a batch, run in order
//   from worker   [id, 0, value, run_ns]            a task's value
//                 [id, code, message, type, what, run_ns]
//                                                   its error status; type /
//                                                   what: its ErrorRecord,
//                                                   or null
//                 [0, code, message, type, what, 0] the initializer failed
//                                                   (the worker then exits)
// Replies come one per task, in batch order: so the worker's jobs in flight
// are a FIFO whose front is the one running. The stop cell holds the id of
// the task asked to stop (TaskContext::StopRequested compares); the
// dispatcher writes it, the worker only reads it.
//
// When a worker dies: the front job (it was running) fails with kAborted
// naming the cause, or is queued again as attempt 2 when idempotent; the
// jobs behind it never started and go back to the front of the dispatch
// order. Then a replacement starts if there is work or fewer than
// min_workers are left.
//
// Thread-safety: Wake, Abandon and StopJob from any thread; the rest runs on
// the dispatcher thread. Internal to the pool: not an API.

#ifndef WHARF_RUNTIME_INTERNAL_PROCESS_POOL_BACKEND_H_
#define WHARF_RUNTIME_INTERNAL_PROCESS_POOL_BACKEND_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/internal/pool_core.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/notification.h"

namespace wharf {
namespace pool_internal {

class ProcessBackend {
 public:
  // `core` owns the backend and outlives it.
  explicit ProcessBackend(Core& core);
  ~ProcessBackend();  // Shutdown(), joins the dispatcher
  ProcessBackend(const ProcessBackend&) = delete;
  ProcessBackend& operator=(const ProcessBackend&) = delete;

  // Starts the dispatcher and min_workers workers.
  absl::Status Start();
  // New jobs in the core's queue: the dispatcher looks (cheap when it is
  // already awake: one atomic exchange).
  void Wake();
  // A running job was stopped (timeout, stop token): its worker's stop cell
  // gets its id (now if it runs, else when it becomes the worker's front).
  void StopRunning(std::shared_ptr<Job> job);
  // A running job past its grace: kill its worker (its other jobs run
  // elsewhere) and start a replacement.
  void Abandon(std::shared_ptr<Job> job, std::string why);
  // Stops every worker (Terminate) and the dispatcher; jobs still in flight
  // fail with `why`. Returns when the dispatcher thread has ended.
  void Shutdown(absl::Status why);

 private:
  struct Slot;
  struct State;
  void Main();
  void Post(absl::AnyInvocable<void()> fn);

  Core& core_;
  std::unique_ptr<State> state_;  // the dispatcher's; touched on its thread only
  std::atomic<bool> wake_posted_{false};
  Mutex mu_;
  EventLoop* loop_ = nullptr;  // guarded by mu_: null before Start and after the loop ends
  Notification started_;
  std::thread thread_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace pool_internal
}  // namespace wharf

#endif  // WHARF_RUNTIME_INTERNAL_PROCESS_POOL_BACKEND_H_
