#include "wharf/sync/futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
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

// Set once a futex_waitv call returned ENOSYS (or by the test hook): from
// then on FutexWaitAny goes straight to its slice fallback. Relaxed: it is a
// hint; a thread that still tries futex_waitv gets ENOSYS again.
std::atomic<bool> waitv_unsupported{false};

// The absolute CLOCK_REALTIME timespec for `deadline` in *ts, or null for no
// deadline. A deadline before the epoch is clamped to it (already passed).
timespec* DeadlineTimespec(absl::Time deadline, timespec* ts) {
  if (deadline == absl::InfiniteFuture()) return nullptr;
  if (deadline < absl::UnixEpoch()) deadline = absl::UnixEpoch();
  *ts = absl::ToTimespec(deadline);
  return ts;
}

// FUTEX_WAIT_BITSET on one word. Returns 0 when woken (or spuriously), else
// the errno: EAGAIN (not equal), ETIMEDOUT, EINTR. Other errors are fatal.
int RawWait(const void* word, uint32_t expected, FutexScope scope, absl::Time deadline) {
  timespec ts;
  // FUTEX_WAIT_BITSET takes an absolute deadline; with FUTEX_CLOCK_REALTIME it
  // is measured on the same clock as absl::Time.
  const long rc = syscall(SYS_futex, word,
                          FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME | PrivateFlag(scope),
                          expected, DeadlineTimespec(deadline, &ts), nullptr,
                          FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return 0;
  const int err = errno;
  if (err != EAGAIN && err != ETIMEDOUT && err != EINTR) FutexFatal("futex wait", word, err);
  return err;
}

}  // namespace

FutexWaitResult FutexWait(const void* word, uint32_t expected, FutexScope scope,
                          absl::Time deadline) {
  switch (RawWait(word, expected, scope, deadline)) {
    case 0:
      return FutexWaitResult::kWoken;
    case EAGAIN:
      return FutexWaitResult::kNotEqual;
    case ETIMEDOUT:
      return FutexWaitResult::kTimedOut;
    default:  // EINTR: folded into kWoken, the caller re-checks
      return FutexWaitResult::kWoken;
  }
}

// --- FutexWaitAny -------------------------------------------------------------

namespace {

// The fallback's slice: how late a change of a word other than the one slept
// on (or of the interrupt word) is noticed without futex_waitv.
constexpr absl::Duration kFallbackSlice = absl::Milliseconds(1);

void CheckEntries(std::span<const FutexWaitEntry> entries) {
  if (entries.empty() || entries.size() > static_cast<size_t>(kMaxFutexWaitEntries)) {
    std::fprintf(stderr, "wharf: FutexWaitAny with %zu entries (it takes 1 to %d)\n",
                 entries.size(), kMaxFutexWaitEntries);
    std::abort();
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    if (reinterpret_cast<uintptr_t>(entries[i].word) % 4 != 0) {
      std::fprintf(stderr, "wharf: FutexWaitAny: entry %zu's word %p is not 4-byte aligned\n", i,
                   entries[i].word);
      std::abort();
    }
  }
}

uint32_t LoadWord(const void* word) {
  return __atomic_load_n(static_cast<const uint32_t*>(word), __ATOMIC_SEQ_CST);
}

// futex_waitv(2) on every entry with an absolute realtime deadline. Returns
// false (and leaves *out alone) on ENOSYS.
bool WaitV(std::span<const FutexWaitEntry> entries, absl::Time deadline,
           FutexWaitAnyResult* out) {
  struct futex_waitv waiters[kMaxFutexWaitEntries];
  for (size_t i = 0; i < entries.size(); ++i) {
    std::memset(&waiters[i], 0, sizeof(waiters[i]));  // __reserved must be 0
    waiters[i].val = entries[i].expected;
    waiters[i].uaddr = reinterpret_cast<uintptr_t>(entries[i].word);
    waiters[i].flags = FUTEX_32 | PrivateFlag(entries[i].scope);
  }
  timespec ts;
  const long rc = syscall(SYS_futex_waitv, waiters, static_cast<unsigned>(entries.size()), 0,
                          DeadlineTimespec(deadline, &ts), CLOCK_REALTIME);
  // rc >= 0: the index of a woken entry. When several were woken the kernel
  // reports the LAST of them in array order (futex_unqueue_multiple keeps
  // the highest index it finds dequeued): callers that must know whether
  // one particular entry was woken put it after the others.
  if (rc >= 0) {
    *out = {FutexWaitResult::kWoken, static_cast<int>(rc)};
    return true;
  }
  switch (errno) {
    case EAGAIN:
      *out = {FutexWaitResult::kNotEqual, -1};
      return true;
    case ETIMEDOUT:
      *out = {FutexWaitResult::kTimedOut, -1};
      return true;
    case EINTR:
      *out = {FutexWaitResult::kWoken, -1};
      return true;
    case ENOSYS:
      waitv_unsupported.store(true, std::memory_order_relaxed);
      return false;
    default:
      FutexFatal("futex_waitv", entries[0].word, errno);
  }
}

// The fallback without futex_waitv: sleeps on entries[sleep_on] alone, in
// slices of at most kFallbackSlice, and re-reads every entry before each
// slice. A FutexWake on entries[sleep_on] is seen at once; anything that
// happens to another entry only as a change of its word, up to a slice late
// (a wake without a store there is missed).
FutexWaitAnyResult WaitSlices(std::span<const FutexWaitEntry> entries, absl::Time deadline,
                              size_t sleep_on) {
  const FutexWaitEntry& sleeper = entries[sleep_on];
  for (;;) {
    for (const FutexWaitEntry& e : entries) {
      if (LoadWord(e.word) != e.expected) return {FutexWaitResult::kNotEqual, -1};
    }
    const absl::Time slice = std::min(deadline, absl::Now() + kFallbackSlice);
    switch (RawWait(sleeper.word, sleeper.expected, sleeper.scope, slice)) {
      case 0:
        return {FutexWaitResult::kWoken, static_cast<int>(sleep_on)};
      case EAGAIN:
        return {FutexWaitResult::kNotEqual, -1};
      case EINTR:
        return {FutexWaitResult::kWoken, -1};
      default:  // ETIMEDOUT
        if (slice == deadline) return {FutexWaitResult::kTimedOut, -1};
        break;  // the slice ended: re-read and sleep again
    }
  }
}

// FutexWaitAny whose fallback sleeps on entries[fallback_sleep_on].
FutexWaitAnyResult WaitAny(std::span<const FutexWaitEntry> entries, absl::Time deadline,
                           size_t fallback_sleep_on) {
  CheckEntries(entries);
  if (!waitv_unsupported.load(std::memory_order_relaxed)) {
    FutexWaitAnyResult r;
    if (WaitV(entries, deadline, &r)) return r;
  }
  return WaitSlices(entries, deadline, fallback_sleep_on);
}

}  // namespace

