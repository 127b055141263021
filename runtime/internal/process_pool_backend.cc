#include "wharf/runtime/internal/process_pool_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <list>
#include <optional>
#include <stdexcept>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "wharf/runtime/error_record.h"
#include "wharf/runtime/task.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace pool_internal {
namespace {

using sync_internal::Cat;

constexpr char kEntry[] = "wharf.pool.worker";
// Tasks per message when the queue is deep: enough to make the per-message
// cost (encode, ring write, a possible wake-up) small per task, few enough
// that a worker dying loses little progress and that the others get work.
constexpr size_t kMaxBatch = 64;
// Tasks are queued behind a busy worker's (pipelined) only while they would
// wait there less than about this long, judged by the worker's recent task
// times: tiny tasks get a deep pipeline (throughput), long or unknown ones
// none (a task never waits behind a long one while another worker frees up,
// and stays cancellable in the pool's queue).
constexpr absl::Duration kPipelineBudget = absl::Microseconds(500);
// Workers whose tasks take at most this long get two tasks queued behind
// the running one while the queue is deep (see Pump): a task waits at most
// ~10 ms behind others; longer tasks never wait behind another.
constexpr absl::Duration kPrefetchMaxRun = absl::Milliseconds(5);
// A worker's process exits with a code below 128 (not a signal) before it
// ran any task this many times in a row: its program cannot start workers
// (no InitProcess, a missing task registration...). The queue is failed
// instead of starting more.
constexpr int kMaxStartFailures = 3;

// --- The worker side --------------------------------------------------------

absl::Status StatusFromReply(const ValueArray& a, std::string_view task) {
  return task_internal::StatusFromFields(a, 1, task);
}

Value ErrorReply(int64_t id, const absl::Status& s, int64_t run_ns) {
  ValueArray a;
  a.reserve(6);
  a.emplace_back(id);
  task_internal::AppendStatus(s, a);
  a.emplace_back(run_ns);
  return Value(std::move(a));
}

// The entry every process worker of a pool runs (protocol: the header).
void PoolWorkerMain(WorkerContext& ctx) {
  Value* stop_value = ctx.worker_data()["stop"];
  SharedBuffer* stop_buffer = stop_value != nullptr ? stop_value->GetSharedBuffer() : nullptr;
  if (stop_buffer == nullptr || stop_buffer->size() < sizeof(uint64_t)) {
    throw std::invalid_argument(
        "wharf.pool.worker: started without its stop cell; this entry is for WorkerPool only");
  }
  auto holder = std::make_shared<SharedBuffer>(*stop_buffer);
  // The cell lives in the shared mapping `holder` keeps (aliasing pointer).
  std::shared_ptr<const std::atomic<uint64_t>> stop(
      holder, reinterpret_cast<const std::atomic<uint64_t>*>(holder->data()));
  MessagePort& port = ctx.parent_port();
  const Value* init = ctx.worker_data()["initializer"];
  if (init != nullptr && init->IsString() && !init->GetString()->empty()) {
    const std::string& name = *init->GetString();
    absl::StatusOr<TaskFunction> fn = TaskRegistry::Find(name);
    absl::Status s = fn.status();
    if (fn.ok()) {
      TaskContext tctx(name, 0, 1, nullptr);
      Value* arg = ctx.worker_data()["initializer_arg"];
      s = CallTask(*fn, tctx, arg != nullptr ? std::move(*arg) : Value()).status();
    }
    if (!s.ok()) {
      (void)port.PostMessage(ErrorReply(0, s, 0));
      port.Close();  // nothing ref'd is left: the worker exits 0
      return;
    }
  }
  port.OnMessage([&port, stop](Value batch) {
    ValueArray* tasks = batch.GetArray();
    if (tasks == nullptr) return;  // not from a pool: ignored
    for (Value& t : *tasks) {
      ValueArray* f = t.GetArray();
      const int64_t* id = f != nullptr && f->size() == 4 ? (*f)[0].GetInt() : nullptr;
      const std::string* name = id != nullptr ? (*f)[1].GetString() : nullptr;
      const int64_t* attempt = id != nullptr ? (*f)[3].GetInt() : nullptr;
      if (name == nullptr || attempt == nullptr) continue;
      const absl::Time start = absl::Now();
      absl::StatusOr<task_internal::RegisteredTask> task = task_internal::FindTask(*name);
      absl::StatusOr<Value> r = [&]() -> absl::StatusOr<Value> {
        if (!task.ok()) return task.status();
        TaskContext tctx = TaskContext::Borrowed(task->name, static_cast<uint64_t>(*id),
                                                 static_cast<int>(*attempt), stop.get());
        return CallTask(*task->fn, tctx, std::move((*f)[2]));
      }();
      const int64_t run_ns = absl::ToInt64Nanoseconds(absl::Now() - start);
      absl::Status posted;
      if (r.ok()) {
        posted = port.PostMessage(Value::Array(*id, int64_t{0}, *std::move(r), run_ns));
        if (!posted.ok()) {  // e.g. a result that cannot be cloned
          r = absl::InvalidArgumentError(
              Cat("task '", *name, "': its result could not be sent back: ", posted.message()));
        }
      }
      if (!r.ok()) posted = port.PostMessage(ErrorReply(*id, r.status(), run_ns));
      if (!posted.ok() && !r.ok()) return;  // the port is closed: the pool is going
    }
  });
}

const bool kEntryRegistered = WorkerRegistry::RegisterOrDie(kEntry, PoolWorkerMain);

}  // namespace

