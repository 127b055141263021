// Mutex: a robust, process-shared mutual-exclusion lock in 8 bytes.
//
// Use it like std::mutex (it meets Lockable and TimedLockable, so
// std::scoped_lock / std::unique_lock work) in ordinary memory, or construct it
// in place inside a SharedBuffer/SharedSegment and lock it from several
// processes. Unlike std::mutex it is robust: if the thread or process holding
// it dies, the next locker acquires it and Lock() returns
// LockResult::kOwnerDied; that locker repairs the protected data and calls
// MarkConsistent() before unlock(). Unlocking without MarkConsistent() makes
// the mutex permanently unusable (kNotRecoverable), as with
// pthread_mutex_consistent.
//
// Memory ordering: everything a thread did before unlock() is visible to the
// thread whose lock() acquires the mutex next (release/acquire on the word),
// in any process mapping it.
//
// Cost: uncontended lock+unlock is one CAS each and no syscall. A contended
// locker spins briefly (kMutexSpins pauses, ~0.3 us: longer spins made the
// 2-thread contended benchmark 1.9x slower by stealing the lock's cache line),
// then sleeps on the futex (shared scope); the unlocker
// calls futex wake only if a sleeper announced itself. Owner death is noticed
// by a sleeper that waited a whole check period (1 ms, doubling to 128 ms)
// and then finds the owner's thread gone from /proc — so a dead owner is
// replaced within ~1-2 check periods, at no cost while owners are alive.
//
// Shared-memory layout: one std::atomic<uint64_t>, no pointers, no vtable;
// trivially destructible; an all-zero Mutex is an unlocked one, so zero-filled
// shared memory already holds valid mutexes. All processes must share a PID
// namespace.
//
// Interruption: Lock/LockUntil/LockFor/lock/try_lock_for/try_lock_until are
// interruption points (sync/interrupt.h): a locker that would sleep in the
// scope of a requested Interrupter throws wharf::Interrupted without the
// mutex, as a timed-out locker leaves. Its kWaitersBit may stay set: that
// costs the owner one useless futex-wake syscall at its next unlock, nothing
// else. TryLock/try_lock never are.
//
// Misuse (unlocking a mutex the calling thread does not hold, locking it twice
// from one thread) aborts with a message in every build mode: the check costs
// nothing because ownership is in the word.

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
  // throws on failure (and Interrupted when interrupted, like Lock()); after owner death it acquires and leaves the mutex
  // inconsistent (check with Lock() where owners may die).
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

  // Protocol (a robust variant of Drepper's three-state futex mutex).
  // word_ = (owner tag << 32) | flags | owner TID; 0 = unlocked.
  //   Lock:   CAS 0 -> me (acquire). Contended: spin read-only; then set
  //           kWaitersBit (CAS), futex-wait on the low half with a check
  //           period; on wake, CAS 0 -> me|kWaitersBit (a woken sleeper cannot
  //           know it was the last one, so it keeps the bit, as Drepper's
  //           "lock with 2"). After a period expires with the same owner, read
  //           /proc; if the owner is dead, CAS its exact word ->
  //           me|kWaitersBit|kOwnerDiedBit: only one survivor wins.
  //   Unlock: CAS me -> 0 (release). Fails only if a flag is set: with
  //           kOwnerDiedBit the word becomes kNotRecoverableWord and all
  //           sleepers are woken; otherwise exchange 0 (release) and wake one
  //           sleeper if kWaitersBit was set.
  // Only the owner clears the word; only lockers set kWaitersBit; only a
  // survivor of a dead owner sets kOwnerDiedBit; only the owner clears it
  // (MarkConsistent). Every transition is a CAS on the whole 64-bit word, so
  // the tag and TID change together. The futex compares the low half only
  // (TID and flags), which is what changes on every unlock.
  std::atomic<uint64_t> word_{0};
};

static_assert(sizeof(Mutex) == 8 && alignof(Mutex) == 8);
static_assert(std::is_trivially_destructible_v<Mutex>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// A scoped lock of a Mutex whose acquisition is not an interruption point
// (UninterruptibleLock<Mutex>, sync/interrupt.h): for locks held by library
// internals, destructors and handlers, which must never see Interrupted.
// The critical section itself stays interruptible. Like std::lock_guard it
// calls lock(), so where an owner may die prefer Lock() and kOwnerDied.
//
//   wharf::MutexLock lock(mu_);
using MutexLock = UninterruptibleLock<Mutex>;

}  // namespace wharf

#endif  // WHARF_SYNC_MUTEX_H_
