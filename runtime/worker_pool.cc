#include "wharf/runtime/worker_pool.h"

#include <algorithm>
#include <list>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "wharf/runtime/available_parallelism.h"
#include "wharf/runtime/internal/pool_core.h"
#include "wharf/runtime/internal/process_pool_backend.h"
#include "wharf/sync/internal/event_count.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/internal/spin_lock.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/mutex.h"

namespace wharf {

namespace {

// TSan and moodycamel 1.0.3: a drained block is recycled through the
// queue's free list with relaxed counts and standalone fences, which TSan
// does not model (cameron314/concurrentqueue#404): with several consumers it
// reports the next producer's write into a recycled slot against the last
// consumer's move out of it. Suppressed for this queue's type only
// (tests/testing/tsan.supp); the stress tests check every job runs once.

using sync_internal::Cat;
using pool_internal::kDone;
using pool_internal::kQueued;
using pool_internal::kRunning;

}  // namespace

absl::Status WorkerPool::TaskFailed(std::string_view name, std::exception_ptr e) {
  const ErrorRecord record = ErrorRecord::Of(e);
  return TaskExceptionStatus(name, record.type, record.message);
}

namespace pool_internal {

Core::Core(PoolOptions o) : options(std::move(o)), process(options.isolation == Isolation::kProcess) {}
Core::~Core() {
  // Threads not joined by Close/Destroy (a pool whose last reference went
  // with its last thread): joined, or detached when it is this one.
  for (auto* list : {&slots, &exited}) {
    for (auto& s : *list) {
      if (!s->thread.joinable()) continue;
      if (s->thread.get_id() == std::this_thread::get_id()) {
        s->thread.detach();
      } else {
        s->thread.join();
      }
    }
  }
}

// --- queue accounting -------------------------------------------------------

void Core::LeftQueue() {
  const int64_t before = queued.fetch_sub(1, std::memory_order_acq_rel);
  if (static_cast<size_t>(before) >= max_queue) {
    room.NotifyAll();
    std::vector<std::function<void()>> handlers;
    {
      MutexLock lock(mu);
      handlers = drain_handlers;
    }
    for (auto& h : handlers) h();  // Piscina's 'drain', as soon as there is room
  }
}

bool Core::Remove(Job& job, absl::Status why) {
  int expected = kQueued;
  if (!job.phase.compare_exchange_strong(expected, kDone, std::memory_order_acq_rel)) {
    return false;
  }
  LeftQueue();
  cancelled.fetch_add(1, std::memory_order_relaxed);
  job.DropWork();
  (void)job.Fail(std::move(why));
  return true;
}

bool Core::Claim(Job& job) {
  int expected = kQueued;
  if (!job.phase.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) {
    return false;  // removed while queued: already accounted
  }
  LeftQueue();
  if (!job.SetRunning()) {  // Future::Cancel won just now
    job.phase.store(kDone, std::memory_order_release);
    cancelled.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void Core::FailQueued(const absl::Status& why) {
  std::shared_ptr<Job> job;
  while (queue.try_dequeue(job)) {
    int expected = kQueued;
    if (!job->phase.compare_exchange_strong(expected, kDone, std::memory_order_acq_rel)) continue;
    LeftQueue();
    failed.fetch_add(1, std::memory_order_relaxed);
    job->DropWork();
    (void)job->Fail(why);
  }
}

// --- thread workers ---------------------------------------------------------

void Core::MaybeSpawn() {
  if (idle_workers.idle() > 0) return;
  int n = workers.load(std::memory_order_relaxed);
  while (n < options.max_workers) {
    if (workers.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) {
      Spawn();
      return;
    }
  }
}

void Core::Spawn() {
  JoinExited();
  auto slot = std::make_shared<WorkerSlot>();
  MutexLock lock(mu);  // the thread's RemoveSlot waits for `thread` to be set
  slots.push_back(slot);
  slot->thread = std::thread([self = shared_from_this(), slot] { self->WorkerLoop(*slot); });
}

void Core::RemoveSlot(WorkerSlot* slot) {
  MutexLock lock(mu);
  for (auto it = slots.begin(); it != slots.end(); ++it) {
    if (it->get() != slot) continue;
    if (slot->abandoned.load(std::memory_order_acquire)) {
      if (slot->thread.joinable()) slot->thread.detach();  // it may never return
    } else {
      exited.push_back(*it);
    }
    slots.erase(it);
    return;
  }
}

void Core::JoinExited() {
  std::list<std::shared_ptr<WorkerSlot>> done;
  {
    MutexLock lock(mu);
    done.swap(exited);
    for (auto it = done.begin(); it != done.end();) {
      if ((*it)->thread.get_id() == std::this_thread::get_id()) {  // a recycled worker, itself
        exited.push_back(*it);
        it = done.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : done) {
    if (s->thread.joinable()) s->thread.join();
  }
}

void Core::WorkerLoop(WorkerSlot& slot) {
  if (!options.initializer.empty()) {
    absl::StatusOr<TaskFunction> init = TaskRegistry::Find(options.initializer);
    absl::Status s = init.status();
    if (init.ok()) {
      TaskContext ctx(options.initializer, 0, 1, nullptr);
      absl::StatusOr<Value> arg = options.initializer_arg.Clone();  // checked by Create
      s = arg.ok() ? CallTask(*init, ctx, *std::move(arg)).status() : arg.status();
    }
    if (!s.ok()) {
      FailQueued(absl::FailedPreconditionError(
          Cat("WorkerPool '", options.name, "': initializer '", options.initializer,
              "' failed, so the worker stopped: ", s.ToString())));
      workers.fetch_sub(1, std::memory_order_acq_rel);
      RemoveSlot(&slot);
      quiet.NotifyAll();
      return;
    }
  }
  int tasks_run = 0;
  for (;;) {
    std::shared_ptr<Job> job;
    if (!queue.try_dequeue(job)) {
      if (stopping.load(std::memory_order_acquire)) break;
      // Spin a little before announcing a sleep: a submitter's Notify finds
      // no waiter then and makes no syscall (the next task often comes
      // within a few hundred nanoseconds when tasks are tiny).
      if (sync_internal::SpinPauses(sync_internal::kLockSpins, [&] {
            return queue.size_approx() != 0 || stopping.load(std::memory_order_relaxed);
          })) {
        continue;
      }
      idle_workers.Enter(slot.waiter);
      if (queue.size_approx() != 0 || stopping.load(std::memory_order_acquire)) {
        idle_workers.Leave(slot.waiter);
        continue;
      }
      if (!idle_workers.Sleep(slot.waiter, absl::Now() + options.idle_timeout) &&
          queue.size_approx() == 0) {
        // Idle past idle_timeout: leave if above min_workers.
        int n = workers.load(std::memory_order_relaxed);
        if (n > options.min_workers &&
            workers.compare_exchange_strong(n, n - 1, std::memory_order_acq_rel)) {
          RemoveSlot(&slot);
          quiet.NotifyAll();
          return;
        }
      }
      continue;
    }
    if (!Claim(*job)) continue;
    RunJob(slot, job);
    if (slot.abandoned.load(std::memory_order_acquire)) return;  // replaced meanwhile
    if (options.max_tasks_per_worker > 0 && ++tasks_run >= options.max_tasks_per_worker &&
        !stopping.load(std::memory_order_acquire)) {
      // Recycled: a fresh worker (thread) takes over; this one leaves.
      RemoveSlot(&slot);
      Spawn();  // `workers` keeps counting one
      quiet.NotifyAll();
      return;
    }
  }
  workers.fetch_sub(1, std::memory_order_acq_rel);
  RemoveSlot(&slot);
  quiet.NotifyAll();
}

void Core::RunJob(WorkerSlot& slot, const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<sync_internal::SpinLock> lock(slot.mu);
    slot.current = job;
  }
  job->slot.store(&slot, std::memory_order_release);
  busy.fetch_add(1, std::memory_order_acq_rel);
  const absl::Time start = absl::Now();
  wait_time.Record(start - job->enqueued);
  // The context's stop cell is the job's own (`job` outlives the context).
  TaskContext ctx = TaskContext::Borrowed(job->name, job->id, job->attempt, &job->stop);
  const auto account = [&](bool ok) {
    run_time.Record(absl::Now() - start);
    return Settle(*job, ok);
  };
  if (job->fn == nullptr) {
    job->Execute(ctx, account);
  } else {
    job->Deliver(CallTask(*job->fn, ctx, std::move(job->arg)), account);
  }
  job->DropWork();
  job->phase.store(kDone, std::memory_order_release);
  {
    std::lock_guard<sync_internal::SpinLock> lock(slot.mu);
    slot.current.reset();
  }
  busy.fetch_sub(1, std::memory_order_acq_rel);
  quiet.NotifyAll();
}

// --- timeouts and cancellation ----------------------------------------------

void Core::AddDeadline(const std::shared_ptr<Job>& job) {
  {
    MutexLock lock(mu);
    deadlines.emplace(job->deadline, job);
    if (!monitor.joinable() && !monitor_stop) {
      monitor = std::thread([self = shared_from_this()] { self->MonitorLoop(); });
    }
  }
  timers_changed.NotifyAll();
}

void Core::MonitorLoop() {
  for (;;) {
    const auto key = timers_changed.PrepareWait();
    std::vector<std::shared_ptr<Job>> expired, graced;
    absl::Time next = absl::InfiniteFuture();
    {
      MutexLock lock(mu);
      if (monitor_stop) {
        timers_changed.CancelWait();
        return;
      }
      const absl::Time now = absl::Now();
      for (auto* m : {&deadlines, &graces}) {
        while (!m->empty() && m->begin()->first <= now) {
          if (std::shared_ptr<Job> j = m->begin()->second.lock()) {
            (m == &deadlines ? expired : graced).push_back(std::move(j));
          }
          m->erase(m->begin());
        }
        if (!m->empty()) next = std::min(next, m->begin()->first);
      }
    }
    if (!expired.empty() || !graced.empty()) {
      timers_changed.CancelWait();
      for (auto& j : expired) {
        StopJob(j, absl::DeadlineExceededError(Cat("task '", j->name, "' exceeded its timeout")));
      }
      for (auto& j : graced) Abandon(j, "it did not return within cancel_grace after it was stopped");
      continue;
    }
    (void)timers_changed.CommitWait(key, next);
  }
}

void Core::StopJob(const std::shared_ptr<Job>& job, absl::Status why) {
  if (Remove(*job, why)) return;  // still queued: dropped
  if (job->phase.load(std::memory_order_acquire) != kRunning) return;
  // The future fails first, then the task is asked to stop: a task that
  // returns as soon as it sees the stop finds its job settled and its
  // result is dropped (never a value delivered after a timeout, and every
  // job counted once).
  if (!Finish(*job, std::move(why), cancelled)) return;  // finished or stopped already
  job->timed_out.store(true, std::memory_order_release);
  job->stop.store(job->id, std::memory_order_release);  // TaskContext::StopRequested
  if (process) backend->StopRunning(job);  // its worker's shared stop cell
  {
    MutexLock lock(mu);
    graces.emplace(absl::Now() + options.cancel_grace, job);
    if (!monitor.joinable() && !monitor_stop) {
      monitor = std::thread([self = shared_from_this()] { self->MonitorLoop(); });
    }
  }
  timers_changed.NotifyAll();
}

// The job is still running past its grace: give up on its worker and start
// a replacement. A thread worker is abandoned (its thread ends when the task
// returns); a process worker is killed.
void Core::Abandon(const std::shared_ptr<Job>& job, std::string_view why) {
  if (job->phase.load(std::memory_order_acquire) != kRunning) return;
  if (process) {
    backend->Abandon(job, std::string(why));
    return;
  }
  auto* slot = static_cast<WorkerSlot*>(job->slot.load(std::memory_order_acquire));
  if (slot == nullptr) return;
  {
    std::lock_guard<sync_internal::SpinLock> lock(slot->mu);
    if (slot->current != job) return;  // finished meanwhile
  }
  if (slot->abandoned.exchange(true, std::memory_order_acq_rel)) return;
  (void)Finish(*job,
               absl::DeadlineExceededError(
                   Cat("task '", job->name, "' was abandoned: ", why, "; its worker was replaced")),
               cancelled);
  abandoned.fetch_add(1, std::memory_order_relaxed);
  busy.fetch_sub(1, std::memory_order_acq_rel);  // its thread no longer counts
  RemoveSlot(slot);
  workers.fetch_sub(1, std::memory_order_acq_rel);
  quiet.NotifyAll();
  if (!stopping.load(std::memory_order_acquire)) {
    workers.fetch_add(1, std::memory_order_acq_rel);
    Spawn();
  }
}

void Core::StopMonitor() {
  std::thread t;
  {
    MutexLock lock(mu);
    monitor_stop = true;
    t = std::move(monitor);
  }
  timers_changed.NotifyAll();
  if (t.joinable()) t.join();
}

}  // namespace pool_internal

absl::StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Create(PoolOptions options) {
  const std::string who = Cat("WorkerPool '", options.name, "': ");
  if (options.max_workers < 0 || options.min_workers < 0) {
    return absl::InvalidArgumentError(Cat(who, "max_workers and min_workers must be >= 0"));
  }
  if (options.max_workers == 0) options.max_workers = AvailableParallelism();
  if (options.min_workers > options.max_workers) {
    return absl::InvalidArgumentError(Cat(who, "min_workers (", options.min_workers,
                                          ") exceeds max_workers (", options.max_workers, ")"));
  }
  if (options.idle_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(Cat(who, "idle_timeout must be positive"));
  }
  if (options.cancel_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(Cat(who, "cancel_grace must not be negative"));
  }
  if (options.task_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(Cat(who, "task_timeout must be positive (or infinite)"));
  }
  if (options.concurrent_tasks_per_worker < 1) {
    return absl::InvalidArgumentError(Cat(who, "concurrent_tasks_per_worker must be >= 1"));
  }
  if (options.max_tasks_per_worker < 0) {
    return absl::InvalidArgumentError(Cat(who, "max_tasks_per_worker must be >= 0 (0: never recycle)"));
  }
  if (options.isolation == Isolation::kThread && options.resource_limits.any()) {
    return absl::InvalidArgumentError(
        Cat(who, "resource_limits apply to process workers only (isolation = kProcess)"));
  }
  if (options.isolation == Isolation::kThread && options.env.has_value()) {
    return absl::InvalidArgumentError(
        Cat(who, "env applies to process workers only (threads share their process's)"));
  }
  if (absl::StatusOr<Value> c = options.initializer_arg.Clone(); !c.ok()) {
    return absl::InvalidArgumentError(
        Cat(who, "initializer_arg cannot be cloned for each worker: ", c.status().message()));
  }
  if (!options.initializer.empty()) {
    if (absl::Status s = TaskRegistry::Find(options.initializer).status(); !s.ok()) {
      return absl::InvalidArgumentError(Cat(who, "initializer: ", s.message()));
    }
  }
  const size_t max_queue = options.max_queue != 0
                              ? options.max_queue
                              : static_cast<size_t>(options.max_workers) * options.max_workers;
  const int min_workers = options.min_workers;
  auto core = std::make_shared<pool_internal::Core>(std::move(options));
  core->max_queue = max_queue;
  if (core->process) {
    core->backend = std::make_unique<pool_internal::ProcessBackend>(*core);
    if (absl::Status s = core->backend->Start(); !s.ok()) return s;
  } else {
    for (int i = 0; i < min_workers; ++i) {
      core->workers.fetch_add(1);
      core->Spawn();
    }
  }
  return std::unique_ptr<WorkerPool>(new WorkerPool(std::move(core)));
}

WorkerPool::~WorkerPool() { Destroy(); }

absl::Status WorkerPool::Enqueue(std::shared_ptr<pool_internal::Job>& job, const RunOptions& options,
                                 bool callable, bool wait) {
  pool_internal::Core& c = *core_;
  if (callable && c.process) {
    return absl::InvalidArgumentError(
        Cat("WorkerPool '", c.options.name,
            "': a callable cannot run in a process worker (code does not cross processes): "
            "register it as a task (WHARF_TASK / WHARF_TYPED_TASK) and Run it by name"));
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(Cat("task '", job->name, "': timeout must be positive"));
  }
  if (c.closing.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError(
        Cat("WorkerPool '", c.options.name, "' is closed: it accepts no new tasks"));
  }
  if (options.cancel.stop_requested()) {
    return absl::CancelledError(Cat("task '", job->name, "' cancelled before it was queued"));
  }
  // Back-pressure: reserve a queue place.
  for (;;) {
    int64_t n = c.queued.load(std::memory_order_acquire);
    if (static_cast<size_t>(n) < c.max_queue) {
      if (c.queued.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) break;
      continue;
    }
    if (c.options.on_full == FullPolicy::kFail && !wait) {
      return absl::ResourceExhaustedError(Cat("WorkerPool '", c.options.name, "': ", c.max_queue,
                                              " tasks already queued (max_queue)"));
    }
    const auto key = c.room.PrepareWait();
    if (static_cast<size_t>(c.queued.load(std::memory_order_acquire)) < c.max_queue ||
        c.closing.load(std::memory_order_acquire)) {
      c.room.CancelWait();
    } else {
      (void)c.room.CommitWait(key);
    }
    if (c.closing.load(std::memory_order_acquire)) {
      return absl::FailedPreconditionError(
          Cat("WorkerPool '", c.options.name, "' closed while the task waited for room"));
    }
  }
  job->id = c.next_id.fetch_add(1, std::memory_order_relaxed);
  job->enqueued = absl::Now();
  job->idempotent = options.idempotent;
  const absl::Duration timeout =
      options.timeout == absl::InfiniteDuration() ? c.options.task_timeout : options.timeout;
  if (timeout != absl::InfiniteDuration()) job->deadline = job->enqueued + timeout;
  job->core = core_;
  // Future::Cancel before it started (the future is already kCancelled).
  // The hook lives in the job's own future state, so the job is alive
  // whenever it runs: a plain pointer (kept inline by AnyInvocable).
  pool_internal::Job* raw = job.get();
  job->OnCancel([raw] {
    std::shared_ptr<pool_internal::Core> core = raw->core.lock();
    if (core == nullptr) return;
    int expected = kQueued;
    if (raw->phase.compare_exchange_strong(expected, kDone, std::memory_order_acq_rel)) {
      core->LeftQueue();
      core->cancelled.fetch_add(1, std::memory_order_relaxed);
      raw->DropWork();
    }
  });
  std::weak_ptr<pool_internal::Job> weak = job;
  std::weak_ptr<pool_internal::Core> weak_core = core_;
  if (options.cancel.stop_possible()) {
    job->cancel_callback = std::make_unique<std::stop_callback<std::function<void()>>>(
        options.cancel, std::function<void()>([weak, weak_core] {
          std::shared_ptr<pool_internal::Job> j = weak.lock();
          std::shared_ptr<pool_internal::Core> core = weak_core.lock();
          if (j == nullptr || core == nullptr) return;
          core->StopJob(j, absl::CancelledError(
                               Cat("task '", j->name, "' cancelled (RunOptions::cancel)")));
        }));
  }
  if (job->deadline != absl::InfiniteFuture()) c.AddDeadline(job);
  c.queue.enqueue(std::move(job));
  if (c.process) {
    c.backend->Wake();
  } else {
    if (!c.idle_workers.NotifyOne()) c.MaybeSpawn();
  }
  return absl::OkStatus();
}

bool WorkerPool::NeedsDrain() const {
  return static_cast<size_t>(core_->queued.load(std::memory_order_acquire)) >= core_->max_queue;
}

void WorkerPool::OnDrain(std::function<void()> handler) {
  MutexLock lock(core_->mu);
  core_->drain_handlers.push_back(std::move(handler));
}

void WorkerPool::Close() {
  pool_internal::Core& c = *core_;
  if (c.destroyed.load()) return;
  c.closing.store(true, std::memory_order_release);
  c.room.NotifyAll();
  c.WaitQuiet([&] {
    return c.queued.load() == 0 && c.busy.load() == 0 && c.in_flight.load() == 0;
  });
  c.stopping.store(true, std::memory_order_release);
  if (c.process) {
    c.backend->Shutdown(absl::OkStatus());
  } else {
    c.idle_workers.NotifyAll();
    c.WaitQuiet([&] { return c.workers.load() == 0 && c.NoSlots(); });
    c.JoinExited();
  }
  c.StopMonitor();
  c.destroyed.store(true);
}

void WorkerPool::Destroy() {
  pool_internal::Core& c = *core_;
  if (c.destroyed.exchange(true)) return;
  c.closing.store(true, std::memory_order_release);
  c.room.NotifyAll();
  std::shared_ptr<pool_internal::Job> job;
  while (c.queue.try_dequeue(job)) {
    (void)c.Remove(*job, absl::CancelledError(
                             Cat("task '", job->name, "' cancelled: the pool was destroyed")));
  }
  if (c.process) {
    // Running tasks: asked to stop, given cancel_grace, then their workers
    // are killed and the tasks fail with kCancelled.
    c.stopping.store(true, std::memory_order_release);
    c.backend->Shutdown(absl::CancelledError("the pool was destroyed while it ran"));
    c.StopMonitor();
    return;
  }
  // Running tasks: asked to stop, given cancel_grace, then abandoned.
  std::vector<std::shared_ptr<pool_internal::Job>> running;
  {
    MutexLock lock(c.mu);
    for (auto& slot : c.slots) {
      std::lock_guard<sync_internal::SpinLock> l(slot->mu);
      if (slot->current != nullptr) running.push_back(slot->current);
    }
  }
  for (auto& j : running) j->stop.store(j->id, std::memory_order_release);
  c.WaitQuiet([&] { return c.busy.load() == 0; }, absl::Now() + c.options.cancel_grace);
  c.stopping.store(true, std::memory_order_release);
  for (auto& j : running) c.Abandon(j, "the pool was destroyed while it ran");
  c.idle_workers.NotifyAll();
  c.WaitQuiet([&] { return c.workers.load() == 0 && c.NoSlots(); });
  c.JoinExited();
  c.StopMonitor();
}

MapResults WorkerPool::Map(std::string_view task, std::vector<Value> inputs, size_t chunk_size,
                           RunOptions options) {
  return MapResults(*this, std::string(task), std::move(inputs), chunk_size, options);
}

const std::string& WorkerPool::name() const { return core_->options.name; }
int WorkerPool::max_workers() const { return core_->options.max_workers; }

PoolStats WorkerPool::Stats() const {
  const pool_internal::Core& c = *core_;
  PoolStats s;
  s.workers = c.workers.load();
  s.busy_workers = c.busy.load();
  s.queued = static_cast<size_t>(std::max<int64_t>(0, c.queued.load()));
  s.completed = c.completed.load();
  s.failed = c.failed.load();
  s.cancelled = c.cancelled.load();
  s.abandoned = c.abandoned.load();
  s.worker_deaths = c.worker_deaths.load();
  s.retried = c.retried.load();
  s.run_time = c.run_time.Read();
  s.wait_time = c.wait_time.Read();
  s.uptime = absl::Now() - c.created;
  const double capacity = absl::ToDoubleSeconds(s.uptime) * c.options.max_workers;
  s.utilization =
      capacity > 0 ? std::min(1.0, absl::ToDoubleSeconds(s.run_time.sum) / capacity) : 0;
  return s;
}

std::string WorkerPool::StatsText() const {
  const PoolStats s = Stats();
  const std::string labels = absl::StrCat("pool=\"", PrometheusLabelValue(core_->options.name), "\"");
  std::string out;
  const auto gauge = [&](const char* name, const char* help, const char* type, uint64_t v) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name,
                    "{", labels, "} ", v, "\n");
  };
  gauge("wharf_pool_workers", "Live workers.", "gauge", s.workers);
  gauge("wharf_pool_busy_workers", "Workers running a task.", "gauge", s.busy_workers);
  gauge("wharf_pool_queued_tasks", "Tasks waiting for a worker.", "gauge", s.queued);
  gauge("wharf_pool_tasks_completed_total", "Tasks that returned a value.", "counter", s.completed);
  gauge("wharf_pool_tasks_failed_total", "Tasks that threw or returned an error.", "counter",
        s.failed);
  gauge("wharf_pool_tasks_cancelled_total", "Tasks cancelled or timed out.", "counter",
        s.cancelled);
  gauge("wharf_pool_workers_abandoned_total", "Workers replaced past cancel_grace.", "counter",
        s.abandoned);
  static const double kLe[] = {1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10};
  AppendPrometheusHistogram("wharf_pool_task_run_seconds", "Time inside tasks.", labels,
                            s.run_time, kLe, 7, &out);
  AppendPrometheusHistogram("wharf_pool_task_wait_seconds", "Time tasks waited in the queue.",
                            labels, s.wait_time, kLe, 7, &out);
  return out;
}

}  // namespace wharf
