#include "wharf/sync/semaphore.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

// Protocol. word_ = (waiters << 32) | count; the futex is its low half.
//   acquire: CAS count -> count-1 (acquire) while count > 0. Otherwise spin
//            read-only (sync_internal::kLockSpins); then add kOneWaiter
//            (announce) and loop: if count > 0, one CAS takes a permit and
//            removes the announcement together; else FutexWait(low half, 0).
//            At the deadline one CAS removes the announcement, taking a
//            permit if one appeared.
//   release(n): CAS count -> count+n (release), refusing > max_; if the old
//            word showed waiters, FutexWake(low half, min(n, waiters)).
// No lost wake-up without seq_cst: announcing and releasing are RMWs of one
// word. A release after the announce sees the waiter and wakes it; a release
// before it makes the count non-zero, so the kernel's compare against 0 fails
// and FutexWait returns at once. A woken acquirer that loses the permit to a
// barging one sleeps again: the permit was used, not lost. A timed-out (or
// interrupted) acquirer was not counted by the kernel's wake, so it steals no
// wake-up from the other sleepers.
//
// Costs: uncontended acquire and release are one CAS each, no syscall;
// release wakes only when an acquirer has announced that it sleeps.
//
// Process death: a process that dies while blocked in acquire leaves its
// announcement (kOneWaiter) behind: later releases then make one harmless
// futex-wake syscall each. Nothing hangs.
//
// Shared-memory layout: a std::atomic<uint64_t> and a uint32_t written only by
// the constructor; no pointers; trivially destructible.

namespace wharf {
namespace {

[[noreturn]] void SemaphoreFatal(const char* what, long long a, long long b) {
  std::fprintf(stderr, "wharf::Semaphore misuse: %s (%lld, %lld)\n", what, a, b);
  std::abort();
}

}  // namespace

Semaphore::Semaphore(uint32_t initial, uint32_t max) : word_(initial), max_(max) {
  if (max > kLargestMax) SemaphoreFatal("max larger than Semaphore::kLargestMax", max, kLargestMax);
  if (initial > max) SemaphoreFatal("initial count larger than max (initial, max)", initial, max);
}

bool Semaphore::Add(uint32_t n) {
  uint64_t seen = word_.load(std::memory_order_relaxed);
  for (;;) {
    if (static_cast<uint64_t>(CountOf(seen)) + n > max_) return false;
    // Release: the releaser's writes happen-before the acquirer that takes
    // one of these permits.
    if (word_.compare_exchange_weak(seen, seen + n, std::memory_order_release,
                                    std::memory_order_relaxed)) {
      break;
    }
  }
  if (WaitersOf(seen) != 0) {
    FutexWake(&word_, static_cast<int>(std::min(n, WaitersOf(seen))), FutexScope::kShared);
  }
  return true;
}

absl::Status Semaphore::Release(uint32_t n) {
  if (n == 0) return absl::OkStatus();
  if (!Add(n)) {
    return absl::OutOfRangeError(sync_internal::Cat("Semaphore::Release(", n, "): the count ",
                                                    Count(), " would exceed the maximum ", max_));
  }
  return absl::OkStatus();
}

void Semaphore::release(std::ptrdiff_t n) {
  if (n < 0 || n > static_cast<std::ptrdiff_t>(kLargestMax)) {
    SemaphoreFatal("release(n) with n out of [0, kLargestMax]", static_cast<long long>(n),
                   kLargestMax);
  }
  if (n == 0) return;
  if (!Add(static_cast<uint32_t>(n))) {
    SemaphoreFatal("release(n) would raise the count above max (n, max)",
                   static_cast<long long>(n), max_);
  }
}

bool Semaphore::AcquireSlow(absl::Time deadline) {
  using sync_internal::WaitEnd;
  bool announced = false;
  const WaitEnd end = sync_internal::WaitLoop(
      // The futex is the low half of word_ (the count).
      {.word = &word_, .scope = FutexScope::kShared}, deadline,
      // Spin for a releaser running on another CPU.
      [&] { return CountOf(word_.load(std::memory_order_relaxed)) != 0 && try_acquire(); },
      // Announce once (kOneWaiter: the RMW pair with Add), then sleep while
      // the count is zero.
      [&]() -> std::optional<uint32_t> {
        uint64_t seen;
        if (!announced) {
          seen = word_.fetch_add(kOneWaiter, std::memory_order_relaxed) + kOneWaiter;
          announced = true;
        } else {
          seen = word_.load(std::memory_order_relaxed);
        }
        while (CountOf(seen) != 0) {
          // Take a permit and withdraw the announcement in one step.
          if (word_.compare_exchange_weak(seen, seen - kOneWaiter - 1, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
            return std::nullopt;
          }
        }
        return 0;
      });
  switch (end) {
    case WaitEnd::kReady:
    case WaitEnd::kWoken:
      return true;  // took a permit (in the spin, or with the withdrawal)
    case WaitEnd::kTimedOut: {
      // Withdraw; take a permit if one appeared meanwhile.
      uint64_t seen = word_.load(std::memory_order_relaxed);
      for (;;) {
        const bool take = CountOf(seen) != 0;
        if (word_.compare_exchange_weak(seen, seen - kOneWaiter - (take ? 1 : 0),
                                        std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
          return take;
        }
      }
    }
    case WaitEnd::kInterrupted:
      break;
  }
  // Interrupted: withdraw without taking a permit (the count is unchanged),
  // then throw. The kernel did not count us in any wake, so a release racing
  // with this woke another sleeper, or none was asleep.
  word_.fetch_sub(kOneWaiter, std::memory_order_relaxed);
  sync_internal::ThrowInterrupted();
}

}  // namespace wharf
