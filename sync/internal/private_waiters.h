// Internal: per-process counts of threads asleep in atomics::Wait with
// FutexScope::kPrivate, so that atomics::Notify can skip the futex-wake
// syscall when nobody in this process sleeps on the cell (the event-count rule:
// never wake unless a waiter announced itself).
//
// A raw cell has no room for a waiter count, so the counts live here, hashed by
// address into 256 cache-line-sized slots (libstdc++ does the same for
// std::atomic::wait). A collision only costs a useless syscall. This can only
// work for private waits: a waiter in another process increments its own
// process's table, which a notifier here cannot see — shared-scope Notify
// always makes the syscall.
//
// Protocol (a Dekker pair, both sides sequentially consistent):
//   waiter   A: count.fetch_add(1); re-load the cell; if changed, leave; else
//              futex-wait; count.fetch_sub(1).
//   notifier B: (the user's store to the cell); seq_cst fence; count.load();
//              if 0, return without the syscall.
// A matches B: either the notifier sees the count, or the waiter's re-load
// sees the store and does not sleep.
#ifndef WHARF_SYNC_INTERNAL_PRIVATE_WAITERS_H_
#define WHARF_SYNC_INTERNAL_PRIVATE_WAITERS_H_

#include <atomic>
#include <cstdint>

namespace wharf::sync_internal {

struct alignas(64) PrivateWaiterSlot {
  std::atomic<uint32_t> count{0};
};

inline constexpr int kPrivateWaiterSlots = 256;
inline PrivateWaiterSlot private_waiter_slots[kPrivateWaiterSlots];

inline std::atomic<uint32_t>& PrivateWaiters(const void* cell) {
  auto a = reinterpret_cast<uintptr_t>(cell);
  a ^= a >> 17;
  return private_waiter_slots[(a >> 3) % kPrivateWaiterSlots].count;
}

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_PRIVATE_WAITERS_H_
