// Atomics: JavaScript's `Atomics` on 32- and 64-bit integer cells anywhere in
// memory — an ordinary variable, a SharedBuffer view, or a mapping shared by
// several processes. Use it to port SharedArrayBuffer code, or for a one-word
// flag or counter that other threads or processes wait on; for mutual
// exclusion use a Mutex.
//
//   auto cells = buffer.View<int32_t>().value();
//   wharf::atomics::Add(cells[0], 1);
//   if (wharf::atomics::Wait(cells[1], 0, absl::Seconds(1)) == WaitResult::kTimedOut) ...
//   wharf::atomics::Notify(cells[1], 1);
//
// Cells are int32_t, uint32_t, int64_t or uint64_t, aligned to their size (a
// SharedBuffer view guarantees it). Thread-safety and memory ordering: every
// operation is atomic and sequentially consistent, as in JS, from any thread
// of any process mapping the cell. Read-modify-write operations return the old
// value, Store returns the value stored, CompareExchange returns the value it
// found.
//
// Blocking: only Wait/WaitUntil. Wait(cell, expected, timeout) returns
// kNotEqual at once if the cell does not hold `expected`, otherwise sleeps
// until a Notify on the same cell (kOk) or the timeout (kTimedOut); a Store
// without Notify wakes no one. It errs towards waking: a signal delivered to
// the waiting thread, a store racing with the very start of the wait (between
// the value check and the kernel's), and a change of the value during
// WaitOptions::spin all end it with kOk, so callers re-check their condition,
// as with any condition wait. Wait is an interruption point
// (sync/interrupt.h): a thread that would sleep (after the value check and the
// spin) in the scope of a requested Interrupter throws wharf::Interrupted
// instead, or wakes and throws it if the request comes while it sleeps; it
// consumes no Notify, so Notify(cell, n) then wakes n other waiters.
// Notify(cell, count) never blocks: it wakes up to `count` waiters and returns
// how many it woke. By default both use the futex in shared scope, so waiters
// and notifiers may be in different processes (WaitOptions::scope).
//
// Errors: none at run time; a misaligned cell is a programming error and
// aborts (sync/futex.h).

#ifndef WHARF_SYNC_ATOMICS_H_
#define WHARF_SYNC_ATOMICS_H_

#include <atomic>
#include <climits>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/sync/futex.h"
#include "wharf/sync/internal/async_waiters.h"
#include "wharf/sync/internal/private_waiters.h"
#include "wharf/sync/internal/wait_loop.h"
#include "wharf/sync/interrupt.h"

