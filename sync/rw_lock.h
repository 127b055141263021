// RwLock: a reader-writer lock for threads and processes, with writer
// preference and a robust write side, in 16 bytes that can live in shared
// memory (an all-zero RwLock is a valid, unlocked one; trivially destructible).
//
// Many readers (LockShared) or one writer (Lock) hold it at a time. Once a
// writer wants the lock, new readers wait: a writer gets in after the readers
// already inside leave, however many readers keep arriving (no writer
// starvation); when it leaves, the readers that waited get in before the next
// writer can close the door again (no reader starvation either). It meets
// SharedLockable and SharedTimedLockable, so std::shared_lock,
// std::unique_lock and std::scoped_lock work. Use it for data read far more
// often than written; for short critical sections a Mutex is cheaper. Not
// reentrant, no upgrade: a thread holding a read share must not call Lock()
// (it would wait for itself), nor take a second share while a writer may be
// waiting.
//
// Thread-safety: every method may be called concurrently, from any thread of
// any process mapping the lock. Memory ordering: everything a writer did
// before Unlock() is visible to every later holder (reader or writer);
// everything a reader did before UnlockShared() is visible to the next writer.
//
// Blocking: Lock*/LockShared* and the std lock names (not the Try* ones)
// block, and are interruption points (sync/interrupt.h): an interrupted
// thread leaves as a timed-out one does — holding nothing — and throws
// wharf::Interrupted. Uncontended, neither side makes a syscall.
//
// Errors (owner death; the write side is robust, as Mutex — see its hazard:
// the std names acquire silently after a writer died):
//  - The next writer's Lock() returns kOwnerDied: it holds the lock
//    exclusively, repairs the data, calls MarkConsistent(), then Unlock().
//  - A reader blocked behind the dead writer notices within a check period or
//    two; LockShared() then returns kOwnerDied and the reader holds the lock
//    EXCLUSIVELY (as a writer): it repairs, calls MarkConsistent(), and
//    releases with Unlock() or UnlockShared() (both work for this case).
//  - Releasing an owner-died lock without MarkConsistent() makes it not
//    recoverable: every later Lock*() and LockShared*() returns
//    kNotRecoverable, and lock()/lock_shared() throw std::system_error.
//  - Limit: a reader that dies holding a read share is not recovered (shares
//    are counted, not owned). A writer then waits for it forever and, while
//    it waits, keeps new readers out: use LockUntil() where readers may die,
//    so the writer gives up (and lets readers in again).
// Misuse (unlocking what the thread does not hold) aborts with a message.
// Protocol and costs: rw_lock.cc.

#ifndef WHARF_SYNC_RW_LOCK_H_
#define WHARF_SYNC_RW_LOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/sync/lock_result.h"
#include "wharf/sync/mutex.h"

namespace wharf {

class RwLock {
 public:
  constexpr RwLock() noexcept = default;
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;

  // --- Write side -----------------------------------------------------------

  // Blocks until held exclusively. kOk; kOwnerDied (held: a writer died,
  // repair and MarkConsistent()); kNotRecoverable (not held).
  [[nodiscard]] LockResult Lock() { return LockUntil(absl::InfiniteFuture()); }
  // As Lock(), but gives up at `deadline` with kTimedOut (not held).
  [[nodiscard]] LockResult LockUntil(absl::Time deadline);
  [[nodiscard]] LockResult LockFor(absl::Duration timeout) {
    return LockUntil(absl::Now() + timeout);
  }
  // Never blocks: kOk, kOwnerDied (held; an earlier recovery was abandoned),
  // kBusy or kNotRecoverable. Does not check whether a holder is alive.
  [[nodiscard]] LockResult TryLock();
  // Releases the exclusive hold (also one that LockShared() returned with
  // kOwnerDied). Without MarkConsistent() after kOwnerDied, the lock becomes
  // not recoverable. Aborts if the caller does not hold it exclusively.
  void Unlock();

  // --- Read side ------------------------------------------------------------

