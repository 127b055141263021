#include "wharf/sync/notification.h"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

// Protocol. word_ holds two bits; it only ever gains bits.
//   Notify: fetch_or(kNotified) (release: publishes the notifier's writes).
//           If the old value had kNotified: misuse, abort. If it had
//           kWaiters: FutexWake(all).
//   Wait:   load (acquire); if kNotified, done. Spin read-only. Then CAS
//           0 -> kWaiters (relaxed) to announce, and FutexWait(word_,
//           kWaiters); re-check on every return.
// No wake-up is lost without any seq_cst fence: both sides modify the same
// word with RMWs, so they are totally ordered. If the waiter's CAS came
// first, Notify's fetch_or sees kWaiters and wakes; if Notify came first,
// the CAS fails (the word is kNotified), or the kernel's compare in
// FutexWait sees kNotified|kWaiters != kWaiters and returns at once.
// Memory: release (Notify's fetch_or) / acquire (the waiter's load).
//
// Cost: Notify() with no waiter is one atomic RMW and no syscall; a waiter
// that finds the notification done pays one load. A waiter spins briefly
// (sync_internal::kLockSpins), then announces itself and sleeps on the futex.
// A waiter that dies (or is interrupted) leaves kWaiters set: Notify then
// makes one wake syscall.
//
// Shared-memory layout: one std::atomic<uint32_t>, trivially destructible; an
// all-zero Notification is a fresh, un-notified one.

namespace wharf {

void Notification::Notify() {
  // Release: the notifier's writes happen-before a waiter's acquire load that
  // sees kNotified.
  const uint32_t old = word_.fetch_or(kNotified, std::memory_order_release);
  if (old & kNotified) {
    std::fprintf(stderr,
                 "wharf::Notification::Notify() called more than once (a "
                 "Notification is one-shot)\n");
    std::abort();
  }
  if (old & kWaiters) FutexWake(&word_, INT_MAX, FutexScope::kShared);
}

bool Notification::WaitSlow(absl::Time deadline) const {
  using sync_internal::WaitEnd;
  const WaitEnd end = sync_internal::WaitLoop(
      {.word = &word_, .scope = FutexScope::kShared}, deadline,
      // Spin for a notifier running on another CPU.
      [&] { return HasBeenNotified(); },
      // Announce (CAS 0 -> kWaiters: the RMW pair with Notify's fetch_or) and
      // sleep until the word changes.
      [&]() -> std::optional<uint32_t> {
        for (;;) {
          uint32_t seen = word_.load(std::memory_order_acquire);
          if (seen & kNotified) return std::nullopt;
          if (seen == 0 && !word_.compare_exchange_weak(seen, kWaiters, std::memory_order_relaxed,
                                                         std::memory_order_relaxed)) {
            continue;  // notified meanwhile, or a spurious CAS failure: re-check
          }
          return kWaiters;
        }
      });
  if (end == WaitEnd::kTimedOut) return HasBeenNotified();
  // Interrupted: kWaiters stays set (Notify then makes one wake syscall).
  if (end == WaitEnd::kInterrupted && !HasBeenNotified()) sync_internal::ThrowInterrupted();
  return true;
}

}  // namespace wharf
