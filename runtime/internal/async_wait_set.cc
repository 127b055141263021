#include "wharf/runtime/internal/async_wait_set.h"

#include <algorithm>
#include <atomic>

#include "wharf/sync/interrupt.h"

namespace wharf::runtime_internal {
namespace {

bool StillExpected(const PendingWait& w) {
  void* cell = const_cast<void*>(w.cell);
  if (w.wide) {
    return std::atomic_ref<uint64_t>(*static_cast<uint64_t*>(cell))
               .load(std::memory_order_seq_cst) == w.expected;
  }
  return std::atomic_ref<uint32_t>(*static_cast<uint32_t*>(cell))
             .load(std::memory_order_seq_cst) == static_cast<uint32_t>(w.expected);
}

}  // namespace

void AsyncWaitSet::Append(List& list, PendingWait* w) {
  w->in_set = true;
  w->set_prev = list.tail;
  w->set_next = nullptr;
  if (list.tail != nullptr) list.tail->set_next = w; else list.head = w;
  list.tail = w;
}

void AsyncWaitSet::Remove(List& list, PendingWait* w) {
  if (!w->in_set) return;
  w->in_set = false;
  if (w->set_prev != nullptr) w->set_prev->set_next = w->set_next; else list.head = w->set_next;
  if (w->set_next != nullptr) w->set_next->set_prev = w->set_prev; else list.tail = w->set_prev;
  w->set_prev = w->set_next = nullptr;
}

AsyncWaitSet::~AsyncWaitSet() {
  std::vector<PendingWait*> left;
  {
    MutexLock lock(mu_);
    for (List* list : {&watched_, &local_}) {
      for (PendingWait* w = list->head; w != nullptr; w = w->set_next) {
        w->in_set = false;
        left.push_back(w);
      }
      *list = List();
    }
  }
  // A wait a notify took already has its completion queued on the loop,
  // which drops it unrun; the others are abandoned here.
  for (PendingWait* w : left) {
    if (sync_internal::AsyncWaiters::Unregister(w)) w->abandoned(w);
  }
}

void AsyncWaitSet::Track(PendingWait* wait) {
  MutexLock lock(mu_);
  Append(wait->watch ? watched_ : local_, wait);
}

void AsyncWaitSet::Untrack(PendingWait* wait) {
  MutexLock lock(mu_);
  Remove(wait->watch ? watched_ : local_, wait);
}

int AsyncWaitSet::ArmSleep(std::span<FutexWaitEntry> out) {
  armed_.clear();
  MutexLock lock(mu_);
  for (PendingWait* w = watched_.head; w != nullptr && armed_.size() < out.size();
       w = w->set_next) {
    if (std::find(armed_.begin(), armed_.end(), w->cell) != armed_.end()) continue;
    // Expecting the wait's value: a cell changed before the sleep makes the
    // kernel return at once, and DisarmSleep completes its waits.
    out[armed_.size()] =
        FutexWaitEntry{w->cell, static_cast<uint32_t>(w->expected), FutexScope::kShared};
    armed_.push_back(w->cell);
  }
  return static_cast<int>(armed_.size());
}

void AsyncWaitSet::DisarmSleep(int woken) {
  const void* woken_cell =
      woken >= 0 && woken < static_cast<int>(armed_.size()) ? armed_[woken] : nullptr;
  bool woken_used = woken_cell == nullptr;
  std::vector<PendingWait*> done;
  {
    MutexLock lock(mu_);
    for (PendingWait* w = watched_.head; w != nullptr;) {
      PendingWait* next = w->set_next;
      const bool armed = std::find(armed_.begin(), armed_.end(), w->cell) != armed_.end();
      if (armed) {
        const bool take_wake = !woken_used && w->cell == woken_cell;
        if ((take_wake || !StillExpected(*w)) && sync_internal::AsyncWaiters::Unregister(w)) {
          if (take_wake) woken_used = true;
          Remove(watched_, w);
          done.push_back(w);
        }
      }
      w = next;
    }
  }
  // Unregistered by us: nobody else completes (or frees) these.
  for (PendingWait* w : done) w->woken(w);
  // The wake was meant for a waiter that a notify or a timeout has taken
  // since: pass it on to the cell's other sleepers.
  if (!woken_used) (void)FutexWake(woken_cell, 1, FutexScope::kShared);
}

}  // namespace wharf::runtime_internal
