#include "wharf/sync/cond_var.h"

#include <optional>
#include <system_error>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

// Protocol (a sequence-number condition variable, as in Drepper's "Futexes Are
// Tricky" and glibc before 2.25, with a waiter count so that signalling nobody
// costs no syscall).
//   seq_:     bumped (fetch_add) by every signal that finds a waiter; the
//             futex word. Wraps at 2^32: a waiter that misses exactly 2^32
//             signals between reading it and sleeping would sleep on; that
//             takes far longer than the few instructions in between.
//   waiters_: the number of threads inside WaitUntil between their announce
//             and their return; written by waiters only.
//   Wait:     A: waiters_.fetch_add(1), then s = seq_.load() — both while
//             still holding mu; unlock mu; spin read-only while seq_ == s
//             (sync_internal::kLockSpins); FutexWait(seq_, s, deadline) once
//             (the wait loop's single_sleep); waiters_.fetch_sub(1); relock.
//   Signal:   B: if waiters_.load() is 0, return (no syscall); else
//             seq_.fetch_add(1) and FutexWake(seq_, 1 or all).
// Why no wake-up is lost, and why A and B need no seq_cst (A matches B
// through the mutex, not through a fence): the contract is that the signal
// must reach waiters that released mu before the signaller acquired it. For
// such a waiter W, A is sequenced before W's unlock (release), which
// synchronizes with the signaller's lock (acquire), which comes before B. So
// A happens-before B: B's load reads W's increment or a later value
// (coherence), and W's read of seq_ cannot see B's bump. W's expected value
// is therefore stale once B bumps seq_: if W is not yet asleep, the kernel's
// compare fails and FutexWait returns; if W is asleep, FutexWake finds it.
// A signaller with no such order to W (it never took mu after W released
// it) may miss W — the lost wake-up every condition variable has when the
// condition is changed outside the mutex.
//
// SignalAll wakes every waiter, and they then contend for the mutex (the
// "thundering herd"): each takes it in turn, and the Mutex's spin-then-sleep
// keeps that orderly. Wharf does not requeue waiters onto the mutex
// (FUTEX_CMP_REQUEUE) because the Mutex's futex word carries owner ids and a
// requeued waiter would need a "lock as contended" entry that Mutex does not
// expose; with few waiters per CondVar (the common case) the herd is small.
//
// Process death: a process that dies while waiting leaves its count in
// waiters_ behind: later signals then make one harmless futex-wake syscall
// each.
//
// Shared-memory layout: two std::atomic<uint32_t>; trivially destructible; an
// all-zero CondVar is a valid one.

namespace wharf {

CondVarWaitResult CondVar::WaitUntil(Mutex& mu, absl::Time deadline) {
  // A: matches B in Signal/SignalAll, through the mutex: both happen while
  // the caller holds mu (see the protocol comment).
  waiters_.fetch_add(1, std::memory_order_relaxed);
  const uint32_t seq = seq_.load(std::memory_order_relaxed);
  mu.Unlock();  // aborts if the caller does not hold mu

  // One sleep (a condition variable may wake spuriously: its callers
  // re-check), after a spin for a signaller running on another CPU. The
  // announcement (A) was made above, under mu.
  const sync_internal::WaitEnd end = sync_internal::WaitLoop(
      {.word = &seq_, .scope = FutexScope::kShared, .single_sleep = true}, deadline,
      [&] { return seq_.load(std::memory_order_relaxed) != seq; },
      [&]() -> std::optional<uint32_t> { return seq; });
  // A signal that raced with the timeout still counts as a signal.
  const bool timed_out = end == sync_internal::WaitEnd::kTimedOut &&
                         seq_.load(std::memory_order_relaxed) == seq;
  // Interrupted: left like a timed-out waiter. The kernel did not count us in
  // any FutexWake, so a Signal() racing with the interruption wakes another
  // waiter: no signal is consumed by a waiter that throws.
  const bool interrupted = end == sync_internal::WaitEnd::kInterrupted;
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  // Always re-acquire, also after a timeout or an interruption (as
  // pthread_cond_timedwait, and so that the caller's unique_lock unlocks a
  // held mutex while Interrupted propagates): the relock is not an
  // interruption point. The signaller usually holds mu right now and releases
  // it within microseconds: spin longer than a plain Lock() before sleeping.
  const LockResult relock = mu.LockExpectingHandOff(absl::InfiniteFuture());
  // Not re-acquired (kNotRecoverable): report that rather than throw, so the
  // caller does not unlock a mutex it does not hold; the request is sticky.
  if (interrupted && Acquired(relock)) sync_internal::ThrowInterrupted();
  return {timed_out, relock};
}

void CondVar::Wake(int count) {
  seq_.fetch_add(1, std::memory_order_relaxed);
  FutexWake(&seq_, count, FutexScope::kShared);
}

void CondVar::CheckRelock(std::unique_lock<Mutex>& lock, LockResult r) {
  if (r != LockResult::kNotRecoverable) return;
  (void)lock.release();  // the mutex is not held: the unique_lock must not unlock it
  throw std::system_error(std::make_error_code(std::errc::state_not_recoverable),
                          "wharf::CondVar: the mutex could not be re-acquired: a previous "
                          "owner died and the state was never marked consistent");
}

}  // namespace wharf
