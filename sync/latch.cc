#include "wharf/sync/latch.h"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

// Protocol. word_ = kWaitersBit | remaining count.
//   count_down(n): CAS loop old -> old - n (release), refusing n > count.
//           The CAS that reaches zero also clears kWaitersBit, and if the
//           old word had it, FutexWake(all).
//   wait:   acquire-load; count 0 -> done. Spin read-only. Then CAS in
//           kWaitersBit (relaxed) and FutexWait(word_, count|kWaitersBit);
//           re-check after every return.
// No lost wake-up without a seq_cst fence: the announcing CAS and the
// count_down CAS are RMWs of one word, so they are totally ordered. A
// count_down after the announce sees the bit and wakes; one before it makes
// the waiter's expected value stale, so the kernel's compare fails and
// FutexWait returns at once.
// Memory: each count_down is a release RMW, and the releases of all
// count_downs form one release sequence that the waiter's acquire load of
// zero reads from.
//
// Cost: count_down() is one CAS and makes a syscall only when it reaches zero
// with a sleeper announced. A waiter spins briefly (sync_internal::kLockSpins)
// before it announces itself and sleeps on the futex. A dying waiter costs
// nothing; an interrupted one may leave kWaitersBit set (one wake syscall when
// the count reaches zero).
//
// Shared-memory layout: one std::atomic<uint32_t>; trivially destructible.

namespace wharf {
namespace {

[[noreturn]] void LatchFatal(const char* what, long long a, long long b) {
  std::fprintf(stderr, "wharf::Latch misuse: %s (%lld, %lld)\n", what, a, b);
  std::abort();
}

}  // namespace

Latch::Latch(uint32_t count) : word_(count) {
  if (count > kMax) LatchFatal("initial count larger than Latch::kMax", count, kMax);
}

void Latch::count_down(std::ptrdiff_t n) {
  uint32_t seen = word_.load(std::memory_order_relaxed);
  for (;;) {
    const uint32_t count = seen & kCountMask;
    if (n < 0 || static_cast<uint64_t>(n) > count) {
      LatchFatal("count_down(n) with n negative or greater than the remaining count "
                 "(n, remaining)",
                 static_cast<long long>(n), count);
    }
    if (n == 0) return;
    const uint32_t left = count - static_cast<uint32_t>(n);
    // Reaching zero clears kWaitersBit: nobody sleeps on an open latch.
    const uint32_t next = left == 0 ? 0 : (seen & kWaitersBit) | left;
    // Release: this counter's writes happen-before a waiter that sees zero.
    if (word_.compare_exchange_weak(seen, next, std::memory_order_release,
                                    std::memory_order_relaxed)) {
      if (left == 0 && (seen & kWaitersBit)) FutexWake(&word_, INT_MAX, FutexScope::kShared);
      return;
    }
  }
}

bool Latch::WaitSlow(absl::Time deadline) const {
  using sync_internal::WaitEnd;
  const WaitEnd end = sync_internal::WaitLoop(
      {.word = &word_, .scope = FutexScope::kShared}, deadline,
      // Spin for the last counter running elsewhere.
      [&] { return try_wait(); },
      // Announce (kWaitersBit, by CAS: the RMW pair with count_down), then
      // sleep while the word is unchanged.
      [&]() -> std::optional<uint32_t> {
        for (;;) {
          uint32_t seen = word_.load(std::memory_order_acquire);
          if ((seen & kCountMask) == 0) return std::nullopt;
          if (seen & kWaitersBit) return seen;
          if (word_.compare_exchange_weak(seen, seen | kWaitersBit, std::memory_order_relaxed,
                                          std::memory_order_relaxed)) {
            return seen | kWaitersBit;
          }
        }
      });
  if (end == WaitEnd::kTimedOut) return try_wait();
  // Interrupted: kWaitersBit may stay set until the count reaches zero, which
  // then makes one wake syscall (as a timed-out waiter leaves it).
  if (end == WaitEnd::kInterrupted && !try_wait()) sync_internal::ThrowInterrupted();
  return true;
}

}  // namespace wharf