// Whether `v` holds something a message moves rather than copies (a Buffer,
// a port): such an argument cannot be kept for a second try.
bool HoldsMovable(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kBuffer:
    case Value::Kind::kPort:
      return true;
    case Value::Kind::kArray:
      for (const Value& e : *v.GetArray()) {
        if (HoldsMovable(e)) return true;
      }
      return false;
    case Value::Kind::kMap:
      for (const auto& e : *v.GetMap()) {
        if (HoldsMovable(e.second)) return true;
      }
      return false;
    default:
      return false;
  }
}

// --- The dispatcher ---------------------------------------------------------

struct ProcessBackend::Slot {
  uint64_t number = 0;
  std::optional<Worker> worker;
  std::shared_ptr<SharedBuffer> stop_buffer;
  std::atomic<uint64_t>* stop = nullptr;  // in stop_buffer
  std::deque<std::shared_ptr<Job>> inflight;  // dispatch order; front: running
  int64_t dispatched = 0;
  int64_t finished = 0;
  bool retiring = false;  // max_tasks_per_worker reached, or idle: no new work
  bool dead = false;
  bool init_failed = false;
  std::shared_ptr<Job> killed_for;  // the job it was killed for (Abandon)
  std::optional<ErrorRecord> error;
  absl::Time idle_since = absl::Now();
  absl::Time front_since = absl::Now();  // when the front job was handed out or became front
  double avg_run_ns = -1;                 // moving average of its tasks' run times; -1: none yet
};

struct ProcessBackend::State {
  EventLoop* loop = nullptr;
  EventLoop::RefHandle keepalive;
  std::list<std::unique_ptr<Slot>> slots;
  std::deque<std::shared_ptr<Job>> redo;  // claimed jobs to hand out again, first first
  uint64_t next_slot = 1;
  int live = 0;  // slots not dead
  int busy = 0;  // live slots with jobs in flight
  int start_failures = 0;
  bool shutting_down = false;
  absl::Status shutdown_why;
  std::optional<TimerId> idle_timer;

  // The dispatcher's methods (on its thread).
  ProcessBackend* self = nullptr;
  Core* core = nullptr;

  size_t Backlog() const {
    return redo.size() + static_cast<size_t>(std::max<int64_t>(0, core->queued.load()));
  }
  void Publish() {
    core->workers.store(live, std::memory_order_release);
    core->busy.store(busy, std::memory_order_release);
  }

