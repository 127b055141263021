// Internal: a worker's own side, whatever its isolation — the control block
// that Terminate and Exit act on, and RunWorkerEntry, the one function that
// runs a worker's life on the calling thread (the body of a thread worker;
// next, the main of a process worker's child).
//
// The owner learns of the end only through the WorkerExitRecord that
// RunWorkerEntry returns (how the backend carries it to the owner is the
// backend's business: a closure posted to the owner loop for a thread).

#ifndef WHARF_RUNTIME_INTERNAL_WORKER_RUNNER_H_
#define WHARF_RUNTIME_INTERNAL_WORKER_RUNNER_H_

#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "wharf/runtime/error_record.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"

namespace wharf {

class WorkerContext;
using WorkerFunction = std::function<void(WorkerContext&)>;

namespace runtime_internal {

// How a worker ended: the one "finished" record.
struct WorkerExitRecord {
  int code = 0;
  int signal = 0;                    // a process worker killed by a signal; 0 otherwise
  std::optional<ErrorRecord> error;  // an uncaught exception (code 1)
};

// The worker side's control block. Thread-safe.
class WorkerControl {
 public:
  // The first decided code wins (Exit, an uncaught error, Terminate).
  void Decide(int code);
  // Terminate: decide 1, stop the worker's loop, make its Wharf waits throw
  // Interrupted. Any thread; idempotent.
  void RequestTerminate();
  // Exit: decide `code`, stop the loop (the worker ends once back in it).
  void RequestExit(int code);
  // Terminate, Exit or ExitNow was called.
  bool terminating() const;
  Interrupter& interrupter() { return interrupter_; }

  // Worker thread. Attach: false when terminated before it started (the
  // entry must not run). Then the loop is published for Stop() until Detach.
  bool AttachLoop(EventLoop* loop);
  void DetachLoop();
  // The worker loop's uncaught-exception handler: decides 1 and records the
  // error, unless it is the Interrupted of this worker's own interrupter
  // (Terminate or ExitNow at work: not an error).
  void RecordUncaught(std::exception_ptr e) noexcept;
  // The final record (code 0 if nothing was decided).
  WorkerExitRecord Finish();
  // A process worker's: whether its owner has called Terminate (consulted by
  // Finish when nothing was decided). Set before the worker starts.
  void SetTerminatedElsewhere(std::function<bool()> probe) { terminated_elsewhere_ = std::move(probe); }

 private:
  mutable Mutex mu_;
  std::optional<int> decided_;       // guarded
  std::optional<ErrorRecord> error_;  // guarded
  EventLoop* loop_ = nullptr;        // guarded: while the worker loop runs
  Interrupter interrupter_;
  std::function<bool()> terminated_elsewhere_;
};

// Runs a worker on the calling thread: makes its EventLoop and context,
// calls `on_online`, runs `entry` as the loop's first callback and then the
// loop, all inside an InterruptibleScope of control.interrupter(); closes the
// port and tears everything down (not interruptible); returns the record.
WorkerExitRecord RunWorkerEntry(WorkerFunction entry, MessagePort port, Value data, uint64_t id,
                                std::string name, WorkerControl& control,
                                absl::AnyInvocable<void()> on_online,
                                std::vector<std::string> argv);


}  // namespace runtime_internal
}  // namespace wharf

#endif  // WHARF_RUNTIME_INTERNAL_WORKER_RUNNER_H_
