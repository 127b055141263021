#include "wharf/sync/latch.h"

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/interrupt.h"

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
  // Phase 1: bounded read-only spin, for the last counter running elsewhere.
  for (int i = 0; i < sync_internal::kLockSpins; ++i) {
    sync_internal::CpuRelax();
    if (try_wait()) return true;
  }
  // Phase 2: announce (kWaitersBit) and sleep while the word is unchanged.
  for (;;) {
    uint32_t seen = word_.load(std::memory_order_acquire);
    if ((seen & kCountMask) == 0) return true;
    if ((seen & kWaitersBit) == 0) {
      if (!word_.compare_exchange_weak(seen, seen | kWaitersBit, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
        continue;
      }
      seen |= kWaitersBit;
    }
    const FutexWaitResult r =
        sync_internal::InterruptibleFutexWait(&word_, seen, FutexScope::kShared, deadline);
    if (r == FutexWaitResult::kTimedOut) return try_wait();
    // Interrupted: kWaitersBit may stay set until the count reaches zero,
    // which then makes one wake syscall (as a timed-out waiter leaves it).
    if (r == FutexWaitResult::kInterrupted) {
      if (try_wait()) return true;
      sync_internal::ThrowInterrupted();
    }
  }
}

}  // namespace wharf
