// EventLoop: the run loop of one actor (a worker, or the main thread) —
// Node's event loop in C++. It runs closures posted from any thread, timers,
// completions (Future::Then, WaitAsync), the handlers of the ports and
// channels started on it, and callbacks for file descriptors that become
// readable, all on the one thread that calls Run(), so an actor's state needs
// no locks.
//
//   wharf::EventLoop loop;
//   loop.SetTimeout(absl::Milliseconds(10), [] { std::puts("tick"); });
//   std::thread t([&] { loop.Post([] { std::puts("hello from t"); }); });
//   loop.Run();  // returns once nothing ref'd is left
//   t.join();
//
// Ref/unref (Node's rule): Run() returns when nothing ref'd is left — no
// queued closure, no ref'd timer or fd watch, no outstanding ref (AddRef,
// RefHandle: held by started ports, workers, pending completions). Stop()
// ends Run() early from any thread.
//
// Order: closures posted from one thread run in the order posted; timers in
// deadline order, ties in the order set. Nothing orders one source against
// another (a closure against a port's message, two ports' messages).
//
// Exceptions: an exception escaping a callback goes to the
// OnUncaughtException handler when one is set (a Worker sets one that turns
// it into the worker's error), and the loop goes on. Without a handler it
// propagates out of Run()/RunUntil()/RunOnce(): the callback that threw is
// consumed, everything else is as it was, and calling Run() again resumes.
// An exception thrown by the handler itself propagates the same way.
//
// Blocking and cost: Run() blocks its thread. After running messages or
// closures the loop watches for more for up to 20 µs (a message from a peer
// on another CPU usually arrives within a few µs; a futex sleep and wake-up
// costs 7-12 µs each way) and then sleeps, using no CPU, until work, a timer,
// a Stop() or a readable watched fd; after only timers it sleeps at once.
// Post() is a lock-free enqueue; it makes a syscall only when the loop sleeps.
//
// Thread-safety: Post, Stop, the timer calls, WatchFd/UnwatchFd, AddRef,
// Release and RefHandle may be called from any thread. Run/RunOnce/RunUntil
// and OnUncaughtException: one thread at a time (the loop's thread). Memory
// ordering: what a thread did before Post(f) (or before setting a timer) is
// visible to f when it runs.
//
// Lifetime: the loop must outlive every call made on it and everything
// started on it (ports, channels, pending completions). Closures still queued
// when it is destroyed are destroyed without running.

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
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/sync/internal/event_count.h"
#include "wharf/sync/mutex.h"

namespace wharf {

namespace runtime_internal {
class LoopSource;
struct LoopAccess;
class AsyncWaitSet;
}  // namespace runtime_internal

// A timer's handle; 0 is never a valid id.
struct TimerId {
  uint64_t value = 0;
  friend bool operator==(TimerId a, TimerId b) { return a.value == b.value; }
};

// A file-descriptor watch's handle; 0 is never a valid id.
struct FdWatchId {
  uint64_t value = 0;
  friend bool operator==(FdWatchId a, FdWatchId b) { return a.value == b.value; }
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The loop running (Run/RunOnce/RunUntil) on the calling thread, or null.
  static EventLoop* Current();

  // Queues `fn` to run on the loop's thread. Never blocks. A queued closure
  // keeps Run() going until it has run.
  void Post(absl::AnyInvocable<void()> fn);

  // Runs `fn` once after `delay` (<= 0: on the next pass).
  TimerId SetTimeout(absl::Duration delay, absl::AnyInvocable<void()> fn);
  // Runs `fn` every `period` until cleared (a period <= 0 is taken as 1 ms,
  // as in Node); the next run is due `period` after the previous one ended.
  TimerId SetInterval(absl::Duration period, absl::AnyInvocable<void()> fn);
  // Cancels a timer (also from inside its own callback). Returns whether it
  // was pending; a no-op for an id that fired or was cleared.
  bool ClearTimer(TimerId id);
  // A timer is ref'd when set; an unref'd one runs if the loop is alive at
  // its deadline but does not keep it alive. No-ops for unknown ids.
  void UnrefTimer(TimerId id);
  void RefTimer(TimerId id);

  // Runs `on_readable` on the loop's thread each time `fd` is readable (or
  // hung up / in error), level-triggered: once the callback has returned the
  // fd is watched again, until UnwatchFd. For pidfds of child processes,
  // pipes, eventfds, sockets. The fd stays the caller's: keep it open until
  // UnwatchFd returns. A watch is ref'd unless `ref` is false.
  // InvalidArgument for an fd that cannot be watched (not open, a regular
  // file); ResourceExhausted when the kernel refuses more watches.
  absl::StatusOr<FdWatchId> WatchFd(int fd, std::function<void()> on_readable, bool ref = true);
  // Stops watching. After it returns the callback is not started again and,
  // when called from another thread, is not running either (the fd may be
  // closed then); from inside the callback itself, that call finishes.
  // Returns whether the watch existed.
  bool UnwatchFd(FdWatchId id);

  // Keeps Run() from returning until the matching Release().
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
    // Forgets the loop without releasing the ref (for a loop that is gone).
    void Abandon() { loop_ = nullptr; }

   private:
    EventLoop* loop_ = nullptr;
  };
  RefHandle MakeRef() { return RefHandle(*this); }

