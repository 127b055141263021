// Internal: the bounded, read-only spin every wait in sync/ starts with — the
// CPU pause, the spin budgets with the measurements that justify them, and the
// two spin loops (count-based and duration-based), as folly's detail/Spin.h.
// The wait that follows the spin is sync/internal/wait_loop.h.
//
// On the 2-core VMs Wharf is developed on, a futex sleep->wake hand-off costs
// 7-12 µs and a syscall ~1.2 µs, while a pause instruction costs 10-40 ns.
// Spinning ~100 pauses (~1-4 µs) before sleeping catches a lock released by a
// short critical section on another CPU without the hand-off; an idle waiter
// pays it once and then sleeps, using no CPU.
//
// Read-only: the predicate only loads the watched word (or CASes it when the
// load says the CAS would succeed: test-and-test-and-set), so a spinning
// waiter shares the cache line instead of stealing it from the thread it
// waits for.

#ifndef WHARF_SYNC_INTERNAL_SPIN_H_
#define WHARF_SYNC_INTERNAL_SPIN_H_

#include <sched.h>

#include <algorithm>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace wharf::sync_internal {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

// Pauses a lock spins (read-only) before announcing itself and sleeping.
inline constexpr int kLockSpins = 100;

// Mutex's spin is shorter. Measured on the 2-core AMD EPYC VM with
// //bench:mutex_bench (2 threads hammering a tiny critical section; ratio to
// std::mutex, which does not spin): 100 pauses -> 1.94x, 30 -> 1.12x,
// 10 -> 0.97x, 0 -> 0.86x. A long spin keeps the waiter stealing the lock's
// cache line, so the lock changes CPUs 2-7x more often. 10 pauses (~0.3 us)
// still catch an owner that is just leaving its critical section.
inline constexpr int kMutexSpins = 10;

// How long a waiter for another actor's reply (a Receive, an idle event loop,
// a Future's Get, an idle pool worker, a shared-memory ring's reader or
// writer) watches before it sleeps. A reply from a peer running on another
// CPU usually arrives within a few µs, while a futex sleep+wake hand-off
// costs 7-12 µs each way on the 2-core VM: a loop-to-loop ping-pong that slept
// at once cost 22-25 µs per round trip (//bench:loop_bench), 14.9 µs with
// only a ~100-pause spin (//bench:port_bench), and what a blocking Receive
// does with this one. An idle waiter pays it once per wait (at most this much
// CPU), then sleeps and uses none.
inline constexpr absl::Duration kReplySpin = absl::Microseconds(20);
// The part of kReplySpin spent without yielding the CPU, for a waiter whose
// peer may share its CPU (see SpinFor's yield_after).
inline constexpr absl::Duration kReplyPureSpin = absl::Microseconds(2);

// A duration-based spin reads the clock once per this many pauses: a clock
// read (~20 ns, vDSO) after every pause would dominate the spin.
inline constexpr int kPausesPerClockRead = 64;

// Count-based spin: up to `pauses` pauses, calling ready() after each. True as
// soon as ready() returns true; false when the budget is spent.
template <class Ready>
inline bool SpinPauses(int pauses, Ready&& ready) {
  for (int i = 0; i < pauses; ++i) {
    CpuRelax();
    if (ready()) return true;
  }
  return false;
}

// Duration-based spin: pauses, calling ready() after each, until ready()
// returns true (true) or `spin` has passed — at most until `deadline` — with
// the clock read every kPausesPerClockRead pauses (false). `spin` <= 0 spins
// not at all; any positive `spin` spins at least kPausesPerClockRead pauses.
// The clock is first read only after those: a wait that ends within them
// (a reply from a peer on another CPU, typically) costs no clock read.
//
// `yield_after`: once the spin has lasted this long, yield the CPU
// (sched_yield) between rounds — for a waiter whose producer may share its
// CPU (the scheduler likes to put a woken thread on its waker's CPU, and a
// pure spin would then keep the very thread it waits for off the CPU until
// the spin ends). InfiniteDuration: never yield.
template <class Ready>
inline bool SpinFor(absl::Duration spin, absl::Time deadline, Ready&& ready,
                    absl::Duration yield_after = absl::InfiniteDuration()) {
  if (spin <= absl::ZeroDuration()) return false;
  absl::Time start = absl::InfiniteFuture();
  absl::Time spin_end = absl::InfiniteFuture();
  for (;;) {
    for (int i = 0; i < kPausesPerClockRead; ++i) {
      CpuRelax();
      if (ready()) return true;
    }
    const absl::Time now = absl::Now();
    if (start == absl::InfiniteFuture()) {
      start = now;
      spin_end = std::min(deadline, now + spin);
    }
    if (now >= spin_end) return false;
    if (now - start >= yield_after) sched_yield();
  }
}

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_SPIN_H_
