// Notification: a one-shot event that threads or processes wait for.
//
// One party calls Notify() once; any number of others wait for it with
// WaitForNotification() or a deadline variant, or poll HasBeenNotified().
// Abseil's absl::Notification with the same names, in 4 bytes that can live in
// shared memory: construct it in place inside a SharedBuffer/SharedSegment and
// notify and wait from several processes (an all-zero Notification is a
// fresh, un-notified one; trivially destructible). Use it for "X is ready" (a
// child process has attached, an initialisation finished); use Latch to wait
// for N such events and Barrier for repeated rendezvous.
//
// Thread-safety: every method may be called concurrently from any thread or
// process; Notify() at most once per object.
//
// Memory ordering: if X calls Notify(), everything X did before Notify() is
// visible to any Y after Y's HasBeenNotified() returned true or Y's wait
// returned true, in any process mapping it.
//
// Blocking: the WaitForNotification* calls block until notified (or the
// deadline) and are interruption points (sync/interrupt.h): a waiter that
// would sleep in the scope of a requested Interrupter throws
// wharf::Interrupted (a notification found done returns normally). Notify and
// HasBeenNotified never block; Notify() with no waiter makes no syscall.
//
// Errors: a second Notify() is a programming error and aborts with a message
// (as Abseil's). Process death: a Notification has no owner; if the process
// that would have called Notify() dies first, waiters sleep forever — wait
// with a deadline when the notifier may die. Protocol and costs:
// notification.cc.

#ifndef WHARF_SYNC_NOTIFICATION_H_
#define WHARF_SYNC_NOTIFICATION_H_

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace wharf {

class Notification {
 public:
  constexpr Notification() noexcept = default;
  // Starts already notified when `prenotify` is true (absl::Notification).
  constexpr explicit Notification(bool prenotify) noexcept
      : word_(prenotify ? kNotified : 0) {}
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  // Marks the notification done and wakes every waiter. Never blocks. Calling
  // it a second time is a programming error: aborts with a message (Abseil).
  void Notify();

  // Whether Notify() has been called. Never blocks; one acquire load.
  [[nodiscard]] bool HasBeenNotified() const {
    return (word_.load(std::memory_order_acquire) & kNotified) != 0;
  }

  // Blocks until Notify() has been called (returns at once if it was).
  void WaitForNotification() const {
    (void)WaitForNotificationWithDeadline(absl::InfiniteFuture());
  }

  // Blocks until notified or `timeout` passed. Returns HasBeenNotified().
  [[nodiscard]] bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    return WaitForNotificationWithDeadline(absl::Now() + timeout);
  }

  // Blocks until notified or `deadline`. Returns HasBeenNotified().
  [[nodiscard]] bool WaitForNotificationWithDeadline(absl::Time deadline) const {
    if (HasBeenNotified()) return true;
    return WaitSlow(deadline);
  }

  // Layout of the word, for tests and tools.
  static constexpr uint32_t kNotified = 1;  // Notify() was called
  static constexpr uint32_t kWaiters = 2;   // a waiter may sleep on the futex
  uint32_t RawWordForTesting() const { return word_.load(); }

 private:
  bool WaitSlow(absl::Time deadline) const;

  // kNotified | kWaiters; the futex word. Protocol: notification.cc.
  // Mutable: waiters announce themselves through a const method.
  mutable std::atomic<uint32_t> word_{0};
};

static_assert(sizeof(Notification) == 4 && alignof(Notification) == 4);
static_assert(std::is_trivially_destructible_v<Notification>);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

}  // namespace wharf

#endif  // WHARF_SYNC_NOTIFICATION_H_
