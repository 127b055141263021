#include "wharf/runtime/wait_async.h"

#include <memory>
#include <thread>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/clock.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/notification.h"

namespace wharf {
namespace {

// One pending wait. The helper thread owns a reference until it has posted;
// the posted completion owns the last one and joins the helper.
struct Op {
  std::thread helper;
};

// Joins the helper when the completion is run or destroyed unrun. The helper
// has already posted (it made this object), so join() waits at most for it to
// return from its lambda.
class Joiner {
 public:
  explicit Joiner(std::shared_ptr<Op> op) : op_(std::move(op)) {}
  Joiner(Joiner&&) noexcept = default;
  Joiner& operator=(Joiner&&) noexcept = default;
  ~Joiner() {
    if (op_ != nullptr && op_->helper.joinable()) op_->helper.join();
  }

 private:
  std::shared_ptr<Op> op_;
};

template <class T>
Future<WaitResult> WaitAsyncImpl(EventLoop& loop, T& cell, T expected, absl::Duration timeout,
                                 WaitOptions options) {
  if (atomics::Load(cell) != expected) return Future<WaitResult>::Ready(WaitResult::kNotEqual);
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  Promise<WaitResult> promise;
  Future<WaitResult> future = promise.GetFuture();
  auto op = std::make_shared<Op>();
  // `assigned`: the completion reads op->helper (to join it) on the loop's
  // thread, so the helper posts only after the assignment below is done
  // (release/acquire through the Notification, then the loop's Post).
  // `armed`: WaitAsync returns only once the helper is about to sleep, which
  // shrinks the window in which a Notify finds no sleeper to well under a µs.
  auto assigned = std::make_shared<Notification>();
  auto armed = std::make_shared<Notification>();
  op->helper = std::thread([&loop, &cell, expected, deadline, options, op, assigned, armed,
                            ref = loop.MakeRef(), promise = std::move(promise)]() mutable {
    armed->Notify();
    WaitResult r = atomics::WaitUntil(cell, expected, deadline, options);
    // kNotEqual here: the value changed after WaitAsync's own check — a store
    // that raced with the start of the wait. It counts as woken (atomics::Wait
    // does the same), so store-then-notify is never missed.
    if (r == WaitResult::kNotEqual) r = WaitResult::kOk;
    UninterruptibleScope internal_wait;  // (the helper has no scope anyway)
    assigned->WaitForNotification();
    loop.Post([ref = std::move(ref), promise = std::move(promise), r,
               joiner = Joiner(std::move(op))]() mutable { (void)promise.SetValue(r); });
  });
  assigned->Notify();
  {
    // The helper is about to sleep within µs: not an interruption point of
    // the caller (a throw here would drop the running helper's future).
    UninterruptibleScope internal_wait;
    armed->WaitForNotification();
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
