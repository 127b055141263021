#include "wharf/sync/notification.h"

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/interrupt.h"

namespace wharf {

void Notification::Notify() {
  // Release: the notifier's writes happen-before a waiter's acquire load that
  // sees kNotified.
  const uint32_t old = word_.fetch_or(kNotified, std::memory_order_release);
  if (old & kNotified) {
    std::fprintf(stderr,
                 "wharf::Notification::Notify() called more than once (a "
                 "Notification is one-shot)\n");
    std::abort();
  }
  if (old & kWaiters) FutexWake(&word_, INT_MAX, FutexScope::kShared);
}

bool Notification::WaitSlow(absl::Time deadline) const {
  // Phase 1: bounded read-only spin, for a notifier running on another CPU.
  for (int i = 0; i < sync_internal::kLockSpins; ++i) {
    sync_internal::CpuRelax();
    if (HasBeenNotified()) return true;
  }
  // Phase 2: announce (kWaiters) and sleep until the word changes.
  for (;;) {
    uint32_t seen = word_.load(std::memory_order_acquire);
    if (seen & kNotified) return true;
    if (seen == 0 && !word_.compare_exchange_weak(seen, kWaiters, std::memory_order_relaxed,
                                                   std::memory_order_relaxed)) {
      continue;  // notified meanwhile, or a spurious CAS failure: re-check
    }
    const FutexWaitResult r =
        sync_internal::InterruptibleFutexWait(&word_, kWaiters, FutexScope::kShared, deadline);
    if (r == FutexWaitResult::kTimedOut) return HasBeenNotified();
    // Interrupted: kWaiters stays set (Notify then makes one wake syscall).
    if (r == FutexWaitResult::kInterrupted) {
      if (HasBeenNotified()) return true;
      sync_internal::ThrowInterrupted();
    }
  }
}

}  // namespace wharf
