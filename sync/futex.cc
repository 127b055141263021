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

namespace {

uint32_t WaitvFlags(FutexScope scope) {
  return FUTEX_32 | (scope == FutexScope::kPrivate ? FUTEX_PRIVATE_FLAG : 0);
}

void SetWaitv(struct futex_waitv& w, const void* word, uint32_t value, uint32_t flags) {
  std::memset(&w, 0, sizeof(w));
  w.val = value;
  w.uaddr = reinterpret_cast<uintptr_t>(word);
  w.flags = flags;
}

// futex_waitv(2) on `n` entries with an absolute realtime deadline. Returns
// the index of the entry that woke us, or -1 with errno set.
long WaitV(struct futex_waitv* waiters, unsigned n, absl::Time deadline) {
  timespec ts;
  timespec* timeout = nullptr;
  if (deadline != absl::InfiniteFuture()) {
    if (deadline < absl::UnixEpoch()) deadline = absl::UnixEpoch();
    ts = absl::ToTimespec(deadline);
    timeout = &ts;
  }
  return syscall(SYS_futex_waitv, waiters, n, 0, timeout, CLOCK_REALTIME);
}

bool IsSet(const std::atomic<uint32_t>* interrupt_word) {
  // B: acquire; matches the interrupter's release store (sync/interrupt.h).
  return interrupt_word != nullptr && interrupt_word->load(std::memory_order_acquire) != 0;
}

// The fallback slice of the interruptible waits without futex_waitv.
constexpr absl::Duration kInterruptSlice = absl::Milliseconds(2);

// The shared body of the interruptible waits with futex_waitv. waiters[0] is
// the interrupt word (filled here), waiters[1..n) the cell's halves.
//
// Why the interrupt word comes first: when several entries were woken (a
// FutexWake on the cell and the interrupter's wake both dequeued us), the
// kernel returns the index of the LAST woken entry (unqueue_multiple). With
// the cell after the interrupt word, a consumed wake of the cell always shows
// as its index, and index 0 means that only the interrupter woke us — so
// kInterrupted never hides a consumed FutexWake. Returns false (and leaves
// *result alone) on ENOSYS.
bool WaitVOrInterrupt(struct futex_waitv* waiters, unsigned n,
                      const std::atomic<uint32_t>* interrupt_word, absl::Time deadline,
                      const void* word, FutexWaitResult* result) {
  SetWaitv(waiters[0], interrupt_word, 0, WaitvFlags(FutexScope::kPrivate));
  const long rc = WaitV(waiters, n, deadline);
  if (rc >= 0) {
    *result = rc == 0 ? FutexWaitResult::kInterrupted : FutexWaitResult::kWoken;
    return true;
  }
  switch (errno) {
    case EAGAIN:
      *result = IsSet(interrupt_word) ? FutexWaitResult::kInterrupted : FutexWaitResult::kNotEqual;
      return true;
    case ETIMEDOUT:
      *result = IsSet(interrupt_word) ? FutexWaitResult::kInterrupted : FutexWaitResult::kTimedOut;
      return true;
    case EINTR:
      *result = IsSet(interrupt_word) ? FutexWaitResult::kInterrupted : FutexWaitResult::kWoken;
      return true;
    case ENOSYS:
      waitv_unsupported.store(true, std::memory_order_relaxed);
      return false;
    default:
      FutexFatal("futex_waitv", word, errno);
  }
}

}  // namespace

FutexWaitResult FutexWaitOrInterrupt(const void* word, uint32_t expected, FutexScope scope,
                                     const std::atomic<uint32_t>* interrupt_word,
                                     absl::Time deadline) {
  if (interrupt_word == nullptr) return FutexWait(word, expected, scope, deadline);
  if (IsSet(interrupt_word)) return FutexWaitResult::kInterrupted;
  if (!waitv_unsupported.load(std::memory_order_relaxed)) {
    struct futex_waitv waiters[2];
    SetWaitv(waiters[1], word, expected, WaitvFlags(scope));
    FutexWaitResult r;
    if (WaitVOrInterrupt(waiters, 2, interrupt_word, deadline, word, &r)) return r;
  }
  // Fallback: sleep on the cell in slices, re-checking the interrupt word.
  for (;;) {
    if (IsSet(interrupt_word)) return FutexWaitResult::kInterrupted;
    const absl::Time slice = std::min(deadline, absl::Now() + kInterruptSlice);
    const FutexWaitResult r = FutexWait(word, expected, scope, slice);
    if (r == FutexWaitResult::kTimedOut && slice < deadline) continue;
    return r;
  }
}

FutexWaitResult FutexWait64(const void* word, uint64_t expected, FutexScope scope,
                            absl::Time deadline) {
  return FutexWait64OrInterrupt(word, expected, scope, nullptr, deadline);
}

FutexWaitResult FutexWait64OrInterrupt(const void* word, uint64_t expected, FutexScope scope,
                                       const std::atomic<uint32_t>* interrupt_word,
                                       absl::Time deadline) {
  if (IsSet(interrupt_word)) return FutexWaitResult::kInterrupted;
  if (!waitv_unsupported.load(std::memory_order_relaxed)) {
    // [interrupt word,] low half, high half.
    struct futex_waitv waiters[3];
    struct futex_waitv* cell_entries = interrupt_word != nullptr ? waiters + 1 : waiters;
    SetWaitv(cell_entries[0], LowHalf(word), static_cast<uint32_t>(expected), WaitvFlags(scope));
    SetWaitv(cell_entries[1], HighHalf(word), static_cast<uint32_t>(expected >> 32),
             WaitvFlags(scope));
    FutexWaitResult r;
    if (interrupt_word != nullptr) {
      if (WaitVOrInterrupt(waiters, 3, interrupt_word, deadline, word, &r)) return r;
    } else {
      const long rc = WaitV(waiters, 2, deadline);
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
  }
  // Fallback: sleep on the low half in short slices and re-read the whole word
  // (and the interrupt word).
  const auto* cell = static_cast<const std::atomic<uint64_t>*>(word);
  for (;;) {
    if (IsSet(interrupt_word)) return FutexWaitResult::kInterrupted;
    const uint64_t now_value = cell->load(std::memory_order_seq_cst);
    if (now_value != expected) return FutexWaitResult::kNotEqual;
    const absl::Time slice = std::min(deadline, absl::Now() + absl::Milliseconds(1));
    FutexWaitResult r = FutexWait(LowHalf(word), static_cast<uint32_t>(expected), scope, slice);
    if (r == FutexWaitResult::kWoken) return r;
    if (r == FutexWaitResult::kTimedOut && slice >= deadline) return r;
    if (r == FutexWaitResult::kNotEqual) return r;
  }
}

void SetFutexWaitvUnsupportedForTesting(bool unsupported) {
  waitv_unsupported.store(unsupported, std::memory_order_relaxed);
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
