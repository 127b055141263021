// Mutex: a robust, process-shared mutual-exclusion lock in 8 bytes.
//
// The hazard first. If the thread or process holding a Mutex dies, the next
// locker acquires it in the owner-died state. std::scoped_lock,
// std::lock_guard, std::unique_lock and lock() take it SILENTLY in that state,
// and the guard's unlock() then makes the mutex kNotRecoverable forever: every
// later lock() throws, every Lock() fails. Wherever an owner may die (the
// mutex lives in shared memory, a process can be killed), lock with Lock() and
// handle kOwnerDied — repair the protected data, then MarkConsistent():
//
//   const wharf::LockResult r = mu.Lock();
//   if (r == wharf::LockResult::kNotRecoverable) return Broken();  // never again
//   if (r == wharf::LockResult::kOwnerDied) { Repair(data); (void)mu.MarkConsistent(); }
//   Update(data);
//   mu.Unlock();
//
// Otherwise use it like std::mutex: it meets Lockable and TimedLockable, in
// ordinary memory or constructed in place inside a SharedBuffer/SharedSegment
// and locked from several processes (an all-zero Mutex is unlocked, and it is
// trivially destructible). For a lock held by library internals, use
// MutexLock (below): its acquisition never throws Interrupted.
//
// Thread-safety: every method may be called concurrently from any thread of
// any process mapping the mutex (all of them in one PID namespace). Memory
// ordering: everything a thread did before unlock() is visible to the thread
// whose lock() acquires the mutex next, in any process.
//
// Blocking: Lock/LockUntil/LockFor/lock/try_lock_for/try_lock_until block (a
// short spin, then a futex sleep; a dead owner is taken over within one or
// two check periods of 1 ms, doubling to 128 ms) and are interruption points
// (sync/interrupt.h): a locker that would sleep in the scope of a requested
// Interrupter throws wharf::Interrupted without the mutex. TryLock, try_lock
// and Unlock never block. Uncontended, lock and unlock are one CAS each and
// no syscall.
//
// Errors: Lock*() return a LockResult (kOwnerDied, kNotRecoverable,
// kTimedOut); lock() throws std::system_error(errc::state_not_recoverable)
// on a not-recoverable mutex. Misuse — unlocking a mutex the calling thread
// does not hold, locking it twice from one thread — aborts with a message in
// every build mode. Protocol and costs: mutex.cc.

#ifndef WHARF_SYNC_MUTEX_H_
#define WHARF_SYNC_MUTEX_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/internal/thread_identity.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/lock_result.h"

namespace wharf {

class Mutex {
 public:
  constexpr Mutex() noexcept = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // Blocks until acquired. kOk, kOwnerDied (acquired; repair and
  // MarkConsistent()) or kNotRecoverable (not acquired). An interruption
  // point: throws Interrupted (not acquired) — see the file comment.
  [[nodiscard]] LockResult Lock() { return LockUntil(absl::InfiniteFuture()); }

  // As Lock(), but gives up at `deadline` with kTimedOut.
  [[nodiscard]] LockResult LockUntil(absl::Time deadline) {
    const uint64_t me = sync_internal::CurrentOwnerId();
    uint64_t seen = 0;
    if (__builtin_expect(word_.compare_exchange_strong(
                             seen, me, std::memory_order_acquire,
                             std::memory_order_relaxed),
                         1)) {
      return LockResult::kOk;
    }
    return LockSlow(me, seen, deadline, sync_internal::kMutexSpins, /*interruptible=*/true);
  }
  [[nodiscard]] LockResult LockFor(absl::Duration timeout) {
    return LockUntil(absl::Now() + timeout);
  }

  // Never blocks: kOk, kBusy or kNotRecoverable. With `check_owner`, a held
  // mutex costs one /proc read to check its owner, and a dead owner's mutex is
  // taken over with kOwnerDied.
  [[nodiscard]] LockResult TryLock(bool check_owner = false);

  // Releases the mutex. If it was acquired with kOwnerDied and
  // MarkConsistent() was not called, it becomes not recoverable and every
  // waiter is woken with kNotRecoverable. Aborts if the caller does not hold it.
  void Unlock() {
    uint64_t expected = sync_internal::CurrentOwnerId();
    if (__builtin_expect(word_.compare_exchange_strong(
                             expected, 0, std::memory_order_release,
                             std::memory_order_relaxed),
                         1)) {
      return;
    }
    UnlockSlow(expected);
  }

  // After Lock() returned kOwnerDied: declares the protected state repaired.
  // FailedPrecondition if the caller does not hold the mutex in that state.
  absl::Status MarkConsistent();

  // Whether the calling thread holds the mutex (for assertions).
  bool HeldByCurrentThread() const;

  // Whether the mutex is permanently unusable.
  bool IsNotRecoverable() const {
    return word_.load(std::memory_order_relaxed) == kNotRecoverableWord;
  }

  // Standard Lockable / TimedLockable. lock() throws std::system_error
  // (errc::state_not_recoverable) on a not-recoverable mutex, as std::mutex
  // throws on failure, and Interrupted when interrupted (as Lock()). After
  // owner death it acquires and leaves the mutex inconsistent: see the hazard
  // in the file comment.
  void lock();
  bool try_lock() { return Acquired(TryLock()); }
  void unlock() { Unlock(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& d) {
    return Acquired(LockFor(absl::FromChrono(d)));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t) {
    return try_lock_for(t - Clock::now());
  }

  // Layout of the word, for tests and tools.
  static constexpr uint64_t kWaitersBit = 0x80000000u;     // a locker may sleep
  static constexpr uint64_t kOwnerDiedBit = 0x40000000u;   // held, not yet consistent
  static constexpr uint64_t kNotRecoverableWord = sync_internal::kTidMask;
  uint64_t RawWordForTesting() const { return word_.load(); }

 private:
  friend class CondVar;

  // `interruptible`: whether the sleep is an interruption point (false for
  // CondVar's relock, which must return holding the mutex).
  LockResult LockSlow(uint64_t me, uint64_t seen, absl::Time deadline, int spins,
                      bool interruptible);

  // For a locker that expects the lock within microseconds — CondVar's relock
  // after a wake-up, when the signaller is about to release the mutex: spins
  // kLockSpins instead of kMutexSpins before sleeping (a second sleep/wake
  // there costs ~10 us per hand-off).
  [[nodiscard]] LockResult LockExpectingHandOff(absl::Time deadline) {
    const uint64_t me = sync_internal::CurrentOwnerId();
    uint64_t seen = 0;
    if (word_.compare_exchange_strong(seen, me, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      return LockResult::kOk;
    }
    return LockSlow(me, seen, deadline, sync_internal::kLockSpins, /*interruptible=*/false);
  }
  void UnlockSlow(uint64_t seen);

  // (owner tag << 32) | kWaitersBit | kOwnerDiedBit | owner TID; 0 = unlocked.
  // The protocol: mutex.cc.
  std::atomic<uint64_t> word_{0};
};

static_assert(sizeof(Mutex) == 8 && alignof(Mutex) == 8);
static_assert(std::is_trivially_destructible_v<Mutex>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// A scoped lock of a Mutex whose acquisition is not an interruption point
// (UninterruptibleLock<Mutex>, sync/interrupt.h): for locks held by library
// internals, destructors and handlers, which must never see Interrupted.
// The critical section itself stays interruptible. Like std::lock_guard it
// calls lock(): see the hazard at the top of this file where an owner may die.
//
//   wharf::MutexLock lock(mu_);
using MutexLock = UninterruptibleLock<Mutex>;

}  // namespace wharf

#endif  // WHARF_SYNC_MUTEX_H_
