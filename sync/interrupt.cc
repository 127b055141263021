#include "wharf/sync/interrupt.h"

#include <climits>
#include <exception>

// Mechanism. An Interrupter is one 32-bit word, 0 until Request() stores 1
// (release) and wakes every sleeper on it (A in Request, matches B in the
// sleepers' acquire loads). An interruptible sleep waits on the primitive's
// futex word and the interrupter's word at once with futex_waitv(2) (Linux >=
// 5.16; FutexWaitOrInterrupt in sync/futex.cc, interrupt word first so that a
// consumed FutexWake is never reported as kInterrupted); on older kernels it
// sleeps in slices of 1 ms and re-checks the Interrupter between them, so a
// request is noticed within a slice. The primitives reach it through the wait
// loop (sync/internal/wait_loop.h) and InterruptibleFutexWait below.
//
// Cost: Request() is a store and one futex-wake syscall. A wait that does not
// sleep never reads the Interrupter; one that sleeps reads two thread-locals
// and std::uncaught_exceptions() (ActiveInterruptWord) per sleep.
// The interrupter's word is waited on with private scope: an Interrupter is
// never shared between processes.

namespace wharf {
namespace {

// The Interrupter of the innermost InterruptibleScope on this thread.
constinit thread_local Interrupter* tls_interrupter = nullptr;

}  // namespace

void Interrupter::Request() {
  // A: release; matches B (the acquire loads in requested() and in the
  // sleepers' checks). The kernel orders the store before the wake: a sleeper
  // queued before the store is woken, one that queues after it sees 1 in the
  // kernel's compare and does not sleep.
  if (word_.exchange(1, std::memory_order_release) != 0) return;  // woken already
  FutexWake(&word_, INT_MAX, FutexScope::kPrivate);
}

InterruptibleScope::InterruptibleScope(Interrupter& interrupter) : previous_(tls_interrupter) {
  tls_interrupter = &interrupter;
}

InterruptibleScope::~InterruptibleScope() { tls_interrupter = previous_; }

namespace sync_internal {

const std::atomic<uint32_t>* ActiveInterruptWord() {
  Interrupter* i = tls_interrupter;
  if (i == nullptr || tls_uninterruptible_depth != 0 || std::uncaught_exceptions() != 0) {
    return nullptr;
  }
  return &i->word_;
}

FutexWaitResult InterruptibleFutexWait(const void* word, uint32_t expected, FutexScope scope,
                                       absl::Time deadline) {
  return FutexWaitOrInterrupt(word, expected, scope, ActiveInterruptWord(), deadline);
}

FutexWaitResult InterruptibleFutexWait64(const void* word, uint64_t expected, FutexScope scope,
                                         absl::Time deadline) {
  return FutexWait64OrInterrupt(word, expected, scope, ActiveInterruptWord(), deadline);
}

void ThrowInterrupted() { throw Interrupted(); }

}  // namespace sync_internal

void InterruptionPoint() {
  const std::atomic<uint32_t>* w = sync_internal::ActiveInterruptWord();
  // B: acquire; matches A in Request.
  if (w != nullptr && w->load(std::memory_order_acquire) != 0) sync_internal::ThrowInterrupted();
}

bool InterruptionRequested() {
  const Interrupter* i = tls_interrupter;
  return i != nullptr && i->requested();
}

}  // namespace wharf
