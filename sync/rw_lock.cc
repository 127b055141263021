#include "wharf/sync/rw_lock.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <system_error>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

// Protocol (writer preference over one state word, a drain word and an
// internal robust Mutex).
//   writer_mu_: held by the exclusive holder (a writer, or a reader that took
//       over from a dead writer) from before it sets kWriter until after it
//       clears it, for the whole critical section; so kWriter set =>
//       writer_mu_ held (by a live or a dead thread). Writers queue on it; its
//       owner-death detection is the RwLock's. When it reports kOwnerDied the
//       RwLock records the fact in kInconsistent and marks the Mutex itself
//       consistent at once: the RwLock, not the Mutex, tracks the repair (so a
//       holder may time out and leave the recovery to the next one).
//   state_ = kNotRecoverable | kInconsistent | kWriter | kReadersWaiting |
//       readers. Readers CAS readers+1 (acquire) while none of kWriter,
//       kInconsistent, kNotRecoverable is set, and fetch_sub 1 to leave (B
//       below). Only the writer_mu_ holder sets/clears kWriter and
//       kInconsistent, and sets kNotRecoverable (then never cleared). Waiting
//       readers CAS kReadersWaiting in and FutexWait(state_); the holder's
//       release clears kWriter|kReadersWaiting in one fetch_and (release) and
//       wakes all readers if the bit was set. No lost wake-up: all these are
//       RMWs of one word (totally ordered), and the kernel compares the whole
//       word.
//   Writer: writer_mu_.Lock; fetch_or(kWriter) (acq_rel: totally ordered with
//       the readers' CAS: a reader either got in before, and is counted, or
//       sees kWriter and waits); then wait for readers == 0: spin, then sleep
//       on drain_.
//   drain_: 1 while the writer_mu_ holder may sleep waiting for readers to
//       leave; the futex word it sleeps on. Written by the holder (store 1,
//       store 0) and by the last leaving reader (exchange 0).
//       A: holder: drain_.store(1), then load state_ (both seq_cst); sleep
//          only if readers > 0. Matches B.
//       B: reader: state_.fetch_sub(1), then if it was the last reader and
//          kWriter was set: drain_.exchange(0) (both seq_cst), and
//          FutexWake(drain_) if it was 1. Matches A.
//       In the single seq_cst order either the holder's load sees the last
//       reader leave, or the reader's exchange sees drain_ = 1 and wakes (or
//       the kernel's compare of drain_ against 1 fails): a Dekker pair.
//   Readers blocked for a check period (1 ms, doubling to 128 ms: Mutex's
//       numbers, sync/internal/wait_loop.h) call writer_mu_.TryLock(
//       check_owner=true): kOwnerDied means the holder is dead; the reader
//       then does the writer's steps and returns kOwnerDied, exclusive.
//   Releasing after kOwnerDied without MarkConsistent() sets kNotRecoverable
//       (pthread's ENOTRECOVERABLE contract).
// Memory: release/acquire on state_ between holders (the writer's release
// fetch_and -> the readers' acquire CAS; the readers' seq_cst fetch_sub -> the
// writer's acquire of state_).
//
// Interruption: a writer interrupted while it waits for readers to drain
// clears kWriter and wakes the readers it shut out (ReleaseWrite); a reader
// may leave kReadersWaiting set, which costs one useless wake.
//
// Costs: uncontended LockShared/UnlockShared and Lock/Unlock make no syscall
// (read side: one CAS and one RMW; write side: the Mutex's two CASes plus two
// RMWs). Waiting readers and writers spin briefly (sync_internal::kLockSpins)
// before they sleep on a futex; a release wakes only sleepers that announced
// themselves.
//
// Shared-memory layout: a Mutex and two std::atomic<uint32_t>; no pointers;
// trivially destructible; an all-zero RwLock is a valid, unlocked one.

