// Worker: Node's worker_threads Worker in C++ — an actor on its own thread
// with its own EventLoop, talking to its owner through an entangled port.
//
//   wharf::EventLoop loop;
//   auto w = wharf::Worker::Start(
//       [](wharf::WorkerContext& ctx) {
//         ctx.parent_port().OnMessage([&ctx](wharf::Value v) {
//           (void)ctx.parent_port().PostMessage(std::move(v));  // echo
//           ctx.parent_port().Close();  // nothing ref'd left: the worker exits 0
//         });
//       },
//       wharf::WorkerOptions{.name = "echo", .loop = &loop});
//   w->OnMessage([](wharf::Value v) { ... });
//   w->OnExit([](int code) { ... });
//   (void)w->PostMessage(wharf::Value("hi"));
//   loop.Run();  // returns once the worker has exited (it refs the loop)
//
// Isolation: threads only. Process isolation (and WorkerOptions::isolation)
// arrives with process actors; the registered entry names below are the names
// those will use. A crash in a thread worker takes the whole process down.
//
// Entry. A callable `void(WorkerContext&)`, or the name of an entry
// registered with WorkerRegistry::Register / WHARF_WORKER_ENTRY (an unknown
// name: Start returns NotFound). The entry runs as the first callback of the
// worker's own EventLoop (so EventLoop::Current() is that loop and
// parent_port().OnMessage(...) starts the port there). After it returns the
// loop runs until nothing ref'd is left — Node's rule: a parent_port() with
// an OnMessage handler keeps the worker alive until it is closed or Unref()'d
// — and the worker exits with code 0. ctx.Exit(code) ends it early.
//
// Owner-side events, all on the owner's loop thread (WorkerOptions::loop,
// else EventLoop::Current() in Start): OnOnline, then OnMessage for each
// message, then — when the worker ends — OnError(what) if an exception
// escaped the entry or a worker loop callback (exit code 1), then OnExit(code).
// Everything the worker posted before it exited is delivered before OnError/
// OnExit. Messages arriving while no OnMessage handler is set are kept, in
// order, and delivered (each once, on the owner loop, from a callback posted
// by OnMessage) once a handler is set; messages behind them wait their turn.
// If the worker has ended and there is still no handler when its final
// closure runs, the kept messages are dropped then, before OnError/OnExit
// (like an EventEmitter with no listener). Kept messages are not bounded:
// set the handler. OnMessageError never fires for the in-process transport
// (kept for process actors).
//
// Lifecycle / termination protocol. The worker thread decides its exit code
// once (the first of ctx.Exit(code), an uncaught exception → 1, Terminate →
// 1; otherwise 0), closes its port, destroys its context and loop, posts one
// final closure to the owner loop (drain the port, OnError, OnExit, release
// the owner loop's ref, join the thread) and completes every Terminate()
// future. Terminate() marks the worker terminated, Stop()s its loop and
// Close()s the channel.
//
// What Terminate interrupts: the worker's EventLoop (Run returns after the
// callback in progress), a blocking parent_port().Receive() (it returns
// the messages already queued, then Cancelled "port closed"; PostMessage on
// parent_port() fails with FailedPrecondition afterwards), and every Wharf
// wait the entry or a callback is blocked in or enters later: the worker
// thread runs them inside an InterruptibleScope (sync/interrupt.h) of an
// Interrupter that Terminate() requests, so atomics::Wait, Mutex/RwLock
// locks, CondVar, Semaphore, Latch, Barrier and Notification waits,
// Future::Get/WaitFor, Receive() on any port and a kBlock PostMessage waiting
// for room throw wharf::Interrupted. The primitives stay
// consistent (a lock is not taken, a CondVar's mutex is re-held while the
// exception unwinds, a semaphore's count is unchanged). An Interrupted that
// escapes the entry or a callback ends the worker with exit code 1 (Node's
// code for a terminated worker) and is NOT reported to OnError; one that a
// callback catches is thrown again by the next wait (the request is
// sticky). NOT interrupted: blocking outside Wharf — std::mutex, read(2),
// sleeps, computation — and waits inside an UninterruptibleScope. There the
// thread keeps running until it reaches a Wharf wait or returns to the loop.
// Cooperative code can poll ctx.terminating(). ctx.Exit(code) does not
// interrupt (it does not unwind).
//
// Destroying a Worker (owner thread): Terminate() + join of the thread, so it
// blocks until the worker reaches a Wharf wait or returns to the loop (see
// above); then no event fires any more. Nothing leaks: a not yet delivered final closure is a no-op.
// The Worker must be destroyed before its owner EventLoop.
//
// Thread-safety: Terminate() and PostMessage() may be called from any thread,
// concurrently, racing the worker's own exit (idempotent). Start, the On*
// setters, Ref/Unref and destruction: the owner loop's thread (or any one
// thread before that loop runs).

