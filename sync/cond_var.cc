#include "wharf/sync/cond_var.h"

#include <optional>
#include <system_error>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

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