  void Spawn() {
    // (The first spawns may run after a quick Shutdown, or after a Pump
    // that already started workers: EventLoop runs other threads' posts
    // first.)
    if (shutting_down || live >= core->options.max_workers) return;
    auto slot = std::make_unique<Slot>();
    slot->number = next_slot++;
    absl::StatusOr<SharedBuffer> buffer = SharedBuffer::Create(64);
    if (!buffer.ok()) {
      FailBacklog(absl::ResourceExhaustedError(
          Cat("WorkerPool '", core->options.name,
              "': cannot make a worker's stop cell: ", buffer.status().message())));
      return;
    }
    slot->stop_buffer = std::make_shared<SharedBuffer>(*std::move(buffer));
    slot->stop = reinterpret_cast<std::atomic<uint64_t>*>(slot->stop_buffer->data());
    ValueMap data;
    data.Set("stop", Value(SharedBuffer(*slot->stop_buffer)));
    data.Set("initializer", Value(core->options.initializer));
    absl::StatusOr<Value> init_arg = core->options.initializer_arg.Clone();  // checked by Create
    if (init_arg.ok()) data.Set("initializer_arg", *std::move(init_arg));
    WorkerOptions wo;
    wo.env = core->options.env;
    wo.worker_data = Value(std::move(data));
    wo.name = Cat(core->options.name, "-", slot->number);
    wo.loop = loop;
    wo.isolation = Isolation::kProcess;
    wo.resource_limits = core->options.resource_limits;
    wo.terminate_grace = absl::Milliseconds(100);
    absl::StatusOr<Worker> w = Worker::Start(kEntry, std::move(wo));
    if (!w.ok()) {
      FailBacklog(absl::UnavailableError(Cat("WorkerPool '", core->options.name,
                                             "': cannot start a worker process: ",
                                             w.status().message())));
      return;
    }
    Slot* s = slot.get();
    slot->worker.emplace(*std::move(w));
    slot->worker->OnMessage([this, s](Value v) { OnReply(*s, std::move(v)); });
    slot->worker->OnError([s](const ErrorRecord& r) { s->error = r; });
    slot->worker->OnExit([this, s](int code) { OnExit(*s, code); });
    slots.push_back(std::move(slot));
    ++live;
    Publish();
  }

  // Fails every job not yet handed to a worker (a pool that cannot start
  // workers must not leave futures pending forever).
  void FailBacklog(const absl::Status& why) {
    for (auto& j : redo) {
      (void)core->Finish(*j, why, core->failed);
      j->DropWork();
      j->phase.store(kDone, std::memory_order_release);
      core->in_flight.fetch_sub(1, std::memory_order_acq_rel);
    }
    redo.clear();
    core->FailQueued(why);
    core->quiet.NotifyAll();
  }

  std::shared_ptr<Job> Next() {
    if (!redo.empty()) {
      std::shared_ptr<Job> j = std::move(redo.front());
      redo.pop_front();
      return j;
    }
    std::shared_ptr<Job> j;
    while (core->queue.try_dequeue(j)) {
      if (core->Claim(*j)) {
        core->in_flight.fetch_add(1, std::memory_order_acq_rel);
        return j;
      }
    }
    return nullptr;
  }

  // Least busy live worker with room; null if none.
  Slot* Pick(size_t limit) {
    Slot* best = nullptr;
    for (auto& s : slots) {
      if (s->dead || s->retiring || s->init_failed || s->inflight.size() >= limit) continue;
      if (best == nullptr || s->inflight.size() < best->inflight.size()) best = s.get();
    }
    return best;
  }

