// Internal: SpinLock — a test-and-set lock for critical sections of a few
// hundred nanoseconds among threads of one process (a shared-memory ring's
// writers take turns with it: shm_channel.h). Lock is one exchange, unlock
// one release store — no read-modify-write to leave, where a futex mutex
// pays two (lock and unlock), each a full barrier that waits out the
// store buffer (measured: the ring's one-way rate fell by half with a Mutex
// around each record). A waiter spins on a plain load (its cache line stays
// shared until the holder leaves), yielding after a short spin so that a
// preempted holder can run.
//
// Thread-safety: the point. Not for shared memory (a dead holder is never
// detected), not recursive, no fairness.
//
// Protocol: locked_ false → true by exchange(acquire) in lock(), true →
// false by store(release) in unlock(); the acquire/release pair orders the
// critical sections.

#ifndef WHARF_SYNC_INTERNAL_SPIN_LOCK_H_
#define WHARF_SYNC_INTERNAL_SPIN_LOCK_H_

#include <atomic>
#include <thread>

#include "wharf/sync/internal/spin.h"

namespace wharf::sync_internal {

class SpinLock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 128) {
          CpuRelax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_SPIN_LOCK_H_