FutexWaitAnyResult FutexWaitAny(std::span<const FutexWaitEntry> entries, absl::Time deadline) {
  return WaitAny(entries, deadline, 0);
}

// --- 64-bit and interruptible waits, on top of FutexWaitAny --------------------

namespace {

bool IsSet(const std::atomic<uint32_t>* interrupt_word) {
  // B: acquire; matches the interrupter's release store (sync/interrupt.h).
  return interrupt_word != nullptr && interrupt_word->load(std::memory_order_acquire) != 0;
}

// What an interruptible wait reports, given the FutexWaitAny over
// [interrupt word, the cell's word(s)].
//
// Why the interrupt word comes FIRST: when several entries were woken (a
// FutexWake on the cell and the interrupter's wake both dequeued us), the
// kernel returns the index of the LAST woken entry (unqueue_multiple). With
// the cell after the interrupt word, a consumed wake of the cell always shows
// as its index, and index 0 means that only the interrupter woke us — so
// kInterrupted never hides a consumed FutexWake.
FutexWaitResult Interruptible(FutexWaitAnyResult r,
                              const std::atomic<uint32_t>* interrupt_word) {
  if (r.result == FutexWaitResult::kWoken && r.index > 0) return FutexWaitResult::kWoken;
  if (r.result == FutexWaitResult::kWoken && r.index == 0) return FutexWaitResult::kInterrupted;
  // A signal, kNotEqual or kTimedOut: the interrupt word may be why.
  return IsSet(interrupt_word) ? FutexWaitResult::kInterrupted : r.result;
}

}  // namespace

// The fallbacks (no futex_waitv) of these sleep on the cell, not on
// entries[0] as FutexWaitAny does: the interrupter always stores before it
// wakes, so its request is seen as a value change within a slice, while a
// FutexWake on the cell without a store (atomics::Notify after no change)
// would be missed if we slept on the interrupt word.

FutexWaitResult FutexWaitOrInterrupt(const void* word, uint32_t expected, FutexScope scope,
                                     const std::atomic<uint32_t>* interrupt_word,
                                     absl::Time deadline) {
  if (interrupt_word == nullptr) return FutexWait(word, expected, scope, deadline);
  if (IsSet(interrupt_word)) return FutexWaitResult::kInterrupted;
  const FutexWaitEntry entries[] = {
      {interrupt_word, 0, FutexScope::kPrivate},  // first: see Interruptible()
      {word, expected, scope},
  };
  return Interruptible(WaitAny(entries, deadline, /*fallback_sleep_on=*/1), interrupt_word);
}

FutexWaitResult FutexWait64(const void* word, uint64_t expected, FutexScope scope,
                            absl::Time deadline) {
  return FutexWait64OrInterrupt(word, expected, scope, nullptr, deadline);
}

FutexWaitResult FutexWait64OrInterrupt(const void* word, uint64_t expected, FutexScope scope,
                                       const std::atomic<uint32_t>* interrupt_word,
                                       absl::Time deadline) {
  const FutexWaitEntry low{LowHalf(word), static_cast<uint32_t>(expected), scope};
  const FutexWaitEntry high{HighHalf(word), static_cast<uint32_t>(expected >> 32), scope};
  if (interrupt_word == nullptr) {
    const FutexWaitEntry entries[] = {low, high};
    return WaitAny(entries, deadline, /*fallback_sleep_on=*/0).result;
  }
  if (IsSet(interrupt_word)) return FutexWaitResult::kInterrupted;
  const FutexWaitEntry entries[] = {
      {interrupt_word, 0, FutexScope::kPrivate},  // first: see Interruptible()
      low,
      high,
  };
  return Interruptible(WaitAny(entries, deadline, /*fallback_sleep_on=*/1), interrupt_word);
}

void SetFutexWaitvUnsupportedForTesting(bool unsupported) {
  waitv_unsupported.store(unsupported, std::memory_order_relaxed);
}

// --- Wake ---------------------------------------------------------------------

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
