// Worker: Node's worker_threads Worker in C++ — an actor with its own
// EventLoop, talking to its owner through an entangled port.
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
// Isolation: a thread (a crash takes the whole process down). The entry is a
// callable `void(WorkerContext&)` or the name of one registered with
// WHARF_WORKER_ENTRY / WorkerRegistry (the form process workers will need).
// It runs as the first callback of the worker's loop; then the loop runs
// until nothing ref'd is left (a parent_port() with an OnMessage handler
// keeps it alive, as in Node) and the worker exits 0. ctx.Exit(code) ends it
// once control is back in its loop; ctx.ExitNow(code) ends it at once.
//
// Owner-side events, on the owner's loop (WorkerOptions::loop, else
// EventLoop::Current() at Start): OnOnline, then OnMessage for each message
// the worker posted (kept, in order, until a handler is set; dropped if there
// is still none when the worker has ended), then — when it ends — OnError
// (an uncaught exception: exit code 1) and OnExit(code). With no OnError
// handler, the error becomes the owner loop's own uncaught exception (a
// WorkerError, error_record.h), thrown after OnExit, as Node does.
//
// Terminate(): stops the worker's loop, closes the channel, and interrupts
// every Wharf wait the worker is blocked in or enters later (atomics, locks,
// Receive, Future::Get...: they throw wharf::Interrupted, see
// sync/interrupt.h). An Interrupted that escapes ends the worker with exit
// code 1 and no OnError. Blocking outside Wharf (std::mutex, read(2),
// computation) is not interrupted; the worker ends when it next reaches a
// Wharf wait or its loop (cooperative code polls ctx.terminating()).
//
// Errors: Start returns NotFound for an unknown entry name, InvalidArgument
// "DataCloneError: ..." when worker_data cannot be handed over (nothing is
// moved then), FailedPrecondition without an owner loop, ResourceExhausted
// when no thread can be started. PostMessage: as MessagePort::PostMessage.
//
// Thread-safety: Terminate and PostMessage from any thread; Start, the On*
// setters, Ref/Unref/HasRef and destruction on the owner loop's thread (or
// one thread before that loop runs). Destroying a running Worker terminates
// it and blocks until its thread has left (see above); the Worker must be
// destroyed before its owner EventLoop.

#ifndef WHARF_RUNTIME_WORKER_H_
#define WHARF_RUNTIME_WORKER_H_

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/runtime/error_record.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/future.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"

namespace wharf {

class WorkerContext;

namespace runtime_internal {
struct WorkerState;
class WorkerControl;
struct WorkerExitRecord;
}  // namespace runtime_internal

using WorkerFunction = std::function<void(WorkerContext&)>;

namespace runtime_internal {
// The worker side of every isolation (internal/worker_runner.h).
WorkerExitRecord RunWorkerEntry(WorkerFunction entry, MessagePort port, Value data, uint64_t id,
                                std::string name, WorkerControl& control,
                                absl::AnyInvocable<void()> on_online,
                                std::vector<std::string> argv = {});
}  // namespace runtime_internal

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

// Named entries, shared by every isolation. Thread-safe.
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

// How a Worker is isolated from its owner.
enum class Isolation : uint8_t {
  kThread,   // a thread of this process: shares its memory, and its fate
  kProcess,  // a child process (docs/processes.md): a crash, a kill -9 or a
             // limit ends only the worker
};

// Limits of a process worker (kProcess only; 0 / zero = no limit). Each is
// enforced by the kernel on the child alone; hitting one ends only that
// worker, and OnError says which limit it was:
//   max_memory_bytes  address space (RLIMIT_AS): an allocation past it
//                     fails, the worker's std::bad_alloc becomes the error
//                     "worker ran out of memory: resource_limits.
//                     max_memory_bytes = N" (a cgroup v2 memory limit is not
//                     used: see docs/processes.md)
//   max_cpu_time      CPU seconds (RLIMIT_CPU, whole seconds, rounded up):
//                     SIGXCPU, reported as such
//   max_open_files    descriptors (RLIMIT_NOFILE): opens past it fail with
//                     EMFILE in the worker (it is not ended for that)
//   stack_bytes       the stack of the thread running the entry: an
//                     overflow is SIGSEGV, reported naming the limit
struct ResourceLimits {
  size_t max_memory_bytes = 0;
  absl::Duration max_cpu_time = absl::ZeroDuration();
  int max_open_files = 0;
  size_t stack_bytes = 0;
  bool any() const {
    return max_memory_bytes != 0 || max_cpu_time > absl::ZeroDuration() || max_open_files != 0 ||
           stack_bytes != 0;
  }
};

struct WorkerOptions {
  // Node's workerData: handed over as by MessagePort::PostMessage — moved
  // (ports inside it checked and detached as in a transfer) when `transfer`
  // is empty, else a structured clone in which the listed Buffers and ports
  // move. ctx.worker_data() in the worker.
  Value worker_data{};
  // Node's transferList for workerData: pointers into worker_data as it is
  // in these options (elements of a Map or Array keep their address when the
  // Value is moved in; a top-level Buffer does not).
  std::vector<Transferable> transfer{};
  // For ctx.name() / Worker::name(); also the thread's name (first 15 bytes).
  std::string name{};
  // Stack size of the worker thread in bytes; 0 = the platform default.
  // Raised to PTHREAD_STACK_MIN when smaller.
  size_t stack_size = 0;
  // The owner's loop (where events are delivered); null = EventLoop::Current().
  EventLoop* loop = nullptr;

