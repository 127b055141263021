// Internal: IdleWorkers — where a thread pool's idle workers sleep, and how a
// submitter wakes exactly one of them (folly's LifoSem idea, for a pool).
//
//   Worker:                                    Submitter:
//     for (;;) {                                 queue.enqueue(job);
//       if (queue.try_dequeue(job)) { run; continue; }   idle.NotifyOne();
//       idle.Enter(me);
//       if (!queue.empty() || stopping) { idle.Leave(me); continue; }
//       if (!idle.Sleep(me, deadline)) { timed out: maybe retire }
//     }
//
// Why not an EventCount (sync/internal/event_count.h): with one shared word,
// a notifier cannot tell a sleeping waiter from one it already woke that has
// not run yet, so every submission during the µs a woken worker takes to be
// scheduled paid a futex syscall that woke nobody (~30% of a tiny-task run,
// docs/benchmarks.md). Here each worker has its own futex word and the
// notifier *removes* the worker it wakes from the idle list: the next
// NotifyOne sees no idle worker and costs one fence and one load.
//
// Thread-safety: every method from any thread; a Waiter belongs to one
// worker thread, which alone calls Enter/Leave/Sleep with it, and it must
// outlive the worker's last Leave/Sleep (a notifier that popped it posts to
// it before the worker can return). Blocking: Sleep (until posted or the
// deadline; it watches its word for a post up to kReplySpin first, so a
// post then costs the notifier no syscall), Leave (only while a notifier that popped it posts — a few
// instructions); NotifyOne/NotifyAll never block beyond a short spin lock.
// Not for shared memory (pointers, a process-private futex).
//
// Protocol.
//   list_/count_ (under mu_): the waiters that entered and were neither
//     popped by a notifier nor left/timed out. count_ is read without the
//     lock on the notifier's fast path.
//   Waiter::state: kIdle (listed, awake) -> kSleeping (the worker, by CAS,
//     before its futex wait) ; kIdle|kSleeping -> kPosted (the notifier
//     that popped it, by exchange; FutexWake only if it was kSleeping).
//   Worker (Enter): under mu_, push and count_+1; then a seq_cst fence (A);
//     then the caller re-checks its queue. Matches B.
//   Notifier (NotifyOne), after its push: a seq_cst fence (B), then
//     count_.load(). Matches A. 0: return (no lock, no syscall).
//   A/B: if B comes first in the fences' total order, the worker's re-check
//     sees the push; if A comes first, the notifier sees count_ > 0 and pops
//     some listed worker, which returns from Sleep/Leave and goes back to the
//     queue. So no push is left with every worker asleep.
//   A waiter is popped at most once per Enter; once popped, only kPosted
//   ends its Sleep/Leave (waiting for the post, which follows the pop at
//   once), so no post is lost or applied to a later Enter.

#ifndef WHARF_RUNTIME_INTERNAL_IDLE_WORKERS_H_
#define WHARF_RUNTIME_INTERNAL_IDLE_WORKERS_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "wharf/sync/internal/spin_lock.h"

namespace wharf::pool_internal {

class IdleWorkers {
 public:
  // One per worker thread.
  struct Waiter {
    std::atomic<uint32_t> state{0};
    Waiter* prev = nullptr;  // guarded by IdleWorkers::mu_
    Waiter* next = nullptr;  // guarded by IdleWorkers::mu_
    bool listed = false;     // guarded by IdleWorkers::mu_
  };

  IdleWorkers() = default;
  IdleWorkers(const IdleWorkers&) = delete;
  IdleWorkers& operator=(const IdleWorkers&) = delete;

  // Lists `w` as idle (A). The caller then re-checks for work and calls
  // Leave (found some) or Sleep.
  void Enter(Waiter& w);
  // Withdraws `w`; if a notifier popped it meanwhile, waits for its post
  // (the wake is consumed: the caller goes back to the queue anyway).
  void Leave(Waiter& w);
  // Sleeps until a notifier pops and posts `w` (true) or `deadline` (false:
  // `w` is no longer listed). Either way `w` may Enter again.
  bool Sleep(Waiter& w, absl::Time deadline);

  // Wakes the most recently idle worker (its cache is warm); false if none
  // was idle. After the caller's push (B).
  bool NotifyOne();
  // Wakes every idle worker (stop, close).
  void NotifyAll();

  // Workers listed now (for spawning decisions; racy by nature).
  int idle() const { return count_.load(std::memory_order_relaxed); }

 private:
  static constexpr uint32_t kIdle = 0;
  static constexpr uint32_t kPosted = 1;
  static constexpr uint32_t kSleeping = 2;

  void Unlink(Waiter& w);     // mu_ held
  static void Post(Waiter& w);  // after the pop, without mu_
  static void AwaitPost(Waiter& w);

  sync_internal::SpinLock mu_;
  Waiter* top_ = nullptr;  // guarded by mu_: the most recent Enter
  std::atomic<int> count_{0};  // written under mu_
};

}  // namespace wharf::pool_internal

#endif  // WHARF_RUNTIME_INTERNAL_IDLE_WORKERS_H_
