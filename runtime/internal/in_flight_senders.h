// InFlightSenders: which queue each thread is in the middle of sending to, so
// that a port's receiver can tell "closed, and no send can still land" without
// senders paying an atomic read-modify-write per message.
//
// Protocol (with a closing flag on the queue and the asymmetric fences of
// asymmetric_fence.h):
//   Sender:   Enter(q)   — record.store(q, relaxed); LightFence()
//             load q's closing flag (relaxed); if set: Leave() and fail
//             enqueue; Leave() — record.store(nullptr, release)
//   Closer:   set closing; HeavyFence(); then publish "closed" (release)
//   Receiver: after loading "closed" (acquire), AnyIn(q) — acquire loads of
//             every record — and then looks at the queue.
// The Enter/LightFence/load-closing sequence and the closer's
// set-closing/HeavyFence form a Dekker pair: a sender that did not see
// closing has its record visible to everyone who saw "closed". A receiver that
// then finds no record naming q synchronises with each Leave (release/acquire),
// so every enqueue done before it is visible: the queue's size is final.
//
// Records are per thread, allocated on a thread's first send, recycled when it
// exits, never freed (they are 64 bytes each; a process holds as many as it
// ever had threads sending at once). AnyIn walks them all: it is for the rare
// close path, not for every message.
//
// Thread-safety: Enter/Leave on the calling thread's own record; AnyIn from
// any thread. A thread is inside at most one send at a time (Enter twice
// without Leave is a bug).

#ifndef WHARF_RUNTIME_INTERNAL_IN_FLIGHT_SENDERS_H_
#define WHARF_RUNTIME_INTERNAL_IN_FLIGHT_SENDERS_H_

#include <atomic>
#include <cstdint>

#include "wharf/sync/internal/asymmetric_fence.h"

namespace wharf::runtime_internal {

using sync_internal::HeavyFence;
using sync_internal::LightFence;

class InFlightSenders {
 public:
  struct alignas(64) Record {
    std::atomic<const void*> target{nullptr};
    // Windows entered so far (written by the owning thread only): tells a
    // waiter that a thread it saw inside has left, even if it entered again.
    std::atomic<uint32_t> entries{0};
    std::atomic<bool> in_use{false};
    Record* next = nullptr;  // immutable once published
  };

  // Marks the calling thread as sending to `queue` and orders that mark
  // before the caller's next load (light side of the Dekker pair).
  static void Enter(const void* queue) {
    Record* r = Mine();
    r->target.store(queue, std::memory_order_relaxed);
    r->entries.store(r->entries.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    LightFence();
  }
  static void Leave() { Mine()->target.store(nullptr, std::memory_order_release); }

  // True when some thread is between Enter(queue) and Leave().
  static bool AnyIn(const void* queue);

  // Waits until every thread that is between Enter(queue) and Leave() now
  // has left that window (threads that enter later are not waited for: after
  // the caller's HeavyFence they see what the caller published). Bounded by
  // the windows already open — unlike waiting for !AnyIn(queue), which under
  // a steady stream of senders might never see an empty instant. Spins, then
  // yields.
  static void WaitForLeavers(const void* queue);

  // Thread exit: gives the record back (called by a thread_local destructor).
  static void Release();

 private:
  static Record* Mine() {
    Record* r = tls_record_;
    return r != nullptr ? r : Acquire();
  }
  static Record* Acquire();
  static thread_local Record* tls_record_;
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_IN_FLIGHT_SENDERS_H_