  void Pump() {
    self->wake_posted_.exchange(false, std::memory_order_acq_rel);  // pairs with Wake
    if (shutting_down) return;
    for (;;) {
      const size_t backlog = Backlog();
      if (backlog == 0) return;
      const int workers = std::max(live, 1);
      const bool deep = backlog >= 2 * static_cast<size_t>(workers);
      const size_t base = static_cast<size_t>(core->options.concurrent_tasks_per_worker);
      Slot* s = Pick(deep ? 2 * kMaxBatch : base);
      if ((s == nullptr || !s->inflight.empty()) && live < core->options.max_workers &&
          start_failures < kMaxStartFailures) {
        const int before = live;
        Spawn();  // an idle worker beats a queue behind a busy one
        if (live > before) continue;
      }
      if (s == nullptr) return;  // all busy: a reply pumps again
      size_t limit = base;
      if (deep && s->avg_run_ns >= 0) {
        const absl::Duration running =
            s->inflight.empty() ? absl::ZeroDuration() : absl::Now() - s->front_since;
        const absl::Duration avg = absl::Nanoseconds(s->avg_run_ns);
        if (running < kPipelineBudget) {
          const double fit =
              absl::ToDoubleNanoseconds(kPipelineBudget) / std::max(s->avg_run_ns, 1.0);
          limit = std::clamp<size_t>(static_cast<size_t>(fit), base, 2 * kMaxBatch);
        }
        // Two tasks more waiting in the mailbox of a worker whose tasks are
        // short (kPrefetchMaxRun) and whose current one is not overrunning:
        // it starts the next as soon as it replies, not a dispatcher
        // wake-up later — on a loaded machine the dispatcher waits for a
        // CPU behind the workers themselves. With 0.3 ms tasks that gap left
        // the workers idle a quarter of the time (BM_Fib/wharf_process
        // busy_fraction 0.64-0.77; one more: 0.87; two: 0.95).
        if (avg <= kPrefetchMaxRun && running < std::max(kPipelineBudget, 2 * avg)) {
          limit = std::max(limit, base + 2);
        }
      }
      if (s->inflight.size() >= limit) {
        // The least busy worker is busy with long (or not yet timed) tasks:
        // the rest wait in the queue for a reply.
        return;
      }
      size_t n = limit - s->inflight.size();
      if (deep) n = std::min(n, std::clamp<size_t>(backlog / workers, 1, kMaxBatch));
      ValueArray batch;
      batch.reserve(n);
      const absl::Time now = absl::Now();
      while (batch.size() < n) {
        std::shared_ptr<Job> j = Next();
        if (j == nullptr) break;
        // A plain argument is sent as a copy and kept, so that the job can
        // run elsewhere if this worker dies before it starts (or once more,
        // idempotent). One holding Buffers or ports moves (a transfer):
        // such a job goes alone, to an idle worker, and is not retried.
        Value arg;
        if (!j->arg_moved && !HoldsMovable(j->arg)) {
          absl::StatusOr<Value> copy = j->arg.Clone();
          if (copy.ok()) arg = *std::move(copy);
        }
        if (arg.IsNull() && !j->arg.IsNull()) {
          if (!s->inflight.empty() || !batch.empty()) {
            redo.push_front(std::move(j));  // next time, alone
            break;
          }
          arg = std::move(j->arg);
          j->arg_moved = true;
          n = 1;
        }
        if (j->attempt == 1) core->wait_time.Record(now - j->enqueued);
        batch.push_back(Value::Array(static_cast<int64_t>(j->id), j->name, std::move(arg),
                                     static_cast<int64_t>(j->attempt)));
        const bool first = s->inflight.empty();
        s->inflight.push_back(std::move(j));
        if (first) {
          ++busy;
          s->front_since = now;
          if (s->inflight.front()->timed_out.load(std::memory_order_acquire)) {
            s->stop->store(s->inflight.front()->id, std::memory_order_release);
          }
        }
      }
      if (batch.empty()) return;
      s->dispatched += static_cast<int64_t>(batch.size());
      if (core->options.max_tasks_per_worker > 0 &&
          s->dispatched >= core->options.max_tasks_per_worker) {
        s->retiring = true;  // recycled once its tasks are done
      }
      Publish();
      if (absl::Status st = s->worker->PostMessage(Value(std::move(batch))); !st.ok()) {
        // Its port is closed: it is dying; OnExit hands its jobs out again.
        s->retiring = true;
      }
    }
  }

