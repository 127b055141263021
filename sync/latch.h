// Latch: a single-use downward counter that threads or processes wait on until
// it reaches zero — std::latch, in 4 bytes that can live in shared memory
// (trivially destructible).
//
// Construct it with the number of events to wait for; each event calls
// count_down(); waiters block in wait() until the count is zero, after which
// every wait returns at once. Use it to wait for N workers to be ready or done
// ("start the benchmark when all 8 children have attached"). It cannot be
// reset: use Barrier for repeated rendezvous, Notification when N is 1.
//
// Thread-safety: every method may be called concurrently from any thread or
// process mapping the latch. Memory ordering: everything a thread did before
// its count_down() is visible to every thread after its wait()/try_wait()/
// WaitUntil() returned true.
//
// Blocking: wait, arrive_and_wait and WaitUntil/WaitFor block until the count
// is zero, and are interruption points (sync/interrupt.h): a waiter that
// would sleep in the scope of a requested Interrupter throws
// wharf::Interrupted (a latch found open returns normally; arrive_and_wait's
// count_down has happened by then). try_wait and count_down never block;
// count_down makes a syscall only when it opens the latch for a sleeper.
//
// Errors: counting down more than the remaining count is a programming error
// and aborts with a message (std::latch: undefined). Process death: a latch
// has no owner; if a process dies before counting down, the count never
// reaches zero and waiters sleep forever — wait with WaitUntil() when a
// counting process may die. Protocol and costs: latch.cc.

#ifndef WHARF_SYNC_LATCH_H_
#define WHARF_SYNC_LATCH_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace wharf {

class Latch {
 public:
  // The largest initial count (31 bits; the top bit of the word is a flag).
  static constexpr uint32_t kMax = 0x7fffffffu;
  static constexpr std::ptrdiff_t max() noexcept { return kMax; }

  // A latch that opens after `count` count_downs. count 0 is open at once.
  // count > kMax aborts with a message.
  explicit Latch(uint32_t count);
  Latch(const Latch&) = delete;
  Latch& operator=(const Latch&) = delete;

  // Decrements the count by n (n >= 0); wakes every waiter when it reaches
  // zero. Never blocks. n greater than the remaining count: aborts.
  void count_down(std::ptrdiff_t n = 1);

  // True if the count is zero. Never blocks.
  [[nodiscard]] bool try_wait() const noexcept {
    return (word_.load(std::memory_order_acquire) & kCountMask) == 0;
  }

  // Blocks until the count is zero.
  void wait() const { (void)WaitUntil(absl::InfiniteFuture()); }

  // count_down(n), then wait().
  void arrive_and_wait(std::ptrdiff_t n = 1) {
    count_down(n);
    wait();
  }

  // Blocks until the count is zero (true) or `deadline` passes (false).
  [[nodiscard]] bool WaitUntil(absl::Time deadline) const {
    if (try_wait()) return true;
    return WaitSlow(deadline);
  }
  [[nodiscard]] bool WaitFor(absl::Duration timeout) const {
    return WaitUntil(absl::Now() + timeout);
  }

  // The remaining count (a snapshot, for tests and diagnostics).
  uint32_t Count() const { return word_.load(std::memory_order_relaxed) & kCountMask; }

  // Layout of the word, for tests and tools.
  static constexpr uint32_t kWaitersBit = 0x80000000u;  // a waiter may sleep
  static constexpr uint32_t kCountMask = kMax;
  uint32_t RawWordForTesting() const { return word_.load(); }

 private:
  bool WaitSlow(absl::Time deadline) const;

  // kWaitersBit | remaining count; the futex word. Protocol: latch.cc.
  // Mutable: waiters announce themselves through const methods.
  mutable std::atomic<uint32_t> word_;
};

static_assert(sizeof(Latch) == 4 && alignof(Latch) == 4);
static_assert(std::is_trivially_destructible_v<Latch>);

}  // namespace wharf

#endif  // WHARF_SYNC_LATCH_H_
