// LockResult: what a robust lock acquisition reports.
//
// Wharf's Mutex and RwLock (write side) are robust: when the thread or process
// holding one dies, the next locker acquires it and is told kOwnerDied. It then
// repairs the data the lock protects and calls MarkConsistent() before
// unlocking. Unlocking without MarkConsistent() makes the lock permanently
// unusable: every later acquisition returns kNotRecoverable (the contract of
// pthread_mutex_consistent / ENOTRECOVERABLE). Beware the std names (lock(),
// std::scoped_lock): they cannot return kOwnerDied (see wharf/sync/mutex.h).
//
// Plain values and pure functions: thread-safe, never blocking, no errors.

#ifndef WHARF_SYNC_LOCK_RESULT_H_
#define WHARF_SYNC_LOCK_RESULT_H_

#include <cstdint>
#include <string_view>

namespace wharf {

enum class LockResult : uint8_t {
  kOk,              // acquired
  kOwnerDied,       // acquired; the previous owner died holding it: repair, then MarkConsistent()
  kNotRecoverable,  // not acquired: an owner-died lock was unlocked without MarkConsistent()
  kTimedOut,        // not acquired before the deadline
  kBusy,            // not acquired: held by another (TryLock only)
};

// True when the lock is now held by the caller (kOk or kOwnerDied).
inline bool Acquired(LockResult r) {
  return r == LockResult::kOk || r == LockResult::kOwnerDied;
}

inline std::string_view LockResultName(LockResult r) {
  switch (r) {
    case LockResult::kOk: return "ok";
    case LockResult::kOwnerDied: return "owner died";
    case LockResult::kNotRecoverable: return "not recoverable";
    case LockResult::kTimedOut: return "timed out";
    case LockResult::kBusy: return "busy";
  }
  return "unknown";
}

}  // namespace wharf

#endif  // WHARF_SYNC_LOCK_RESULT_H_