namespace wharf {
namespace {

[[noreturn]] void RwLockFatal(const char* what) {
  std::fprintf(stderr, "wharf::RwLock misuse: %s\n", what);
  std::abort();
}

[[noreturn]] void ThrowNotRecoverable() {
  throw std::system_error(std::make_error_code(std::errc::state_not_recoverable),
                          "wharf::RwLock: a writer died and the state was never marked "
                          "consistent");
}

}  // namespace

// --- Write side ---------------------------------------------------------------

LockResult RwLock::LockUntil(absl::Time deadline) {
  if (state_.load(std::memory_order_relaxed) & kNotRecoverable) {
    return LockResult::kNotRecoverable;
  }
  const LockResult r = writer_mu_.LockUntil(deadline);
  if (!Acquired(r)) return r;  // kTimedOut (kNotRecoverable: the Mutex never gets there)
  return Exclude(r, deadline);
}

LockResult RwLock::Exclude(LockResult mu_result, absl::Time deadline) {
  uint32_t set = kWriter;
  if (mu_result == LockResult::kOwnerDied) {
    // The RwLock tracks the repair in kInconsistent (set together with
    // kWriter, so readers never see one without the other from us); the
    // Mutex is only the writers' queue and death detector.
    (void)writer_mu_.MarkConsistent();
    set |= kInconsistent;
  }
  // acq_rel: totally ordered with the readers' CAS on the same word; acquire
  // also makes the critical sections of readers that already left visible.
  const uint32_t old = state_.fetch_or(set, std::memory_order_acq_rel);
  if (old & kNotRecoverable) {
    ReleaseWrite();
    return LockResult::kNotRecoverable;
  }
  if (Readers(old) != 0) {
    const Drain d = WaitForReaders(deadline);
    if (d != Drain::kDrained) {
      ReleaseWrite();  // kInconsistent, if set, stays for the next holder
      if (d == Drain::kInterrupted) sync_internal::ThrowInterrupted();
      return LockResult::kTimedOut;
    }
  }
  return ((old | set) & kInconsistent) ? LockResult::kOwnerDied : LockResult::kOk;
}

RwLock::Drain RwLock::WaitForReaders(absl::Time deadline) {
  using sync_internal::WaitEnd;
  const WaitEnd end = sync_internal::WaitLoop(
      {.word = &drain_, .scope = FutexScope::kShared}, deadline,
      // Spin for short read sections on other CPUs.
      [&] { return Readers(state_.load(std::memory_order_acquire)) == 0; },
      // Announce on drain_ and sleep until the last reader leaves.
      [&]() -> std::optional<uint32_t> {
        // A: seq_cst store then seq_cst load. Matches B in UnlockShared.
        drain_.store(1, std::memory_order_seq_cst);
        if (Readers(state_.load(std::memory_order_seq_cst)) == 0) {
          drain_.store(0, std::memory_order_relaxed);
          return std::nullopt;
        }
        return 1;
      });
  if (end == WaitEnd::kReady || end == WaitEnd::kWoken) return Drain::kDrained;
  // Timed out or interrupted: withdraw; the readers may have left meanwhile.
  drain_.store(0, std::memory_order_relaxed);
  if (Readers(state_.load(std::memory_order_acquire)) == 0) return Drain::kDrained;
  return end == WaitEnd::kTimedOut ? Drain::kTimedOut : Drain::kInterrupted;
}

void RwLock::ReleaseWrite() {
  // Release: the holder's writes happen-before the readers' acquire CAS.
  const uint32_t old =
      state_.fetch_and(~(kWriter | kReadersWaiting), std::memory_order_release);
  if (old & kReadersWaiting) FutexWake(&state_, INT_MAX, FutexScope::kShared);
  writer_mu_.Unlock();
}

LockResult RwLock::TryLock() {
  uint32_t s = state_.load(std::memory_order_relaxed);
  if (s & kNotRecoverable) return LockResult::kNotRecoverable;
  if ((s & kWriter) || Readers(s) != 0) return LockResult::kBusy;
  if (writer_mu_.TryLock() != LockResult::kOk) return LockResult::kBusy;
  // We hold writer_mu_, so kWriter is clear (the invariant); take the lock
  // only if no reader is inside.
  s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if ((s & kNotRecoverable) || Readers(s) != 0) {
      writer_mu_.Unlock();
      return (s & kNotRecoverable) ? LockResult::kNotRecoverable : LockResult::kBusy;
    }
    if (state_.compare_exchange_weak(s, s | kWriter, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return (s & kInconsistent) ? LockResult::kOwnerDied : LockResult::kOk;
    }
  }
}

void RwLock::Unlock() {
  if (!writer_mu_.HeldByCurrentThread()) {
    RwLockFatal("Unlock() by a thread that does not hold the lock exclusively");
  }
  uint32_t s = state_.load(std::memory_order_relaxed);
  if (__builtin_expect((s & kInconsistent) == 0, 1)) {
    ReleaseWrite();
    return;
  }
  // Released after owner death without MarkConsistent(): the data is suspect
  // forever. Everyone who waits, or comes later, gets kNotRecoverable.
  while (!state_.compare_exchange_weak(s, (s | kNotRecoverable) & ~(kWriter | kReadersWaiting),
                                       std::memory_order_release, std::memory_order_relaxed)) {
  }
  FutexWake(&state_, INT_MAX, FutexScope::kShared);
  writer_mu_.Unlock();
}

// --- Read side ----------------------------------------------------------------

LockResult RwLock::TryLockShared() {
  uint32_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (s & kNotRecoverable) return LockResult::kNotRecoverable;
    if ((s & kBlockReaders) || Readers(s) == kMaxReaders) return LockResult::kBusy;
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return LockResult::kOk;
    }
  }
}

