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
// Thread-safety: every method may be called concurrently by the participants;
// each arrives at most once per phase (as std::barrier). Memory ordering:
// everything a participant did before arriving in a phase is visible to every
// participant after its wait for that phase returned, and to the completion
// callable.
//
// Blocking: ArriveAndWait, arrive_and_wait, wait and WaitUntil/WaitFor block
// until the phase completes, and are interruption points (sync/interrupt.h):
// an interrupted participant throws wharf::Interrupted after its arrival was
// counted — the phase completes without it waiting (as after a WaitUntil
// deadline), and it must not arrive again in that phase. The last arriver
// never waits, so a completion is never interrupted. arrive and ArriveAndDrop
// never block; an arrival is one atomic RMW.
//
// Errors: arriving more times than the phase has participants left, or at a
// barrier with no participants (count 0, or all dropped), aborts with a
// message. Process death: a participant that dies before arriving stalls the
// phase forever; use WaitUntil() where participants may die. It is trivially
// destructible. Protocol and costs: barrier.cc.

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

  // state_: participants and arrivals still expected; phase_: the phase
  // number and kWaitersBit, the futex word. Protocol: barrier.cc.
  std::atomic<uint64_t> state_;
  mutable std::atomic<uint32_t> phase_{0};
};

static_assert(sizeof(Barrier) == 16 && alignof(Barrier) == 8);
static_assert(std::is_trivially_destructible_v<Barrier>);

}  // namespace wharf

#endif  // WHARF_SYNC_BARRIER_H_
