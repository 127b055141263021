#include "wharf/runtime/internal/async_wait_source.h"

#include <algorithm>
#include <atomic>

#include "wharf/sync/interrupt.h"

namespace wharf::runtime_internal {

AsyncWaitSource::~AsyncWaitSource() {
  std::vector<PendingWait*> left;
  {
    MutexLock lock(mu_);
    left.swap(tracked_);
  }
  // A wait a notify took already has its completion queued on the loop,
  // which drops it unrun; the others are abandoned here.
  for (PendingWait* w : left) {
    if (sync_internal::AsyncWaiters::Unregister(w)) w->abandoned(w);
  }
}

void AsyncWaitSource::Track(PendingWait* wait) {
  MutexLock lock(mu_);
  tracked_.push_back(wait);
}

void AsyncWaitSource::Untrack(PendingWait* wait) {
  MutexLock lock(mu_);
  auto it = std::find(tracked_.begin(), tracked_.end(), wait);
  if (it != tracked_.end()) tracked_.erase(it);
}

int AsyncWaitSource::ArmSleep(std::span<FutexWaitEntry> out) {
  armed_.clear();
  MutexLock lock(mu_);
  for (PendingWait* w : tracked_) {
    if (armed_.size() == out.size()) break;
    if (!w->arm) continue;
    if (std::find(armed_.begin(), armed_.end(), w->cell) != armed_.end()) continue;
    // The value the cell holds now: the sleep ends on a wake, not a store.
    const uint32_t now =
        std::atomic_ref<uint32_t>(*static_cast<uint32_t*>(const_cast<void*>(w->cell)))
            .load(std::memory_order_seq_cst);
    out[armed_.size()] = FutexWaitEntry{w->cell, now, FutexScope::kShared};
    armed_.push_back(w->cell);
  }
  return static_cast<int>(armed_.size());
}

void AsyncWaitSource::DisarmSleep(int woken) {
  if (woken < 0 || woken >= static_cast<int>(armed_.size())) return;
  const void* cell = armed_[woken];
  PendingWait* taken = nullptr;
  {
    MutexLock lock(mu_);
    for (auto it = tracked_.begin(); it != tracked_.end(); ++it) {
      if ((*it)->arm && (*it)->cell == cell && sync_internal::AsyncWaiters::Unregister(*it)) {
        taken = *it;
        tracked_.erase(it);
        break;
      }
    }
  }
  if (taken != nullptr) {
    taken->woken(taken);
  } else {
    // The wake was meant for a waiter that a notify or a timeout has taken
    // since: pass it on to the cell's other sleepers.
    (void)FutexWake(cell, 1, FutexScope::kShared);
  }
}

}  // namespace wharf::runtime_internal
