// Barrier: a reusable rendezvous for a fixed number of participants — threads
// or processes — in 16 bytes that can live in shared memory.
//
// Each phase completes when every participant has arrived; then all of them
// are released and the barrier resets for the next phase, like std::barrier.
// Shared memory cannot hold a completion function object, so ArriveAndWait()
// tells exactly one participant per phase (the last to arrive) that it is the
// "serial" one, as PTHREAD_BARRIER_SERIAL_THREAD does; or pass a callable to
// ArriveAndWait(completion) to run it in the last participant *before* anyone
// is released (std::barrier's completion step). Use it for lock-step rounds
// of a simulation or a benchmark; use Latch for a one-shot count.
//
// Thread-safety: every method may be called concurrently by the participants.
// Each participant arrives at most once per phase (as std::barrier); arriving
// more times than the phase has participants left aborts with a message.
//
// Memory ordering: everything a participant did before arriving in a phase is
// visible to every participant after its wait for that phase returned, and to
// the completion callable (arrivals are acq_rel RMWs on one word; the last
// arriver publishes the next phase with a release RMW that waiters acquire).
//
// count 0: a barrier with no participants. Arriving at it (or at one whose
// participants all dropped out) is a programming error and aborts.
//
// Process death: a participant that dies before arriving stalls the phase
// forever: everyone else waits. Use WaitUntil() where participants may die.
//
// Interruption: ArriveAndWait, arrive_and_wait, wait and WaitUntil/WaitFor
// are interruption points (sync/interrupt.h). A participant that would sleep
// in the scope of a requested Interrupter throws wharf::Interrupted — after
// its arrival was counted: the phase completes without it waiting (as after
// a WaitUntil deadline), and it must not arrive again in that phase. The
// completion of ArriveAndWait(completion) runs in the last arriver, which
// never waits, so it is never interrupted. arrive and ArriveAndDrop never are.
//
// Cost: an arrival is one atomic RMW; the last arrival makes a futex wake only
// if a participant announced that it sleeps. A waiter spins briefly
// (sync_internal::kLockSpins) before it announces itself and sleeps.
//
// Shared-memory layout: a std::atomic<uint64_t> and a std::atomic<uint32_t>;
// trivially destructible.

#ifndef WHARF_SYNC_BARRIER_H_
#define WHARF_SYNC_BARRIER_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace wharf {

class Barrier {
 public:
  static constexpr uint32_t kMax = 0x7fffffffu;
  static constexpr std::ptrdiff_t max() noexcept { return kMax; }

  // What arrive() returns: which phase the caller arrived in, and whether its
  // arrival completed that phase. Pass it to wait()/WaitUntil().
  class ArrivalToken {
   public:
    // True for exactly one arrival per phase: the one that completed it.
    bool completed_phase() const { return last_; }
    uint32_t phase() const { return phase_ >> 1; }

   private:
    friend class Barrier;
    ArrivalToken(uint32_t phase_word, bool last) : phase_(phase_word), last_(last) {}
    uint32_t phase_;  // the phase word as read before arriving, without kWaitersBit
    bool last_;
  };
  using arrival_token = ArrivalToken;

  // A barrier for `count` participants per phase. count > kMax aborts.
  explicit Barrier(uint32_t count);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // Arrives and blocks until the phase completes. Returns true for exactly
  // one participant per phase (the last to arrive, which does not block).
  bool ArriveAndWait() {
    const ArrivalToken token = arrive();
    if (token.last_) return true;
    wait(token);
    return false;
  }

  // As ArriveAndWait(), but the last participant runs `completion()` before
  // releasing the others, so its effects are visible to all when they return.
  template <class F>
  bool ArriveAndWait(F&& completion) {
    const uint32_t phase = CurrentPhase();
    if (Arrive(1)) {
      std::forward<F>(completion)();
      CompletePhase(phase);
      return true;
    }
    wait(ArrivalToken(phase, false));
    return false;
  }

  // Arrives in the current phase and leaves the barrier: later phases expect
  // one participant fewer. Never blocks.
  void ArriveAndDrop();

  // Arrives n times (n >= 1) without blocking; the token identifies the phase.
  [[nodiscard]] ArrivalToken arrive(std::ptrdiff_t n = 1) {
    const uint32_t phase = CurrentPhase();
    const bool last = Arrive(n);
    if (last) CompletePhase(phase);
    return ArrivalToken(phase, last);
  }

  // Blocks until the token's phase has completed (at once if it has).
  void wait(ArrivalToken token) const { (void)WaitUntil(token, absl::InfiniteFuture()); }

  // Blocks until the token's phase completed (true) or `deadline` (false;
  // the arrival still counts: the phase completes without the caller waiting).
  [[nodiscard]] bool WaitUntil(ArrivalToken token, absl::Time deadline) const {
    if (PhaseDone(token.phase_)) return true;
    return WaitSlow(token.phase_, deadline);
  }
  [[nodiscard]] bool WaitFor(ArrivalToken token, absl::Duration timeout) const {
    return WaitUntil(token, absl::Now() + timeout);
  }

  // std::barrier names.
  void arrive_and_wait() { (void)ArriveAndWait(); }
  void arrive_and_drop() { ArriveAndDrop(); }

  // Snapshots, for tests and diagnostics.
  uint32_t Phase() const { return CurrentPhase() >> 1; }
  uint32_t Participants() const {
    return static_cast<uint32_t>(state_.load(std::memory_order_relaxed) >> 32);
  }

  static constexpr uint32_t kWaitersBit = 1;  // bit 0 of phase_

 private:
  uint32_t CurrentPhase() const {
    return phase_.load(std::memory_order_acquire) & ~kWaitersBit;
  }
  bool PhaseDone(uint32_t phase) const { return CurrentPhase() != phase; }
  // Counts n arrivals (drop: also leaves). True if they completed the phase.
  bool Arrive(std::ptrdiff_t n, bool drop = false);
  // Resets the counter for the next phase and releases the waiters.
  void CompletePhase(uint32_t phase);
  bool WaitSlow(uint32_t phase, absl::Time deadline) const;

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
  std::atomic<uint64_t> state_;
  mutable std::atomic<uint32_t> phase_{0};
};

static_assert(sizeof(Barrier) == 16 && alignof(Barrier) == 8);
static_assert(std::is_trivially_destructible_v<Barrier>);

}  // namespace wharf

#endif  // WHARF_SYNC_BARRIER_H_
