#include "wharf/sync/mutex.h"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <system_error>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

// Protocol (a robust variant of Drepper's three-state futex mutex, "Futexes
// Are Tricky"). word_ = (owner tag << 32) | flags | owner TID; 0 = unlocked.
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
// (TID and flags), which is what changes on every unlock. No lost wake-up
// without seq_cst: announcing (the kWaitersBit CAS) and unlocking (the
// exchange) are RMWs of one word; an unlock after the announce sees the bit
// and wakes, one before it makes the kernel's compare fail.
// Memory: unlock's release CAS/exchange -> the next locker's acquire CAS.
//
// Costs. Uncontended lock+unlock is one CAS each and no syscall. A contended
// locker spins briefly (kMutexSpins pauses, ~0.3 us: longer spins made the
// 2-thread contended benchmark 1.9x slower by stealing the lock's cache line;
// sync/internal/spin.h), then sleeps on the futex (shared scope); the
// unlocker calls futex wake only if a sleeper announced itself. Owner death is
// noticed by a sleeper that waited a whole check period (1 ms, doubling to
// 128 ms; sync/internal/wait_loop.h) and then finds the owner's thread gone
// from /proc — so a dead owner is replaced within ~1-2 check periods, at no
// cost while owners are alive.
//
// Shared-memory layout: one std::atomic<uint64_t>, no pointers, no vtable;
// trivially destructible; all-zero is unlocked, so zero-filled shared memory
// already holds valid mutexes. All processes must share a PID namespace
// (owner ids hold TIDs: sync/internal/thread_identity.h).
//
// Interruption: a locker interrupted while asleep leaves as a timed-out one
// does, without the mutex. Its kWaitersBit may stay set: that costs the owner
// one useless futex-wake syscall at its next unlock, nothing else.
//
// Misuse checks (unlock by a non-owner, recursive lock) cost nothing because
// ownership is in the word.

