#include "wharf/runtime/worker_pool.h"

#include <algorithm>
#include <list>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include <concurrentqueue/concurrentqueue.h>
#include "wharf/runtime/available_parallelism.h"
#include "wharf/sync/internal/event_count.h"
#include "wharf/sync/internal/spin_lock.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/mutex.h"

namespace wharf {

namespace {

constexpr int kQueued = 0;
constexpr int kRunning = 1;
constexpr int kDone = 2;

constexpr char kErrorRecordUrl[] = "type.googleapis.com/wharf.ErrorRecord";

// TSan and moodycamel 1.0.3: a drained block is recycled through the
// queue's free list with relaxed counts and standalone fences, which TSan
// does not model (cameron314/concurrentqueue#404): with several consumers it
// reports the next producer's write into a recycled slot against the last
// consumer's move out of it. Suppressed for this queue's type only
// (tests/testing/tsan.supp); the stress tests check every job runs once.

using sync_internal::Cat;

}  // namespace

std::optional<ErrorRecord> TaskErrorRecord(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorRecordUrl);  // absl::optional in Debian's Abseil
  if (!payload.has_value()) return std::nullopt;
  const std::string flat(*payload);
  const size_t nul = flat.find('\0');
  if (nul == std::string::npos) return std::nullopt;
  return ErrorRecord{flat.substr(0, nul), flat.substr(nul + 1)};
}

absl::Status WorkerPool::TaskFailed(std::string_view name, std::exception_ptr e) {
  const ErrorRecord record = ErrorRecord::Of(e);
  absl::Status s = absl::UnknownError(Cat("task '", name, "' failed: ", record.ToString()));
  std::string payload = record.type;
  payload.push_back('\0');
  payload += record.message;
  s.SetPayload(kErrorRecordUrl, absl::Cord(payload));
  return s;
}

namespace pool_internal {

// One worker thread. Lives (shared) as long as its thread or the pool.
struct WorkerSlot {
  sync_internal::SpinLock mu;
  std::shared_ptr<Job> current;  // guarded by mu: the job it runs, if any
  std::atomic<bool> abandoned{false};
};

struct Core : std::enable_shared_from_this<Core> {
  explicit Core(PoolOptions o) : options(std::move(o)) {}

  PoolOptions options;
  size_t max_queue = 0;

  moodycamel::ConcurrentQueue<std::shared_ptr<Job>> queue;
  std::atomic<int64_t> queued{0};  // jobs in `queue` not yet claimed or removed
  sync_internal::EventCount work;  // idle workers sleep here
  sync_internal::EventCount room;  // FullPolicy::kWait submitters
  sync_internal::EventCount quiet;  // Close/Destroy wait for busy == 0 / threads gone
  sync_internal::EventCount timers_changed;

  std::atomic<uint64_t> next_id{1};
  std::atomic<int> workers{0};  // live, not abandoned
  std::atomic<int> idle{0};
  std::atomic<int> busy{0};
  std::atomic<bool> closing{false};
  std::atomic<bool> stopping{false};
  std::atomic<bool> destroyed{false};

  std::atomic<uint64_t> completed{0}, failed{0}, cancelled{0}, abandoned{0};
  LatencyHistogram run_time, wait_time;

  Mutex mu;
  std::list<std::shared_ptr<WorkerSlot>> slots;             // guarded by mu
  std::vector<std::function<void()>> drain_handlers;        // guarded by mu
  std::multimap<absl::Time, std::weak_ptr<Job>> deadlines;  // guarded by mu
  std::multimap<absl::Time, std::weak_ptr<Job>> graces;     // guarded by mu
  std::thread monitor;                                      // guarded by mu
  bool monitor_stop = false;                                // guarded by mu

