#include "wharf/sync/internal/event_count.h"

#include "absl/time/clock.h"
#include "wharf/sync/internal/asymmetric_fence.h"
#include "wharf/sync/futex.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/internal/spin.h"

namespace wharf::sync_internal {

using sync_internal::CpuRelax;

EventCount::Key EventCount::PrepareWait() noexcept {
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  if (asymmetric_) {
    HeavyFence();  // A: matches B
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // A: matches B
  }
  return epoch_.load(std::memory_order_acquire);
}

void EventCount::CancelWait() noexcept { waiters_.fetch_sub(1, std::memory_order_relaxed); }

bool EventCount::CommitWait(Key key, absl::Time deadline) noexcept {
  return CommitWaitImpl(key, deadline, /*interruptible=*/false);
}

bool EventCount::CommitWaitInterruptible(Key key, absl::Time deadline) {
  return CommitWaitImpl(key, deadline, /*interruptible=*/true);
}

bool EventCount::CommitWaitImpl(Key key, absl::Time deadline, bool interruptible) {
  bool notified = false;
  // Spin before sleeping: a producer is often about to notify (see the
  // measurements in sync/internal/spin.h).
  for (int i = 0; i < sync_internal::kLockSpins; ++i) {
    if (epoch_.load(std::memory_order_acquire) != key) {
      notified = true;
      break;
    }
    CpuRelax();
  }
  while (!notified) {
    const FutexWaitResult r =
        interruptible ? sync_internal::InterruptibleFutexWait(&epoch_, key, scope_, deadline)
                      : FutexWait(&epoch_, key, scope_, deadline);
    if (r == FutexWaitResult::kInterrupted) {
      waiters_.fetch_sub(1, std::memory_order_relaxed);
      sync_internal::ThrowInterrupted();
    }
    // acquire: pairs with the release bump in Wake.
    if (epoch_.load(std::memory_order_acquire) != key) {
      notified = true;
    } else if (r == FutexWaitResult::kTimedOut || absl::Now() >= deadline) {
      break;
    }
    // kWoken with the epoch unchanged: spurious or EINTR; sleep again.
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  return notified;
}

void EventCount::Wake(int count) noexcept {
  epoch_.fetch_add(1, std::memory_order_release);
  FutexWake(&epoch_, count, scope_);
}

}  // namespace wharf::sync_internal
