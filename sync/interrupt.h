// Interruption: a way for one thread to make another thread's blocking Wharf
// waits give up, by throwing wharf::Interrupted out of them — Boost.Thread's
// "interruption points", for the primitives of sync/. Use it to stop a worker
// thread that may be asleep in a lock, a condition wait or a queue.
//
//   wharf::Interrupter interrupter;            // owned by whoever starts the thread
//   std::thread t([&] {
//     wharf::InterruptibleScope scope(interrupter);
//     try {
//       mu.lock();                              // blocked here...
//     } catch (const wharf::Interrupted&) {
//       // ...until interrupter.Request() from another thread
//     }
//   });
//   interrupter.Request();
//
// Interruption points. While an InterruptibleScope is alive on a thread, every
// Wharf wait that would put that thread to sleep is an interruption point of
// the scope's Interrupter: atomics::Wait/WaitUntil, Mutex::Lock/LockUntil/
// LockFor/lock/try_lock_for/try_lock_until, CondVar waits, Semaphore acquires,
// RwLock Lock*/LockShared* (and the std names), Latch, Barrier and
// Notification waits. When the Interrupter is requested before or during such
// a sleep, the wait cleans up exactly as it does at a deadline (each header
// says what that leaves) and throws Interrupted. A wait that does not need to
// sleep (an uncontended lock, a value already changed, a permit available)
// returns normally and does not look at the Interrupter: the fast paths cost
// nothing extra. Not interruption points: try_* calls, FutexWait itself, and
// every wait made while an UninterruptibleScope is alive on the thread
// (library internals, destructors; MutexLock) or while an exception is
// propagating (std::uncaught_exceptions() > 0). A thread without an
// InterruptibleScope is never interrupted.
//
// The request is sticky: once Request() was called, every later interruption
// point on a thread in that Interrupter's scope throws again, so a
// `catch (...)` that swallows Interrupted and waits again is interrupted
// again. Interrupted is deliberately not derived from std::exception (as
// boost::thread_interrupted), so `catch (const std::exception&)` does not
// swallow it.
//
// Thread-safety: Request() and requested() may be called from any thread at
// any time, also after the target thread left its scope; Request() never
// blocks. The scopes are per-thread RAII objects: create and destroy them on
// the thread they govern, in LIFO order. The Interrupter must outlive every
// scope that names it. Memory ordering: everything a thread did before
// Request() is visible to the interrupted thread after it caught Interrupted.
//
// Limits: only Wharf's waits are interruption points. A thread blocked in
// read(2), std::mutex, std::condition_variable, sleep_for or a computation is
// not interrupted; it notices the request at its next interruption point (or
// by polling requested(), or calling InterruptionPoint()). An Interrupter
// works within one process. Mechanism and costs: interrupt.cc.

#ifndef WHARF_SYNC_INTERRUPT_H_
#define WHARF_SYNC_INTERRUPT_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "wharf/sync/futex.h"

namespace wharf {

namespace sync_internal {
const std::atomic<uint32_t>* ActiveInterruptWord();
}  // namespace sync_internal

// Thrown by an interruption point. Not a std::exception (see above).
struct Interrupted {
  const char* what() const noexcept {
    return "wharf::Interrupted: the thread's Interrupter was requested while it waited";
  }
};

// The request flag of one thread (or a group of threads that share it).
// Non-copyable, non-movable: scopes and sleepers refer to its address.
class Interrupter {
 public:
  Interrupter() = default;
  Interrupter(const Interrupter&) = delete;
  Interrupter& operator=(const Interrupter&) = delete;

  // Requests interruption: every thread now asleep in an interruption point
  // of this Interrupter wakes and throws Interrupted; later interruption
  // points throw at once. Idempotent; never blocks; any thread.
  void Request();

  // Whether Request() was called. Never blocks; any thread.
  bool requested() const { return word_.load(std::memory_order_acquire) != 0; }

 private:
  friend const std::atomic<uint32_t>* sync_internal::ActiveInterruptWord();
  // 0, then 1 forever after Request() (A: release store; matches B, the
  // sleeper's acquire load). The second futex word of every interruptible
  // sleep (private scope: an Interrupter is never shared between processes).
  std::atomic<uint32_t> word_{0};
};

// While alive, Wharf's blocking waits on the constructing thread are
// interruption points of `interrupter`. Nests: the innermost scope wins, and
// the destructor restores the previous one.
class InterruptibleScope {
 public:
  explicit InterruptibleScope(Interrupter& interrupter);
  ~InterruptibleScope();
  InterruptibleScope(const InterruptibleScope&) = delete;
  InterruptibleScope& operator=(const InterruptibleScope&) = delete;

 private:
  Interrupter* previous_;
};

namespace sync_internal {
// The depth of UninterruptibleScopes on this thread.
inline constinit thread_local int tls_uninterruptible_depth = 0;
}  // namespace sync_internal

// While alive, no wait on the constructing thread is an interruption point
// (for library internals, destructors, cleanup). Nests; costs two
// thread-local increments.
class UninterruptibleScope {
 public:
  UninterruptibleScope() noexcept { ++sync_internal::tls_uninterruptible_depth; }
  ~UninterruptibleScope() { --sync_internal::tls_uninterruptible_depth; }
  UninterruptibleScope(const UninterruptibleScope&) = delete;
  UninterruptibleScope& operator=(const UninterruptibleScope&) = delete;
};

// std::lock_guard whose lock() is not an interruption point: for locks held
// by library internals, whose callers (destructors, event handlers) must not
// see Interrupted. Works with any Lockable (Mutex, RwLock); for a Mutex spell
// it MutexLock (wharf/sync/mutex.h). The critical section itself stays
// interruptible; only the acquisition is shielded.
template <class Lockable>
class UninterruptibleLock {
 public:
  explicit UninterruptibleLock(Lockable& mu) : mu_(mu) {
    UninterruptibleScope no_interrupt;
    mu_.lock();
  }
  ~UninterruptibleLock() { mu_.unlock(); }
  UninterruptibleLock(const UninterruptibleLock&) = delete;
  UninterruptibleLock& operator=(const UninterruptibleLock&) = delete;

 private:
  Lockable& mu_;
};

// Throws Interrupted if the calling thread is in the scope of a requested
// Interrupter and interruption is enabled (no UninterruptibleScope, no
// exception propagating). Otherwise does nothing. Never blocks.
void InterruptionPoint();

// Whether the calling thread is in the scope of an Interrupter that was
// requested (whether or not interruption is enabled right now).
bool InterruptionRequested();

namespace sync_internal {

// The primitives' side. The word of the calling thread's Interrupter when an
// interruption would be allowed to throw now, else null.
const std::atomic<uint32_t>* ActiveInterruptWord();

// FutexWait / FutexWait64 that also return kInterrupted (no FutexWake on
// `word` consumed) when the calling thread's active Interrupter is requested;
// exactly FutexWait / FutexWait64 when there is none.
FutexWaitResult InterruptibleFutexWait(const void* word, uint32_t expected, FutexScope scope,
                                       absl::Time deadline);
FutexWaitResult InterruptibleFutexWait64(const void* word, uint64_t expected, FutexScope scope,
                                         absl::Time deadline);

// Throws Interrupted (out of line: keeps the throw off the callers' code).
[[noreturn]] void ThrowInterrupted();

}  // namespace sync_internal
}  // namespace wharf

#endif  // WHARF_SYNC_INTERRUPT_H_
