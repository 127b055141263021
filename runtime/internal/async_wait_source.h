// AsyncWaitSource: an event loop's part of WaitAsync (Atomics.waitAsync) —
// the pending waits whose cells the loop watches while it sleeps, so that a
// notify from ANOTHER process completes them too. (A notify from this process
// finds the wait in sync/internal/async_waiters.h and needs none of this.)
//
// While the loop sleeps it adds each distinct watched cell to its
// futex_waitv(2) — the low half of a 64-bit cell, where FutexWake64 wakes —
// expecting the value the cell holds right then, so the sleep ends on a wake
// of the cell, not on a store (JS: a store without notify wakes no one; a
// store while the loop arms makes the kernel return at once and the loop arms
// again with the new value). When the kernel reports that a cell's wake woke
// the loop, the loop takes that cell's oldest wait: if it can still
// Unregister it, the wait completes with kOk; if a notify or a timeout took it
// meanwhile, the consumed wake is passed on (FutexWake(cell, 1)) so that
// another sleeper on the cell does not lose it.
//
// Limit: futex_waitv takes 128 words, shared with the loop's other sources:
// beyond that, cells are not armed (a notify from another process is then
// missed; notifies from this process always work).
//
// Thread-safety: Track/Untrack from any thread; the LoopSource methods on the
// loop's thread.

#ifndef WHARF_RUNTIME_INTERNAL_ASYNC_WAIT_SOURCE_H_
#define WHARF_RUNTIME_INTERNAL_ASYNC_WAIT_SOURCE_H_

#include <span>
#include <vector>

#include "wharf/runtime/internal/loop_source.h"
#include "wharf/sync/futex.h"
#include "wharf/sync/internal/async_waiters.h"
#include "wharf/sync/mutex.h"

namespace wharf::runtime_internal {

// A wait the loop arms for. Owned by WaitAsync; tracked by raw pointer
// between Track and Untrack.
struct PendingWait : sync_internal::AsyncWaiter {
  // Whether the loop arms the cell while it sleeps (shared-scope waits,
  // whose notifier may be in another process).
  bool arm = false;
  // Called on the loop's thread after the loop Unregistered the wait because
  // a wake of its cell woke the loop: completes it with kOk.
  void (*woken)(PendingWait* self) = nullptr;
  // Called by the loop's destructor after it Unregistered a wait that never
  // completed: releases it (its future then reports a broken promise).
  void (*abandoned)(PendingWait* self) = nullptr;
};

class AsyncWaitSource final : public LoopSource {
 public:
  ~AsyncWaitSource();  // abandons the waits still tracked

  void Track(PendingWait* wait);
  void Untrack(PendingWait* wait);

  bool Pending() override { return false; }
  bool Deliver() override { return false; }
  int ArmSleep(std::span<FutexWaitEntry> out) override;
  void DisarmSleep(int woken) override;

 private:
  Mutex mu_;
  std::vector<PendingWait*> tracked_;  // guarded; registration order
  std::vector<const void*> armed_;     // loop thread: the cells of the last ArmSleep
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_ASYNC_WAIT_SOURCE_H_
