#include "wharf/sync/internal/asymmetric_fence.h"

#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pthread.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace wharf::sync_internal {
namespace asymmetric_fence_internal {

std::atomic<int> mode{0};
std::atomic<int> shared_mode{0};

namespace {

long Membarrier(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }

bool RegisterMembarrier() {
  const long cmds = Membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

// The fallback: changing the protection of a page this process has touched
// makes the kernel shoot down its TLB entries on every CPU running one of
// the process's threads, an IPI that those CPUs handle with a full barrier.
std::mutex fallback_mu;
char* fallback_page = nullptr;

void MprotectBarrier() {
  std::lock_guard<std::mutex> lock(fallback_mu);
  if (fallback_page == nullptr) {
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "wharf: HeavyFence: mmap failed (errno %d)\n", errno);
      std::abort();
    }
    fallback_page = static_cast<char*>(p);
  }
  // Touch it (so it is in the TLBs), then downgrade and restore.
  *reinterpret_cast<volatile char*>(fallback_page) = 1;
  if (mprotect(fallback_page, 4096, PROT_READ) != 0 ||
      mprotect(fallback_page, 4096, PROT_READ | PROT_WRITE) != 0) {
    std::fprintf(stderr, "wharf: HeavyFence: mprotect failed (errno %d)\n", errno);
    std::abort();
  }
}

// Whether the kernel has MEMBARRIER_CMD_GLOBAL_EXPEDITED (the same for
// every process on this machine, a forked child included).
bool KernelHasGlobalExpedited() {
  static const bool has = [] {
    const long cmds = Membarrier(MEMBARRIER_CMD_QUERY);
    return cmds >= 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
  }();
  return has;
}

// A child forked without exec may not inherit the registration: it probes
// (and registers) again before its light side drops a fence.
void ResetSharedModeInChild() { shared_mode.store(0, std::memory_order_relaxed); }

}  // namespace

int ProbeShared() {
  static const bool at_fork = [] { return pthread_atfork(nullptr, nullptr, &ResetSharedModeInChild) == 0; }();
  // Without the fork handler a forked child could keep mode 1 unregistered:
  // then never drop the fence.
  const int m = at_fork && KernelHasGlobalExpedited() &&
                        Membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0
                    ? 1
                    : 2;
  shared_mode.store(m, std::memory_order_relaxed);
  return m;
}

int Probe() {
  static const int probed = RegisterMembarrier() ? 1 : 2;
  mode.store(probed, std::memory_order_relaxed);
  return probed;
}

}  // namespace asymmetric_fence_internal

void HeavyFence() {
  using namespace asymmetric_fence_internal;
  int m = mode.load(std::memory_order_relaxed);
  if (m == 0) m = Probe();
  // Our own accesses are ordered by a real fence in every mode.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (m == 2) return;  // light sides use real fences: nothing more to force
  if (Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  // EPERM: a child forked without exec inherits mode 1 but not the
  // registration. Register again; if that fails too, fall back to mprotect,
  // which needs no registration.
  if (RegisterMembarrier() && Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  MprotectBarrier();
}

bool HeavyFenceShared() {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // our own accesses
  // Without the command no process registers, so every light side is a
  // real fence and ours above completes the pair.
  if (!asymmetric_fence_internal::KernelHasGlobalExpedited()) return true;
  return asymmetric_fence_internal::Membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
}

}  // namespace wharf::sync_internal
