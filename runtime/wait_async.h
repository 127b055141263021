// WaitAsync: JavaScript's Atomics.waitAsync. Waits for an atomics::Notify on
// a cell without blocking the caller; the result arrives on an event loop.
//
//   wharf::EventLoop loop;
//   auto f = wharf::WaitAsync(loop, cells[0], 0, absl::Seconds(5));
//   std::move(f).Then(loop, [](absl::StatusOr<wharf::WaitResult> r) { ... });
//   loop.Run();  // the pending wait keeps the loop alive
//
// Semantics as atomics::Wait: if the cell does not hold `expected`, the
// returned future is ready at once with kNotEqual (synchronously, as JS's
// {async: false, value: "not-equal"}). Otherwise the future completes on the
// loop's thread (posted to `loop`) with kOk when an atomics::Notify on the
// cell (with the same FutexScope, shared by default) wakes the wait, or with
// kTimedOut after `timeout`. Same deviations as atomics::Wait: a store racing
// with the start of the wait, or a signal, end it with kOk.
//
// Deviation from JS (the cost of a helper thread): JS registers the waiter
// before waitAsync returns. Here WaitAsync returns when its helper is about to
// enter the futex; a Notify *without a store to the cell* issued in the
// sub-µs gap before the helper sleeps finds no waiter and is lost (Notify
// returns 0, so a notifier can tell and retry). The JS idiom — store, then
// notify — is never lost: the helper re-reads the cell and a changed value
// completes the wait with kOk.
//
// Implementation: one helper thread per pending wait, blocked in
// atomics::WaitUntil on the cell. A single process-wide waiter thread cannot
// sleep on several cells at once through sync/ (that needs futex_waitv, which
// sync/ does not expose), and polling would lose notifies. Cost: a thread
// start (~20-50 µs, during which WaitAsync blocks its caller) and its stack
// per pending wait — fine for the occasional
// waitAsync of an actor; code waiting on thousands of cells should use ports.
// The helper holds a ref on the loop (Run() does not return before the
// completion), posts the completion, and is joined on the loop's thread when
// the completion runs (or when the loop destroys it unrun): no detached
// thread outlives its wait.
//
// Contract: the cell and the loop must stay valid until the future completes
// (JS keeps the SharedArrayBuffer alive the same way). A wait with an infinite
// timeout that is never notified keeps its loop alive and its helper asleep.
//
// Thread-safety: may be called from any thread; the continuation runs on
// `loop`'s thread. Memory ordering: the notifier's writes before its Notify
// are visible to code that runs after the future completes with kOk (the
// cell's seq_cst accesses and the loop's Post order them).

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
