// Futex: the one wrapper over Linux's futex(2) and futex_waitv(2) that every
// Wharf lock and wait stands on.
//
// A futex word is a 4-byte aligned 32-bit word. `FutexWait` sleeps while the
// word holds `expected`; `FutexWake` wakes sleepers; `FutexWaitAny` sleeps on
// up to 128 words at once. Use it to build a blocking primitive; to wait for
// a value, use atomics::Wait (wharf/sync/atomics.h) or a lock instead.
//
// This layer has no policy: no spinning, no retries, no re-checks of a
// caller's condition (sync/internal/wait_loop.h is the one place for those).
// It takes an explicit scope, because a private futex (FUTEX_PRIVATE_FLAG,
// what Abseil and folly always pass) is keyed by (mm, address) and silently
// never wakes a waiter in another process. Use kShared whenever the word may
// live in memory mapped by several processes; kPrivate only for memory that
// cannot be.
//
// Thread-safety: all functions may be called concurrently from any thread or
// process. Blocking: only the Wait functions block, until woken, a word
// differs from its expected value, the deadline passes, or a signal arrives.
// Errors: misuse (a misaligned word, a bad address, an empty or oversized
// FutexWaitAny) is a programming error and aborts with a message; everything
// else is in the returned enum.

#ifndef WHARF_SYNC_FUTEX_H_
#define WHARF_SYNC_FUTEX_H_

#include <atomic>
#include <cstdint>
#include <span>

#include "absl/time/time.h"

namespace wharf {

enum class FutexScope : uint8_t {
  kPrivate,  // the word is only ever mapped by this process
  kShared,   // the word may be mapped by several processes
};

enum class FutexWaitResult : uint8_t {
  // Woken by FutexWake, by a signal (EINTR) or spuriously. The caller must
  // re-check its condition: this is the single place where EINTR and spurious
  // wake-ups are folded together.
  kWoken,
  kNotEqual,  // the word did not hold `expected` when the kernel looked
  kTimedOut,  // `deadline` passed
  // Only from the *OrInterrupt waits: the interrupt word was (or became)
  // non-zero. No FutexWake on `word` was consumed by this wait: a FutexWake
  // on `word` that counted this sleeper is reported as kWoken, even when the
  // interrupt word was set and woken too.
  kInterrupted,
};

// Sleeps while the 32-bit word at `word` equals `expected`, until `deadline`
// (absl::InfiniteFuture() for no deadline; a deadline in the past returns
// kTimedOut or kNotEqual without sleeping). `word` must be 4-byte aligned.
FutexWaitResult FutexWait(const void* word, uint32_t expected, FutexScope scope,
                          absl::Time deadline = absl::InfiniteFuture());

// One word of a FutexWaitAny: sleep while the 32-bit word at `word` (4-byte
// aligned) holds `expected`, keyed with `scope`.
struct FutexWaitEntry {
  const void* word;
  uint32_t expected;
  FutexScope scope;
};

// The most entries one FutexWaitAny takes (the kernel's FUTEX_WAITV_MAX).
inline constexpr int kMaxFutexWaitEntries = 128;

struct FutexWaitAnyResult {
  FutexWaitResult result;  // kWoken, kNotEqual or kTimedOut
  // For kWoken: the index of the woken entry when the kernel says which
  // (futex_waitv's return value; when several were woken, the LAST of them
  // in array order). -1 otherwise: a signal, or any other result.
  int index;
};

// Sleeps on all `entries` at once (futex_waitv(2), Linux >= 5.16) until one of
// them is woken by a FutexWake (kWoken, its index), some entry's word differs
// from its `expected` when the kernel looks (kNotEqual, index -1), `deadline`
// passes (kTimedOut; a deadline in the past returns without sleeping), or a
// signal arrives (kWoken, index -1). Entries may mix scopes. 0 entries, more
// than kMaxFutexWaitEntries, or a misaligned word: aborts with a message.
//
// Without futex_waitv (ENOSYS) it falls back to sleeping on entries[0] alone,
// in slices of at most 1 ms, re-reading every entry between slices (kNotEqual
// when one changed). Limits of the fallback: a change of a later entry is
// noticed up to a slice late, and a FutexWake on a later entry WITHOUT a
// change of its word is missed (it is only ever seen as a value change). A
// FutexWake on entries[0] is reported as kWoken with index 0.
FutexWaitAnyResult FutexWaitAny(std::span<const FutexWaitEntry> entries,
                                absl::Time deadline = absl::InfiniteFuture());

// Sleeps while the 64-bit word at `word` equals `expected` (8-byte aligned).
// The futex is 32-bit, so this queues on both halves at once with
// FutexWaitAny: a change to either half between the caller's check and the
// sleep is seen by the kernel, and a FutexWake64 on the word finds the
// sleeper. Without futex_waitv it sleeps on the low half in slices of at most
// 1 ms, re-reading both halves between slices, so that a change confined to
// the high half is noticed within a slice.
FutexWaitResult FutexWait64(const void* word, uint64_t expected,
                            FutexScope scope,
                            absl::Time deadline = absl::InfiniteFuture());

// As FutexWait / FutexWait64, but also ends the sleep when the 32-bit word
// `interrupt_word` (a word of this process: it is waited on with private
// scope, so wake it with FutexWake(..., FutexScope::kPrivate)) is non-zero:
// it is checked (acquire) before sleeping, and the sleep waits on both words
// at once with FutexWaitAny, each entry with its own scope, so a store+wake
// of the interrupt word is never missed. Returns kInterrupted then; a
// FutexWake on `word` that this sleep consumed is reported as kWoken even
// when the interrupt word was set too. A null `interrupt_word` makes these
// exactly FutexWait / FutexWait64. Without futex_waitv they sleep on `word`
// in slices of at most 1 ms and re-check the interrupt word between slices.
FutexWaitResult FutexWaitOrInterrupt(const void* word, uint32_t expected, FutexScope scope,
                                     const std::atomic<uint32_t>* interrupt_word,
                                     absl::Time deadline = absl::InfiniteFuture());
FutexWaitResult FutexWait64OrInterrupt(const void* word, uint64_t expected, FutexScope scope,
                                       const std::atomic<uint32_t>* interrupt_word,
                                       absl::Time deadline = absl::InfiniteFuture());

// For tests: makes the waits behave as on a kernel without futex_waitv
// (the slice fallbacks), or restores detection. Not for production use.
void SetFutexWaitvUnsupportedForTesting(bool unsupported);

// Wakes up to `count` sleepers on the word (count <= 0 wakes none and makes
// no syscall). Returns the number actually woken.
int FutexWake(const void* word, int count, FutexScope scope);

// Wakes up to `count` sleepers of FutexWait64 on the 64-bit word at `word`.
int FutexWake64(const void* word, int count, FutexScope scope);

}  // namespace wharf

#endif  // WHARF_SYNC_FUTEX_H_
