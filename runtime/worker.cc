#include "wharf/runtime/worker.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "wharf/runtime/internal/named_registry.h"
#include "wharf/runtime/internal/process_backend.h"
#include "wharf/runtime/internal/thread_backend.h"
#include "wharf/runtime/internal/worker_runner.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"

namespace wharf {

namespace {

using sync_internal::Cat;

std::atomic<uint64_t> next_worker_id{1};

runtime_internal::NamedRegistry<WorkerFunction>& Entries() {
  // Never destroyed: usable in static initialisation and at exit.
  static auto* r = new runtime_internal::NamedRegistry<WorkerFunction>(
      "worker entry", "WorkerRegistry::Register or WHARF_WORKER_ENTRY", "WHARF_WORKER_ENTRY");
  return *r;
}

}  // namespace

absl::Status WorkerRegistry::Register(std::string name, WorkerFunction fn) {
  return Entries().Register(std::move(name), std::move(fn));
}

bool WorkerRegistry::RegisterOrDie(std::string name, WorkerFunction fn) {
  return Entries().RegisterOrDie(std::move(name), std::move(fn));
}

absl::StatusOr<WorkerFunction> WorkerRegistry::Find(std::string_view name) {
  return Entries().Find(name);
}

namespace runtime_internal {

// The owner's side of one worker. The backend runs the worker and hands its
// end to the owner as one WorkerExitRecord (Publish, any thread); the owner
// ends the worker's life on its loop once it has both that record and the
// closed, drained port (everything the worker posted was delivered first).
struct WorkerState {
  // --- Immutable after Start ---
  uint64_t id = 0;
  std::string name;
  EventLoop* owner_loop = nullptr;
  std::shared_ptr<WorkerControl> control = std::make_shared<WorkerControl>();

  // --- Owner thread; PostMessage and Terminate (any thread) only use the
  // port's thread-safe calls. Never reassigned while the Worker lives.
  MessagePort owner_port;

  // --- The backend ---
  std::variant<ThreadBackend, ProcessBackend> backend;
  WorkerFunction entry;  // moved to the worker at start
  MessagePort worker_port;
  Value worker_data;

  // --- Guarded by mu: the finished record ---
  Mutex mu;
  bool finished = false;
  WorkerExitRecord exit;
  std::vector<Promise<int>> terminate_promises;
  std::optional<int> terminated_code;  // a process worker's, known before `finished`

  // --- Owner thread only ---
  bool detached = false;  // ~Worker ran: deliver nothing more
  bool online_fired = false;
  bool record_seen = false;  // the finished record reached the owner loop
  bool port_closed = false;  // owner_port's OnClose ran
  bool exited = false;       // the exit is being (or was) delivered: id() is -1
  EventLoop::RefHandle owner_ref;
  std::function<void()> on_online;
  std::function<void(Value)> on_message;
  std::function<void(absl::Status)> on_message_error;
  std::function<void(const ErrorRecord&)> on_error;
  std::function<void(int)> on_exit;

  // Any thread (the backend): the worker has ended.
  void Publish(WorkerExitRecord record, const std::shared_ptr<WorkerState>& self) {
    std::vector<Promise<int>> promises;
    {
      MutexLock lock(mu);
      finished = true;
      exit = std::move(record);
      promises.swap(terminate_promises);
    }
    owner_loop->Post([self] { self->OnRecord(); });
    for (Promise<int>& p : promises) (void)p.SetValue(exit.code);
  }

  // The backend goes first: a process backend's grace watcher (a thread)
  // may still call ResolveTerminate, which uses the members below it.
  ~WorkerState() { backend.emplace<ThreadBackend>(); }

  // Any thread (a process backend's grace watcher): a terminated worker has
  // ended with `code`; Terminate's futures need not wait for the owner loop.
  // (`this` outlives the watcher: the backend joins it before it dies.)
  void ResolveTerminate(int code) {
    std::vector<Promise<int>> promises;
    {
      MutexLock lock(mu);
      terminated_code = code;
      promises.swap(terminate_promises);
    }
    for (Promise<int>& p : promises) (void)p.SetValue(code);
  }