  void OnReply(Slot& s, Value v) {
    ValueArray* a = v.GetArray();
    const int64_t* id = a != nullptr && !a->empty() ? (*a)[0].GetInt() : nullptr;
    if (id == nullptr) return;
    if (*id == 0) {  // the initializer failed; the worker is exiting
      s.init_failed = true;
      const absl::Status cause = StatusFromReply(*a, core->options.initializer);
      const absl::Status why = absl::FailedPreconditionError(
          Cat("WorkerPool '", core->options.name, "': initializer '", core->options.initializer,
              "' failed, so the worker stopped: ", cause.ToString()));
      if (!s.inflight.empty()) --busy;
      for (auto& j : s.inflight) {  // handed to it already: they never ran
        (void)core->Finish(*j, why, core->failed);
        j->DropWork();
        j->phase.store(kDone, std::memory_order_release);
        core->in_flight.fetch_sub(1, std::memory_order_acq_rel);
      }
      s.inflight.clear();
      FailBacklog(why);
      Publish();
      return;
    }
    if (s.inflight.empty() || s.inflight.front()->id != static_cast<uint64_t>(*id)) {
      std::fprintf(stderr, "wharf: WorkerPool '%s': worker %llu replied out of order; killed\n",
                   core->options.name.c_str(), static_cast<unsigned long long>(s.number));
      (void)s.worker->Terminate();
      return;
    }
    std::shared_ptr<Job> job = std::move(s.inflight.front());
    s.inflight.pop_front();
    ++s.finished;
    start_failures = 0;
    const int64_t* run_ns = (*a)[a->size() - 1].GetInt();
    if (run_ns != nullptr) {
      core->run_time.Record(absl::Nanoseconds(*run_ns));
      s.avg_run_ns = s.avg_run_ns < 0 ? static_cast<double>(*run_ns)
                                      : 0.8 * s.avg_run_ns + 0.2 * static_cast<double>(*run_ns);
    }
    s.front_since = absl::Now();
    const int64_t* code = a->size() > 1 ? (*a)[1].GetInt() : nullptr;
    absl::StatusOr<Value> result = code != nullptr && *code == 0 && a->size() == 4
                                       ? absl::StatusOr<Value>(std::move((*a)[2]))
                                       : absl::StatusOr<Value>(StatusFromReply(*a, job->name));
    if (s.inflight.empty()) {
      --busy;
      s.idle_since = absl::Now();
      if (s.retiring && !s.dead) (void)s.worker->Terminate();  // recycled
    } else if (s.inflight.front()->timed_out.load(std::memory_order_acquire)) {
      s.stop->store(s.inflight.front()->id, std::memory_order_release);
    }
    Publish();  // before the future completes: Stats() after Get() agrees
    job->Deliver(std::move(result), [&](bool ok) { return core->Settle(*job, ok); });
    job->DropWork();
    job->phase.store(kDone, std::memory_order_release);
    core->in_flight.fetch_sub(1, std::memory_order_acq_rel);
    core->quiet.NotifyAll();
    if (shutting_down) {
      if (busy == 0) TerminateAll();  // the running tasks returned within the grace
      return;
    }
    Pump();
  }

