// Internal: the CPU pause used by every bounded spin in sync/, and the spin
// budgets, with the measurements that justify them.
//
// On the 2-core VMs Wharf is developed on, a futex sleep->wake hand-off costs
// 7-12 µs and a syscall ~1.2 µs, while a pause instruction costs 10-40 ns.
// Spinning ~100 pauses (~1-4 µs) before sleeping catches a lock released by a
// short critical section on another CPU without the hand-off; an idle waiter
// pays it once and then sleeps, using no CPU.

#ifndef WHARF_SYNC_INTERNAL_SPIN_H_
#define WHARF_SYNC_INTERNAL_SPIN_H_

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

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_SPIN_H_
