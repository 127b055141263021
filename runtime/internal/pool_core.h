// pool_internal::Core: the state a WorkerPool shares with its workers —
// the submit queue and its accounting, timers (timeouts, cancel grace),
// stats, and the thread workers. A process pool's workers are driven by a
// ProcessBackend (process_pool_backend.h), which uses the same queue,
// accounting and timers.
//
// Job phases (Job::phase), one CAS decides each hand-over:
//   kQueued -> kRunning   a thread worker, or the process dispatcher, claims
//                         it (then calls Promise::SetRunning)
//   kQueued -> kDone      removed: Future::Cancel, timeout, stop token,
//                         Destroy, a failed initializer
//   kRunning -> kDone     it finished, or its worker died or was replaced
// `queued` counts jobs in phase kQueued; whoever moves a job out of kQueued
// calls LeftQueue once (back-pressure, OnDrain).
//
// Internal to the pool: not an API.

#ifndef WHARF_RUNTIME_INTERNAL_POOL_CORE_H_
#define WHARF_RUNTIME_INTERNAL_POOL_CORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/internal/idle_workers.h"
#include "wharf/runtime/latency_histogram.h"
#include "wharf/runtime/worker_pool.h"
#include "wharf/sync/internal/event_count.h"
#include "wharf/sync/internal/spin_lock.h"
#include "wharf/sync/mutex.h"

namespace wharf {
namespace pool_internal {

inline constexpr int kQueued = 0;
inline constexpr int kRunning = 1;
inline constexpr int kDone = 2;

class ProcessBackend;

// One worker thread of a thread pool. Lives (shared) as long as its thread
// or the pool.
struct WorkerSlot {
  sync_internal::SpinLock mu;
  std::shared_ptr<Job> current;  // guarded by mu: the job it runs, if any
  std::atomic<bool> abandoned{false};
  IdleWorkers::Waiter waiter;  // its thread's, while idle
  std::thread thread;  // guarded by Core::mu; joined once it has left (detached if abandoned)
};

struct Core : std::enable_shared_from_this<Core> {
  explicit Core(PoolOptions o);
  ~Core();

  PoolOptions options;
  size_t max_queue = 0;
  absl::Time created = absl::Now();
  bool process = false;  // options.isolation == kProcess

  moodycamel::ConcurrentQueue<std::shared_ptr<Job>> queue;
  std::atomic<int64_t> queued{0};  // jobs in phase kQueued
  IdleWorkers idle_workers;  // idle thread workers sleep here
  sync_internal::EventCount room;  // FullPolicy::kWait submitters
  // Close/Destroy wait here for busy == 0 / workers gone. Notified after
  // every task, waited on almost never: asymmetric fences make the notify a
  // plain load (the membarrier is paid by the rare waiter).
  sync_internal::EventCount quiet{FutexScope::kPrivate, sync_internal::EventCount::Fences::kAsymmetric};
  sync_internal::EventCount timers_changed;

  std::atomic<uint64_t> next_id{1};
  std::atomic<int> workers{0};  // live, not abandoned (process: kept by the backend)
  std::atomic<int> busy{0};  // threads running a task / process workers with tasks
  std::atomic<int64_t> in_flight{0};  // process: jobs claimed by the dispatcher, not done
  std::atomic<bool> closing{false};
  std::atomic<bool> stopping{false};
  std::atomic<bool> destroyed{false};

  std::atomic<uint64_t> completed{0}, failed{0}, cancelled{0}, abandoned{0}, retried{0},
      worker_deaths{0};
  LatencyHistogram run_time, wait_time;

  Mutex mu;
  std::list<std::shared_ptr<WorkerSlot>> slots;             // guarded by mu
  std::list<std::shared_ptr<WorkerSlot>> exited;  // guarded by mu: left, not yet joined
  std::vector<std::function<void()>> drain_handlers;        // guarded by mu
  std::multimap<absl::Time, std::weak_ptr<Job>> deadlines;  // guarded by mu
  std::multimap<absl::Time, std::weak_ptr<Job>> graces;     // guarded by mu
  std::thread monitor;                                      // guarded by mu
  bool monitor_stop = false;                                // guarded by mu

  std::unique_ptr<ProcessBackend> backend;  // process pools; set once by Create

  // --- queue accounting ---------------------------------------------------
  void LeftQueue();
  // kQueued -> kDone, failing the future with `why`; false if it had left.
  bool Remove(Job& job, absl::Status why);
  // Claims a dequeued job for running (kQueued -> kRunning, SetRunning);
  // false if it was removed or cancelled meanwhile (already accounted).
  bool Claim(Job& job);
  // Fails every job still queued with `why` (a failed initializer, Destroy).
  void FailQueued(const absl::Status& why);

  // --- thread workers -----------------------------------------------------
  void MaybeSpawn();
  void Spawn();  // `workers` already counts it
  // A worker thread leaves: its slot waits in `exited` to be joined.
  void RemoveSlot(WorkerSlot* slot);
  // Joins the threads that have left (not the caller's own). Close and
  // Destroy return only once every thread they stopped has ended, so that
  // nothing of the pool runs after them (thread-exit destructors included).
  void JoinExited();
  bool NoSlots() {
    MutexLock lock(mu);
    return slots.empty();
  }
  void WorkerLoop(WorkerSlot& slot);
  void RunJob(WorkerSlot& slot, const std::shared_ptr<Job>& job);

  // --- timeouts and cancellation (both isolations) ------------------------
  void AddDeadline(const std::shared_ptr<Job>& job);
  void MonitorLoop();
  // A timeout or a stop request: removed if queued, else asked to stop,
  // failed with `why` now, and given cancel_grace before its worker goes.
  void StopJob(const std::shared_ptr<Job>& job, absl::Status why);
  void Abandon(const std::shared_ptr<Job>& job, std::string_view why);
  void StopMonitor();

  // A running job's own result: counts it and returns true if the job was
  // not settled yet (Job::settled), else false (drop the result).
  bool Settle(Job& job, bool ok) {
    if (job.settled.exchange(true, std::memory_order_acq_rel)) return false;
    (ok ? completed : failed).fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // Any other end of a job that left the queue (stopped, its worker died,
  // the pool went): if it was not settled yet, counts it in `counter` and
  // fails its future with `why`; true then.
  bool Finish(Job& job, absl::Status why, std::atomic<uint64_t>& counter) {
    if (job.settled.exchange(true, std::memory_order_acq_rel)) return false;
    counter.fetch_add(1, std::memory_order_relaxed);
    (void)job.Fail(std::move(why));
    return true;
  }

  // Sleeps until `done()` (or the deadline).
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
}  // namespace wharf

#endif  // WHARF_RUNTIME_INTERNAL_POOL_CORE_H_