  void OnExit(Slot& s, int code) {
    s.dead = true;
    --live;
    if (!s.inflight.empty()) --busy;
    const std::string cause = s.error.has_value() ? s.error->message
                                                  : std::string(Cat("exited with code ", code));
    if (!shutting_down && code != 0 && code < 128 && s.finished == 0 && !s.init_failed &&
        s.killed_for == nullptr) {
      ++start_failures;
    }
    if (!s.inflight.empty() && !s.retiring && s.killed_for == nullptr && !shutting_down) {
      core->worker_deaths.fetch_add(1, std::memory_order_relaxed);
    }
    std::deque<std::shared_ptr<Job>> again;
    for (size_t i = 0; i < s.inflight.size(); ++i) {
      std::shared_ptr<Job>& j = s.inflight[i];
      const bool ran = i == 0;  // the front was running (or about to)
      if (shutting_down) {
        const absl::Status why(shutdown_why.code(),
                               Cat("task '", j->name, "' cancelled: ", shutdown_why.message()));
        (void)core->Finish(*j, why, core->cancelled);
      } else if (ran && j == s.killed_for) {
        // Failed by the timeout / stop that had its worker killed.
      } else if (ran && (!j->idempotent || j->attempt > 1 ||
                         j->timed_out.load(std::memory_order_acquire))) {
        (void)core->Finish(
            *j,
            absl::AbortedError(Cat("task '", j->name,
                                   "' failed: its worker process died while running it (", cause,
                                   ")", j->attempt > 1 ? " on its second attempt" : "")),
            core->failed);
      } else if (j->arg_moved) {
        (void)core->Finish(
            *j,
            absl::AbortedError(Cat(
                "task '", j->name, "' failed: its worker process died (", cause,
                ") and it cannot run again: its argument's Buffers or ports went to that worker")),
            core->failed);
      } else {
        if (ran) {
          ++j->attempt;  // idempotent: once more
          core->retried.fetch_add(1, std::memory_order_relaxed);
        }
        again.push_back(std::move(j));
        continue;
      }
      j->DropWork();
      j->phase.store(kDone, std::memory_order_release);
      core->in_flight.fetch_sub(1, std::memory_order_acq_rel);
    }
    s.inflight.clear();
    redo.insert(redo.begin(), std::make_move_iterator(again.begin()),
                std::make_move_iterator(again.end()));
    if (start_failures >= kMaxStartFailures) {
      FailBacklog(absl::UnavailableError(Cat(
          "WorkerPool '", core->options.name, "': ", kMaxStartFailures,
          " worker processes in a row ended before running a task (last: ", cause,
          "); does the program call wharf::InitProcess(argc, argv) first in main?")));
      start_failures = 0;  // the next Run tries again
    }
    Publish();
    core->quiet.NotifyAll();
    // The Worker is destroyed on the next turn, not inside its own handler.
    Slot* dead = &s;
    loop->Post([this, dead] {
      slots.remove_if([dead](const std::unique_ptr<Slot>& p) { return p.get() == dead; });
      if (shutting_down && slots.empty()) keepalive.Reset();
    });
    if (!shutting_down) {
      if (live < core->options.min_workers && start_failures == 0) Spawn();
      Pump();
    }
  }

  void Abandon(const std::shared_ptr<Job>& job, const std::string& why) {
    for (auto& s : slots) {
      if (s->dead || s->inflight.empty() || s->inflight.front() != job) continue;
      if (s->killed_for != nullptr) return;
      s->killed_for = job;
      (void)core->Finish(*job,
                         absl::DeadlineExceededError(
                             Cat("task '", job->name, "' was abandoned: ", why,
                                 "; its worker process was killed and replaced")),
                         core->cancelled);
      core->abandoned.fetch_add(1, std::memory_order_relaxed);
      s->retiring = true;
      (void)s->worker->Terminate();  // SIGKILL after terminate_grace; OnExit replaces it
      return;
    }
  }

  void RetireIdle() {
    const absl::Time now = absl::Now();
    int keep = live;
    for (auto& s : slots) {
      if (keep <= core->options.min_workers) return;
      if (s->dead || s->retiring || !s->inflight.empty()) continue;
      if (now - s->idle_since < core->options.idle_timeout) continue;
      s->retiring = true;
      --keep;
      (void)s->worker->Terminate();
    }
  }

