// EventCount: the wake-up side of a lock-free queue (Dmitry Vyukov's
// eventcount, as documented in folly's EventCount.h). A consumer that found
// the queue empty sleeps without losing a producer's push; a producer that
// pushes while nobody sleeps pays one fence and one load, no syscall.
//
//   Consumer:                               Producer:
//     for (;;) {                               queue.push(x);
//       if (queue.try_pop(x)) break;           ec.Notify();
//       auto key = ec.PrepareWait();
//       if (queue.try_pop(x)) { ec.CancelWait(); break; }
//       ec.CommitWait(key);
//     }
//
// Thread-safety: every method may be called concurrently from any thread.
// Each PrepareWait() must be followed by exactly one CommitWait() or
// CancelWait() on the same thread. Memory ordering: a producer's writes before
// Notify() are visible to a consumer whose re-check after PrepareWait() runs
// after the Notify (the Dekker pair A/B below); the EventCount itself carries
// no data.
//
// Scope: kPrivate (the default) for an EventCount that only threads of this
// process use; kShared when it lives in memory mapped by several processes
// (it is plain data: two 32-bit words, trivially destructible).

#ifndef WHARF_SYNC_INTERNAL_EVENT_COUNT_H_
#define WHARF_SYNC_INTERNAL_EVENT_COUNT_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "wharf/sync/internal/asymmetric_fence.h"
#include "wharf/sync/futex.h"

namespace wharf::sync_internal {

class EventCount {
 public:
  // The epoch read by PrepareWait(); CommitWait() sleeps while it is current.
  using Key = uint32_t;

  // kAsymmetric: the A/B pair below uses HeavyFence (in PrepareWait, the
  // sleeper's side) and LightFence (in Notify, the hot side) from
  // asymmetric_fence.h instead of two seq_cst fences: Notify then costs no
  // fence instruction, and each sleep a membarrier(2). With kShared, their
  // cross-process forms (HeavyFenceShared / LightFenceShared: every process
  // that notifies or sleeps on it must be a Wharf process of this kind; the
  // choice is stored in the count, so all of them follow it). Should the
  // kernel refuse this process the heavy side, a CommitWait after that
  // PrepareWait sleeps at most kBoundedSleep per call, and a caller that
  // sleeps on word() itself must bound its sleep likewise when
  // TakeBoundedSleep() says so.
  enum class Fences : uint8_t { kSymmetric, kAsymmetric };
  static constexpr absl::Duration kBoundedSleep = absl::Milliseconds(1);

  explicit EventCount(FutexScope scope = FutexScope::kPrivate,
                      Fences fences = Fences::kSymmetric) noexcept
      : scope_(scope), asymmetric_(fences == Fences::kAsymmetric) {}
  EventCount(const EventCount&) = delete;
  EventCount& operator=(const EventCount&) = delete;

  // Announces the caller as a waiter and returns the current epoch. Never
  // blocks. The caller must then re-check its condition and call CancelWait()
  // (condition true) or CommitWait() (condition false).
  [[nodiscard]] Key PrepareWait() noexcept;

  // Withdraws the announcement made by PrepareWait(). Never blocks.
  void CancelWait() noexcept;

  // Sleeps until a Notify()/NotifyAll() after PrepareWait() returned `key`,
  // or `deadline`. Spins briefly (~100 pauses) first.
  // Returns true when notified, false on timeout. Withdraws the announcement.
  bool CommitWait(Key key, absl::Time deadline = absl::InfiniteFuture()) noexcept;

  // CommitWait that is an interruption point (sync/interrupt.h): when the
  // calling thread's Interrupter is requested before or during the sleep it
  // withdraws the announcement and throws wharf::Interrupted.
  bool CommitWaitInterruptible(Key key, absl::Time deadline = absl::InfiniteFuture());

  // Wakes one waiter (NotifyAll: every waiter). With no waiter announced:
  // one seq_cst fence and one load, no syscall. Never blocks.
  void Notify() noexcept {
    if (AnyWaiter()) Wake(1);
  }
  void NotifyAll() noexcept {
    if (AnyWaiter()) Wake(0x7fffffff);
  }

  // For a waiter that sleeps on several words at once (an event loop, with
  // FutexWaitAny): PrepareWait(), re-check, then sleep on word() expecting
  // the key, then CancelWait() — CommitWait's sleep, done by the caller.
  const void* word() const noexcept { return &epoch_; }
  FutexScope scope() const noexcept { return scope_; }

  // Notify() without its fence: wakes a waiter whose announcement this thread
  // already sees, and is otherwise a plain load. It can miss a waiter that
  // announced itself just now (the fence is what orders the caller's store
  // before the load), so a caller may use it only where a full Notify()
  // follows soon enough for a missed waiter (ShmRing's reader: every few
  // records and whenever the ring runs empty).
  void NotifyIfSeen() noexcept {
    if (waiters_.load(std::memory_order_relaxed) != 0) Notify();
  }

  // Whether this thread's last PrepareWait on a kShared, kAsymmetric count
  // could not cover the other processes' light fences (see Fences); clears
  // it. A caller that sleeps on word() itself then sleeps at most
  // kBoundedSleep before re-checking.
  static bool TakeBoundedSleep() noexcept;

  // For tests: threads between PrepareWait() and the end of their wait.
  uint32_t WaitersForTesting() const noexcept { return waiters_.load(std::memory_order_relaxed); }

 private:
  bool AnyWaiter() noexcept {
    if (asymmetric_) {
      if (scope_ == FutexScope::kShared) {
        LightFenceShared();  // B: matches A
      } else {
        LightFence();  // B: matches A
      }
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);  // B: matches A
    }
    return waiters_.load(std::memory_order_relaxed) != 0;
  }
  void Wake(int count) noexcept;
  bool CommitWaitImpl(Key key, absl::Time deadline, bool interruptible);

  // Protocol.
  //   epoch_   (the futex word): bumped by every Notify that saw a waiter.
  //   waiters_ : the number of threads between PrepareWait and the end of
  //              CommitWait/CancelWait.
  // Consumer (PrepareWait):
  //   A: waiters_.fetch_add(1) then a seq_cst fence (kAsymmetric: HeavyFence,
  //      or HeavyFenceShared with kShared),
  //      then the caller re-checks its condition (its queue). Matches B.
  //   key = epoch_ (acquire), read after the announcement.
  // Producer (Notify), after its push:
  //   B: seq_cst fence (kAsymmetric: LightFence / LightFenceShared), then
  //      waiters_.load().
  //      Matches A. If 0: return.
  //   Otherwise epoch_.fetch_add(1) (release) and FutexWake.
  // A matches B: the two fences are totally ordered. If B's fence comes first,
  // the consumer's re-check sees the push and does not sleep. If A's comes
  // first, the producer sees waiters_ > 0 and bumps the epoch; the consumer's
  // FutexWait(epoch_, key) then returns at once (key is stale) or is woken.
  // A consumer that read the already-bumped epoch as its key synchronised with
  // the release bump and so sees the push in its re-check.
  std::atomic<uint32_t> epoch_{0};
  std::atomic<uint32_t> waiters_{0};
  const FutexScope scope_;
  const bool asymmetric_;
};

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_EVENT_COUNT_H_
