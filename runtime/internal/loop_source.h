// LoopSource: something an EventLoop delivers from — a port's incoming
// messages, a BroadcastChannel's queue, a worker's end — and the one place
// that runs handlers on a loop (the dispatcher, EventLoop::RunSources).
//
// A source is registered with one loop (EventLoop::AddSource) by its owner on
// the loop's thread and unregistered (RemoveSource) before it dies or moves to
// another loop. Each pass, the loop asks every registered source whether it is
// Pending() and, if so, calls Deliver() until it returns false or the pass's
// budget (kDeliverBatch deliveries per source) is spent; then it moves on to
// its other work (closures, timers, other sources) and comes back. So no
// source needs to schedule or reschedule itself, and a handler that throws
// leaves the rest of its burst in the source for the next pass.
//
// Waking a sleeping loop is the producers' business, not the dispatcher's:
// producers in this process ring the loop's own doorbell
// (runtime_internal::LoopAccess::Doorbell(loop).Notify(), an EventCount whose
// Notify costs one load when the loop is awake); a source whose producers are
// in other processes adds its shared-memory futex word to the loop's sleep in
// ArmSleep (futex_waitv waits on all of them at once).
//
// Thread-safety: every method is called on the loop's thread. Deliver runs
// user handlers: it may add or remove sources (this one included: a handler
// may close, transfer or destroy its own port), so after Deliver returns the
// loop touches the source again only if it is still registered.

#ifndef WHARF_RUNTIME_INTERNAL_LOOP_SOURCE_H_
#define WHARF_RUNTIME_INTERNAL_LOOP_SOURCE_H_

#include <span>

#include "wharf/sync/futex.h"

namespace wharf::runtime_internal {

class LoopSource {
 public:
  // Deliveries per source per loop pass before the loop turns to its other
  // work (posted closures, timers, other sources).
  static constexpr int kDeliverBatch = 1024;

  // Whether Deliver() would do something now. Cheap: polled while the loop
  // spins before sleeping.
  virtual bool Pending() = 0;
  // Delivers one item (a message to its handler, or a final event such as
  // close); false if there was nothing to deliver. May throw (a handler's
  // exception), leaving the source consistent.
  virtual bool Deliver() = 0;
  // Before the loop sleeps: appends the futex words (and the values to sleep
  // on) whose change or wake must wake the loop, to at most out.size()
  // entries, and returns how many it appended. Sources whose producers ring
  // the loop's own doorbell append none (the default).
  virtual int ArmSleep(std::span<FutexWaitEntry> out) { return 0; }
  // After the sleep that followed an ArmSleep that appended entries (also
  // when the sleep was cancelled):
  // withdraws what ArmSleep announced. `woken`: the index, among the entries
  // this source appended, of the one whose wake ended the sleep, or -1.
  virtual void DisarmSleep(int woken) {}
  // The loop is being destroyed with this source still registered (its
  // owner broke the "destroy before the loop" rule): forget the loop — no
  // doorbell, no ref, no pointer to it — so that later calls are safe.
  virtual void LoopGone() {}

 protected:
  ~LoopSource() = default;
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_LOOP_SOURCE_H_
