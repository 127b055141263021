// TEMPORARY (removed when sync/futex.h gains FutexWaitAny): the API the
// runtime codes against, implemented minimally.
#ifndef WHARF_SYNC_FUTEX_WAIT_ANY_SHIM_H_
#define WHARF_SYNC_FUTEX_WAIT_ANY_SHIM_H_
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <span>

#include "absl/time/time.h"
#include "wharf/sync/futex.h"

namespace wharf {
struct FutexWaitEntry {
  const void* word;
  uint32_t expected;
  FutexScope scope;
};
inline constexpr int kMaxFutexWaitEntries = 128;
struct FutexWaitAnyResult {
  FutexWaitResult result;
  int index;
};
inline FutexWaitAnyResult FutexWaitAny(std::span<const FutexWaitEntry> entries,
                                       absl::Time deadline = absl::InfiniteFuture()) {
  struct futex_waitv w[kMaxFutexWaitEntries];
  for (size_t i = 0; i < entries.size(); ++i) {
    std::memset(&w[i], 0, sizeof(w[i]));
    w[i].val = entries[i].expected;
    w[i].uaddr = reinterpret_cast<uintptr_t>(entries[i].word);
    w[i].flags = FUTEX_32 | (entries[i].scope == FutexScope::kPrivate ? FUTEX_PRIVATE_FLAG : 0);
  }
  timespec ts;
  timespec* timeout = nullptr;
  if (deadline != absl::InfiniteFuture()) {
    if (deadline < absl::UnixEpoch()) deadline = absl::UnixEpoch();
    ts = absl::ToTimespec(deadline);
    timeout = &ts;
  }
  long rc = syscall(SYS_futex_waitv, w, entries.size(), 0, timeout, CLOCK_REALTIME);
  if (rc >= 0) return {FutexWaitResult::kWoken, static_cast<int>(rc)};
  switch (errno) {
    case EAGAIN: return {FutexWaitResult::kNotEqual, -1};
    case ETIMEDOUT: return {FutexWaitResult::kTimedOut, -1};
    default: return {FutexWaitResult::kWoken, -1};
  }
}
}  // namespace wharf
#endif
