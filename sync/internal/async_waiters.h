// Internal: the process's registry of asynchronous waiters on atomic cells —
// what JavaScript engines keep for Atomics.waitAsync — consulted by
// atomics::Notify, so that a notify completes an async waiter directly,
// without a thread blocked in the futex on its behalf.
//
// A waiter is registered under its cell's address (hashed into one of 256
// buckets, each with its own lock and an intrusive FIFO list). Notify(cell, n)
// takes up to n waiters of that cell, in registration order, and calls their
// `notified` hook under the bucket's lock; whoever unlinks a waiter — Notify,
// or its owner's Unregister (timeout, cancellation) — is the one that
// completes it, so each waiter completes exactly once.
//
// Protocol (the Dekker pair that keeps a notify from being lost):
//   waiter   A: Register — link, then bucket.count.fetch_add(1) (seq_cst),
//              unlock; then the caller re-reads the cell (seq_cst) and, if it
//              no longer holds the expected value, Unregisters and reports
//              "not equal".
//   notifier B: (the user's store to the cell); a seq_cst fence (in
//              atomics::Notify); bucket.count.load(); 0: nothing to do.
// A matches B: either the notifier sees the count and takes the bucket lock
// (finding the waiter), or the waiter's re-read sees the store.
//
// Cost: Notify on a cell whose bucket has no async waiter is one load (after
// the fence atomics::Notify makes anyway). Only waiters of this process are
// here: a notifier in another process wakes an async waiter through the
// futex its event loop arms while it sleeps (runtime/event_loop.cc).
//
// Thread-safety: all functions may be called from any thread. The `notified`
// hook runs under the bucket lock: it must not block or call back into this
// registry (posting to an event loop is what it is for).

#ifndef WHARF_SYNC_INTERNAL_ASYNC_WAITERS_H_
#define WHARF_SYNC_INTERNAL_ASYNC_WAITERS_H_

#include <atomic>
#include <cstdint>

namespace wharf::sync_internal {

inline constexpr int kAsyncWaiterBuckets = 256;

// Per bucket: the number of registered waiters (written under the bucket's
// lock, read by Notify without it).
struct alignas(64) AsyncWaiterCount {
  std::atomic<uint32_t> count{0};
};
inline AsyncWaiterCount async_waiter_counts[kAsyncWaiterBuckets];

inline int AsyncWaiterBucket(const void* cell) {
  auto a = reinterpret_cast<uintptr_t>(cell);
  a ^= a >> 17;
  return static_cast<int>((a >> 3) % kAsyncWaiterBuckets);
}

struct AsyncWaiter {
  const void* cell = nullptr;                   // set before Register
  void (*notified)(AsyncWaiter* self) = nullptr;  // set before Register
  // Guarded by the bucket's lock.
  AsyncWaiter* prev = nullptr;
  AsyncWaiter* next = nullptr;
  bool linked = false;
};

class AsyncWaiters {
 public:
  // Links `w` at the end of its cell's list. The caller then re-reads the
  // cell (see the protocol above).
  static void Register(AsyncWaiter* w);
  // Unlinks `w` if it is still linked and returns true: the caller now
  // completes it. False: a Notify took it (its hook has run).
  static bool Unregister(AsyncWaiter* w);
  // Takes up to `count` (> 0) waiters of `cell`, oldest first, running each
  // one's hook; returns how many. The caller made the seq_cst fence B.
  static int Notify(const void* cell, int count) {
    if (async_waiter_counts[AsyncWaiterBucket(cell)].count.load(std::memory_order_relaxed) == 0) {
      return 0;
    }
    return NotifySlow(cell, count);
  }
  // For tests: registered waiters on `cell`.
  static int CountForTesting(const void* cell);

 private:
  static int NotifySlow(const void* cell, int count);
};

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_ASYNC_WAITERS_H_
