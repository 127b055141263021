// CondVar: a condition variable for wharf::Mutex, usable across processes, in
// 8 bytes that can live in shared memory.
//
// Waiters hold a Mutex, find their condition false, and call Wait(mu): it
// releases mu, sleeps until Signal()/SignalAll() (or a deadline), and
// re-acquires mu before returning. The std-style names (wait, wait_for,
// wait_until, notify_one, notify_all, with std::unique_lock<wharf::Mutex>)
// make it a drop-in for std::condition_variable. Put the CondVar next to its
// Mutex in a SharedBuffer/SharedSegment to wait and signal across processes.
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
// with no waiter does nothing and is not remembered.
//
// Memory ordering: the CondVar adds none beyond the Mutex: everything done
// under the mutex before unlock is visible to the next holder, including a
// waiter that re-acquires it on return.
//
// Owner death: the relock reports the Mutex's LockResult. kOwnerDied: the
// mutex is held, but a previous holder died with it — repair the protected
// data and call mu.MarkConsistent() before going on. kNotRecoverable: the
// mutex is NOT held (do not unlock it) and never will be: give up on the
// protected data. Do not call Wait() holding a mutex still in the owner-died
// state: its unlock would make it not recoverable. A process that dies while
// waiting leaves its waiter mark behind: later signals then make one harmless
// futex-wake syscall each.
//
// Interruption: every wait is an interruption point (sync/interrupt.h). A
// waiter in the scope of a requested Interrupter leaves its sleep (or does
// not start it), re-acquires the mutex — uninterruptibly, as after a timeout
// — and throws wharf::Interrupted holding it, so a std::unique_lock releases
// it during unwinding. It consumes no signal: a Signal() that races with the
// interruption wakes another waiter. (If the relock finds the mutex not
// recoverable, the wait returns kNotRecoverable instead of throwing; the
// request stays pending.)
//
// SignalAll wakes every waiter, and they then contend for the mutex (the
// "thundering herd"): each takes it in turn, and the Mutex's spin-then-sleep
// keeps that orderly. Wharf does not requeue waiters onto the mutex
// (FUTEX_CMP_REQUEUE) because the Mutex's futex word carries owner ids and a
// requeued waiter would need a "lock as contended" entry that Mutex does not
// expose; with few waiters per CondVar (the common case) the herd is small.
//
// Cost: Signal/SignalAll with no waiter is one load and no syscall. A waiter
// spins briefly (sync_internal::kLockSpins) after releasing the mutex, for a
// signaller running on another CPU, before it sleeps on the futex.
//
// Shared-memory layout: two std::atomic<uint32_t>; trivially destructible; an
// all-zero CondVar is a valid one.

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
    // B: matches A in WaitUntil, through the mutex (see the protocol).
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

  // Protocol (a sequence-number condition variable, as in Drepper's "Futexes
  // Are Tricky" and glibc before 2.25, with a waiter count so that signalling
  // nobody costs no syscall).
  //   seq_:     bumped (fetch_add) by every signal that finds a waiter; the
  //             futex word. Wraps at 2^32: a waiter that misses exactly 2^32
  //             signals between reading it and sleeping would sleep on; that
  //             takes far longer than the few instructions in between.
  //   waiters_: the number of threads inside WaitUntil between their
  //             announce and their return; written by waiters only.
  //   Wait:     A: waiters_.fetch_add(1), then s = seq_.load() — both while
  //             still holding mu; unlock mu; spin read-only while seq_ == s;
  //             FutexWait(seq_, s, deadline); waiters_.fetch_sub(1); relock.
  //   Signal:   B: if waiters_.load() is 0, return (no syscall); else
  //             seq_.fetch_add(1) and FutexWake(seq_, 1 or all).
  // Why no wake-up is lost, and why A and B need no seq_cst (A matches B
  // through the mutex, not through a fence): the contract is that the signal
  // must reach waiters that released mu before the signaller acquired it. For
  // such a waiter W, A is sequenced before W's unlock (release), which
  // synchronizes with the signaller's lock (acquire), which comes before B. So
  // A happens-before B: B's load reads W's increment or a later value
  // (coherence), and W's read of seq_ cannot see B's bump. W's expected value
  // is therefore stale once B bumps seq_: if W is not yet asleep, the kernel's
  // compare fails and FutexWait returns; if W is asleep, FutexWake finds it.
  // A signaller with no such order to W (it never took mu after W released
  // it) may miss W — the lost wake-up every condition variable has when the
  // condition is changed outside the mutex.
  std::atomic<uint32_t> seq_{0};
  std::atomic<uint32_t> waiters_{0};
};

static_assert(sizeof(CondVar) == 8 && alignof(CondVar) == 4);
static_assert(std::is_trivially_destructible_v<CondVar>);

}  // namespace wharf

#endif  // WHARF_SYNC_COND_VAR_H_