  void BeginShutdown(absl::Status why) {
    shutting_down = true;
    shutdown_why = std::move(why);
    if (idle_timer.has_value()) loop->ClearTimer(*idle_timer);
    for (auto& j : redo) {
      (void)core->Finish(*j,
                         absl::Status(shutdown_why.code(),
                                      Cat("task '", j->name, "' cancelled: ", shutdown_why.message())),
                         core->cancelled);
      j->DropWork();
      j->phase.store(kDone, std::memory_order_release);
      core->in_flight.fetch_sub(1, std::memory_order_acq_rel);
    }
    redo.clear();
    bool running = false;
    for (auto& s : slots) {
      if (s->dead || s->inflight.empty()) continue;
      running = true;
      s->stop->store(s->inflight.front()->id, std::memory_order_release);  // asked to stop
    }
    if (running && !shutdown_why.ok()) {
      // Give the running tasks cancel_grace to return, then kill.
      loop->SetTimeout(core->options.cancel_grace, [this] { TerminateAll(); });
    } else {
      TerminateAll();
    }
  }
  void TerminateAll() {
    for (auto& s : slots) {
      if (!s->dead) (void)s->worker->Terminate();
    }
    if (slots.empty()) keepalive.Reset();
  }
};

ProcessBackend::ProcessBackend(Core& core) : core_(core), state_(std::make_unique<State>()) {
  state_->self = this;
  state_->core = &core;
  (void)kEntryRegistered;
}

ProcessBackend::~ProcessBackend() {
  Shutdown(absl::CancelledError("the pool was destroyed"));
}

absl::Status ProcessBackend::Start() {
  try {
    thread_ = std::thread([this] { Main(); });
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        Cat("WorkerPool '", core_.options.name, "': cannot start its dispatcher thread: ", e.what()));
  }
  started_.WaitForNotification();
  return absl::OkStatus();
}

void ProcessBackend::Main() {
  EventLoop loop;
  State& st = *state_;
  st.loop = &loop;
  st.keepalive = loop.MakeRef();
  {
    MutexLock lock(mu_);
    loop_ = &loop;
  }
  const absl::Duration period = std::clamp(core_.options.idle_timeout / 2,
                                           absl::Milliseconds(10), absl::Seconds(1));
  st.idle_timer = loop.SetInterval(period, [&st] { st.RetireIdle(); });
  loop.UnrefTimer(*st.idle_timer);
  loop.Post([&st] {
    for (int i = 0; i < st.core->options.min_workers && st.live < st.core->options.min_workers;
         ++i) {
      st.Spawn();
    }
    st.Pump();
  });
  started_.Notify();
  loop.Run();
  {
    MutexLock lock(mu_);
    loop_ = nullptr;
  }
  st.slots.clear();
}

void ProcessBackend::Post(absl::AnyInvocable<void()> fn) {
  MutexLock lock(mu_);
  if (loop_ != nullptr) loop_->Post(std::move(fn));
}

void ProcessBackend::Wake() {
  // Pairs with the exchange at the top of Pump: either Pump's exchange reads
  // this one's `true` (and so sees the job enqueued before it), or this one
  // reads Pump's `false` and posts another Pump.
  if (!wake_posted_.exchange(true, std::memory_order_acq_rel)) {
    Post([this] { state_->Pump(); });
  }
}

void ProcessBackend::StopRunning(std::shared_ptr<Job> job) {
  Post([this, job = std::move(job)] {
    for (auto& s : state_->slots) {
      if (!s->dead && !s->inflight.empty() && s->inflight.front() == job) {
        s->stop->store(job->id, std::memory_order_release);
      }
    }
  });
}

void ProcessBackend::Abandon(std::shared_ptr<Job> job, std::string why) {
  Post([this, job = std::move(job), why = std::move(why)] { state_->Abandon(job, why); });
}

void ProcessBackend::Shutdown(absl::Status why) {
  if (shut_down_.exchange(true)) return;
  Post([this, why = std::move(why)]() mutable { state_->BeginShutdown(std::move(why)); });
  if (thread_.joinable()) thread_.join();
}

}  // namespace pool_internal
}  // namespace wharf
