// Internal: what the runtime's own pieces (ports, channels, workers,
// WaitAsync) may do with an EventLoop beyond its public API — register
// dispatcher sources and ring its doorbell. See loop_source.h.

#ifndef WHARF_RUNTIME_INTERNAL_LOOP_ACCESS_H_
#define WHARF_RUNTIME_INTERNAL_LOOP_ACCESS_H_

#include <memory>
#include <utility>

#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/internal/loop_source.h"
#include "wharf/sync/internal/event_count.h"

namespace wharf::runtime_internal {

struct LoopAccess {
  // Loop thread only.
  static void AddSource(EventLoop& loop, LoopSource* source) { loop.AddSource(source); }
  static void RemoveSource(EventLoop& loop, LoopSource* source) { loop.RemoveSource(source); }
  // The loop's doorbell: a producer in this process that made a source of
  // `loop` pending calls Doorbell(loop).Notify() (one load when the loop is
  // awake; a futex wake when it sleeps). Any thread, while the loop lives.
  static sync_internal::EventCount& Doorbell(EventLoop& loop) { return loop.wake_; }
  // Loop thread: keeps `doomed` (a core or a handler a source let go of)
  // alive until the callback in progress returns, so that a source may
  // release itself from inside its own delivery without the dispatcher
  // taking a reference per message.
  static void Defer(EventLoop& loop, std::shared_ptr<void> doomed) {
    loop.Defer(std::move(doomed));
  }
  // The loop's pending WaitAsyncs. Any thread (the set is thread-safe).
  static AsyncWaitSet& AsyncWaits(EventLoop& loop);
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_LOOP_ACCESS_H_
