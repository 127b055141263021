// Internal: the wait loop — spin, announce, futex-wait, report — that every
// blocking primitive of sync/ runs, written once (as folly's detail/Spin.h and
// WaitOptions are) so that no primitive writes it again.
//
//   const WaitEnd end = WaitLoop(
//       {.word = &word_, .scope = FutexScope::kShared}, deadline,
//       /*ready=*/[&] { return Done(word_.load(std::memory_order_acquire)); },
//       /*announce=*/[&]() -> std::optional<uint32_t> {
//         // re-check; set the waiters bit (CAS); return the value to sleep on,
//         // or std::nullopt when the condition holds after all
//       });
//   switch (end) { ... }  // kTimedOut / kInterrupted: clean up as today, then
//                         // ThrowInterrupted() for kInterrupted
//
// The loop, step by step:
//   1. Spin, read-only: `spin_pauses` pauses (count-based, the locks), or for
//      `spin_for` reading the clock every 64 pauses (duration-based,
//      atomics::WaitOptions::spin); ready() after each pause. True: kReady.
//   2. Announce: announce() re-checks the primitive's condition and, if it
//      must still wait, makes itself visible to the waker (sets a waiters bit
//      by CAS, bumps a waiter count, ...) and returns the futex value to sleep
//      on (uint32_t: FutexWait on `word`; uint64_t: FutexWait64). std::nullopt
//      ends the wait with kReady: the condition held, or the primitive gave up
//      for a reason of its own — it records the outcome in its own variables.
//   3. Sleep on `word` until `deadline` — or, with `check_periods`, until the
//      end of the current check period (kFirstCheckPeriod, doubling up to
//      kMaxCheckPeriod) if that comes first. Interruptible (sync/interrupt.h)
//      when `interruptible`.
//   4. Report:
//        woken, a signal, or the word changed -> back to 2 (`single_sleep`:
//            return kWoken; for a condition variable or Atomics.wait, whose
//            callers re-check);
//        a check period passed -> on_period() (the robust locks' owner
//            liveness check): true ends the wait with kReady; else back to 2;
//        the deadline passed -> kTimedOut (`recheck_at_deadline`: announce()
//            runs once more first, and kReady if it returns std::nullopt);
//        the Interrupter was requested -> kInterrupted. No FutexWake was
//            consumed (sync/futex.h), so the primitive withdraws its
//            announcement exactly as at a timeout and throws
//            wharf::Interrupted with ThrowInterrupted().
//
// Protocol: the loop itself holds no shared state. What makes a wait lose no
// wake-up is the primitive's announce/wake pair — stated, with its memory
// orders labelled, beside each primitive's call of WaitLoop — plus the
// kernel's compare of `word` with the announced value, which closes the window
// between announce() and the sleep: a waker that changes the word after the
// announce makes the sleep return at once (kNotEqual) or finds the sleeper.
//
// Cost: nothing on a primitive's fast path (the loop runs only in the slow
// paths, after the inline attempt failed); one clock read per sleep with
// `check_periods`, none otherwise.

#ifndef WHARF_SYNC_INTERNAL_WAIT_LOOP_H_
#define WHARF_SYNC_INTERNAL_WAIT_LOOP_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/sync/futex.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/interrupt.h"

namespace wharf::sync_internal {

// How often a robust lock's sleeper checks whether the owner is alive, and the
// cap of the doubling (Mutex, and RwLock readers behind a writer). 1 ms makes
// a dead owner cost a survivor ~1-2 ms; a live owner holding the lock for long
// costs each sleeper one /proc read per period (~5 µs every 128 ms at most).
inline constexpr absl::Duration kFirstCheckPeriod = absl::Milliseconds(1);
inline constexpr absl::Duration kMaxCheckPeriod = absl::Milliseconds(128);

struct WaitLoopOptions {
  const void* word;  // the futex word the primitive sleeps on
  FutexScope scope;
  int spin_pauses = kLockSpins;  // count-based spin (step 1)
  // Duration-based spin instead, when positive.
  absl::Duration spin_for = absl::ZeroDuration();
  bool interruptible = true;  // the sleep is an interruption point
  bool single_sleep = false;  // return kWoken after the first wake
  bool check_periods = false;  // sleep in check periods, calling on_period()
  bool recheck_at_deadline = false;  // announce() once more at the deadline
};

enum class WaitEnd : uint8_t {
  kReady,        // ready(), announce() or on_period() ended the wait
  kWoken,        // single_sleep: the one sleep ended (woken, signal, word changed)
  kTimedOut,     // the deadline passed
  kInterrupted,  // the Interrupter was requested: withdraw, then ThrowInterrupted()
};

struct NoPeriodCheck {
  bool operator()() const { return false; }
};

// The sleep of step 3 (internal to WaitLoop).
inline FutexWaitResult WaitLoopSleep(const WaitLoopOptions& o, uint32_t expected,
                                     absl::Time wake_at) {
  return o.interruptible ? InterruptibleFutexWait(o.word, expected, o.scope, wake_at)
                         : FutexWait(o.word, expected, o.scope, wake_at);
}
inline FutexWaitResult WaitLoopSleep(const WaitLoopOptions& o, uint64_t expected,
                                     absl::Time wake_at) {
  return o.interruptible ? InterruptibleFutexWait64(o.word, expected, o.scope, wake_at)
                         : FutexWait64(o.word, expected, o.scope, wake_at);
}

// Runs the loop described at the top of this file. `ready`: bool(); `announce`:
// std::optional<uint32_t or uint64_t>(); `on_period`: bool() (only called with
// check_periods). Blocks. Throws only what the callbacks throw.
template <class Ready, class Announce, class OnPeriod = NoPeriodCheck>
[[nodiscard]] WaitEnd WaitLoop(const WaitLoopOptions& o, absl::Time deadline, Ready&& ready,
                               Announce&& announce, OnPeriod&& on_period = OnPeriod()) {
  using Expected = typename std::invoke_result_t<Announce&>::value_type;
  static_assert(std::is_same_v<Expected, uint32_t> || std::is_same_v<Expected, uint64_t>,
                "announce() returns std::optional<uint32_t> or std::optional<uint64_t>");
  // 1. Spin.
  if (o.spin_for > absl::ZeroDuration() ? SpinFor(o.spin_for, deadline, ready)
                                        : SpinPauses(o.spin_pauses, ready)) {
    return WaitEnd::kReady;
  }
  absl::Duration period = kFirstCheckPeriod;
  for (;;) {
    // 2. Announce (and re-check).
    const std::optional<Expected> expected = announce();
    if (!expected.has_value()) return WaitEnd::kReady;
    // 3. Sleep.
    const absl::Time wake_at =
        o.check_periods ? std::min(deadline, absl::Now() + period) : deadline;
    const FutexWaitResult r = WaitLoopSleep(o, *expected, wake_at);
    // 4. Report.
    switch (r) {
      case FutexWaitResult::kInterrupted:
        return WaitEnd::kInterrupted;
      case FutexWaitResult::kTimedOut:
        if (wake_at == deadline) {
          if (o.recheck_at_deadline && !announce().has_value()) return WaitEnd::kReady;
          return WaitEnd::kTimedOut;
        }
        if (on_period()) return WaitEnd::kReady;
        if (period < kMaxCheckPeriod) period *= 2;
        break;
      case FutexWaitResult::kWoken:
      case FutexWaitResult::kNotEqual:
        if (o.single_sleep) return WaitEnd::kWoken;
        break;
    }
  }
}

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_WAIT_LOOP_H_