  // Blocks until a read share is held: kOk. kOwnerDied: a writer died holding
  // the lock and the caller now holds it EXCLUSIVELY (see the file comment).
  // kNotRecoverable: not held.
  [[nodiscard]] LockResult LockShared() { return LockSharedUntil(absl::InfiniteFuture()); }
  // As LockShared(), but gives up at `deadline` with kTimedOut (not held).
  [[nodiscard]] LockResult LockSharedUntil(absl::Time deadline) {
    uint32_t s = state_.load(std::memory_order_relaxed);
    if (__builtin_expect((s & kBlockReaders) == 0 && Readers(s) < kMaxReaders, 1) &&
        state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return LockResult::kOk;
    }
    return LockSharedSlow(deadline);
  }
  [[nodiscard]] LockResult LockSharedFor(absl::Duration timeout) {
    return LockSharedUntil(absl::Now() + timeout);
  }
  // Never blocks: kOk, kBusy (a writer holds or waits for the lock, or it
  // awaits recovery) or kNotRecoverable.
  [[nodiscard]] LockResult TryLockShared();
  // Releases a read share — or, after LockShared() returned kOwnerDied, the
  // exclusive hold (as Unlock()). Aborts if no read share is held at all
  // (shares are counted, not owned, so a thread releasing another thread's
  // share cannot be told apart).
  void UnlockShared();

  // --- Recovery -------------------------------------------------------------

  // After kOwnerDied: declares the protected data repaired. FailedPrecondition
  // if the caller does not hold the lock exclusively in the owner-died state.
  absl::Status MarkConsistent();
  // Whether the lock is permanently unusable.
  bool IsNotRecoverable() const {
    return (state_.load(std::memory_order_relaxed) & kNotRecoverable) != 0;
  }

  // --- Standard SharedLockable / SharedTimedLockable --------------------------
  // lock()/lock_shared() throw std::system_error (errc::state_not_recoverable)
  // on a not-recoverable lock, as Mutex::lock(). After owner death they
  // return holding the lock exclusively in the owner-died state (lock_shared
  // too; unlock_shared() then releases it): code where writers may die uses
  // Lock()/LockShared() and checks the result.
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
  void lock_shared();
  bool try_lock_shared() { return Acquired(TryLockShared()); }
  void unlock_shared() { UnlockShared(); }
  template <class Rep, class Period>
  bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& d) {
    return Acquired(LockSharedFor(absl::FromChrono(d)));
  }
  template <class Clock, class Duration>
  bool try_lock_shared_until(const std::chrono::time_point<Clock, Duration>& t) {
    return try_lock_shared_for(t - Clock::now());
  }

  // Layout of state_, for tests and tools.
  static constexpr uint32_t kReaderMask = 0x0fffffffu;      // read shares held
  static constexpr uint32_t kReadersWaiting = 1u << 28;     // a reader may sleep on state_
  static constexpr uint32_t kWriter = 1u << 29;             // a writer holds or drains
  static constexpr uint32_t kInconsistent = 1u << 30;       // owner died, not yet repaired
  static constexpr uint32_t kNotRecoverable = 1u << 31;     // released while inconsistent
  uint32_t RawStateForTesting() const { return state_.load(); }

 private:
  static constexpr uint32_t kBlockReaders = kWriter | kInconsistent | kNotRecoverable;
  static constexpr uint32_t kMaxReaders = kReaderMask;
  static uint32_t Readers(uint32_t s) { return s & kReaderMask; }

  LockResult LockSharedSlow(absl::Time deadline);
  // Holding writer_mu_ (acquired with `mu_result`): shuts the readers out and
  // waits for the readers inside to leave.
  LockResult Exclude(LockResult mu_result, absl::Time deadline);
  // Waits until no read share is held.
  enum class Drain : uint8_t { kDrained, kTimedOut, kInterrupted };
  Drain WaitForReaders(absl::Time deadline);
  // A reader's attempt to take over from a dead (or departed) exclusive
  // holder: kBusy if there is nothing to take over.
  LockResult TryRecover(absl::Time deadline);
  // Clears kWriter, wakes waiting readers, releases writer_mu_.
  void ReleaseWrite();

  // writer_mu_: held by the exclusive holder (the writers' queue and death
  // detector); state_: the readers and the flags above; drain_: the word a
  // writer sleeps on while readers leave. Protocol: rw_lock.cc.
  Mutex writer_mu_;
  std::atomic<uint32_t> state_{0};
  std::atomic<uint32_t> drain_{0};
};

static_assert(sizeof(RwLock) == 16 && alignof(RwLock) == 8);
static_assert(std::is_trivially_destructible_v<RwLock>);

}  // namespace wharf

#endif  // WHARF_SYNC_RW_LOCK_H_
