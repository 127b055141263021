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
// barrier, so shared-memory (cross-process) protocols must use
// std::atomic_thread_fence on both sides.
//
// Cost (2-core AMD EPYC VM): LightFence 0 ns; HeavyFence a syscall plus an
// IPI to each CPU currently running a thread of the process, a few µs.
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
}  // namespace asymmetric_fence_internal

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
