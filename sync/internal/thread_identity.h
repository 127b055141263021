// Internal: who is this thread, system-wide, and is a given owner still alive?
//
// Robust locks record their owner as a 64-bit id: the kernel thread id (TID)
// in the low 30 bits and a 32-bit tag in the high half. The tag is the low 32
// bits of the thread's start time (field 22 of /proc/<tid>/stat, in clock ticks
// since boot), so a TID reused by a new thread after the owner died carries a
// different tag: a waiter never mistakes the newcomer for the dead owner.
//
// CurrentOwnerId() costs one thread-local load after the first call of each
// thread (which reads /proc once, ~10 µs). A fork()ed child re-computes it.
// CheckOwner() reads /proc/<tid>/stat (a few µs): callers use it only after
// waiting a whole check period for a lock, never on a fast path.
//
// Limits: all processes using a lock must share a PID namespace (TIDs are
// compared as numbers) and see the same /proc. Without a readable /proc the
// tag is 0 and liveness falls back to "is any task with this TID alive".

#ifndef WHARF_SYNC_INTERNAL_THREAD_IDENTITY_H_
#define WHARF_SYNC_INTERNAL_THREAD_IDENTITY_H_

#include <cstdint>

namespace wharf::sync_internal {

inline constexpr uint64_t kTidMask = 0x3fffffffu;  // as the kernel's FUTEX_TID_MASK

// (tag << 32) | tid for the calling thread. Never 0.
uint64_t ComputeCurrentOwnerId();

inline constinit thread_local uint64_t tls_owner_id = 0;

inline uint64_t CurrentOwnerId() {
  uint64_t id = tls_owner_id;
  if (__builtin_expect(id == 0, 0)) id = ComputeCurrentOwnerId();
  return id;
}

inline uint32_t OwnerTid(uint64_t id) { return static_cast<uint32_t>(id & kTidMask); }
inline uint32_t OwnerTag(uint64_t id) { return static_cast<uint32_t>(id >> 32); }

enum class OwnerState : uint8_t {
  kAlive,  // a task with this TID and tag runs
  kDead,   // no such task, or it is a zombie, or the TID now belongs to another task
};

// Is the thread that recorded `owner_id` still alive? Blocking: reads /proc.
OwnerState CheckOwner(uint64_t owner_id);

// For tests: the start-time tag of thread `tid`, or 0 if it cannot be read.
uint32_t ReadStartTag(uint32_t tid, bool* alive);

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_THREAD_IDENTITY_H_
