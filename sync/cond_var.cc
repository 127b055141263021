#include "wharf/sync/cond_var.h"

#include <system_error>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/spin.h"

namespace wharf {

CondVarWaitResult CondVar::WaitUntil(Mutex& mu, absl::Time deadline) {
  // A: matches B in Signal/SignalAll, through the mutex: both happen while
  // the caller holds mu (see the protocol comment).
  waiters_.fetch_add(1, std::memory_order_relaxed);
  const uint32_t seq = seq_.load(std::memory_order_relaxed);
  mu.Unlock();  // aborts if the caller does not hold mu

  bool signalled = false;
  // Phase 1: bounded read-only spin, for a signaller running on another CPU.
  for (int i = 0; i < sync_internal::kLockSpins; ++i) {
    sync_internal::CpuRelax();
    if (seq_.load(std::memory_order_relaxed) != seq) {
      signalled = true;
      break;
    }
  }
  bool timed_out = false;
  if (!signalled &&
      FutexWait(&seq_, seq, FutexScope::kShared, deadline) == FutexWaitResult::kTimedOut) {
    // A signal that raced with the timeout still counts as a signal.
    timed_out = seq_.load(std::memory_order_relaxed) == seq;
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  // Always re-acquire, also after a timeout (as pthread_cond_timedwait).
  // The signaller usually holds mu right now and releases it within
  // microseconds: spin longer than a plain Lock() before sleeping again.
  return {timed_out, mu.LockExpectingHandOff(absl::InfiniteFuture())};
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
