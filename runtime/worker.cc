#include "wharf/runtime/worker.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"

namespace wharf {

namespace {

thread_local WorkerContext* tls_context = nullptr;
std::atomic<uint64_t> next_worker_id{1};

struct Registry {
  Mutex mu;
  std::map<std::string, WorkerFunction, std::less<>> entries;
};
Registry& GetRegistry() {
  static Registry* r = new Registry;  // never destroyed: usable in static init/exit
  return *r;
}

std::string DescribeException(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const Interrupted& ex) {
    return ex.what();
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

bool IsInterrupted(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Interrupted&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

absl::Status WorkerRegistry::Register(std::string name, WorkerFunction fn) {
  if (name.empty()) return absl::InvalidArgumentError("worker entry name is empty");
  if (!fn) return absl::InvalidArgumentError(absl::StrCat("worker entry '", name, "' is null"));
  Registry& r = GetRegistry();
  UninterruptibleLock<Mutex> lock(r.mu);
  if (!r.entries.emplace(name, std::move(fn)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("worker entry '", name, "' is already registered"));
  }
  return absl::OkStatus();
}

bool WorkerRegistry::RegisterOrDie(std::string name, WorkerFunction fn) {
  absl::Status s = Register(std::move(name), std::move(fn));
  if (!s.ok()) {
    std::fprintf(stderr, "WHARF_WORKER_ENTRY: %s\n", std::string(s.message()).c_str());
    std::abort();
  }
  return true;
}

absl::StatusOr<WorkerFunction> WorkerRegistry::Find(std::string_view name) {
  Registry& r = GetRegistry();
  UninterruptibleLock<Mutex> lock(r.mu);
  auto it = r.entries.find(name);
  if (it == r.entries.end()) {
    return absl::NotFoundError(absl::StrCat(
        "no worker entry named '", std::string(name),
        "' (register it with WorkerRegistry::Register or WHARF_WORKER_ENTRY)"));
  }
  return it->second;
}

bool IsMainActor() { return tls_context == nullptr; }
uint64_t CurrentActorId() { return tls_context == nullptr ? 0 : tls_context->id(); }

namespace runtime_internal {

struct WorkerState {
  // --- Immutable after Start ---
  uint64_t id = 0;
  std::string name;
  EventLoop* owner_loop = nullptr;
  WorkerFunction entry;

  // --- Worker thread only (moved there at start) ---
  MessagePort worker_port;
  Value worker_data;
  bool data_in_port = false;  // worker_data was posted (transfer list): pop it

  // Requested by Terminate()/~Worker: makes the worker thread's Wharf waits
  // throw Interrupted (sync/interrupt.h). Any thread.
  Interrupter interrupter;

  // --- Guarded by mu ---
  Mutex mu;
  MessagePort owner_port;            // destroyed (reset) under mu, owner thread
  EventLoop* worker_loop = nullptr;  // published while the worker loop lives
  WorkerContext* context = nullptr;  // published with worker_loop
  std::optional<int> decided_code;   // first of Exit / error / Terminate
  std::optional<std::string> error;  // an uncaught exception's what()
  bool terminate_requested = false;
  bool finished = false;  // the exit code is final
  int exit_code = 0;      // valid once finished
  std::vector<Promise<int>> terminate_promises;

  // --- Owner thread only ---
  pthread_t thread{};
  bool joinable = false;
  bool detached = false;  // ~Worker ran: deliver nothing more
  bool online_fired = false;
  EventLoop::RefHandle owner_ref;
  std::function<void()> on_online;
  std::function<void(Value)> on_message;
  std::function<void(absl::Status)> on_message_error;
  std::function<void(std::string)> on_error;
  std::function<void(int)> on_exit;
  // Messages that arrived while no OnMessage handler was set, in order; also
  // the ones behind them while a flush is pending (so order is kept).
  std::deque<Value> pending;

  // Records the code if none was decided yet. Caller holds mu.
  void DecideLocked(int code) {
    if (!decided_code.has_value()) decided_code = code;
  }

  // Stops the worker's loop, closes the channel and interrupts the worker
  // thread's Wharf waits. Caller holds mu.
  void InterruptLocked() {
    if (worker_loop != nullptr) worker_loop->Stop();
    owner_port.Close();
    interrupter.Request();
  }

  // Owner thread.
  void FireOnline() {
    if (detached || online_fired) return;
    online_fired = true;
    if (auto h = on_online) h();
  }
  void Deliver(Value v) {
    if (detached) return;
    FireOnline();
    if (detached) return;
    if (!on_message || !pending.empty()) {
      pending.push_back(std::move(v));  // kept until OnMessage is set
      FlushPending();
      return;
    }
    std::function<void(Value)> h = on_message;
    h(std::move(v));
  }
  // Delivers the queued messages, in order, while a handler is set (a
  // handler may unset it, or destroy the Worker).
  void FlushPending() {
    while (!detached && on_message && !pending.empty()) {
      Value v = std::move(pending.front());
      pending.pop_front();
      std::function<void(Value)> h = on_message;
      h(std::move(v));
    }
  }
  void Join() {
    if (joinable) {
      joinable = false;
      pthread_join(thread, nullptr);
    }
  }

  // Owner thread: the worker's final closure.
  void FinishOnOwner() {
    if (detached) return;
    // Everything the worker posted was accepted before it closed its end;
    // deliver what the port's own drain task has not delivered yet.
    while (!detached) {
      std::optional<Value> v = owner_port.TryReceive();
      if (!v.has_value()) break;
      Deliver(std::move(*v));
    }
    if (detached) return;
    FlushPending();
    if (detached) return;
    pending.clear();  // still no OnMessage handler: dropped (documented)
    std::optional<std::string> err;
    int code;
    {
      UninterruptibleLock<Mutex> lock(mu);
      err = error;
      code = exit_code;
    }
    if (err.has_value()) {
      if (auto h = on_error) h(*err);
      if (detached) return;
    }
    if (auto h = on_exit) h(code);
    if (detached) return;
    {
      MessagePort dead;
      UninterruptibleLock<Mutex> lock(mu);
      dead = std::move(owner_port);
    }
    owner_ref.Reset();
    Join();
  }

  // The worker thread's body.
  void RunThread(const std::shared_ptr<WorkerState>& self) {
    if (!name.empty()) {
      char tname[16];
      std::snprintf(tname, sizeof tname, "%s", name.c_str());
      pthread_setname_np(pthread_self(), tname);
    }
    {
      EventLoop loop;
      std::unique_ptr<WorkerContext> ctx_storage(
          new WorkerContext(this, std::move(worker_port), std::move(worker_data), loop));
      WorkerContext& ctx = *ctx_storage;
      ctx.id_ = id;
      ctx.name_ = name;
      bool skip;
      {
        UninterruptibleLock<Mutex> lock(mu);
        skip = terminate_requested;
        if (!skip) {
          worker_loop = &loop;
          context = &ctx;
        }
      }
      tls_context = &ctx;
      if (!skip && data_in_port) {
        // Start posted worker_data (with its transfer list) first.
        std::optional<Value> data = ctx.port_.TryReceive();
        if (data.has_value()) ctx.data_ = std::move(*data);
      }
      if (!skip) {
        // The entry and every loop callback: their Wharf waits are
        // interruption points of Terminate(). Teardown below is not.
        InterruptibleScope interruptible(interrupter);
        owner_loop->Post([self] { self->FireOnline(); });
        loop.OnUncaughtException([this, &loop](std::exception_ptr e) {
          // An escaped Interrupted is Terminate() at work: the code is 1
          // (decided by Terminate), and it is not an 'error'.
          const bool interrupted = IsInterrupted(e) && interrupter.requested();
          std::string what = interrupted ? std::string() : DescribeException(e);
          {
            UninterruptibleLock<Mutex> lock(mu);
            if (!decided_code.has_value()) {
              decided_code = 1;
              if (!interrupted) error = std::move(what);
            }
          }
          loop.Stop();
        });
        loop.Post([this, &ctx] {
          WorkerFunction fn = std::move(entry);
          fn(ctx);
        });
        loop.Run();
      }
      {
        UninterruptibleLock<Mutex> lock(mu);
        worker_loop = nullptr;
        context = nullptr;
      }
      ctx.port_.Close();
      ctx_storage.reset();  // the port (started on `loop`) goes before the loop
      tls_context = nullptr;
      entry = nullptr;
    }  // the worker loop: closures still queued are destroyed unrun
    std::vector<Promise<int>> promises;
    int code;
    {
      UninterruptibleLock<Mutex> lock(mu);
      finished = true;
      exit_code = code = decided_code.value_or(0);
      promises.swap(terminate_promises);
    }
    owner_loop->Post([self] { self->FinishOnOwner(); });
    for (Promise<int>& p : promises) (void)p.SetValue(code);
  }
};

namespace {

struct ThreadArg {
  std::shared_ptr<WorkerState> state;
};

void* WorkerThreadMain(void* raw) {
  std::unique_ptr<ThreadArg> arg(static_cast<ThreadArg*>(raw));
  std::shared_ptr<WorkerState> state = std::move(arg->state);
  arg.reset();
  state->RunThread(state);
  return nullptr;
}

}  // namespace
}  // namespace runtime_internal

using runtime_internal::WorkerState;

void WorkerContext::Exit(int code) {
  UninterruptibleLock<Mutex> lock(state_->mu);
  state_->DecideLocked(code);
  if (state_->worker_loop != nullptr) state_->worker_loop->Stop();
  port_.Close();
}

bool WorkerContext::terminating() const {
  UninterruptibleLock<Mutex> lock(state_->mu);
  return state_->terminate_requested || state_->decided_code.has_value();
}

absl::StatusOr<Worker> Worker::Start(WorkerEntry entry, WorkerOptions options) {
  WorkerFunction fn;
  if (entry.by_name_) {
    absl::StatusOr<WorkerFunction> found = WorkerRegistry::Find(entry.name_);
    if (!found.ok()) return found.status();
    fn = *std::move(found);
  } else {
    fn = std::move(entry.fn_);
    if (!fn) return absl::InvalidArgumentError("Worker::Start: null entry function");
  }
  EventLoop* loop = options.loop != nullptr ? options.loop : EventLoop::Current();
  if (loop == nullptr) {
    return absl::FailedPreconditionError(
        "Worker::Start needs an owner EventLoop: call it from a loop callback or set "
        "WorkerOptions::loop");
  }

  auto state = std::make_shared<WorkerState>();
  state->id = next_worker_id.fetch_add(1, std::memory_order_relaxed);
  state->name = std::move(options.name);
  state->owner_loop = loop;
  state->entry = std::move(fn);
  auto [owner_end, worker_end] = MessageChannel::Create();
  state->worker_port = std::move(worker_end);
  state->owner_port = std::move(owner_end);
  if (options.transfer.empty()) {
    state->worker_data = std::move(options.worker_data);
  } else {
    // A structured clone with a transfer list, exactly as PostMessage: the
    // first message on the channel, popped by the worker before its entry
    // runs. All-or-nothing: on error nothing was moved out of worker_data.
    if (absl::Status s = state->owner_port.PostMessage(options.worker_data, options.transfer);
        !s.ok()) {
      return s;
    }
    state->data_in_port = true;
  }
  if (absl::Status s = state->owner_port.Start(*loop); !s.ok()) return s;
  // Weak: the port lives in the state; a handler may destroy the Worker.
  std::weak_ptr<WorkerState> weak = state;
  state->owner_port.OnMessage([weak](Value v) {
    if (std::shared_ptr<WorkerState> st = weak.lock()) st->Deliver(std::move(v));
  });
  state->owner_port.OnMessageError([weak](absl::Status s) {
    std::shared_ptr<WorkerState> st = weak.lock();
    if (st == nullptr || st->detached) return;
    if (auto h = st->on_message_error) h(std::move(s));
  });
  state->owner_port.Unref();  // the worker's own ref (owner_ref) decides
  state->owner_ref = EventLoop::RefHandle(*loop);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (options.stack_size != 0) {
    size_t size = std::max<size_t>(options.stack_size, PTHREAD_STACK_MIN);
    if (int err = pthread_attr_setstacksize(&attr, size); err != 0) {
      pthread_attr_destroy(&attr);
      return absl::InvalidArgumentError(
          absl::StrCat("Worker::Start: stack_size ", options.stack_size, ": ", std::strerror(err)));
    }
  }
  auto* arg = new runtime_internal::ThreadArg{state};
  int err = pthread_create(&state->thread, &attr, &runtime_internal::WorkerThreadMain, arg);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    delete arg;
    state->owner_port = MessagePort();
    state->owner_ref.Reset();
    std::string msg = absl::StrCat("Worker::Start: pthread_create: ", std::strerror(err));
    return err == EAGAIN ? absl::ResourceExhaustedError(msg) : absl::InternalError(msg);
  }
  state->joinable = true;
  return Worker(std::move(state));
}

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
    UninterruptibleLock<Mutex> lock(st->mu);
    if (!st->finished) {
      st->terminate_requested = true;
      st->DecideLocked(1);
      st->InterruptLocked();
    }
  }
  st->Join();
  st->detached = true;
  st->on_online = nullptr;
  st->on_message = nullptr;
  st->on_message_error = nullptr;
  st->on_error = nullptr;
  st->on_exit = nullptr;
  {
    MessagePort dead;
    UninterruptibleLock<Mutex> lock(st->mu);
    dead = std::move(st->owner_port);
  }
  st->owner_ref.Reset();
}

void Worker::OnOnline(std::function<void()> h) {
  if (state_) state_->on_online = std::move(h);
}
void Worker::OnMessage(std::function<void(Value)> h) {
  if (!state_) return;
  state_->on_message = std::move(h);
  if (state_->on_message && !state_->pending.empty()) {
    // Deliver what arrived without a handler from the owner loop, in order,
    // not from inside this setter.
    std::weak_ptr<WorkerState> weak = state_;
    state_->owner_loop->Post([weak] {
      if (std::shared_ptr<WorkerState> st = weak.lock()) st->FlushPending();
    });
  }
}
void Worker::OnMessageError(std::function<void(absl::Status)> h) {
  if (state_) state_->on_message_error = std::move(h);
}
void Worker::OnError(std::function<void(std::string)> h) {
  if (state_) state_->on_error = std::move(h);
}
void Worker::OnExit(std::function<void(int)> h) {
  if (state_) state_->on_exit = std::move(h);
}

absl::Status Worker::PostMessage(Value& message, std::span<const Transferable> transfer) {
  if (state_ == nullptr) return absl::FailedPreconditionError("moved-from Worker");
  UninterruptibleLock<Mutex> lock(state_->mu);
  return state_->owner_port.PostMessage(message, transfer);
}

absl::Status Worker::PostMessage(Value&& message) {
  if (state_ == nullptr) return absl::FailedPreconditionError("moved-from Worker");
  UninterruptibleLock<Mutex> lock(state_->mu);
  return state_->owner_port.PostMessage(std::move(message));
}

Future<int> Worker::Terminate() {
  if (state_ == nullptr) {
    return Future<int>::Ready(absl::FailedPreconditionError("moved-from Worker"));
  }
  UninterruptibleLock<Mutex> lock(state_->mu);
  if (state_->finished) return Future<int>::Ready(state_->exit_code);
  state_->terminate_requested = true;
  state_->DecideLocked(1);
  state_->InterruptLocked();
  Promise<int> p;
  Future<int> f = p.GetFuture();
  state_->terminate_promises.push_back(std::move(p));
  return f;
}

void Worker::Ref() {
  if (state_ == nullptr || state_->owner_ref.loop() != nullptr) return;
  bool finished;
  {
    UninterruptibleLock<Mutex> lock(state_->mu);
    finished = state_->finished;
  }
  // After `finished` the final closure is queued (it keeps the loop alive by
  // itself) and must not leave a ref behind: it resets owner_ref, but only
  // if it has not run yet — so only ref while the worker still runs.
  if (!finished && !state_->detached) state_->owner_ref = EventLoop::RefHandle(*state_->owner_loop);
}

void Worker::Unref() {
  if (state_ != nullptr) state_->owner_ref.Reset();
}

uint64_t Worker::id() const { return state_ ? state_->id : 0; }

const std::string& Worker::name() const {
  static const std::string* empty = new std::string;
  return state_ ? state_->name : *empty;
}

}  // namespace wharf
