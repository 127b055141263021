// RwLock: a reader-writer lock for threads and processes, with writer
// preference and a robust write side, in 16 bytes that can live in shared
// memory.
//
// Many readers (LockShared) or one writer (Lock) hold it at a time. Once a
// writer wants the lock, new readers wait: a writer gets in after the readers
// already inside leave, however many readers keep arriving (no writer
// starvation). When a writer leaves, the readers that waited get in before
// the next writer can close the door again (no reader starvation either). It
// meets SharedLockable and SharedTimedLockable, so std::shared_lock,
// std::unique_lock and std::scoped_lock work. Use it for data read far more
// often than written; for short critical sections a Mutex is cheaper.
//
// Not reentrant, no upgrade: a thread holding a read share must not call
// Lock() (it would wait for itself), nor take a second share while a writer
// may be waiting.
//
// Thread-safety: every method may be called concurrently, from any thread of
// any process mapping the lock.
//
// Memory ordering: everything a writer did before Unlock() is visible to every
// later holder (reader or writer); everything a reader did before
// UnlockShared() is visible to the next writer (release/acquire on the words).
//
// Owner death (robust write side). Writers hold an internal wharf::Mutex for
// their whole critical section, so a dead writer is detected by its machinery:
//  - The next writer's Lock() returns kOwnerDied: it holds the lock
//    exclusively, repairs the data, calls MarkConsistent(), then Unlock().
//  - A reader blocked behind the dead writer checks, once per check period
//    (1 ms, doubling to 128 ms), whether the holder is alive; when it is not,
//    LockShared() returns kOwnerDied: the reader now holds the lock
//    EXCLUSIVELY (as a writer) and must repair, MarkConsistent(), and release
//    it with Unlock() or UnlockShared() (both work for this case).
//  - Releasing an owner-died lock without MarkConsistent() makes it not
//    recoverable: every later Lock*() and LockShared*() returns
//    kNotRecoverable (pthread's ENOTRECOVERABLE contract).
//  - Limit: a reader that dies holding a read share is not recovered (shares
//    are counted, not owned). A writer then waits for it forever and, while
//    it waits, keeps new readers out: use LockUntil() where readers may die,
//    so the writer gives up (and lets readers in again).
//
// Interruption: Lock*/LockShared* and the std lock names (not the Try*
// ones) are interruption points (sync/interrupt.h). A thread that would sleep
// in the scope of a requested Interrupter leaves as a timed-out one does and
// throws wharf::Interrupted, holding nothing: a writer interrupted while it
// waits for readers to drain clears kWriter and wakes the readers it shut
// out; a reader may leave kReadersWaiting set, which costs one useless wake.
//
// Cost: uncontended LockShared/UnlockShared and Lock/Unlock make no syscall
// (read side: one CAS and one RMW; write side: the Mutex's two CASes plus two
// RMWs). Waiting readers and writers spin briefly (sync_internal::kLockSpins)
// before they sleep on a futex; a release wakes only sleepers that announced
// themselves.
//
// Shared-memory layout: a Mutex and two std::atomic<uint32_t>; no pointers;
// trivially destructible; an all-zero RwLock is a valid, unlocked one.

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

  // Protocol.
  //   writer_mu_: held by the exclusive holder (a writer, or a reader that
  //       took over from a dead writer) from before it sets kWriter until
  //       after it clears it; so kWriter set => writer_mu_ held (by a live or
  //       a dead thread). Writers queue on it; its owner-death detection is
  //       the RwLock's. When it reports kOwnerDied the RwLock records the
  //       fact in kInconsistent and marks the Mutex itself consistent at
  //       once: the RwLock, not the Mutex, tracks the repair (so a holder may
  //       time out and leave the recovery to the next one).
  //   state_ = kNotRecoverable | kInconsistent | kWriter | kReadersWaiting |
  //       readers. Readers CAS readers+1 (acquire) while none of kWriter,
  //       kInconsistent, kNotRecoverable is set, and fetch_sub 1 to leave
  //       (B below). Only the writer_mu_ holder sets/clears kWriter and
  //       kInconsistent, and sets kNotRecoverable (then never cleared).
  //       Waiting readers CAS kReadersWaiting in and FutexWait(state_); the
  //       holder's release clears kWriter|kReadersWaiting in one fetch_and
  //       (release) and wakes all readers if the bit was set. No lost wake-up:
  //       all these are RMWs of one word (totally ordered), and the kernel
  //       compares the whole word.
  //   Writer: writer_mu_.Lock; fetch_or(kWriter) (acq_rel: totally ordered
  //       with the readers' CAS: a reader either got in before, and is
  //       counted, or sees kWriter and waits); then wait for readers == 0:
  //       spin, then sleep on drain_.
  //   drain_: 1 while the writer_mu_ holder may sleep waiting for readers to
  //       leave; the futex word it sleeps on. Written by the holder (store 1,
  //       store 0) and by the last leaving reader (exchange 0).
  //       A: holder: drain_.store(1), then load state_ (both seq_cst); sleep
  //          only if readers > 0. Matches B.
  //       B: reader: state_.fetch_sub(1), then if it was the last reader and
  //          kWriter was set: drain_.exchange(0) (both seq_cst), and
  //          FutexWake(drain_) if it was 1. Matches A.
  //       In the single seq_cst order either the holder's load sees the last
  //       reader leave, or the reader's exchange sees drain_ = 1 and wakes
  //       (or the kernel's compare of drain_ against 1 fails): a Dekker pair.
  //   Readers blocked for a check period call writer_mu_.TryLock(
  //       check_owner=true): kOwnerDied means the holder is dead; the reader
  //       then does the writer's steps and returns kOwnerDied, exclusive.
  Mutex writer_mu_;
  std::atomic<uint32_t> state_{0};
  std::atomic<uint32_t> drain_{0};
};

static_assert(sizeof(RwLock) == 16 && alignof(RwLock) == 8);
static_assert(std::is_trivially_destructible_v<RwLock>);

}  // namespace wharf

#endif  // WHARF_SYNC_RW_LOCK_H_
