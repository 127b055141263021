// AsyncWaitSet: an event loop's pending WaitAsyncs (Atomics.waitAsync) — the
// loop abandons them if it is destroyed first, and watches the cells of the
// shared-scope ones while it sleeps, so that a notifier in ANOTHER process
// completes them too. (A notify from this process finds the wait in
// sync/internal/async_waiters.h and needs none of this.)
//
// While the loop sleeps it adds each distinct watched cell to its
// futex_waitv(2) — the low half of a 64-bit cell, where FutexWake64 wakes —
// expecting the wait's `expected` value. When the sleep ends the loop
// completes (kOk) every watched wait whose cell no longer holds its
// `expected` value (a store from elsewhere, normally followed by its notify:
// towards waking, as atomics::Wait does for a store racing its start), and,
// when the kernel reports that a cell's wake woke the loop, that cell's oldest
// wait; if a notify or a timeout took it meanwhile, the consumed wake is
// passed on (FutexWake(cell, 1)) so that another sleeper on the cell does not
// lose it.
//
// Limits: a notify WITHOUT a store from another process is seen only while the
// loop sleeps in the futex (a busy loop misses it: the notifier's wake finds
// no sleeper, and its Notify returns 0); such a notify for count > 1 completes
// one wait per loop. futex_waitv takes 128 words, shared with the loop's other
// sources: cells beyond that are not watched.
//
// Thread-safety: Track/Untrack from any thread; ArmSleep/DisarmSleep and the
// destructor on the loop's thread.

#ifndef WHARF_RUNTIME_INTERNAL_ASYNC_WAIT_SET_H_
#define WHARF_RUNTIME_INTERNAL_ASYNC_WAIT_SET_H_

#include <cstdint>
#include <span>
#include <vector>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/async_waiters.h"
#include "wharf/sync/mutex.h"

namespace wharf::runtime_internal {

// A pending wait. Owned by WaitAsync; tracked by pointer between Track and
// Untrack (intrusive: both are O(1)).
struct PendingWait : sync_internal::AsyncWaiter {
  // Shared scope: the notifier may be in another process; the loop watches
  // the cell while it sleeps.
  bool watch = false;
  bool wide = false;      // a 64-bit cell
  uint64_t expected = 0;  // the value the wait waits on
  // Called on the loop's thread after the loop unregistered the wait (its
  // cell changed or was woken): completes it with kOk.
  void (*woken)(PendingWait* self) = nullptr;
  // Called by the loop's destructor after it unregistered a wait that never
  // completed: releases it (its future then reports a broken promise).
  void (*abandoned)(PendingWait* self) = nullptr;
  // Guarded by the set's mutex.
  PendingWait* set_prev = nullptr;
  PendingWait* set_next = nullptr;
  bool in_set = false;
};

class AsyncWaitSet {
 public:
  AsyncWaitSet() = default;
  AsyncWaitSet(const AsyncWaitSet&) = delete;
  AsyncWaitSet& operator=(const AsyncWaitSet&) = delete;
  ~AsyncWaitSet();  // abandons the waits still tracked

  void Track(PendingWait* wait);
  void Untrack(PendingWait* wait);  // a no-op for a wait no longer tracked

  // Before the loop sleeps: the watched cells (at most out.size()).
  int ArmSleep(std::span<FutexWaitEntry> out);
  // After it: completes what the sleep's end revealed (see above). `woken`:
  // the index among the armed entries of the one whose wake ended the
  // sleep, or -1.
  void DisarmSleep(int woken);

 private:
  struct List {
    PendingWait* head = nullptr;
    PendingWait* tail = nullptr;
  };
  static void Append(List& list, PendingWait* w);
  static void Remove(List& list, PendingWait* w);

  Mutex mu_;
  List watched_;  // guarded: shared scope, registration order
  List local_;    // guarded: private scope (only tracked for abandonment)
  std::vector<const void*> armed_;  // loop thread: the cells of the last ArmSleep
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_ASYNC_WAIT_SET_H_