  // Runs until nothing ref'd is left or Stop().
  void Run();
  // Runs what is ready now (closures, due timers, pending sources) without
  // waiting. Returns the number of callbacks run.
  int RunOnce();
  // Run() that also returns at `deadline`: true when the loop ended, false
  // at the deadline.
  bool RunUntil(absl::Time deadline);

  // Makes the running (or the next) Run/RunUntil return after the callback
  // in progress. Never blocks.
  void Stop();

  // Handler for exceptions escaping callbacks (see the header comment); runs
  // on the loop's thread. Set it before Run() or from the loop's thread.
  void OnUncaughtException(std::function<void(std::exception_ptr)> handler);

  // For tests: outstanding AddRef()s.
  int64_t RefCountForTesting() const { return refs_.load(); }

 private:
  friend struct runtime_internal::LoopAccess;

  struct Timer {
    absl::AnyInvocable<void()> fn;  // empty while the callback runs
    absl::Time deadline;
    uint64_t seq = 0;
    absl::Duration period = absl::ZeroDuration();  // > 0: an interval
    bool ref = true;
  };
  using TimerKey = std::pair<absl::Time, uint64_t>;  // (deadline, seq)
  struct FdWatch;
  struct Queue;

  TimerId AddTimer(absl::Duration delay, absl::Duration period, absl::AnyInvocable<void()> fn);
  void PublishNextDeadlineLocked();
  template <class F>
  void Invoke(F&& fn);
  int DrainQueue();
  int RunDueTimers();
  int RunSources();
  int RunPass();
  bool HasWork();  // something to run now (loop thread)
  bool Alive();    // something ref'd remains
  bool Loop(absl::Time deadline);
  bool SpinForWork(absl::Time until);
  void Sleep(absl::Time wake_at);
  void Kick();  // wakes the loop to re-read its state
  void RunFdCallback(uint64_t id);

  // The dispatcher's sources (runtime_internal::LoopSource). AddSource from
  // the loop's thread, or from another (the source joins at the loop's next
  // pass); RemoveSource only from the loop's thread, or while no thread runs
  // the loop.
  void AddSource(runtime_internal::LoopSource* source);
  void RemoveSource(runtime_internal::LoopSource* source);
  void MergeAddedSources();
  // Loop thread: keeps `doomed` alive until the callback in progress has
  // returned (at once when none is).
  void Defer(std::shared_ptr<void> doomed);

  // The groups below are kept on separate cache lines by padding rather
  // than alignas: a loop lives on stacks, whose 64-byte alignment ASan's
  // fake stack does not provide.
  std::unique_ptr<Queue> queue_;
  char pad0_[64];
  // The loop's doorbell: Post, Stop, Kick, Release and in-process producers
  // of started sources notify it; the loop sleeps on it (asymmetric fences:
  // a producer's Notify costs a load, the loop's sleep a membarrier). Alone
  // on its line: every producer reads it, the loop writes it only to sleep.
  sync_internal::EventCount wake_{FutexScope::kPrivate,
                                  sync_internal::EventCount::Fences::kAsymmetric};
  char pad1_[64];
  // Written by other threads, read by the loop on every poll (the loop
  // writes them only when they changed).
  std::atomic<int64_t> posted_{0};  // closures ever posted
  std::atomic<int64_t> refs_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> kicked_{false};  // timers, refs or watches changed: re-check
  std::atomic<bool> has_added_{false};  // sources added from other threads
  char pad2_[64];
  // Loop thread.
  int64_t taken_ = 0;  // closures taken from queue_
  // Core references (and handlers) that a source let go of during its own
  // delivery: dropped once the callback returned (LoopAccess::Defer).
  std::vector<std::shared_ptr<void>> graveyard_;

  Mutex timers_mu_;
  std::unordered_map<uint64_t, Timer> timers_;  // by id; guarded
  std::map<TimerKey, uint64_t> timer_order_;    // -> id; guarded
  uint64_t next_timer_id_ = 1;                  // guarded
  uint64_t next_timer_seq_ = 0;                 // guarded
  // Readable without the lock (the loop's pass and Alive()): ref'd timers
  // and the earliest deadline (absl::ToUnixNanos; INT64_MAX: none).
  std::atomic<int64_t> ref_timers_{0};
  std::atomic<int64_t> next_deadline_ns_{INT64_MAX};

  // Loop thread. Removal leaves a null slot (a pass may be iterating);
  // compacted at the end of the pass.
  std::vector<runtime_internal::LoopSource*> sources_;
  // Added from other threads, merged into sources_ by the loop.
  Mutex added_mu_;
  std::vector<runtime_internal::LoopSource*> added_;  // guarded
  bool sources_holes_ = false;
  int dispatch_depth_ = 0;  // nested passes (a callback running RunOnce)
  bool busy_ = false;       // the last pass ran closures or deliveries
  size_t next_source_ = 0;  // where the next pass starts (round robin)

  Mutex fds_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<FdWatch>> fds_;  // guarded
  std::atomic<int64_t> ref_fds_{0};

  std::unique_ptr<runtime_internal::AsyncWaitSet> async_waits_;  // WaitAsync's cells

  std::function<void(std::exception_ptr)> on_exception_;  // loop thread
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_EVENT_LOOP_H_
