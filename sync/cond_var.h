// CondVar: a condition variable for wharf::Mutex, usable across processes, in
// 8 bytes that can live in shared memory.
//
// Waiters hold a Mutex, find their condition false, and call Wait(mu): it
// releases mu, sleeps until Signal()/SignalAll() (or a deadline), and
// re-acquires mu before returning. The std-style names (wait, wait_for,
// wait_until, notify_one, notify_all, with std::unique_lock<wharf::Mutex>)
// make it a drop-in for std::condition_variable. Put the CondVar next to its
// Mutex in a SharedBuffer/SharedSegment to wait and signal across processes
// (an all-zero CondVar is a valid one; it is trivially destructible).
//
// Spurious wake-ups: a wait may return without a signal (a POSIX signal hit
// the thread, a signal raced with the start of the wait, or SignalAll woke
// everyone for one item). Always wait in a loop on the condition, or use the
// predicate overloads.
//
// Thread-safety: every method may be called concurrently. Signal()/SignalAll()
// may be called with or without the mutex held; a signal reaches every waiter
// that released the mutex before the signaller acquired it (so change the
// condition under the mutex, then signal, and no wake-up is lost). A signal
// with no waiter does nothing (one load, no syscall) and is not remembered.
// Memory ordering: none beyond the Mutex's — everything done under the mutex
// before unlock is visible to the next holder, including a waiter that
// re-acquires it on return.
//
// Blocking: every wait blocks and is an interruption point (sync/interrupt.h):
// an interrupted waiter re-acquires the mutex (uninterruptibly, as after a
// timeout) and throws wharf::Interrupted holding it — a std::unique_lock
// releases it during unwinding — and consumes no signal. Signal and SignalAll
// never block.
//
// Errors (owner death): the relock reports the Mutex's LockResult.
// kOwnerDied: the mutex is held, but a previous holder died with it — repair
// the protected data and call mu.MarkConsistent() before going on.
// kNotRecoverable: the mutex is NOT held (do not unlock it) and never will be:
// give up on the protected data (an interrupted wait then returns it instead
// of throwing; the request stays pending). Do not call Wait() holding a mutex
// still in the owner-died state: its unlock would make it not recoverable.
// Calling Wait() without holding mu aborts. Protocol and costs: cond_var.cc.

#ifndef WHARF_SYNC_COND_VAR_H_
#define WHARF_SYNC_COND_VAR_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/sync/lock_result.h"
#include "wharf/sync/mutex.h"

namespace wharf {

// What a timed wait reports: whether it ended by the deadline, and how the
// mutex was re-acquired (kOk, kOwnerDied: held, repair; kNotRecoverable: NOT
// held). The mutex is held on return exactly when Acquired(lock).
struct [[nodiscard]] CondVarWaitResult {
  bool timed_out;
  LockResult lock;
};

class CondVar {
 public:
  constexpr CondVar() noexcept = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu` (which the caller must hold), blocks until signalled (or
  // spuriously woken), re-acquires `mu`. Returns the re-acquisition's result:
  // kOk, kOwnerDied (held; repair, MarkConsistent) or kNotRecoverable (not
  // held). Aborts if the caller does not hold `mu`.
  [[nodiscard]] LockResult Wait(Mutex& mu) {
    return WaitUntil(mu, absl::InfiniteFuture()).lock;
  }

  // As Wait(), but also returns at `deadline` with timed_out = true. The mutex
  // is re-acquired either way (unless the result is kNotRecoverable).
  CondVarWaitResult WaitUntil(Mutex& mu, absl::Time deadline);
  CondVarWaitResult WaitFor(Mutex& mu, absl::Duration timeout) {
    return WaitUntil(mu, absl::Now() + timeout);
  }

  // Wakes one waiter (if any). Never blocks.
  void Signal() {
    // B: matches A in WaitUntil, through the mutex (protocol: cond_var.cc).
    if (waiters_.load(std::memory_order_relaxed) != 0) Wake(1);
  }
  // Wakes every waiter (if any). Never blocks.
  void SignalAll() {
    // B: matches A in WaitUntil, through the mutex.
    if (waiters_.load(std::memory_order_relaxed) != 0) Wake(INT32_MAX);
  }

  // std::condition_variable interface over std::unique_lock<wharf::Mutex>.
  // After owner death they return holding the mutex in the owner-died state
  // (as Mutex::lock() does); on kNotRecoverable they release() the
  // unique_lock (it no longer owns the mutex) and throw std::system_error
  // (errc::state_not_recoverable). Code where owners may die uses Wait().
  void notify_one() noexcept { Signal(); }
  void notify_all() noexcept { SignalAll(); }
  void wait(std::unique_lock<Mutex>& lock) {
    CheckRelock(lock, Wait(*lock.mutex()));
  }
  template <class Predicate>
  void wait(std::unique_lock<Mutex>& lock, Predicate pred) {
    while (!pred()) wait(lock);
  }
  template <class Clock, class Duration>
  std::cv_status wait_until(std::unique_lock<Mutex>& lock,
                            const std::chrono::time_point<Clock, Duration>& t) {
    return wait_for(lock, t - Clock::now());
  }
  template <class Clock, class Duration, class Predicate>
  bool wait_until(std::unique_lock<Mutex>& lock,
                  const std::chrono::time_point<Clock, Duration>& t, Predicate pred) {
    while (!pred()) {
      if (wait_until(lock, t) == std::cv_status::timeout) return pred();
    }
    return true;
  }
  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<Mutex>& lock,
                          const std::chrono::duration<Rep, Period>& d) {
    const CondVarWaitResult r = WaitFor(*lock.mutex(), absl::FromChrono(d));
    CheckRelock(lock, r.lock);
    return r.timed_out ? std::cv_status::timeout : std::cv_status::no_timeout;
  }
  template <class Rep, class Period, class Predicate>
  bool wait_for(std::unique_lock<Mutex>& lock, const std::chrono::duration<Rep, Period>& d,
                Predicate pred) {
    const absl::Time deadline = absl::Now() + absl::FromChrono(d);
    while (!pred()) {
      const CondVarWaitResult r = WaitUntil(*lock.mutex(), deadline);
      CheckRelock(lock, r.lock);
      if (r.timed_out) return pred();
    }
    return true;
  }

  // Snapshots, for tests and tools.
  uint32_t WaitersForTesting() const { return waiters_.load(); }
  uint32_t SequenceForTesting() const { return seq_.load(); }

 private:
  void Wake(int count);
  // Throws (after lock.release()) when the relock failed.
  static void CheckRelock(std::unique_lock<Mutex>& lock, LockResult r);

  // seq_: the futex word, bumped by every signal that finds a waiter.
  // waiters_: threads between their announce and their return. Protocol:
  // cond_var.cc.
  std::atomic<uint32_t> seq_{0};
  std::atomic<uint32_t> waiters_{0};
};

static_assert(sizeof(CondVar) == 8 && alignof(CondVar) == 4);
static_assert(std::is_trivially_destructible_v<CondVar>);

}  // namespace wharf

#endif  // WHARF_SYNC_COND_VAR_H_
