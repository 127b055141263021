// Asymmetric fences: a store-load (Dekker) pair where one side runs millions
// of times a second and the other rarely. The frequent side calls
// LightFence() — a compiler barrier, no instruction — and the rare side calls
// HeavyFence(), which makes every thread of this process that is running
// execute a full memory barrier (membarrier(2) MEMBARRIER_CMD_PRIVATE_EXPEDITED,
// Linux >= 4.14; where that is refused, the mprotect TLB-shootdown trick that
// folly's asymmetricHeavyBarrier falls back to). Same idea as folly's
// asymmetricLightBarrier/asymmetricHeavyBarrier and Linux's
// sys_membarrier-based liburcu.
//
// Contract. For threads T (frequent) and R (rare):
//   T: store A; LightFence(); load B        R: store B; HeavyFence(); load A
// at least one of the loads sees the other thread's store. Threads of this
// process only: a thread of another process sharing the memory gets no
// barrier.
//
// Across processes (a pair in memory that several processes map): T calls
// LightFenceShared(), R calls HeavyFenceShared(). The heavy side is
// membarrier(2) MEMBARRIER_CMD_GLOBAL_EXPEDITED (Linux >= 4.16): a barrier
// on every CPU running a thread of any process registered for it, and a
// process registers (REGISTER_GLOBAL_EXPEDITED) before its light side drops
// its fence — so the light side is a compiler barrier only in a registered
// process, and a real fence everywhere else (a kernel without the command,
// a refused registration, a child forked before it re-registered).
// HeavyFenceShared() returns false in the one case it cannot cover: the
// kernel has the command but refused it to this process (a seccomp filter
// on its arguments, say). A light side in another process may then have
// missed the pair, so the caller must not sleep unboundedly on it (the
// event count then sleeps in slices: event_count.cc).
//
// Cost (2-core AMD EPYC VM): LightFence 0 ns; HeavyFence a syscall plus an
// IPI to each CPU currently running a thread of the process, a few µs;
// HeavyFenceShared ~1.1 µs (an IPI to each CPU running a registered
// process). A seq_cst fence after a store to a line another CPU polls costs
// the wait for that store (~100-200 ns there): what the light side saves.
// Thread-safety: both may be called from any thread at any time.

#ifndef WHARF_SYNC_INTERNAL_ASYMMETRIC_FENCE_H_
#define WHARF_SYNC_INTERNAL_ASYMMETRIC_FENCE_H_

#include <atomic>

namespace wharf::sync_internal {

namespace asymmetric_fence_internal {
// 0 = not yet probed, 1 = HeavyFence works (light side may be a compiler
// barrier), 2 = it does not (both sides use real fences).
extern std::atomic<int> mode;
int Probe();
// 0 = not probed (or reset in a forked child), 1 = registered for
// GLOBAL_EXPEDITED (LightFenceShared may be a compiler barrier), 2 = not.
extern std::atomic<int> shared_mode;
int ProbeShared();
}  // namespace asymmetric_fence_internal

inline void LightFenceShared() {
  int m = asymmetric_fence_internal::shared_mode.load(std::memory_order_relaxed);
  if (m == 0) m = asymmetric_fence_internal::ProbeShared();
  if (m == 1) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

// True when every light side (in any process) is covered; see above.
bool HeavyFenceShared();

inline void LightFence() {
  int m = asymmetric_fence_internal::mode.load(std::memory_order_relaxed);
  if (m == 0) m = asymmetric_fence_internal::Probe();
  if (m == 1) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

void HeavyFence();

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_ASYMMETRIC_FENCE_H_