LockResult RwLock::LockSharedSlow(absl::Time deadline) {
  using sync_internal::WaitEnd;
  LockResult result = LockResult::kOk;
  bool check_holder = false;    // a check period passed with readers shut out
  bool tried_takeover = false;  // tried an abandoned recovery once already
  const WaitEnd end = sync_internal::WaitLoop(
      // Sleep in check periods: after each, check the exclusive holder's
      // liveness if readers are still shut out. At the deadline, one more
      // round: get in if the writer just left.
      {.word = &state_,
       .scope = FutexScope::kShared,
       .check_periods = true,
       .recheck_at_deadline = true},
      deadline,
      // Spin for a writer finishing on another CPU; CAS when it looks free.
      [&] {
        uint32_t s = state_.load(std::memory_order_relaxed);
        if (s & kNotRecoverable) {
          result = LockResult::kNotRecoverable;
          return true;
        }
        return (s & kBlockReaders) == 0 && Readers(s) < kMaxReaders &&
               state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                            std::memory_order_relaxed);
      },
      // Get in, take over from a dead holder, or announce (kReadersWaiting,
      // by CAS: the RMW pair with ReleaseWrite's fetch_and) and sleep on
      // state_.
      [&]() -> std::optional<uint32_t> {
        for (;;) {
          uint32_t s = state_.load(std::memory_order_relaxed);
          if (s & kNotRecoverable) {
            result = LockResult::kNotRecoverable;
            return std::nullopt;
          }
          if ((s & kBlockReaders) == 0) {
            if (Readers(s) == kMaxReaders) RwLockFatal("more than 2^28-1 read shares held");
            if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                             std::memory_order_relaxed)) {
              result = LockResult::kOk;
              return std::nullopt;
            }
            continue;
          }
          // kInconsistent without kWriter: a recovering holder gave up (timed
          // out) and nobody may hold the lock: try to take over at once
          // rather than a period on (once: a holder between its writer_mu_
          // and its kWriter makes this transient; then we sleep and check
          // again after a period).
          if (check_holder || ((s & kWriter) == 0 && !tried_takeover)) {
            check_holder = false;
            tried_takeover = true;
            const LockResult r = TryRecover(deadline);
            if (r != LockResult::kBusy) {
              result = r;
              return std::nullopt;
            }
            continue;
          }
          if ((s & kReadersWaiting) == 0) {
            if (!state_.compare_exchange_weak(s, s | kReadersWaiting, std::memory_order_relaxed,
                                              std::memory_order_relaxed)) {
              continue;
            }
            s |= kReadersWaiting;
          }
          if (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) {
            result = LockResult::kTimedOut;
            return std::nullopt;
          }
          return s;
        }
      },
      // A whole period passed: if readers are still shut out, check the
      // holder in the next round.
      [&] {
        check_holder = true;
        return false;
      });
  if (end == WaitEnd::kTimedOut) return LockResult::kTimedOut;
  // Interrupted: leave as at the deadline. kReadersWaiting may stay set (one
  // useless wake when the writer leaves); no wake-up was consumed.
  if (end == WaitEnd::kInterrupted) sync_internal::ThrowInterrupted();
  return result;
}

LockResult RwLock::TryRecover(absl::Time deadline) {
  const LockResult r = writer_mu_.TryLock(/*check_owner=*/true);
  if (r == LockResult::kBusy) return LockResult::kBusy;  // a live holder
  if (!Acquired(r)) return r;
  // We hold writer_mu_. Taken from a dead holder (kOwnerDied), or free: then
  // either an abandoned recovery awaits (kInconsistent), or the holder left
  // between our look at state_ and the TryLock: nothing to take over.
  if (r == LockResult::kOk && (state_.load(std::memory_order_relaxed) & kInconsistent) == 0) {
    writer_mu_.Unlock();
    return LockResult::kBusy;
  }
  return Exclude(r, deadline);  // kOwnerDied, kTimedOut or kNotRecoverable
}

void RwLock::UnlockShared() {
  uint32_t s = state_.load(std::memory_order_relaxed);
  // The exclusive hold that LockShared() returned with kOwnerDied. (A thread
  // cannot hold writer_mu_ and a read share at once: it would have waited for
  // itself to drain.)
  if ((s & kWriter) && writer_mu_.HeldByCurrentThread()) {
    Unlock();
    return;
  }
  if (Readers(s) == 0) RwLockFatal("UnlockShared() with no read share held");
  // B: seq_cst RMW then (below) seq_cst RMW. Matches A in WaitForReaders.
  const uint32_t old = state_.fetch_sub(1, std::memory_order_seq_cst);
  if (Readers(old) == 1 && (old & kWriter) &&
      drain_.exchange(0, std::memory_order_seq_cst) != 0) {
    FutexWake(&drain_, 1, FutexScope::kShared);
  }
}

// --- Recovery and std names -----------------------------------------------------

absl::Status RwLock::MarkConsistent() {
  if (!writer_mu_.HeldByCurrentThread()) {
    return absl::FailedPreconditionError(
        "RwLock::MarkConsistent(): the calling thread does not hold the lock exclusively");
  }
  if ((state_.load(std::memory_order_relaxed) & kInconsistent) == 0) {
    return absl::FailedPreconditionError(
        "RwLock::MarkConsistent(): the lock is consistent already (call it only after "
        "Lock() or LockShared() returned kOwnerDied)");
  }
  state_.fetch_and(~kInconsistent, std::memory_order_relaxed);
  return absl::OkStatus();
}

void RwLock::lock() {
  if (Lock() == LockResult::kNotRecoverable) ThrowNotRecoverable();
}

void RwLock::lock_shared() {
  if (LockShared() == LockResult::kNotRecoverable) ThrowNotRecoverable();
}

}  // namespace wharf