  // --- queue accounting -------------------------------------------------
  // A job leaves the queue once: claimed by a worker, or removed (cancel,
  // timeout, Destroy) — whoever wins its kQueued CAS.
  void LeftQueue() {
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
  bool Remove(Job& job, absl::Status why) {
    int expected = kQueued;
    if (!job.phase.compare_exchange_strong(expected, kDone, std::memory_order_acq_rel)) {
      return false;
    }
    LeftQueue();
    cancelled.fetch_add(1, std::memory_order_relaxed);
    (void)job.fail(std::move(why));
    return true;
  }

  // --- workers ----------------------------------------------------------
  void MaybeSpawn() {
    if (idle.load(std::memory_order_acquire) > 0) return;
    int n = workers.load(std::memory_order_relaxed);
    while (n < options.max_workers) {
      if (workers.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) {
        Spawn();
        return;
      }
    }
  }
  // Starts one thread; `workers` already counts it.
  void Spawn() {
    auto slot = std::make_shared<WorkerSlot>();
    {
      MutexLock lock(mu);
      slots.push_back(slot);
    }
    std::thread([self = shared_from_this(), slot] { self->WorkerLoop(*slot); }).detach();
  }
  void RemoveSlot(WorkerSlot* slot) {
    MutexLock lock(mu);
    slots.remove_if([slot](const std::shared_ptr<WorkerSlot>& s) { return s.get() == slot; });
  }

  void WorkerLoop(WorkerSlot& slot) {
    for (;;) {
      std::shared_ptr<Job> job;
      if (!queue.try_dequeue(job)) {
        if (stopping.load(std::memory_order_acquire)) break;
        const auto key = work.PrepareWait();
        if (queue.size_approx() != 0 || stopping.load(std::memory_order_acquire)) {
          work.CancelWait();
          continue;
        }
        idle.fetch_add(1, std::memory_order_acq_rel);
        const bool woken = work.CommitWait(key, absl::Now() + options.idle_timeout);
        idle.fetch_sub(1, std::memory_order_acq_rel);
        if (!woken && queue.size_approx() == 0) {
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
      int expected = kQueued;
      if (!job->phase.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) {
        continue;  // removed while queued: already accounted
      }
      LeftQueue();
      if (!job->set_running()) {  // Future::Cancel won just now
        job->phase.store(kDone, std::memory_order_release);
        cancelled.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      RunJob(slot, job);
      if (slot.abandoned.load(std::memory_order_acquire)) return;  // replaced meanwhile
    }
    workers.fetch_sub(1, std::memory_order_acq_rel);
    RemoveSlot(&slot);
    quiet.NotifyAll();
  }

  void RunJob(WorkerSlot& slot, const std::shared_ptr<Job>& job) {
    {
      std::lock_guard<sync_internal::SpinLock> lock(slot.mu);
      slot.current = job;
    }
    job->slot.store(&slot, std::memory_order_release);
    busy.fetch_add(1, std::memory_order_acq_rel);
    const absl::Time start = absl::Now();
    wait_time.Record(start - job->enqueued);
    TaskContext ctx(job->name, job->id, 1, job->stop);
    job->run(ctx, [&](bool ok) {
      run_time.Record(absl::Now() - start);
      if (!job->timed_out.load(std::memory_order_acquire)) {
        (ok ? completed : failed).fetch_add(1, std::memory_order_relaxed);
      }
    });
    job->phase.store(kDone, std::memory_order_release);
    {
      std::lock_guard<sync_internal::SpinLock> lock(slot.mu);
      slot.current.reset();
    }
    busy.fetch_sub(1, std::memory_order_acq_rel);
    quiet.NotifyAll();
  }

  // --- timeouts ---------------------------------------------------------
  void AddDeadline(const std::shared_ptr<Job>& job) {
    {
      MutexLock lock(mu);
      deadlines.emplace(job->deadline, job);
      if (!monitor.joinable() && !monitor_stop) {
        monitor = std::thread([self = shared_from_this()] { self->MonitorLoop(); });
      }
    }
    timers_changed.NotifyAll();
  }

  void MonitorLoop() {
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
        for (auto& j : expired) Expire(j);
        for (auto& j : graced) Abandon(j, "it did not return within cancel_grace after its timeout");
        continue;
      }
      (void)timers_changed.CommitWait(key, next);
    }
  }

  void Expire(const std::shared_ptr<Job>& job) {
    const absl::Status why = absl::DeadlineExceededError(
        Cat("task '", job->name, "' exceeded its timeout"));
    if (Remove(*job, why)) return;  // still queued: dropped
    if (job->phase.load(std::memory_order_acquire) != kRunning) return;
    job->timed_out.store(true, std::memory_order_release);
    job->stop->store(true, std::memory_order_release);
    if (job->fail(why)) cancelled.fetch_add(1, std::memory_order_relaxed);
    MutexLock lock(mu);
    graces.emplace(absl::Now() + options.cancel_grace, job);
  }

  // The job is still running past its grace: give up on its worker (the
  // thread ends when the task returns) and start a replacement.
  void Abandon(const std::shared_ptr<Job>& job, std::string_view why) {
    if (job->phase.load(std::memory_order_acquire) != kRunning) return;
    auto* slot = static_cast<WorkerSlot*>(job->slot.load(std::memory_order_acquire));
    if (slot == nullptr) return;
    {
      std::lock_guard<sync_internal::SpinLock> lock(slot->mu);
      if (slot->current != job) return;  // finished meanwhile
    }
    if (slot->abandoned.exchange(true, std::memory_order_acq_rel)) return;
    (void)job->fail(absl::DeadlineExceededError(
        Cat("task '", job->name, "' was abandoned: ", why, "; its worker was replaced")));
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

  void StopMonitor() {
    std::thread t;
    {
      MutexLock lock(mu);
      monitor_stop = true;
      t = std::move(monitor);
    }
    timers_changed.NotifyAll();
    if (t.joinable()) t.join();
  }

  // Waits (sleeping) until `done()`.
  template <class F>
  void WaitQuiet(F done, absl::Time deadline = absl::InfiniteFuture()) {
    while (!done()) {
      const auto key = quiet.PrepareWait();
      if (done()) {
        quiet.CancelWait();
        return;
      }
      if (!quiet.CommitWait(key, std::min(deadline, absl::Now() + absl::Milliseconds(50))) &&
          absl::Now() >= deadline) {
        return;
      }
    }
  }
};

}  // namespace pool_internal

absl::StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Create(PoolOptions options) {
  if (options.isolation != Isolation::kThread) {
    return absl::UnimplementedError(
        "WorkerPool: process pools are not built yet (branch wip/pools; issue 8)");
  }
  if (options.max_workers < 0 || options.min_workers < 0) {
    return absl::InvalidArgumentError("WorkerPool: max_workers and min_workers must be >= 0");
  }
  if (options.max_workers == 0) options.max_workers = AvailableParallelism();
  if (options.min_workers > options.max_workers) {
    return absl::InvalidArgumentError(Cat("WorkerPool: min_workers (", options.min_workers,
                                          ") exceeds max_workers (", options.max_workers, ")"));
  }
  if (options.idle_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("WorkerPool: idle_timeout must be positive");
  }
  auto core = std::make_shared<pool_internal::Core>(options);
  core->max_queue = options.max_queue != 0
                        ? options.max_queue
                        : static_cast<size_t>(options.max_workers) * options.max_workers;
  for (int i = 0; i < options.min_workers; ++i) {
    core->workers.fetch_add(1);
    core->Spawn();
  }
  return std::unique_ptr<WorkerPool>(new WorkerPool(std::move(core)));
}

WorkerPool::~WorkerPool() { Destroy(); }

absl::Status WorkerPool::Enqueue(std::shared_ptr<pool_internal::Job> job, absl::Duration timeout) {
  pool_internal::Core& c = *core_;
  if (c.closing.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError(
        Cat("WorkerPool '", c.options.name, "' is closed: it accepts no new tasks"));
  }
  // Back-pressure: reserve a queue place.
  for (;;) {
    int64_t n = c.queued.load(std::memory_order_acquire);
    if (static_cast<size_t>(n) < c.max_queue) {
      if (c.queued.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) break;
      continue;
    }
    if (c.options.on_full == FullPolicy::kFail) {
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
  if (timeout == absl::InfiniteDuration()) timeout = c.options.task_timeout;
  if (timeout != absl::InfiniteDuration()) job->deadline = job->enqueued + timeout;
  std::weak_ptr<pool_internal::Job> weak = job;
  std::weak_ptr<pool_internal::Core> weak_core = core_;
  job->on_cancel([weak, weak_core] {
    // Future::Cancel before it started: the future is already kCancelled.
    std::shared_ptr<pool_internal::Job> j = weak.lock();
    std::shared_ptr<pool_internal::Core> core = weak_core.lock();
    if (j == nullptr || core == nullptr) return;
    int expected = kQueued;
    if (j->phase.compare_exchange_strong(expected, kDone, std::memory_order_acq_rel)) {
      core->LeftQueue();
      core->cancelled.fetch_add(1, std::memory_order_relaxed);
    }
  });
  if (job->deadline != absl::InfiniteFuture()) c.AddDeadline(job);
  c.queue.enqueue(std::move(job));
  c.work.Notify();
  c.MaybeSpawn();
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
  c.WaitQuiet([&] { return c.queued.load() == 0 && c.busy.load() == 0; });
  c.stopping.store(true, std::memory_order_release);
  c.work.NotifyAll();
  c.WaitQuiet([&] { return c.workers.load() == 0; });
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
  // Running tasks: asked to stop, given cancel_grace, then abandoned.
  std::vector<std::shared_ptr<pool_internal::Job>> running;
  {
    MutexLock lock(c.mu);
    for (auto& slot : c.slots) {
      std::lock_guard<sync_internal::SpinLock> l(slot->mu);
      if (slot->current != nullptr) running.push_back(slot->current);
    }
  }
  for (auto& j : running) j->stop->store(true, std::memory_order_release);
  c.WaitQuiet([&] { return c.busy.load() == 0; }, absl::Now() + c.options.cancel_grace);
  c.stopping.store(true, std::memory_order_release);
  for (auto& j : running) c.Abandon(j, "the pool was destroyed while it ran");
  c.work.NotifyAll();
  c.WaitQuiet([&] { return c.workers.load() == 0; });
  c.StopMonitor();
}

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
  s.run_time = c.run_time.Read();
  s.wait_time = c.wait_time.Read();
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
