#include "wharf/runtime/event_loop.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <vector>

#include "absl/time/clock.h"
#include "concurrentqueue/concurrentqueue.h"
#include "wharf/sync/interrupt.h"

namespace wharf {
namespace {
thread_local EventLoop* current_loop = nullptr;

// Restores EventLoop::Current() when a Run* call returns (they may nest).
class CurrentScope {
 public:
  explicit CurrentScope(EventLoop* loop) : prev_(current_loop) { current_loop = loop; }
  ~CurrentScope() { current_loop = prev_; }

 private:
  EventLoop* prev_;
};
}  // namespace

struct EventLoop::Queue {
  moodycamel::ConcurrentQueue<absl::AnyInvocable<void()>> q;
};

EventLoop::EventLoop() : queue_(std::make_unique<Queue>()) {}

EventLoop::~EventLoop() {
  // Destroy, without running, what is still queued. Destroying a closure may
  // post again (a broken promise completing a continuation): drain until empty.
  absl::AnyInvocable<void()> fn;
  while (queue_->q.try_dequeue(fn)) fn = nullptr;
  std::unordered_map<uint64_t, Timer> timers;
  {
    UninterruptibleLock<Mutex> lock(timers_mu_);
    timers.swap(timers_);
    timer_order_.clear();
  }
  timers.clear();  // outside the lock: destructors may call back into us
  while (queue_->q.try_dequeue(fn)) fn = nullptr;
}

EventLoop* EventLoop::Current() { return current_loop; }

void EventLoop::Post(absl::AnyInvocable<void()> fn) {
  queue_->q.enqueue(std::move(fn));  // release: publishes the caller's writes
  wake_.Notify();
}

void EventLoop::Kick() {
  kicked_.store(true, std::memory_order_seq_cst);
  wake_.Notify();
}

TimerId EventLoop::SetTimeout(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  return AddTimer(delay, absl::ZeroDuration(), std::move(fn));
}

TimerId EventLoop::SetInterval(absl::Duration period, absl::AnyInvocable<void()> fn) {
  if (period <= absl::ZeroDuration()) period = absl::Milliseconds(1);
  return AddTimer(period, period, std::move(fn));
}

TimerId EventLoop::AddTimer(absl::Duration delay, absl::Duration period,
                            absl::AnyInvocable<void()> fn) {
  const absl::Time deadline = absl::Now() + std::max(delay, absl::ZeroDuration());
  uint64_t id;
  {
    UninterruptibleLock<Mutex> lock(timers_mu_);
    id = next_timer_id_++;
    const uint64_t seq = next_timer_seq_++;
    timers_.emplace(id, Timer{std::move(fn), deadline, seq, period, true});
    timer_order_.emplace(TimerKey{deadline, seq}, id);
    ++ref_timers_;
  }
  if (current_loop != this) Kick();  // a sleeping loop must see the deadline
  return TimerId{id};
}

bool EventLoop::ClearTimer(TimerId id) {
  absl::AnyInvocable<void()> doomed;
  {
    UninterruptibleLock<Mutex> lock(timers_mu_);
    auto it = timers_.find(id.value);
    if (it == timers_.end()) return false;
    timer_order_.erase(TimerKey{it->second.deadline, it->second.seq});
    if (it->second.ref) --ref_timers_;
    doomed = std::move(it->second.fn);
    timers_.erase(it);
  }
  if (current_loop != this) Kick();  // Run() may now be able to return
  return true;                       // `doomed` dies outside the lock
}

void EventLoop::UnrefTimer(TimerId id) {
  {
    UninterruptibleLock<Mutex> lock(timers_mu_);
    auto it = timers_.find(id.value);
    if (it == timers_.end() || !it->second.ref) return;
    it->second.ref = false;
    --ref_timers_;
  }
  if (current_loop != this) Kick();
}

void EventLoop::RefTimer(TimerId id) {
  UninterruptibleLock<Mutex> lock(timers_mu_);
  auto it = timers_.find(id.value);
  if (it == timers_.end() || it->second.ref) return;
  it->second.ref = true;
  ++ref_timers_;
}

void EventLoop::AddRef() { refs_.fetch_add(1, std::memory_order_relaxed); }

void EventLoop::Release() {
  // acq_rel: everything the holder did (e.g. a Post) happens-before the
  // loop's load of refs_ that sees the count drop.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) Kick();
}

void EventLoop::Stop() {
  stop_.store(true, std::memory_order_seq_cst);
  wake_.NotifyAll();
}

void EventLoop::OnUncaughtException(std::function<void(std::exception_ptr)> handler) {
  on_exception_ = std::move(handler);
}

void EventLoop::Invoke(absl::AnyInvocable<void()>& fn) {
  try {
    fn();
  } catch (...) {
    ReportException(std::current_exception());
  }
}

void EventLoop::ReportException(std::exception_ptr e) noexcept {
  if (on_exception_) {
    on_exception_(std::move(e));  // noexcept: a throwing handler terminates
    return;
  }
  try {
    std::rethrow_exception(std::move(e));
  } catch (const Interrupted& ex) {
    std::fprintf(stderr, "wharf::EventLoop: uncaught exception: %s\n", ex.what());
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "wharf::EventLoop: uncaught exception: %s\n", ex.what());
  } catch (...) {
    std::fprintf(stderr, "wharf::EventLoop: uncaught exception (not a std::exception)\n");
  }
  std::terminate();
}