namespace wharf {

enum class WaitResult : uint8_t { kOk, kNotEqual, kTimedOut };

struct WaitOptions {
  // Spin (watching the cell) this long before sleeping. Zero: JS semantics.
  // A change of the value during the spin ends the wait with kOk — the folly /
  // std::atomic::wait convention, which gives up JS's "a store without notify
  // wakes no one" for the spin window in exchange for a sub-µs hand-off when
  // the notifier is running on another CPU. A waiter that is never notified
  // spins once, then sleeps and uses no CPU.
  absl::Duration spin = absl::ZeroDuration();
  // kPrivate: only for cells whose waiters and notifiers are all threads of
  // this process. It lets Notify skip its syscall when nobody sleeps, and is
  // slightly cheaper in the kernel. Notify must use the same scope.
  FutexScope scope = FutexScope::kShared;
};

namespace atomics {

template <class T>
concept Cell = std::is_same_v<T, int32_t> || std::is_same_v<T, uint32_t> ||
               std::is_same_v<T, int64_t> || std::is_same_v<T, uint64_t>;

template <Cell T>
inline T Load(const T& cell) {
  return std::atomic_ref<T>(const_cast<T&>(cell)).load(std::memory_order_seq_cst);
}
template <Cell T>
inline T Store(T& cell, T value) {
  std::atomic_ref<T>(cell).store(value, std::memory_order_seq_cst);
  return value;
}
template <Cell T>
inline T Add(T& cell, T value) {
  return std::atomic_ref<T>(cell).fetch_add(value, std::memory_order_seq_cst);
}
template <Cell T>
inline T Sub(T& cell, T value) {
  return std::atomic_ref<T>(cell).fetch_sub(value, std::memory_order_seq_cst);
}
template <Cell T>
inline T And(T& cell, T value) {
  return std::atomic_ref<T>(cell).fetch_and(value, std::memory_order_seq_cst);
}
template <Cell T>
inline T Or(T& cell, T value) {
  return std::atomic_ref<T>(cell).fetch_or(value, std::memory_order_seq_cst);
}
template <Cell T>
inline T Xor(T& cell, T value) {
  return std::atomic_ref<T>(cell).fetch_xor(value, std::memory_order_seq_cst);
}
template <Cell T>
inline T Exchange(T& cell, T value) {
  return std::atomic_ref<T>(cell).exchange(value, std::memory_order_seq_cst);
}
template <Cell T>
inline T CompareExchange(T& cell, T expected, T replacement) {
  std::atomic_ref<T>(cell).compare_exchange_strong(expected, replacement,
                                                   std::memory_order_seq_cst);
  return expected;  // the value found: equal to `expected` iff it was replaced
}

// JS Atomics.isLockFree(size): true for 1, 2, 4 and 8 bytes on Wharf's
// platforms (x86-64, aarch64); false for any other size.
constexpr bool IsLockFree(int size) {
  switch (size) {
    case 1: return std::atomic<uint8_t>::is_always_lock_free;
    case 2: return std::atomic<uint16_t>::is_always_lock_free;
    case 4: return std::atomic<uint32_t>::is_always_lock_free;
    case 8: return std::atomic<uint64_t>::is_always_lock_free;
    default: return false;
  }
}

// Sleeps while `cell` holds `expected`, until notified or `deadline`.
// Blocking. See the file comment for the semantics and WaitOptions. An
// interruption point (sync/interrupt.h): throws Interrupted.
template <Cell T>
WaitResult WaitUntil(T& cell, T expected, absl::Time deadline, WaitOptions options = {}) {
  // 64-bit cells: the kernel's futex is 32-bit, so the sleep queues on both
  // halves at once (FutexWait64, futex_waitv): a change of either half between
  // the value check and the sleep is seen and no Notify is lost (for the
  // fallback on kernels < 5.16, see FutexWait64).
  using Word = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  std::atomic_ref<T> ref(cell);
  const auto changed = [&] { return ref.load(std::memory_order_seq_cst) != expected; };
  if (changed()) return WaitResult::kNotEqual;
  std::atomic<uint32_t>* announced = nullptr;
  const sync_internal::WaitEnd end = sync_internal::WaitLoop(
      // One sleep (JS: any wake is kOk), after the optional spin (a change of
      // the value during it is kOk: see WaitOptions::spin).
      {.word = &cell,
       .scope = options.scope,
       .spin_pauses = 0,
       .spin_for = options.spin,
       .single_sleep = true},
      deadline, changed,
      [&]() -> std::optional<Word> {
        // kPrivate: announce in the process's waiter table (A, matches B in
        // Notify), then re-check, so that a Notify that saw no waiter cannot
        // be missed.
        if (options.scope == FutexScope::kPrivate) {
          announced = &sync_internal::PrivateWaiters(&cell);
          announced->fetch_add(1, std::memory_order_seq_cst);
          if (changed()) {  // the store raced the start of the wait: kOk
            announced->fetch_sub(1, std::memory_order_relaxed);
            announced = nullptr;
            return std::nullopt;
          }
        }
        return static_cast<Word>(expected);
      });
  if (announced != nullptr) announced->fetch_sub(1, std::memory_order_relaxed);
  // Interrupted: the announcement is withdrawn; no Notify was consumed.
  if (end == sync_internal::WaitEnd::kInterrupted) sync_internal::ThrowInterrupted();
  // kWoken also covers kNotEqual from the kernel: the cell changed between our
  // check and the kernel's — a store that raced with the start of the wait,
  // normally followed by its Notify, which we would miss if we slept again.
  // It counts as woken.
  return end == sync_internal::WaitEnd::kTimedOut ? WaitResult::kTimedOut : WaitResult::kOk;
}

template <Cell T>
WaitResult Wait(T& cell, T expected, absl::Duration timeout = absl::InfiniteDuration(),
                WaitOptions options = {}) {
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  return WaitUntil(cell, expected, deadline, options);
}

// Wakes up to `count` waiters on `cell` (all for INT_MAX; none for count <= 0)
// and returns how many were woken: first the asynchronous waiters of this
// process (WaitAsync, oldest first), then threads asleep in Wait. `scope`
// must match the waiters'. Shared scope (the default) makes one syscall when
// `count` is not used up by async waiters: a raw cell has no room to record
// sleepers, and they may be in other processes. Private scope skips it when
// no thread of this process sleeps on the cell (internal/private_waiters.h)
// — the way to a sub-µs hand-off between threads.
template <Cell T>
int Notify(T& cell, int count = INT_MAX, FutexScope scope = FutexScope::kShared) {
  if (count <= 0) return 0;
  // B: matches A in WaitUntil (private sleepers) and in
  // AsyncWaiters::Register: orders the caller's store to the cell before the
  // loads of the waiter counts.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const int async = sync_internal::AsyncWaiters::Notify(&cell, count);
  if (async == count) return async;
  count -= async;
  if (scope == FutexScope::kPrivate &&
      sync_internal::PrivateWaiters(&cell).load(std::memory_order_seq_cst) == 0) {
    return async;
  }
  if constexpr (sizeof(T) == 4) {
    return async + FutexWake(&cell, count, scope);
  } else {
    return async + FutexWake64(&cell, count, scope);
  }
}

}  // namespace atomics
}  // namespace wharf

#endif  // WHARF_SYNC_ATOMICS_H_
