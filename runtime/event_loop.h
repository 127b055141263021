// EventLoop: the run loop of one actor (a worker thread, or the main thread),
// Node's event loop in C++. It runs closures posted from any thread, timers
// (SetTimeout/SetInterval) and completions (Future::Then, WaitAsync) on the one
// thread that calls Run(), so that an actor's state needs no locks.
//
//   wharf::EventLoop loop;
//   loop.SetTimeout(absl::Milliseconds(10), [] { std::puts("tick"); });
//   std::thread t([&] { loop.Post([] { std::puts("hello from t"); }); });
//   loop.Run();  // returns once nothing ref'd is left
//   t.join();
//
// Ref/unref rule (Node's): Run() returns when nothing ref'd is left — no
// pending ref'd timer, no outstanding Ref (AddRef()/RefHandle, held by ports,
// workers, pending Then/WaitAsync completions) and no queued closure. A timer
// made unref'd (UnrefTimer) runs if the loop is alive at its deadline but does
// not keep it alive. Stop() ends Run() early from any thread.
//
// Order: closures posted from one thread run in the order posted (FIFO per
// posting thread: the queue is moodycamel's ConcurrentQueue, whose order is
// per producer; closures from two threads with no order between their Post()
// calls interleave in any order). Timers run in deadline order, ties in the
// order they were set. Between two timer passes the loop drains the closures
// queued when the pass started.
//
// Cost: Post() is a lock-free enqueue plus EventCount::Notify(): no syscall
// when the loop is busy, one futex wake when it sleeps. The loop sleeps on the
// EventCount until the next timer deadline and uses no CPU when idle.
//
// Exceptions: an exception escaping a callback is caught by the loop and
// passed to the OnUncaughtException handler; the loop then goes on. With no
// handler set, the loop prints what() to stderr and calls std::terminate(),
// like Node's default for an uncaught exception (a Worker installs a handler
// that turns it into an 'error' event). An exception thrown by the handler
// itself terminates the process.
//
// Thread-safety: Post, Stop, SetTimeout, SetInterval, ClearTimer, RefTimer,
// UnrefTimer, AddRef, Release and RefHandle may be called from any thread,
// concurrently. Run/RunOnce/RunUntil and OnUncaughtException: one thread at a
// time (the loop's thread). Memory ordering: everything a thread did before
// Post(f) (or before setting a timer) is visible to f when it runs.
//
// Lifetime: the loop must outlive every Post/Ref/timer call made on it, and
// every pending completion that refs it (Then, WaitAsync). Closures still
// queued when the loop is destroyed are destroyed without running.

#ifndef WHARF_RUNTIME_EVENT_LOOP_H_
#define WHARF_RUNTIME_EVENT_LOOP_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "wharf/sync/internal/event_count.h"
#include "wharf/sync/mutex.h"

namespace wharf {

// A timer's handle; 0 is never a valid id.
struct TimerId {
  uint64_t value = 0;
  friend bool operator==(TimerId a, TimerId b) { return a.value == b.value; }
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The loop running (Run/RunOnce/RunUntil) on the calling thread, or null.
  static EventLoop* Current();

  // Queues `fn` to run on the loop's thread. Never blocks; thread-safe. A
  // queued closure keeps Run() going until it has run.
  void Post(absl::AnyInvocable<void()> fn);

  // Runs `fn` once after `delay` (<= 0: on the next pass). Thread-safe.
  TimerId SetTimeout(absl::Duration delay, absl::AnyInvocable<void()> fn);
  // Runs `fn` every `period` until ClearTimer (a period <= 0 is taken as
  // 1 ms, as in Node). The next run is due `period` after the previous one
  // finished. Thread-safe.
  TimerId SetInterval(absl::Duration period, absl::AnyInvocable<void()> fn);
  // Cancels a timer; a no-op for an id that fired (timeout) or was cleared.
  // Safe from inside the timer's own callback. Returns whether it was pending.
  bool ClearTimer(TimerId id);
  // A timer is ref'd when set. UnrefTimer: it no longer keeps Run() going.
  // RefTimer undoes it. No-ops for unknown ids. Thread-safe.
  void UnrefTimer(TimerId id);
  void RefTimer(TimerId id);

  // Keeps Run() from returning until the matching Release(). Thread-safe.
  // Release() of the last ref wakes the loop so Run() can return.
  void AddRef();
  void Release();

  // RAII form of AddRef/Release. Movable; an empty handle does nothing.
  class RefHandle {
   public:
    RefHandle() = default;
    explicit RefHandle(EventLoop& loop) : loop_(&loop) { loop.AddRef(); }
    RefHandle(RefHandle&& o) noexcept : loop_(std::exchange(o.loop_, nullptr)) {}
    RefHandle& operator=(RefHandle&& o) noexcept {
      if (this != &o) {
        Reset();
        loop_ = std::exchange(o.loop_, nullptr);
      }
      return *this;
    }
    ~RefHandle() { Reset(); }
    void Reset() {
      if (loop_ != nullptr) std::exchange(loop_, nullptr)->Release();
    }
    EventLoop* loop() const { return loop_; }

   private:
    EventLoop* loop_ = nullptr;
  };
  RefHandle MakeRef() { return RefHandle(*this); }

  // Runs until nothing ref'd is left or Stop(). Blocks the calling thread.
  void Run();
  // Runs the closures and due timers ready now, without sleeping. Returns the
  // number of callbacks run.
  int RunOnce();
  // Like Run(), but also returns at `deadline`. Returns true when the loop
  // ended (nothing ref'd left, or Stop()), false at the deadline.
  bool RunUntil(absl::Time deadline);

  // Makes the running (or the next) Run/RunUntil return after the callback in
  // progress. Thread-safe; never blocks.
  void Stop();

  // Handler for exceptions escaping callbacks; runs on the loop's thread.
  // Call before Run() or from the loop's thread.
  void OnUncaughtException(std::function<void(std::exception_ptr)> handler);

  // For tests: outstanding AddRef()s, and ref'd pending timers.
  int64_t RefCountForTesting() const { return refs_.load(); }

 private:
  struct Timer {
    absl::AnyInvocable<void()> fn;  // empty while the callback runs
    absl::Time deadline;
    uint64_t seq = 0;
    absl::Duration period = absl::ZeroDuration();  // > 0: an interval
    bool ref = true;
  };
  using TimerKey = std::pair<absl::Time, uint64_t>;  // (deadline, seq)

  TimerId AddTimer(absl::Duration delay, absl::Duration period, absl::AnyInvocable<void()> fn);
  void Invoke(absl::AnyInvocable<void()>& fn);
  void ReportException(std::exception_ptr e) noexcept;
  int DrainQueue();
  int RunDueTimers();
  bool Alive();  // something ref'd remains (queue, refs, ref'd timers)
  // Runs the loop; returns true when it ended, false at `deadline`.
  bool Loop(absl::Time deadline);
  void Kick();  // wakes the loop to re-read its state

  struct Queue;
  std::unique_ptr<Queue> queue_;
  sync_internal::EventCount wake_;
  std::atomic<int64_t> refs_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> kicked_{false};  // timers or refs changed: re-check

  Mutex timers_mu_;
  std::unordered_map<uint64_t, Timer> timers_;  // by id; guarded
  std::map<TimerKey, uint64_t> timer_order_;    // -> id; guarded
  uint64_t next_timer_id_ = 1;                  // guarded
  uint64_t next_timer_seq_ = 0;                 // guarded
  int64_t ref_timers_ = 0;                      // guarded

  std::function<void(std::exception_ptr)> on_exception_;  // loop thread
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_EVENT_LOOP_H_