int EventLoop::DrainQueue() {
  // Run what was queued when the pass started (plus a little): closures that
  // post closures must not starve the timers.
  const size_t limit = queue_->q.size_approx() + 1;
  int ran = 0;
  absl::AnyInvocable<void()> fn;
  while (static_cast<size_t>(ran) < limit && queue_->q.try_dequeue(fn)) {
    Invoke(fn);
    fn = nullptr;
    ++ran;
    if (stop_.load(std::memory_order_relaxed)) break;
  }
  return ran;
}

int EventLoop::RunDueTimers() {
  std::vector<uint64_t> due;
  const absl::Time now = absl::Now();
  {
    UninterruptibleLock<Mutex> lock(timers_mu_);
    for (auto it = timer_order_.begin(); it != timer_order_.end() && it->first.first <= now; ++it) {
      due.push_back(it->second);
    }
  }
  int ran = 0;
  for (uint64_t id : due) {
    if (stop_.load(std::memory_order_relaxed)) break;
    absl::AnyInvocable<void()> fn;
    bool interval;
    {
      UninterruptibleLock<Mutex> lock(timers_mu_);
      auto it = timers_.find(id);
      if (it == timers_.end()) continue;  // cleared by an earlier callback
      Timer& t = it->second;
      timer_order_.erase(TimerKey{t.deadline, t.seq});
      fn = std::move(t.fn);
      interval = t.period > absl::ZeroDuration();
      if (!interval) {
        if (t.ref) --ref_timers_;
        timers_.erase(it);
      }
    }
    Invoke(fn);
    ++ran;
    if (interval) {
      UninterruptibleLock<Mutex> lock(timers_mu_);
      auto it = timers_.find(id);
      if (it != timers_.end()) {  // not cleared by its own callback
        Timer& t = it->second;
        t.fn = std::move(fn);
        t.deadline = absl::Now() + t.period;
        t.seq = next_timer_seq_++;
        timer_order_.emplace(TimerKey{t.deadline, t.seq}, id);
      }
    }
    // `fn` (a finished timeout, or a cleared interval) dies here, unlocked.
  }
  return ran;
}

bool EventLoop::Alive() {
  // refs_ first: a holder that posted and then released is seen through the
  // acquire here, and its closure through the queue check after it.
  if (refs_.load(std::memory_order_seq_cst) > 0) return true;
  {
    UninterruptibleLock<Mutex> lock(timers_mu_);
    if (ref_timers_ > 0) return true;
  }
  return queue_->q.size_approx() > 0;
}

int EventLoop::RunOnce() {
  CurrentScope scope(this);
  int ran = DrainQueue();
  ran += RunDueTimers();
  return ran;
}

void EventLoop::Run() { (void)Loop(absl::InfiniteFuture()); }

bool EventLoop::RunUntil(absl::Time deadline) { return Loop(deadline); }

bool EventLoop::Loop(absl::Time deadline) {
  CurrentScope scope(this);
  for (;;) {
    if (stop_.exchange(false, std::memory_order_seq_cst)) return true;
    DrainQueue();
    RunDueTimers();
    if (stop_.load(std::memory_order_seq_cst)) continue;
    if (!Alive()) return true;
    absl::Time wake_at = deadline;
    {
      UninterruptibleLock<Mutex> lock(timers_mu_);
      if (!timer_order_.empty()) wake_at = std::min(wake_at, timer_order_.begin()->first.first);
    }
    const absl::Time now = absl::Now();
    if (wake_at <= now) {
      if (now >= deadline) return false;
      continue;  // a timer is due
    }
    const auto key = wake_.PrepareWait();
    // The re-check of the Dekker pair (see EventCount): anything posted,
    // stopped, kicked or released before here is seen, or wakes us.
    if (queue_->q.size_approx() > 0 || stop_.load(std::memory_order_seq_cst) ||
        kicked_.exchange(false, std::memory_order_seq_cst) || !Alive()) {
      wake_.CancelWait();
      continue;
    }
    wake_.CommitWait(key, wake_at);
  }
}

}  // namespace wharf
