// ReceivingEnd: what a dispatcher source's owner keeps per receiving end —
// the loop it is started on, the reference that loop holds on the owner's
// shared state, the handler, and the loop ref (Node's rule) — written once
// for MessagePort's endpoint and BroadcastChannel's member.
//
// The handler is kept in a shared_ptr and the owner reference is held while
// started so that the dispatcher needs no reference per delivery: whatever
// the owner lets go of on the loop's thread during a delivery — its replaced
// handler, or the owner reference when the handler closes, transfers or
// destroys its own port — the loop keeps until the callback has returned
// (LoopAccess::Defer).
//
// Thread-safety: the owner's thread (the loop's, once started).

#ifndef WHARF_RUNTIME_INTERNAL_RECEIVING_END_H_
#define WHARF_RUNTIME_INTERNAL_RECEIVING_END_H_

#include <functional>
#include <memory>
#include <utility>

#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/internal/loop_access.h"
#include "wharf/runtime/internal/loop_source.h"
#include "wharf/runtime/value.h"

namespace wharf::runtime_internal {

class ReceivingEnd {
 public:
  using Handler = std::function<void(Value)>;

  EventLoop* loop() const { return loop_; }
  bool has_handler() const { return handler_ != nullptr; }
  // Runs the handler (needs has_handler()). Touches nothing of *this after
  // the handler returns.
  void Deliver(Value v) { (*handler_)(std::move(v)); }

  // Starts `source` on `loop`, holding `owner` alive until Stop().
  void Start(EventLoop& loop, LoopSource* source, std::shared_ptr<void> owner) {
    loop_ = &loop;
    owner_ = std::move(owner);
    LoopAccess::AddSource(loop, source);
  }
  // Leaves the loop: no more deliveries, no ref; the owner reference goes to
  // the loop (it may be the last: the owner dies after the callback). A no-op
  // when not started.
  void Stop(LoopSource* source) {
    if (loop_ == nullptr) return;
    EventLoop& loop = *loop_;
    LoopAccess::RemoveSource(loop, source);
    loop_ = nullptr;
    ref_.Reset();
    LoopAccess::Defer(loop, std::move(owner_));
  }
  // The loop is being destroyed: forget it (no ref to release on it). The
  // owner reference is dropped last — it may destroy what holds *this.
  void LoopGone() {
    loop_ = nullptr;
    ref_.Abandon();
    std::shared_ptr<void> dropped = std::move(owner_);
  }

  // Replaces the handler; the old one survives a delivery in progress.
  void SetHandler(Handler handler) {
    if (handler_ != nullptr && loop_ != nullptr && EventLoop::Current() == loop_) {
      LoopAccess::Defer(*loop_, std::move(handler_));
    }
    handler_ = handler ? std::make_shared<Handler>(std::move(handler)) : nullptr;
  }

  // Node's ref rule: the loop is held while started with a handler, wanted,
  // and `active` (not closed).
  void SetWantRef(bool want) { want_ref_ = want; }
  void UpdateRef(bool active) {
    if (loop_ != nullptr && handler_ != nullptr && want_ref_ && active) {
      if (ref_.loop() == nullptr) ref_ = EventLoop::RefHandle(*loop_);
    } else {
      ref_.Reset();
    }
  }
  bool HasRef() const { return ref_.loop() != nullptr; }

 private:
  EventLoop* loop_ = nullptr;  // started on it (null: not started)
  std::shared_ptr<void> owner_;  // while started
  std::shared_ptr<Handler> handler_;
  EventLoop::RefHandle ref_;
  bool want_ref_ = true;
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_RECEIVING_END_H_