  // --- Isolation --------------------------------------------------------------
  Isolation isolation = Isolation::kThread;
  // kProcess: the program the child runs — empty: this one (/proc/self/exe).
  // Its main must call wharf::InitProcess(argc, argv) first (init_process.h)
  // and register the entry under the same name.
  std::string executable{};
  // kProcess: extra arguments (ctx.argv() in the worker; Node's `argv`).
  std::vector<std::string> argv{};
  // kProcess: the child's environment, "NAME=value" each; nullopt: this
  // process's (Node's `env`).
  std::optional<std::vector<std::string>> env{};
  // kProcess only (InvalidArgument for a thread).
  ResourceLimits resource_limits{};
  // kProcess: how long Terminate() lets the child stop on its own (at its
  // next Wharf wait or loop turn) before it is killed with SIGKILL.
  absl::Duration terminate_grace = absl::Seconds(2);
};

// What the entry gets; lives for the worker's lifetime, on its thread.
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
  // WorkerOptions::argv (process workers; empty for threads).
  const std::vector<std::string>& argv() const { return argv_; }
  // Ends the worker with `code` once control is back in its loop: stops the
  // loop, closes parent_port() and returns (the code after it runs). The
  // first decided code wins (a later Exit, error or Terminate changes
  // nothing).
  void Exit(int code);
  // Node's process.exit() in a worker: ends the worker with `code` now, from
  // any depth of the worker's own thread, by unwinding with wharf::Interrupted
  // (not a std::exception: `catch (const std::exception&)` does not stop it;
  // every later Wharf wait of the worker throws it again). Not an error.
  [[noreturn]] void ExitNow(int code);
  // True once Terminate(), Exit() or ExitNow() was called.
  bool terminating() const;

 private:
  friend runtime_internal::WorkerExitRecord runtime_internal::RunWorkerEntry(
      WorkerFunction entry, MessagePort port, Value data, uint64_t id, std::string name,
      runtime_internal::WorkerControl& control, absl::AnyInvocable<void()> on_online,
      std::vector<std::string> argv);
  WorkerContext(runtime_internal::WorkerControl& control, MessagePort port, Value data,
                EventLoop& loop, uint64_t id, std::string name)
      : control_(control), port_(std::move(port)), data_(std::move(data)), loop_(loop),
        id_(id), name_(std::move(name)) {}

  runtime_internal::WorkerControl& control_;
  MessagePort port_;
  Value data_;
  EventLoop& loop_;
  uint64_t id_;
  std::string name_;
  std::vector<std::string> argv_;
};

// True on threads that are not workers (Node's isMainThread).
bool IsMainActor();
// The calling worker's id, 0 outside workers (Node's threadId).
uint64_t CurrentActorId();

class Worker {
 public:
  // Starts the worker. Errors: see the header comment.
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
  // The worker's uncaught exception: its type and message.
  void OnError(std::function<void(const ErrorRecord&)> handler);
  // The same, as text: the message (what()) only.
  void OnError(std::function<void(std::string)> handler);
  void OnExit(std::function<void(int)> handler);

  // To the worker's parent_port(); see MessagePort::PostMessage. Any thread,
  // lock-free. After the worker ended (or Terminate): FailedPrecondition.
  absl::Status PostMessage(Value& message, std::span<const Transferable> transfer = {});
  absl::Status PostMessage(Value&& message);

  // Stops the worker (see the header comment). The future holds the exit
  // code (1 when terminated, or the code the worker had already decided);
  // it completes when the worker's thread has ended its life, on that
  // thread (an OnReady continuation runs there; Then(loop, ...) runs on the
  // loop). Idempotent; any thread.
  Future<int> Terminate();

  // A running worker keeps the owner loop's Run() going; Unref() stops that,
  // Ref() restores it (a no-op after exit). HasRef: whether it does now.
  void Ref();
  void Unref();
  bool HasRef() const;

  // The worker's id (ctx.id() inside it); -1 once it has exited (its OnExit
  // is being delivered or was), as Node's worker.threadId. 0 for a
  // moved-from Worker.
  int64_t id() const;
  const std::string& name() const;

 private:
  explicit Worker(std::shared_ptr<runtime_internal::WorkerState> state)
      : state_(std::move(state)) {}
  void Destroy();

  std::shared_ptr<runtime_internal::WorkerState> state_;
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_WORKER_H_