  // Owner thread, at Start (both isolations): owner_port on the owner loop,
  // its close and message errors routed here, and the worker's ref on the
  // loop. Weak references: the port lives in the state, and a handler may
  // destroy the Worker.
  absl::Status AttachOwnerPort(const std::shared_ptr<WorkerState>& self) {
    MessagePort& port = owner_port;
    if (absl::Status s = port.Start(*owner_loop); !s.ok()) return s;
    port.Unref();  // the worker's own ref (owner_ref) decides
    std::weak_ptr<WorkerState> weak = self;
    port.OnClose([weak] {
      if (std::shared_ptr<WorkerState> st = weak.lock()) st->OnPortClosed();
    });
    port.OnMessageError([weak](absl::Status s) {
      std::shared_ptr<WorkerState> st = weak.lock();
      if (st == nullptr || st->detached) return;
      if (auto h = st->on_message_error) h(std::move(s));
    });
    owner_ref = EventLoop::RefHandle(*owner_loop);
    return absl::OkStatus();
  }

  // Owner thread.
  void FireOnline() {
    if (detached || online_fired) return;
    online_fired = true;
    if (auto h = on_online) h();
  }
  void OnRecord() {
    if (detached) return;
    record_seen = true;
    // The channel closes from this side too: the worker's end may have gone
    // anywhere (transferred away); what it posted is still delivered.
    owner_port.Close();
    if (!on_message) DropKept();
    MaybeFinish();
  }
  // The worker has ended and there is no handler: what it posted is dropped
  // (an EventEmitter with no listener), so that the port can drain.
  void DropKept() {
    while (owner_port.TryReceive().has_value()) {
    }
  }
  void OnPortClosed() {
    if (detached) return;
    port_closed = true;
    MaybeFinish();
  }
  // The worker's end on the owner loop: OnError, OnExit, the loop's ref
  // released and the thread joined — the bookkeeping also when a handler
  // throws (the exception then propagates to the owner loop, after OnExit).
  void MaybeFinish() {
    if (!record_seen || !port_closed || exited) return;
    exited = true;
    std::optional<ErrorRecord> error;
    int code;
    {
      MutexLock lock(mu);
      error = exit.error;
      code = exit.code;
    }
    std::visit([](auto& b) { b.Join(); }, backend);  // it has published: about to return
    struct ReleaseRef {
      WorkerState* s;
      ~ReleaseRef() { s->owner_ref.Reset(); }
    } release{this};
    std::exception_ptr first;
    try {
      FireOnline();  // when the worker never ran (terminated before its start)
    } catch (...) {
      first = std::current_exception();
    }
    if (error.has_value() && !detached) {
      if (auto h = on_error) {
        try {
          h(*error);
        } catch (...) {
          first = std::current_exception();
        }
      } else {
        // Node: a worker's unhandled error becomes the owner's own.
        first = std::make_exception_ptr(WorkerError(*error));
      }
    }
    if (!detached) {
      if (auto h = on_exit) {
        try {
          h(code);
        } catch (...) {
          if (first == nullptr) first = std::current_exception();
        }
      }
    }
    if (first != nullptr) std::rethrow_exception(first);
  }
};

}  // namespace runtime_internal

using runtime_internal::WorkerState;

namespace {

// What both isolations do at Start once the entry is known: the owner loop
// (FailedPrecondition without one), worker_data checked and taken as a
// message is (all or nothing), and the owner's state.
struct Started {
  StructuredClone clone;
  std::shared_ptr<WorkerState> state;
};
absl::StatusOr<Started> BeginStart(WorkerOptions& options) {
  EventLoop* loop = options.loop != nullptr ? options.loop : EventLoop::Current();
  if (loop == nullptr) {
    return absl::FailedPreconditionError(
        "Worker::Start needs an owner EventLoop: call it from a loop callback or set "
        "WorkerOptions::loop");
  }
  absl::StatusOr<StructuredClone> clone =
      options.transfer.empty() ? StructuredClone::Move(std::move(options.worker_data))
                               : StructuredClone::Copy(options.worker_data, options.transfer);
  if (!clone.ok()) return clone.status();
  auto state = std::make_shared<WorkerState>();
  state->id = next_worker_id.fetch_add(1, std::memory_order_relaxed);
  state->name = options.name;
  state->owner_loop = loop;
  return Started{*std::move(clone), std::move(state)};
}

// Start for isolation kProcess: the entry is a name, looked up here (so a
// typo fails now, not in the child) and again by the child.
absl::StatusOr<Worker> StartProcess(const std::string& entry_name, WorkerOptions& options,
                                    absl::AnyInvocable<absl::StatusOr<Worker>(
                                        std::shared_ptr<WorkerState>)> wrap);

}  // namespace

absl::StatusOr<Worker> Worker::Start(WorkerEntry entry, WorkerOptions options) {
  if (options.isolation == Isolation::kProcess) {
    if (!entry.by_name_) {
      return absl::InvalidArgumentError(
          "Worker::Start: a process worker cannot run a function object (functions do not "
          "cross processes): register the entry with WHARF_WORKER_ENTRY(name) or "
          "WorkerRegistry::Register and start it by name");
    }
    return StartProcess(entry.name_, options,
                        [](std::shared_ptr<WorkerState> st) { return Worker(std::move(st)); });
  }
  if (options.resource_limits.any()) {
    return absl::InvalidArgumentError(
        "Worker::Start: resource_limits apply to process workers only (isolation = kProcess); "
        "a thread worker's stack is WorkerOptions::stack_size");
  }
  WorkerFunction fn;
  if (entry.by_name_) {
    absl::StatusOr<WorkerFunction> found = WorkerRegistry::Find(entry.name_);
    if (!found.ok()) return found.status();
    fn = *std::move(found);
  } else {
    fn = std::move(entry.fn_);
    if (!fn) return absl::InvalidArgumentError("Worker::Start: null entry function");
  }
  absl::StatusOr<Started> begun = BeginStart(options);
  if (!begun.ok()) return begun.status();
  StructuredClone* clone = &begun->clone;
  std::shared_ptr<WorkerState> state = std::move(begun->state);
  state->entry = std::move(fn);
  auto [owner_end, worker_end] = MessageChannel::Create();
  state->owner_port = std::move(owner_end);
  state->worker_port = std::move(worker_end);
  state->worker_data = std::move(clone->Commit());

  if (absl::Status s = state->AttachOwnerPort(state); !s.ok()) return s;

  WorkerState* raw = state.get();
  absl::Status started = std::get<runtime_internal::ThreadBackend>(state->backend).Start(
      state->name, options.stack_size, [state] {
        std::shared_ptr<WorkerState> self = state;
        runtime_internal::WorkerExitRecord record = runtime_internal::RunWorkerEntry(
            std::move(self->entry), std::move(self->worker_port), std::move(self->worker_data),
            self->id, self->name, *self->control,
            [self] { self->owner_loop->Post([self] { self->FireOnline(); }); });
        self->Publish(std::move(record), self);
      });
  if (!started.ok()) {
    // Nothing ran: give the transferred items back (the caller's options
    // were taken by value, so this keeps the all-or-nothing promise only for
    // what the caller still references, such as ports it listed).
    clone->value() = std::move(raw->worker_data);
    clone->Rollback();
    raw->owner_ref.Reset();
    return started;
  }
  return Worker(std::move(state));
}

namespace {

absl::StatusOr<Worker> StartProcess(const std::string& entry_name, WorkerOptions& options,
                                    absl::AnyInvocable<absl::StatusOr<Worker>(
                                        std::shared_ptr<WorkerState>)> wrap) {
  if (absl::StatusOr<WorkerFunction> found = WorkerRegistry::Find(entry_name); !found.ok()) {
    return found.status();
  }
  if (options.stack_size != 0 && options.resource_limits.stack_bytes == 0) {
    options.resource_limits.stack_bytes = options.stack_size;
  }
  absl::StatusOr<Started> begun = BeginStart(options);
  if (!begun.ok()) return begun.status();
  StructuredClone* clone = &begun->clone;
  std::shared_ptr<WorkerState> state = std::move(begun->state);
  EventLoop* loop = state->owner_loop;
  auto& backend = state->backend.emplace<runtime_internal::ProcessBackend>();
  absl::StatusOr<MessagePort> port = backend.Prepare();
  if (!port.ok()) return port.status();
  state->owner_port = *std::move(port);
  backend.SetOwnerPort(&state->owner_port);
  // worker_data is the channel's first message: encoded (checked) before
  // anything starts; the child takes it before its entry runs.
  if (absl::Status s = state->owner_port.PostMessage(std::move(clone->Commit())); !s.ok()) {
    clone->Rollback();
    return s;
  }
  if (absl::Status s = backend.JoinBroadcastTree(state->owner_port); !s.ok()) return s;

  if (absl::Status s = state->AttachOwnerPort(state); !s.ok()) return s;
  std::weak_ptr<WorkerState> weak = state;
  absl::Status started = backend.Start(
      options, entry_name, state->id, *loop,
      [weak] {
        if (std::shared_ptr<WorkerState> st = weak.lock()) st->FireOnline();
      },
      [weak](runtime_internal::WorkerExitRecord record) {
        if (std::shared_ptr<WorkerState> st = weak.lock()) st->Publish(std::move(record), st);
      },
      [raw = state.get()](int code) { raw->ResolveTerminate(code); });
  if (!started.ok()) {
    state->owner_ref.Reset();
    return started;
  }
  return wrap(std::move(state));
}

}  // namespace

Worker::Worker(Worker&& other) noexcept = default;

Worker& Worker::operator=(Worker&& other) noexcept {
  if (this != &other) {
    Destroy();
    state_ = std::move(other.state_);
  }
  return *this;
}

Worker::~Worker() { Destroy(); }

void Worker::Destroy() {
  if (state_ == nullptr) return;
  std::shared_ptr<WorkerState> st = std::move(state_);
  {
    MutexLock lock(st->mu);
    if (!st->finished) st->control->RequestTerminate();
  }
  st->owner_port.Close();
  std::visit([](auto& b) { b.Join(); }, st->backend);  // a process: terminated, then reaped
  st->detached = true;
  st->on_online = nullptr;
  st->on_message = nullptr;
  st->on_message_error = nullptr;
  st->on_error = nullptr;
  st->on_exit = nullptr;
  st->owner_port = MessagePort();
  st->owner_ref.Reset();
}

void Worker::OnOnline(std::function<void()> h) {
  if (state_) state_->on_online = std::move(h);
}

void Worker::OnMessage(std::function<void(Value)> h) {
  if (!state_) return;
  state_->on_message = h;
  if (!h) {
    state_->owner_port.OnMessage(nullptr);  // messages are kept meanwhile...
    if (state_->record_seen) state_->DropKept();  // ...unless the worker has ended
    return;
  }
  std::weak_ptr<WorkerState> weak = state_;
  state_->owner_port.OnMessage([weak, h = std::move(h)](Value v) {
    std::shared_ptr<WorkerState> st = weak.lock();
    if (st == nullptr || st->detached) return;
    st->FireOnline();  // 'online' comes before the first message
    if (st->detached) return;
    h(std::move(v));
  });
}

void Worker::OnMessageError(std::function<void(absl::Status)> h) {
  if (state_) state_->on_message_error = std::move(h);
}

void Worker::OnError(std::function<void(const ErrorRecord&)> h) {
  if (state_) state_->on_error = std::move(h);
}

void Worker::OnError(std::function<void(std::string)> h) {
  if (!state_) return;
  if (!h) {
    state_->on_error = nullptr;
    return;
  }
  state_->on_error = [h = std::move(h)](const ErrorRecord& e) { h(e.message); };
}

void Worker::OnExit(std::function<void(int)> h) {
  if (state_) state_->on_exit = std::move(h);
}

absl::Status Worker::PostMessage(Value& message, std::span<const Transferable> transfer) {
  if (state_ == nullptr) return absl::FailedPreconditionError("moved-from Worker");
  return state_->owner_port.PostMessage(message, transfer);
}

absl::Status Worker::PostMessage(Value&& message) {
  if (state_ == nullptr) return absl::FailedPreconditionError("moved-from Worker");
  return state_->owner_port.PostMessage(std::move(message));
}

Future<int> Worker::Terminate() {
  if (state_ == nullptr) {
    return Future<int>::Ready(absl::FailedPreconditionError("moved-from Worker"));
  }
  Promise<int> p;
  Future<int> f = p.GetFuture();
  {
    MutexLock lock(state_->mu);
    if (state_->finished) return Future<int>::Ready(state_->exit.code);
    if (state_->terminated_code.has_value()) return Future<int>::Ready(*state_->terminated_code);
    state_->control->RequestTerminate();
    state_->terminate_promises.push_back(std::move(p));
  }
  if (auto* process = std::get_if<runtime_internal::ProcessBackend>(&state_->backend)) {
    process->RequestTerminate();
  }
  state_->owner_port.Close();
  return f;
}

void Worker::Ref() {
  if (state_ == nullptr || state_->owner_ref.loop() != nullptr) return;
  // After the exit was delivered nothing may hold the loop any more.
  if (!state_->exited && !state_->detached) {
    state_->owner_ref = EventLoop::RefHandle(*state_->owner_loop);
  }
}

void Worker::Unref() {
  if (state_ != nullptr) state_->owner_ref.Reset();
}

bool Worker::HasRef() const { return state_ != nullptr && state_->owner_ref.loop() != nullptr; }

int64_t Worker::id() const {
  if (state_ == nullptr) return 0;
  return state_->exited ? -1 : static_cast<int64_t>(state_->id);
}

const std::string& Worker::name() const {
  static const std::string* empty = new std::string;
  return state_ ? state_->name : *empty;
}

}  // namespace wharf