#ifndef WHARF_RUNTIME_WORKER_H_
#define WHARF_RUNTIME_WORKER_H_

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/future.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"

namespace wharf {

class WorkerContext;

namespace runtime_internal {
struct WorkerState;
}  // namespace runtime_internal

using WorkerFunction = std::function<void(WorkerContext&)>;

// What Worker::Start runs: a callable or a registered entry name.
class WorkerEntry {
 public:
  template <class F>
  requires(std::is_invocable_v<F&, WorkerContext&> &&
           !std::is_convertible_v<F, std::string_view>)
  WorkerEntry(F fn) : fn_(std::move(fn)) {}  // NOLINT: implicit on purpose
  WorkerEntry(std::string name) : name_(std::move(name)), by_name_(true) {}  // NOLINT
  WorkerEntry(std::string_view name) : WorkerEntry(std::string(name)) {}     // NOLINT
  WorkerEntry(const char* name) : WorkerEntry(std::string(name)) {}          // NOLINT

 private:
  friend class Worker;
  WorkerFunction fn_;
  std::string name_;
  bool by_name_ = false;
};

// Named entries, shared by thread workers (and, later, process workers).
// Thread-safe.
class WorkerRegistry {
 public:
  // AlreadyExists for a name registered before; InvalidArgument for an empty
  // name or a null function.
  static absl::Status Register(std::string name, WorkerFunction fn);
  // Register, aborting on error (for WHARF_WORKER_ENTRY's static init).
  static bool RegisterOrDie(std::string name, WorkerFunction fn);
  // NotFound naming the entry when it is not registered.
  static absl::StatusOr<WorkerFunction> Find(std::string_view name);
};

// Defines and registers an entry; the body's parameter is named `ctx`:
//   WHARF_WORKER_ENTRY(echo) { ctx.parent_port().OnMessage(...); }
//   auto w = wharf::Worker::Start("echo");
#define WHARF_WORKER_ENTRY(name)                                                      \
  static void wharf_worker_entry_##name(::wharf::WorkerContext& ctx);                 \
  [[maybe_unused]] static const bool wharf_worker_entry_registered_##name =           \
      ::wharf::WorkerRegistry::RegisterOrDie(#name, &wharf_worker_entry_##name);      \
  static void wharf_worker_entry_##name([[maybe_unused]] ::wharf::WorkerContext& ctx)

struct WorkerOptions {
  // Node's workerData: moved into the worker (Buffers inside move with it,
  // nothing is copied). ctx.worker_data() there.
  Value worker_data{};
  // Node's transferList for workerData. Empty: worker_data moves whole, as
  // above. Otherwise worker_data is handed over exactly as by
  // MessagePort::PostMessage(worker_data, transfer): a structured clone in
  // which the listed Buffers and ports move (detached here), other Buffers
  // are copied and SharedBuffers shared. The pointers point into worker_data
  // as it is in these options (elements of a Map or Array keep their address
  // when the Value is moved in; a top-level Buffer does not). Validation is
  // all-or-nothing: on error (e.g. InvalidArgument "DataCloneError: ...")
  // Start returns it, nothing was moved and no thread was started.
  std::vector<Transferable> transfer{};
  // For ctx.name() / Worker::name(); also the thread's name (first 15 bytes).
  std::string name{};
  // Stack size of the worker thread in bytes; 0 = the platform default.
  // Raised to PTHREAD_STACK_MIN when smaller.
  size_t stack_size = 0;
  // The owner's loop (where events are delivered); null = EventLoop::Current().
  EventLoop* loop = nullptr;
};

// What the entry gets; lives on the worker thread for the worker's lifetime.
class WorkerContext {
 public:
  WorkerContext(const WorkerContext&) = delete;
  WorkerContext& operator=(const WorkerContext&) = delete;

  // Entangled with the Worker object: PostMessage here → Worker::OnMessage.
  MessagePort& parent_port() { return port_; }
  Value& worker_data() { return data_; }
  // Unique and increasing per process; the main actor is 0.
  uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  EventLoop& loop() { return loop_; }
  // Ends the worker with `code` (Node's process.exit in a worker). Does not
  // unwind: it stops the worker's loop and closes parent_port(), and returns;
  // the worker ends when control is back in the loop. The first decided code
  // wins (a later Exit, error or Terminate changes nothing).
  void Exit(int code);
  // True once Terminate() or Exit() was called.
  bool terminating() const;

 private:
  friend struct runtime_internal::WorkerState;
  WorkerContext(runtime_internal::WorkerState* state, MessagePort port, Value data,
                EventLoop& loop)
      : state_(state), port_(std::move(port)), data_(std::move(data)), loop_(loop) {}

  runtime_internal::WorkerState* state_;
  MessagePort port_;
  Value data_;
  EventLoop& loop_;
  uint64_t id_ = 0;
  std::string name_;
};

// True on threads that are not thread workers (Node's isMainThread).
bool IsMainActor();
// The calling worker's id, 0 outside workers (Node's threadId).
uint64_t CurrentActorId();

class Worker {
 public:
  // Starts the worker thread. NotFound for an unknown entry name;
  // FailedPrecondition with no owner loop; a pthread_create error as
  // ResourceExhausted/Internal.
  static absl::StatusOr<Worker> Start(WorkerEntry entry, WorkerOptions options = {});

  Worker(Worker&&) noexcept;
  Worker& operator=(Worker&&) noexcept;  // destroys *this first (see header)
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Handlers (owner thread); each replaces the previous one.
  void OnOnline(std::function<void()> handler);
  void OnMessage(std::function<void(Value)> handler);
  void OnMessageError(std::function<void(absl::Status)> handler);
  void OnError(std::function<void(std::string)> handler);
  void OnExit(std::function<void(int)> handler);

  // To the worker's parent_port(); see MessagePort::PostMessage. After the
  // worker ended (or Terminate): FailedPrecondition "port closed".
  absl::Status PostMessage(Value& message, std::span<const Transferable> transfer = {});
  absl::Status PostMessage(Value&& message);

  // Stops the worker (see the header comment for what is interrupted:
  // its loop, parent_port().Receive(), and its Wharf waits); the
  // future holds the exit code (1 when terminated, or the code the worker had
  // already decided). Idempotent; any thread.
  Future<int> Terminate();

  // A running worker keeps the owner loop's Run() going; Unref() stops that,
  // Ref() restores it (no-op after exit).
  void Ref();
  void Unref();

  uint64_t id() const;
  const std::string& name() const;

 private:
  explicit Worker(std::shared_ptr<runtime_internal::WorkerState> state)
      : state_(std::move(state)) {}
  void Destroy();

  std::shared_ptr<runtime_internal::WorkerState> state_;
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_WORKER_H_
