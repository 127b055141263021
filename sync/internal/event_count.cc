#include "wharf/sync/internal/event_count.h"

#include <algorithm>
#include <optional>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/asymmetric_fence.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

namespace wharf::sync_internal {

namespace {
// Set by a PrepareWait whose HeavyFenceShared was refused (see Fences).
thread_local bool bounded_sleep = false;
}  // namespace

bool EventCount::TakeBoundedSleep() noexcept {
  const bool b = bounded_sleep;
  bounded_sleep = false;
  return b;
}

EventCount::Key EventCount::PrepareWait() noexcept {
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  if (asymmetric_) {
    if (scope_ == FutexScope::kShared) {
      if (!HeavyFenceShared()) bounded_sleep = true;  // A: matches B
    } else {
      HeavyFence();  // A: matches B
    }
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
  if (TakeBoundedSleep()) deadline = std::min(deadline, absl::Now() + kBoundedSleep);
  // acquire: pairs with the release bump in Wake.
  const auto notified = [&] { return epoch_.load(std::memory_order_acquire) != key; };
  // Spin before sleeping: a producer is often about to notify (see the
  // measurements in sync/internal/spin.h). PrepareWait() made the
  // announcement (A); a wake with the epoch unchanged (spurious or EINTR)
  // sleeps again.
  const WaitEnd end = WaitLoop(
      {.word = &epoch_, .scope = scope_, .interruptible = interruptible}, deadline, notified,
      [&]() -> std::optional<uint32_t> {
        if (notified()) return std::nullopt;
        return key;
      });
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  if (end == WaitEnd::kInterrupted) ThrowInterrupted();
  // At a timeout, a Notify that raced with the deadline still counts.
  return end == WaitEnd::kReady || notified();
}

void EventCount::Wake(int count) noexcept {
  epoch_.fetch_add(1, std::memory_order_release);
  FutexWake(&epoch_, count, scope_);
}

}  // namespace wharf::sync_internal
