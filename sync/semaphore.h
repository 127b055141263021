// Semaphore: a counting semaphore for threads and processes —
// std::counting_semaphore's names and semantics, in 16 bytes that can live in
// shared memory.
//
// The semaphore holds a count of permits between 0 and Max(). acquire() takes
// one, blocking while there is none; release(n) returns n and wakes up to n
// blocked acquirers. Use it to bound concurrency ("at most 4 processes in the
// GPU section") or as a hand-off token between a producer and a consumer. It
// has no owner: any thread or process may release what another acquired.
// Construct it in place in a SharedBuffer/SharedSegment to share it between
// processes (it is trivially destructible).
//
// Thread-safety: every method may be called concurrently from any thread or
// process mapping the semaphore. Memory ordering: everything a thread did
// before release() is visible to the thread whose acquire (any variant, when
// it returns true) takes a permit that release made available.
//
// Blocking: acquire, AcquireUntil/AcquireFor and try_acquire_for/until block
// while the count is zero and are interruption points (sync/interrupt.h): an
// acquirer interrupted while it would sleep takes no permit (the count is
// unchanged), consumes no wake-up, and throws wharf::Interrupted.
// try_acquire, release and Release never block. Uncontended acquire and
// release are one CAS each and no syscall.
//
// Errors: releasing above Max() is refused — Release() returns OutOfRange and
// leaves the count unchanged; release() treats it as a programming error and
// aborts with a message (std: undefined). Process death: permits are not
// owned, so a process that dies holding one does not give it back (use a
// Mutex or a lease where that matters); nothing hangs because of it.
// Protocol and costs: semaphore.cc.

#ifndef WHARF_SYNC_SEMAPHORE_H_
#define WHARF_SYNC_SEMAPHORE_H_

#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace wharf {

class Semaphore {
 public:
  // The largest Max() (the count is a 31-bit number, as std's ptrdiff_t max
  // of a 32-bit counting_semaphore).
  static constexpr uint32_t kLargestMax = 0x7fffffffu;

  // `initial` permits, at most `max` (<= kLargestMax). initial > max or
  // max > kLargestMax aborts with a message.
  explicit Semaphore(uint32_t initial, uint32_t max = kLargestMax);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // Blocks until a permit is available and takes it.
  void acquire() { (void)AcquireUntil(absl::InfiniteFuture()); }

  // Takes a permit if one is available. Never blocks.
  [[nodiscard]] bool try_acquire() noexcept {
    uint64_t seen = word_.load(std::memory_order_relaxed);
    while (CountOf(seen) != 0) {
      if (word_.compare_exchange_weak(seen, seen - 1, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Blocks until a permit is taken (true) or `deadline` passed (false).
  [[nodiscard]] bool AcquireUntil(absl::Time deadline) {
    if (try_acquire()) return true;
    return AcquireSlow(deadline);
  }
  [[nodiscard]] bool AcquireFor(absl::Duration timeout) {
    return AcquireUntil(absl::Now() + timeout);
  }
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(const std::chrono::duration<Rep, Period>& d) {
    return AcquireFor(absl::FromChrono(d));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& t) {
    return try_acquire_for(t - Clock::now());
  }

  // Returns n permits and wakes up to n blocked acquirers. Never blocks.
  // OutOfRange (count unchanged) if the count would exceed Max().
  absl::Status Release(uint32_t n = 1);

  // As Release(), but exceeding Max() (or n < 0) is a programming error:
  // aborts with a message.
  void release(std::ptrdiff_t n = 1);

  // The number of permits available now (a snapshot). Never blocks.
  [[nodiscard]] uint32_t Count() const { return CountOf(word_.load(std::memory_order_relaxed)); }
  // The maximum count given to the constructor.
  uint32_t Max() const { return max_; }

  // Layout of the word, for tests and tools: low half = count (the futex
  // word), high half = number of acquirers that announced they may sleep.
  static constexpr uint64_t kOneWaiter = uint64_t{1} << 32;
  uint64_t RawWordForTesting() const { return word_.load(); }

 private:
  static uint32_t CountOf(uint64_t word) { return static_cast<uint32_t>(word); }
  static uint32_t WaitersOf(uint64_t word) { return static_cast<uint32_t>(word >> 32); }
  bool AcquireSlow(absl::Time deadline);
  // The CAS loop of Release/release: false if the count would exceed max_.
  bool Add(uint32_t n);

  // (announced waiters << 32) | count; the futex is its low half. Protocol:
  // semaphore.cc.
  std::atomic<uint64_t> word_;
  uint32_t max_;  // written once, by the constructor, before any sharing
};

static_assert(sizeof(Semaphore) == 16 && alignof(Semaphore) == 8);
static_assert(std::is_trivially_destructible_v<Semaphore>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
// The futex word is the low half of word_.
static_assert(std::endian::native == std::endian::little);

}  // namespace wharf

#endif  // WHARF_SYNC_SEMAPHORE_H_
