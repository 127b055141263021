#include "wharf/runtime/wait_async.h"

#include <atomic>
#include <memory>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "wharf/runtime/internal/async_wait_set.h"
#include "wharf/runtime/internal/loop_access.h"
#include "wharf/sync/internal/async_waiters.h"

namespace wharf {
namespace {

using runtime_internal::LoopAccess;
using sync_internal::AsyncWaiters;

// One pending wait. It is registered in the process's AsyncWaiters table and
// tracked by its loop's AsyncWaitSet; whoever unregisters it — a Notify
// (`notified`), the loop's own futex wake (`woken`), its timer, or WaitAsync's
// own re-check — completes it, so it completes exactly once. While
// registered it owns itself (`self`); the completer takes that reference.
struct WaitOp : runtime_internal::PendingWait {
  static constexpr uint64_t kCleared = ~uint64_t{0};

  EventLoop* loop = nullptr;
  Promise<WaitResult> promise;
  EventLoop::RefHandle ref;
  // The timeout's timer id: 0 until set, kCleared once the completion ran
  // (the completion and WaitAsync each exchange it: exactly one clears).
  std::atomic<uint64_t> timer{0};
  std::shared_ptr<WaitOp> self;
};

// Loop thread.
void Complete(const std::shared_ptr<WaitOp>& op, WaitResult result) {
  LoopAccess::AsyncWaits(*op->loop).Untrack(op.get());
  const uint64_t timer = op->timer.exchange(WaitOp::kCleared, std::memory_order_acq_rel);
  if (timer != 0) op->loop->ClearTimer(TimerId{timer});
  (void)op->promise.SetValue(result);
  op->ref.Reset();
}

void PostOk(WaitOp* op) {
  std::shared_ptr<WaitOp> self = std::move(op->self);
  op->loop->Post([self = std::move(self)] { Complete(self, WaitResult::kOk); });
}

template <class T>
Future<WaitResult> WaitAsyncImpl(EventLoop& loop, T& cell, T expected, absl::Duration timeout,
                                 WaitOptions options) {
  if (atomics::Load(cell) != expected) return Future<WaitResult>::Ready(WaitResult::kNotEqual);
  if (timeout <= absl::ZeroDuration()) return Future<WaitResult>::Ready(WaitResult::kTimedOut);
  auto op = std::make_shared<WaitOp>();
  op->loop = &loop;
  op->ref = loop.MakeRef();
  op->cell = &cell;
  op->watch = options.scope == FutexScope::kShared;
  op->wide = sizeof(T) == 8;
  op->expected = static_cast<uint64_t>(expected);
  // A notify took it (under the registry's bucket lock, any thread: post,
  // nothing more), or the loop's sleep saw its cell woken or changed.
  op->notified = [](sync_internal::AsyncWaiter* w) { PostOk(static_cast<WaitOp*>(w)); };
  op->woken = [](runtime_internal::PendingWait* w) { PostOk(static_cast<WaitOp*>(w)); };
  // The loop is being destroyed with the wait pending: the promise breaks.
  op->abandoned = [](runtime_internal::PendingWait* w) {
    std::shared_ptr<WaitOp> self = std::move(static_cast<WaitOp*>(w)->self);
    self->ref.Reset();
  };
  Future<WaitResult> future = op->promise.GetFuture();
  op->self = op;
  LoopAccess::AsyncWaits(loop).Track(op.get());
  AsyncWaiters::Register(op.get());
  // A: the registration's seq_cst RMW, then this re-read (AsyncWaiters'
  // protocol): a store that this read does not see is followed by a Notify
  // that finds the registration.
  if (atomics::Load(cell) != expected) {
    if (AsyncWaiters::Unregister(op.get())) {
      LoopAccess::AsyncWaits(loop).Untrack(op.get());
      op->self.reset();
      op->ref.Reset();
      (void)op->promise.SetValue(WaitResult::kNotEqual);
      return future;
    }
    return future;  // a Notify took it already: it completes with kOk
  }
  if (timeout != absl::InfiniteDuration()) {
    std::weak_ptr<WaitOp> weak = op;
    const TimerId id = loop.SetTimeout(timeout, [weak] {
      std::shared_ptr<WaitOp> w = weak.lock();
      if (w != nullptr && AsyncWaiters::Unregister(w.get())) {
        std::shared_ptr<WaitOp> self = std::move(w->self);
        Complete(self, WaitResult::kTimedOut);
      }
    });
    if (op->timer.exchange(id.value, std::memory_order_acq_rel) == WaitOp::kCleared) {
      loop.ClearTimer(id);  // completed before the timer was set
    }
  }
  return future;
}

}  // namespace

Future<WaitResult> WaitAsync(EventLoop& loop, int32_t& cell, int32_t expected,
                             absl::Duration timeout, WaitOptions options) {
  return WaitAsyncImpl(loop, cell, expected, timeout, options);
}

Future<WaitResult> WaitAsync(EventLoop& loop, int64_t& cell, int64_t expected,
                             absl::Duration timeout, WaitOptions options) {
  return WaitAsyncImpl(loop, cell, expected, timeout, options);
}

}  // namespace wharf
