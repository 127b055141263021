// WaitAsync: JavaScript's Atomics.waitAsync. Waits for an atomics::Notify on
// a cell without blocking the caller; the result arrives on an event loop.
//
//   wharf::EventLoop loop;
//   auto f = wharf::WaitAsync(loop, cells[0], 0, absl::Seconds(5));
//   std::move(f).Then(loop, [](absl::StatusOr<wharf::WaitResult> r) { ... });
//   loop.Run();  // the pending wait keeps the loop alive
//
// Semantics as JS: if the cell does not hold `expected`, the future is ready
// at once with kNotEqual; with a zero timeout it is ready at once with
// kTimedOut (JS's {async: false}). Otherwise the wait is registered before
// WaitAsync returns, and the future completes on `loop`'s thread with kOk
// when an atomics::Notify on the cell takes it (Notify counts it among the
// waiters it woke; async waiters go first, oldest first), or with kTimedOut
// after `timeout`. A store without a notify wakes no one. Each wait completes
// exactly once.
//
// Notifiers in another process (the cell in shared memory, shared scope):
// the loop watches the cell while it sleeps. A store then notify there — the
// JS idiom — always completes the wait: a changed value is seen when the loop
// next sleeps or wakes (also a store without a notify, then: towards waking,
// as atomics::Wait does for a store racing its start; a Notify from this
// process that comes after the loop saw the change then counts 0 for it). A
// notify without a store is seen only while the loop sleeps in the futex.
// Cells only this process touches: pass kPrivate (to Notify too) for exact
// JS counts and no watching. Up to ~120 distinct
// cells per loop are watched (futex_waitv's limit, shared with the loop's
// other sources); beyond that only notifies from this process are seen.
//
// Cost: no thread per wait. WaitAsync is a registration under a per-bucket
// lock (and a loop timer when the timeout is finite); a Notify that finds it
// posts the completion to the loop.
//
// Contract: the cell and the loop must stay valid until the future completes
// (JS keeps the SharedArrayBuffer alive the same way). A pending wait holds a
// ref on the loop; a wait still pending when the loop is destroyed completes
// its future with Aborted (a broken promise).
//
// Thread-safety: may be called from any thread; the completion runs on the
// loop's thread. Memory ordering: the notifier's writes before its Notify are
// visible to code that runs after the future completes with kOk.

#ifndef WHARF_RUNTIME_WAIT_ASYNC_H_
#define WHARF_RUNTIME_WAIT_ASYNC_H_

#include <cstdint>

#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/future.h"
#include "wharf/sync/atomics.h"

namespace wharf {

Future<WaitResult> WaitAsync(EventLoop& loop, int32_t& cell, int32_t expected,
                             absl::Duration timeout = absl::InfiniteDuration(),
                             WaitOptions options = {});
Future<WaitResult> WaitAsync(EventLoop& loop, int64_t& cell, int64_t expected,
                             absl::Duration timeout = absl::InfiniteDuration(),
                             WaitOptions options = {});

}  // namespace wharf

#endif  // WHARF_RUNTIME_WAIT_ASYNC_H_
