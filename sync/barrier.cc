#include "wharf/sync/barrier.h"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

// Protocol.
//   state_ = (participants of the next phases << 32) | arrivals still
//            expected in this phase. Arrivals fetch_sub (acq_rel) from the
//            low half; ArriveAndDrop also from the high half, in the same
//            RMW. The RMW that takes the low half to 0 makes its caller the
//            last arriver, which alone writes state_ next: it stores
//            (p << 32) | p for the next phase's p participants. No one can
//            touch state_ meanwhile: every participant of this phase has
//            arrived, and none arrives again before the phase advances.
//   phase_ = (phase number << 1) | kWaitersBit. Only the last arriver
//            advances it, by exchange (release) to the next number with the
//            bit clear, after the state_ reset; if the old value had the
//            bit, FutexWake(all). A waiter reads the phase before it arrives
//            (its own arrival is needed for the phase to end, so the phase
//            it reads is the one it arrives in), then waits while phase_
//            still holds that number: spin, CAS the bit in (relaxed), and
//            FutexWait(phase_, phase | kWaitersBit).
// No lost wake-up without seq_cst: setting the bit and advancing the phase
// are RMWs of one word; an advance after the CAS sees the bit, one before
// it fails the CAS or the kernel's compare.
// Memory: a participant's writes -> its acq_rel fetch_sub -> (release
// sequence) the last arriver's acq_rel fetch_sub -> its release exchange of
// phase_ -> the waiter's acquire load of phase_.
//
// Cost: an arrival is one atomic RMW; the last arrival makes a futex wake only
// if a participant announced that it sleeps. A waiter spins briefly
// (sync_internal::kLockSpins) before it announces itself and sleeps.
// Interruption: an interrupted waiter's kWaitersBit may cost the last arriver
// one wake syscall.
//
// Shared-memory layout: a std::atomic<uint64_t> and a std::atomic<uint32_t>;
// trivially destructible.

namespace wharf {
namespace {

[[noreturn]] void BarrierFatal(const char* what, long long a, long long b) {
  std::fprintf(stderr, "wharf::Barrier misuse: %s (%lld, %lld)\n", what, a, b);
  std::abort();
}

constexpr uint64_t kLowMask = 0xffffffffu;

}  // namespace

Barrier::Barrier(uint32_t count) : state_((uint64_t{count} << 32) | count) {
  if (count > kMax) BarrierFatal("participant count larger than Barrier::kMax", count, kMax);
}

bool Barrier::Arrive(std::ptrdiff_t n, bool drop) {
  if (n < 1 || n > static_cast<std::ptrdiff_t>(kMax)) {
    BarrierFatal("arrive(n) with n < 1 or n > kMax", static_cast<long long>(n), kMax);
  }
  const uint64_t delta = static_cast<uint64_t>(n) + (drop ? uint64_t{1} << 32 : 0);
  // acq_rel: release publishes this participant's writes; the acquire half
  // matters to the last arriver, which runs the completion step and then
  // releases everyone (see the protocol comment).
  const uint64_t old = state_.fetch_sub(delta, std::memory_order_acq_rel);
  const uint32_t expected = static_cast<uint32_t>(old & kLowMask);
  if (static_cast<uint64_t>(n) > expected) {
    BarrierFatal(expected == 0 && (old >> 32) == 0
                     ? "arrival at a barrier with no participants (count 0, or all dropped)"
                     : "more arrivals than participants left in this phase (n, left)",
                 static_cast<long long>(n), expected);
  }
  return static_cast<uint64_t>(n) == expected;
}

void Barrier::CompletePhase(uint32_t phase) {
  // Only the last arriver runs this: nobody else touches state_ until the
  // phase advances below.
  const uint64_t participants = state_.load(std::memory_order_relaxed) >> 32;
  state_.store((participants << 32) | participants, std::memory_order_relaxed);
  // Release: the reset above and everything the arrivals published (acquired
  // by our fetch_sub) happen-before a waiter's acquire load of the new phase.
  const uint32_t old = phase_.exchange(phase + 2, std::memory_order_acq_rel);
  if (old & kWaitersBit) FutexWake(&phase_, INT_MAX, FutexScope::kShared);
}

void Barrier::ArriveAndDrop() {
  const uint32_t phase = CurrentPhase();
  if (Arrive(1, /*drop=*/true)) CompletePhase(phase);
}

bool Barrier::WaitSlow(uint32_t phase, absl::Time deadline) const {
  using sync_internal::WaitEnd;
  const uint32_t sleeping = phase | kWaitersBit;
  const WaitEnd end = sync_internal::WaitLoop(
      {.word = &phase_, .scope = FutexScope::kShared}, deadline,
      // Spin for the last arriver running elsewhere.
      [&] { return PhaseDone(phase); },
      // Announce (CAS kWaitersBit in: the RMW pair with CompletePhase's
      // exchange) and sleep while phase_ is unchanged.
      [&]() -> std::optional<uint32_t> {
        for (;;) {
          uint32_t seen = phase_.load(std::memory_order_acquire);
          if ((seen & ~kWaitersBit) != phase) return std::nullopt;
          if (seen == sleeping ||
              phase_.compare_exchange_weak(seen, sleeping, std::memory_order_relaxed,
                                           std::memory_order_relaxed)) {
            return sleeping;
          }
        }
      });
  if (end == WaitEnd::kTimedOut) return PhaseDone(phase);
  // Interrupted: as a timed-out waiter, the arrival still counts and
  // kWaitersBit may cost the last arriver one wake syscall.
  if (end == WaitEnd::kInterrupted && !PhaseDone(phase)) sync_internal::ThrowInterrupted();
  return true;
}

}  // namespace wharf