namespace wharf {
namespace {

using sync_internal::CheckOwner;
using sync_internal::OwnerState;
using sync_internal::OwnerTid;

constexpr uint64_t kFlags = Mutex::kWaitersBit | Mutex::kOwnerDiedBit;

// The owner id in a word, without the flags.
uint64_t OwnerOf(uint64_t word) { return word & ~kFlags; }

[[noreturn]] void MisuseFatal(const char* what, uint64_t word, uint64_t me) {
  std::fprintf(stderr,
               "wharf::Mutex misuse: %s (lock word owner tid %u, caller tid %u)\n",
               what, OwnerTid(word), OwnerTid(me));
  std::abort();
}

}  // namespace

LockResult Mutex::LockSlow(uint64_t me, uint64_t seen, absl::Time deadline, int spins,
                           bool interruptible) {
  if (seen == kNotRecoverableWord) return LockResult::kNotRecoverable;
  if (OwnerOf(seen) == me) MisuseFatal("lock() by the thread that already holds it (Wharf mutexes are not recursive)", seen, me);

  using sync_internal::WaitEnd;
  LockResult result = LockResult::kOk;
  bool slept = false;  // announce() returned a value to sleep on before
  const WaitEnd end = sync_internal::WaitLoop(
      // The futex compares the low half of word_ (TID and flags). Sleep in
      // check periods: after each, check the owner's liveness if the lock is
      // still held by the same owner.
      {.word = &word_,
       .scope = FutexScope::kShared,
       .spin_pauses = spins,
       .interruptible = interruptible,
       .check_periods = true},
      deadline,
      // Phase 1: read-only spin, for an owner running on another CPU; CAS
      // when the word is seen free. (A local word and `me` by value keep the
      // spin in registers.)
      [this, me, &result] {
        uint64_t w = word_.load(std::memory_order_relaxed);
        if (w == 0 && word_.compare_exchange_weak(w, me, std::memory_order_acquire,
                                                  std::memory_order_relaxed)) {
          return true;
        }
        if (w == kNotRecoverableWord) {
          result = LockResult::kNotRecoverable;
          return true;
        }
        return false;
      },
      // Phase 2: take the lock if free, else announce (kWaitersBit) and sleep.
      [&]() -> std::optional<uint32_t> {
        for (;;) {
          seen = word_.load(std::memory_order_relaxed);
          if (seen == kNotRecoverableWord) {
            result = LockResult::kNotRecoverable;
            return std::nullopt;
          }
          if (seen == 0) {
            // A woken sleeper cannot know whether others still sleep, so it
            // takes the lock with kWaitersBit; a locker that never slept takes
            // it as the fast path does (every sleeper re-sets the bit before
            // sleeping again).
            if (word_.compare_exchange_weak(seen, slept ? (me | kWaitersBit) : me,
                                            std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
              result = LockResult::kOk;
              return std::nullopt;
            }
            continue;
          }
          // Give up before announcing ourselves: an announced waiter that
          // leaves costs the owner a useless wake syscall.
          if (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) {
            result = LockResult::kTimedOut;
            return std::nullopt;
          }
          if ((seen & kWaitersBit) == 0) {
            if (!word_.compare_exchange_weak(seen, seen | kWaitersBit, std::memory_order_relaxed,
                                             std::memory_order_relaxed)) {
              continue;
            }
            seen |= kWaitersBit;
          }
          slept = true;
          return static_cast<uint32_t>(seen);
        }
      },
      // A whole period passed. If the word is still exactly what we slept
      // on, the owner may be dead.
      [&] {
        uint64_t current = word_.load(std::memory_order_relaxed);
        if (current == seen && CheckOwner(OwnerOf(seen)) == OwnerState::kDead) {
          // Only one survivor's CAS succeeds; the others see a new owner.
          if (word_.compare_exchange_strong(current, me | kWaitersBit | kOwnerDiedBit,
                                            std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
            result = LockResult::kOwnerDied;
            return true;
          }
        }
        return false;
      });
  if (end == WaitEnd::kTimedOut) return LockResult::kTimedOut;
  // Interrupted: leave as at the deadline. kWaitersBit may stay set (one
  // useless wake at the next unlock); no wake-up was consumed.
  if (end == WaitEnd::kInterrupted) sync_internal::ThrowInterrupted();
  return result;
}

LockResult Mutex::TryLock(bool check_owner) {
  const uint64_t me = sync_internal::CurrentOwnerId();
  uint64_t seen = 0;
  if (word_.compare_exchange_strong(seen, me, std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
    return LockResult::kOk;
  }
  if (seen == kNotRecoverableWord) return LockResult::kNotRecoverable;
  if (check_owner && OwnerOf(seen) != me && CheckOwner(OwnerOf(seen)) == OwnerState::kDead) {
    // Keep kWaitersBit: sleepers may exist.
    if (word_.compare_exchange_strong(seen, me | (seen & kWaitersBit) | kOwnerDiedBit,
                                      std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      return LockResult::kOwnerDied;
    }
  }
  return LockResult::kBusy;
}

void Mutex::UnlockSlow(uint64_t seen) {
  const uint64_t me = sync_internal::CurrentOwnerId();
  if (OwnerOf(seen) != me) MisuseFatal("unlock() by a thread that does not hold the mutex", seen, me);
  if (seen & kOwnerDiedBit) {
    // Recovered from a dead owner but never declared consistent: the data is
    // suspect forever. Wake everyone so they see kNotRecoverable.
    word_.store(kNotRecoverableWord, std::memory_order_release);
    FutexWake(&word_, INT32_MAX, FutexScope::kShared);
    return;
  }
  // Only kWaitersBit can be set (and only lockers add it, so the word can
  // change under us only by gaining it): exchange releases in one step.
  const uint64_t old = word_.exchange(0, std::memory_order_release);
  if (old & kWaitersBit) FutexWake(&word_, 1, FutexScope::kShared);
}

absl::Status Mutex::MarkConsistent() {
  const uint64_t me = sync_internal::CurrentOwnerId();
  uint64_t seen = word_.load(std::memory_order_relaxed);
  for (;;) {
    if (OwnerOf(seen) != me) {
      return absl::FailedPreconditionError(
          "Mutex::MarkConsistent(): the calling thread does not hold the mutex");
    }
    if ((seen & kOwnerDiedBit) == 0) {
      return absl::FailedPreconditionError(
          "Mutex::MarkConsistent(): the mutex is consistent already (call it only "
          "after Lock() returned kOwnerDied)");
    }
    if (word_.compare_exchange_weak(seen, seen & ~kOwnerDiedBit, std::memory_order_relaxed,
                                    std::memory_order_relaxed)) {
      return absl::OkStatus();
    }
  }
}

bool Mutex::HeldByCurrentThread() const {
  return OwnerOf(word_.load(std::memory_order_relaxed)) == sync_internal::CurrentOwnerId();
}

void Mutex::lock() {
  if (Lock() == LockResult::kNotRecoverable) {
    throw std::system_error(std::make_error_code(std::errc::state_not_recoverable),
                            "wharf::Mutex: a previous owner died and the state was "
                            "never marked consistent");
  }
}

}  // namespace wharf
