#include "wharf/sync/futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/time/clock.h"

namespace wharf {
namespace {

[[noreturn]] void FutexFatal(const char* op, const void* word, int err) {
  std::fprintf(stderr, "wharf: %s on %p failed: %s (a misaligned or unmapped futex word)\n",
               op, word, std::strerror(err));
  std::abort();
}

int PrivateFlag(FutexScope scope) {
  return scope == FutexScope::kPrivate ? FUTEX_PRIVATE_FLAG : 0;
}

// Low half of a little-endian 64-bit word.
const void* LowHalf(const void* word) { return word; }
const void* HighHalf(const void* word) {
  return static_cast<const char*>(word) + 4;
}

std::atomic<bool> waitv_unsupported{false};

}  // namespace

FutexWaitResult FutexWait(const void* word, uint32_t expected, FutexScope scope,
                          absl::Time deadline) {
  timespec ts;
  timespec* timeout = nullptr;
  if (deadline != absl::InfiniteFuture()) {
    if (deadline < absl::UnixEpoch()) deadline = absl::UnixEpoch();
    ts = absl::ToTimespec(deadline);
    timeout = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute deadline; with FUTEX_CLOCK_REALTIME it
  // is measured on the same clock as absl::Time.
  long rc = syscall(SYS_futex, word,
                    FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME | PrivateFlag(scope),
                    expected, timeout, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return FutexWaitResult::kWoken;
  switch (errno) {
    case EAGAIN:
      return FutexWaitResult::kNotEqual;
    case ETIMEDOUT:
      return FutexWaitResult::kTimedOut;
    case EINTR:
      return FutexWaitResult::kWoken;
    default:
      FutexFatal("futex wait", word, errno);
  }
}

FutexWaitResult FutexWait64(const void* word, uint64_t expected,
                            FutexScope scope, absl::Time deadline) {
  if (!waitv_unsupported.load(std::memory_order_relaxed)) {
    const uint32_t flags =
        FUTEX_32 | (scope == FutexScope::kPrivate ? FUTEX_PRIVATE_FLAG : 0);
    struct futex_waitv waiters[2];
    std::memset(waiters, 0, sizeof(waiters));
    waiters[0].val = static_cast<uint32_t>(expected);
    waiters[0].uaddr = reinterpret_cast<uintptr_t>(LowHalf(word));
    waiters[0].flags = flags;
    waiters[1].val = static_cast<uint32_t>(expected >> 32);
    waiters[1].uaddr = reinterpret_cast<uintptr_t>(HighHalf(word));
    waiters[1].flags = flags;
    timespec ts;
    timespec* timeout = nullptr;
    if (deadline != absl::InfiniteFuture()) {
      if (deadline < absl::UnixEpoch()) deadline = absl::UnixEpoch();
      ts = absl::ToTimespec(deadline);
      timeout = &ts;
    }
    long rc = syscall(SYS_futex_waitv, waiters, 2, 0, timeout, CLOCK_REALTIME);
    if (rc >= 0) return FutexWaitResult::kWoken;
    switch (errno) {
      case EAGAIN:
        return FutexWaitResult::kNotEqual;
      case ETIMEDOUT:
        return FutexWaitResult::kTimedOut;
      case EINTR:
        return FutexWaitResult::kWoken;
      case ENOSYS:
        waitv_unsupported.store(true, std::memory_order_relaxed);
        break;
      default:
        FutexFatal("futex_waitv", word, errno);
    }
  }
  // Fallback: sleep on the low half in short slices and re-read the whole word.
  const auto* cell = static_cast<const std::atomic<uint64_t>*>(word);
  for (;;) {
    const uint64_t now_value = cell->load(std::memory_order_seq_cst);
    if (now_value != expected) return FutexWaitResult::kNotEqual;
    const absl::Time slice = std::min(deadline, absl::Now() + absl::Milliseconds(1));
    FutexWaitResult r = FutexWait(LowHalf(word), static_cast<uint32_t>(expected), scope, slice);
    if (r == FutexWaitResult::kWoken) return r;
    if (r == FutexWaitResult::kTimedOut && slice >= deadline) return r;
    if (r == FutexWaitResult::kNotEqual) return r;
  }
}

int FutexWake(const void* word, int count, FutexScope scope) {
  if (count <= 0) return 0;
  long rc = syscall(SYS_futex, word, FUTEX_WAKE | PrivateFlag(scope), count,
                    nullptr, nullptr, 0);
  if (rc < 0) FutexFatal("futex wake", word, errno);
  return static_cast<int>(rc);
}

int FutexWake64(const void* word, int count, FutexScope scope) {
  // futex_waitv sleepers are queued on both halves; waking through one half
  // dequeues them from the other, so each sleeper is counted once.
  return FutexWake(LowHalf(word), count, scope);
}

}  // namespace wharf
