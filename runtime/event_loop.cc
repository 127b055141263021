#include "wharf/runtime/event_loop.h"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <vector>

#include "absl/time/clock.h"
#include "concurrentqueue/concurrentqueue.h"
#include "wharf/runtime/internal/async_wait_set.h"
#include "wharf/runtime/internal/fd_poller.h"
#include "wharf/runtime/internal/loop_access.h"
#include "wharf/runtime/internal/loop_source.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/interrupt.h"

namespace wharf {
namespace {

thread_local EventLoop* current_loop = nullptr;

// Restores EventLoop::Current() when a Run* call returns, also by an
// exception (they may nest).
class CurrentScope {
 public:
  explicit CurrentScope(EventLoop* loop) : prev_(current_loop) { current_loop = loop; }
  ~CurrentScope() { current_loop = prev_; }

 private:
  EventLoop* prev_;
};


int64_t ToNanos(absl::Time t) { return absl::ToUnixNanos(t); }

}  // namespace

namespace runtime_internal {
AsyncWaitSet& LoopAccess::AsyncWaits(EventLoop& loop) { return *loop.async_waits_; }
}  // namespace runtime_internal

struct EventLoop::Queue {
  moodycamel::ConcurrentQueue<absl::AnyInvocable<void()>> q;
};

struct EventLoop::FdWatch {
  int fd;
  bool ref;
  std::function<void()> callback;
  // Set (under fds_mu_) while the loop runs the callback: an UnwatchFd from
  // another thread waits for it to end.
  std::atomic<bool> running{false};
};

EventLoop::EventLoop()
    : queue_(std::make_unique<Queue>()),
      async_waits_(std::make_unique<runtime_internal::AsyncWaitSet>()) {}

EventLoop::~EventLoop() {
  // Sources still registered outlive the loop: they must forget it.
  MergeAddedSources();
  for (runtime_internal::LoopSource* s : std::vector<runtime_internal::LoopSource*>(sources_)) {
    if (s != nullptr) s->LoopGone();
  }
  sources_.clear();
  // No fd callback is posted once its watch is gone.
  std::unordered_map<uint64_t, std::shared_ptr<FdWatch>> fds;
  {
    MutexLock lock(fds_mu_);
    fds.swap(fds_);
  }
  for (auto& [id, w] : fds) runtime_internal::FdPoller::Remove(id, w->fd);
  // Pending WaitAsyncs: unregistered (or their queued completion dropped
  // below), before anything they point to goes.
  async_waits_.reset();
  // Destroy, without running, what is still queued. Destroying a closure may
  // post again (a broken promise completing a continuation): drain until empty.
  absl::AnyInvocable<void()> fn;
  while (queue_->q.try_dequeue(fn)) fn = nullptr;
  std::unordered_map<uint64_t, Timer> timers;
  {
    MutexLock lock(timers_mu_);
    timers.swap(timers_);
    timer_order_.clear();
  }
  timers.clear();  // outside the lock: destructors may call back into us
  while (queue_->q.try_dequeue(fn)) fn = nullptr;
}

EventLoop* EventLoop::Current() { return current_loop; }

void EventLoop::Post(absl::AnyInvocable<void()> fn) {
  queue_->q.enqueue(std::move(fn));  // release: publishes the caller's writes
  // Counted so that the loop's poll is one load, not a walk of the queue's
  // producers (release: the closure is in the queue before it is counted).
  posted_.fetch_add(1, std::memory_order_release);
  wake_.Notify();  // B of the doorbell (see Sleep)
}

void EventLoop::Defer(std::shared_ptr<void> doomed) {
  // Not inside one of this loop's callbacks (before Run, or the loop's owner
  // on another thread while it does not run): nothing to outlive, dropped now.
  if (current_loop != this || dispatch_depth_ == 0) return;
  graveyard_.push_back(std::move(doomed));
}

void EventLoop::Kick() {
  kicked_.store(true, std::memory_order_relaxed);
  wake_.Notify();
}

// --- Timers -----------------------------------------------------------------

TimerId EventLoop::SetTimeout(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  return AddTimer(delay, absl::ZeroDuration(), std::move(fn));
}

TimerId EventLoop::SetInterval(absl::Duration period, absl::AnyInvocable<void()> fn) {
  if (period <= absl::ZeroDuration()) period = absl::Milliseconds(1);
  return AddTimer(period, period, std::move(fn));
}

void EventLoop::PublishNextDeadlineLocked() {
  next_deadline_ns_.store(
      timer_order_.empty() ? INT64_MAX : ToNanos(timer_order_.begin()->first.first),
      std::memory_order_relaxed);
}

TimerId EventLoop::AddTimer(absl::Duration delay, absl::Duration period,
                            absl::AnyInvocable<void()> fn) {
  const absl::Time deadline = absl::Now() + std::max(delay, absl::ZeroDuration());
  uint64_t id;
  {
    MutexLock lock(timers_mu_);
    id = next_timer_id_++;
    const uint64_t seq = next_timer_seq_++;
    timers_.emplace(id, Timer{std::move(fn), deadline, seq, period, true});
    timer_order_.emplace(TimerKey{deadline, seq}, id);
    ref_timers_.fetch_add(1, std::memory_order_relaxed);
    PublishNextDeadlineLocked();
  }
  if (current_loop != this) Kick();  // a sleeping loop must see the deadline
  return TimerId{id};
}

bool EventLoop::ClearTimer(TimerId id) {
  absl::AnyInvocable<void()> doomed;
  {
    MutexLock lock(timers_mu_);
    auto it = timers_.find(id.value);
    if (it == timers_.end()) return false;
    timer_order_.erase(TimerKey{it->second.deadline, it->second.seq});
    if (it->second.ref) ref_timers_.fetch_sub(1, std::memory_order_relaxed);
    doomed = std::move(it->second.fn);
    timers_.erase(it);
    PublishNextDeadlineLocked();
  }
  if (current_loop != this) Kick();  // Run() may now be able to return
  return true;                       // `doomed` dies outside the lock
}

void EventLoop::UnrefTimer(TimerId id) {
  {
    MutexLock lock(timers_mu_);
    auto it = timers_.find(id.value);
    if (it == timers_.end() || !it->second.ref) return;
    it->second.ref = false;
    ref_timers_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (current_loop != this) Kick();
}

void EventLoop::RefTimer(TimerId id) {
  MutexLock lock(timers_mu_);
  auto it = timers_.find(id.value);
  if (it == timers_.end() || it->second.ref) return;
  it->second.ref = true;
  ref_timers_.fetch_add(1, std::memory_order_relaxed);
}

int EventLoop::RunDueTimers() {
  const int64_t next = next_deadline_ns_.load(std::memory_order_relaxed);
  if (next == INT64_MAX) return 0;  // no timer: no clock read, no lock
  const absl::Time now = absl::Now();
  if (ToNanos(now) < next) return 0;
  std::vector<uint64_t> due;
  {
    MutexLock lock(timers_mu_);
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
      MutexLock lock(timers_mu_);
      auto it = timers_.find(id);
      if (it == timers_.end()) continue;  // cleared by an earlier callback
      Timer& t = it->second;
      timer_order_.erase(TimerKey{t.deadline, t.seq});
      fn = std::move(t.fn);
      interval = t.period > absl::ZeroDuration();
      if (interval) {
        // Re-armed now (due `period` after this run ends, set below), so that
        // it stays consistent if the callback throws out of Run().
        t.deadline = absl::InfiniteFuture();
        t.seq = next_timer_seq_++;
        timer_order_.emplace(TimerKey{t.deadline, t.seq}, id);
      } else {
        if (t.ref) ref_timers_.fetch_sub(1, std::memory_order_relaxed);
        timers_.erase(it);
      }
      PublishNextDeadlineLocked();
    }
    ++ran;
    struct Rearm {
      EventLoop* loop;
      uint64_t id;
      bool interval;
      absl::AnyInvocable<void()>* fn;
      ~Rearm() {
        if (!interval) return;
        MutexLock lock(loop->timers_mu_);
        auto it = loop->timers_.find(id);
        if (it == loop->timers_.end()) return;  // cleared by its own callback
        Timer& t = it->second;
        loop->timer_order_.erase(TimerKey{t.deadline, t.seq});
        t.fn = std::move(*fn);
        t.deadline = absl::Now() + t.period;
        t.seq = loop->next_timer_seq_++;
        loop->timer_order_.emplace(TimerKey{t.deadline, t.seq}, id);
        loop->PublishNextDeadlineLocked();
      }
    } rearm{this, id, interval, &fn};
    Invoke(fn);
    // `fn` (a finished timeout, or a cleared interval) dies after `rearm`,
    // unlocked.
  }
  return ran;
}

// --- Refs -------------------------------------------------------------------

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

// --- File descriptors -------------------------------------------------------

absl::StatusOr<FdWatchId> EventLoop::WatchFd(int fd, std::function<void()> on_readable,
                                             bool ref) {
  if (!on_readable) return absl::InvalidArgumentError("EventLoop::WatchFd: null callback");
  const uint64_t id = runtime_internal::FdPoller::NextId();
  {
    MutexLock lock(fds_mu_);
    auto watch = std::make_shared<FdWatch>();
    watch->fd = fd;
    watch->ref = ref;
    watch->callback = std::move(on_readable);
    fds_.emplace(id, std::move(watch));
  }
  if (ref) ref_fds_.fetch_add(1, std::memory_order_relaxed);
  absl::Status s = runtime_internal::FdPoller::Add(
      id, fd, this, [](void* owner, uint64_t fired) {
        auto* loop = static_cast<EventLoop*>(owner);
        loop->Post([loop, fired] { loop->RunFdCallback(fired); });
      });
  if (!s.ok()) {
    (void)UnwatchFd(FdWatchId{id});
    return s;
  }
  return FdWatchId{id};
}

bool EventLoop::UnwatchFd(FdWatchId id) {
  std::shared_ptr<FdWatch> w;
  {
    MutexLock lock(fds_mu_);
    auto it = fds_.find(id.value);
    if (it == fds_.end()) return false;
    w = std::move(it->second);
    fds_.erase(it);
  }
  runtime_internal::FdPoller::Remove(id.value, w->fd);
  if (w->ref && ref_fds_.fetch_sub(1, std::memory_order_acq_rel) == 1) Kick();
  // From another thread: a callback the loop started already is over when
  // this returns (the caller may close the fd). (On the loop's thread it is
  // this very callback, or none.)
  if (current_loop != this) {
    for (int spins = 0; w->running.load(std::memory_order_acquire); ++spins) {
      if (spins < 100) {
        sync_internal::CpuRelax();
      } else {
        absl::SleepFor(absl::Microseconds(50));
      }
    }
  }
  return true;
}

void EventLoop::RunFdCallback(uint64_t id) {
  std::shared_ptr<FdWatch> w;
  {
    MutexLock lock(fds_mu_);
    auto it = fds_.find(id);
    if (it == fds_.end()) return;  // unwatched since it fired
    w = it->second;
    w->running.store(true, std::memory_order_relaxed);  // under the lock: seen by UnwatchFd
  }
  // Re-armed after the callback, also when it throws (EPOLLONESHOT), unless
  // it was unwatched meanwhile; then the running mark is cleared (release:
  // the callback's accesses to the fd happen before UnwatchFd returns).
  struct Done {
    FdWatch& w;
    uint64_t id;
    ~Done() {
      runtime_internal::FdPoller::Rearm(id, w.fd);
      w.running.store(false, std::memory_order_release);
    }
  } done{*w, id};
  w->callback();
}

// --- Sources (the dispatcher) -------------------------------------------------

void EventLoop::AddSource(runtime_internal::LoopSource* source) {
  if (current_loop == this) {
    sources_.push_back(source);
    return;
  }
  {
    MutexLock lock(added_mu_);
    added_.push_back(source);
    has_added_.store(true, std::memory_order_relaxed);
  }
  Kick();
}

void EventLoop::MergeAddedSources() {
  if (!has_added_.load(std::memory_order_relaxed)) return;
  MutexLock lock(added_mu_);
  sources_.insert(sources_.end(), added_.begin(), added_.end());
  added_.clear();
  has_added_.store(false, std::memory_order_relaxed);
}

void EventLoop::RemoveSource(runtime_internal::LoopSource* source) {
  if (has_added_.load(std::memory_order_relaxed)) {
    MutexLock lock(added_mu_);
    added_.erase(std::remove(added_.begin(), added_.end(), source), added_.end());
  }
  for (auto& s : sources_) {
    if (s == source) {
      s = nullptr;  // a pass may be iterating: compacted after it
      sources_holes_ = true;
      return;
    }
  }
}

int EventLoop::RunSources() {
  using runtime_internal::LoopSource;
  const size_t n = sources_.size();
  // Round robin: a busy (or throwing) first source does not always go first.
  struct Advance {
    size_t& next;
    size_t n;
    ~Advance() {
      if (n != 0) next = (next + 1) % n;
    }
  } advance{next_source_, n};
  int ran = 0;
  for (size_t k = 0; k < n && !stop_.load(std::memory_order_relaxed); ++k) {
    const size_t i = (next_source_ + k) % n;
    LoopSource* s = sources_[i];
    if (s == nullptr || !s->Pending()) continue;
    for (int d = 0; d < LoopSource::kDeliverBatch; ++d) {
      bool delivered = false;
      Invoke([&] { delivered = s->Deliver(); });
      // The handler may have removed (closed, transferred, destroyed) its
      // own source: touch it only while it is still registered. Appends do
      // not move slot i.
      if (!delivered || sources_[i] != s) break;
      ++ran;
      if (stop_.load(std::memory_order_relaxed)) break;
    }
  }
  return ran;
}

int EventLoop::RunPass() {
  struct Compact {
    EventLoop* loop;
    ~Compact() {
      // Only between passes of the outermost Run (a callback may run a
      // nested pass of this loop, whose caller is iterating sources_).
      if (!loop->sources_holes_ || loop->dispatch_depth_ != 1) {
        --loop->dispatch_depth_;
        return;
      }
      --loop->dispatch_depth_;
      auto& v = loop->sources_;
      v.erase(std::remove(v.begin(), v.end(), nullptr), v.end());
      loop->sources_holes_ = false;
      if (loop->next_source_ >= v.size()) loop->next_source_ = 0;
    }
  } compact{this};
  ++dispatch_depth_;
  MergeAddedSources();
  int ran = DrainQueue();
  const int timers = RunDueTimers();
  ran += RunSources();
  busy_ = ran > 0;
  return ran + timers;
}

bool EventLoop::HasWork() {
  if (posted_.load(std::memory_order_relaxed) != taken_ || kicked_.load(std::memory_order_relaxed) ||
      stop_.load(std::memory_order_relaxed) || has_added_.load(std::memory_order_relaxed)) {
    return true;
  }
  for (runtime_internal::LoopSource* s : sources_) {
    if (s != nullptr && s->Pending()) return true;
  }
  return false;
}

// --- Running ------------------------------------------------------------------

template <class F>
void EventLoop::Invoke(F&& fn) {
  // What this callback let go of dies after it, also when it throws — only
  // that (a nested pass buries its own), one at a time (a destructor may let
  // go of more: a port owned by what a handler dropped).
  struct Bury {
    std::vector<std::shared_ptr<void>>& graveyard;
    const size_t mark;
    ~Bury() {
      while (graveyard.size() > mark) {
        std::shared_ptr<void> doomed = std::move(graveyard.back());
        graveyard.pop_back();
      }
    }
  } bury{graveyard_, graveyard_.size()};
  try {
    fn();
  } catch (...) {
    if (!on_exception_) throw;  // out of Run(): the loop stays consistent
    // A copy: the handler may replace itself.
    std::function<void(std::exception_ptr)> handler = on_exception_;
    handler(std::current_exception());  // a throw from it propagates the same way
  }
}

int EventLoop::DrainQueue() {
  // Run what was queued when the pass started (plus a little): closures that
  // post closures must not starve the timers and sources.
  const int64_t limit = posted_.load(std::memory_order_acquire) - taken_;
  int ran = 0;
  absl::AnyInvocable<void()> fn;
  while (ran < limit && queue_->q.try_dequeue(fn)) {
    ++ran;
    ++taken_;
    // `fn` is consumed even if it throws out of the pass.
    absl::AnyInvocable<void()> running = std::move(fn);
    fn = nullptr;
    Invoke(running);
    if (stop_.load(std::memory_order_relaxed)) break;
  }
  return ran;
}

bool EventLoop::Alive() {
  // refs_ first: a holder that posted and then released is seen through the
  // acquire here, and its closure through the queue check after it.
  if (refs_.load(std::memory_order_seq_cst) > 0) return true;
  if (ref_timers_.load(std::memory_order_relaxed) > 0) return true;
  if (ref_fds_.load(std::memory_order_relaxed) > 0) return true;
  return posted_.load(std::memory_order_acquire) != taken_;
}

int EventLoop::RunOnce() {
  CurrentScope scope(this);
  if (kicked_.load(std::memory_order_relaxed)) kicked_.store(false, std::memory_order_relaxed);
  // A Stop() pending for the next Run() does not cut this pass short.
  const bool stopped = stop_.exchange(false, std::memory_order_seq_cst);
  struct Restore {
    std::atomic<bool>& stop;
    bool stopped;
    ~Restore() {
      if (stopped) stop.store(true, std::memory_order_seq_cst);
    }
  } restore{stop_, stopped};
  return RunPass();
}

void EventLoop::Run() { (void)Loop(absl::InfiniteFuture()); }

bool EventLoop::RunUntil(absl::Time deadline) { return Loop(deadline); }

bool EventLoop::SpinForWork(absl::Time until) {
  return sync_internal::SpinFor(sync_internal::kReplySpin, until, [this] { return HasWork(); },
                                sync_internal::kReplyPureSpin);
}

void EventLoop::Sleep(absl::Time wake_at) {
  // The doorbell's Dekker pair: A = PrepareWait (announce; HeavyFence), then
  // the re-check below; B = a producer's enqueue, then wake_.Notify()
  // (LightFence; load of the waiter count). Either the re-check sees the
  // producer's work or the producer sees the announcement and wakes us.
  FutexWaitEntry entries[kMaxFutexWaitEntries];
  const sync_internal::EventCount::Key key = wake_.PrepareWait();
  entries[0] = FutexWaitEntry{wake_.word(), key, wake_.scope()};
  int n = 1;
  struct Armed {
    runtime_internal::LoopSource* source;
    int first;
    int count;
  };
  Armed armed[kMaxFutexWaitEntries];
  int armed_count = 0;
  // Sources beyond futex_waitv's limit are not armed: they are polled when
  // the loop wakes for another reason (their producers' wakes are missed).
  auto arm = [&](runtime_internal::LoopSource* s) {
    if (n == kMaxFutexWaitEntries) return;
    const int k = s->ArmSleep(std::span<FutexWaitEntry>(entries + n, kMaxFutexWaitEntries - n));
    if (k == 0) return;
    armed[armed_count++] = Armed{s, n, k};
    n += k;
  };
  for (runtime_internal::LoopSource* s : sources_) {
    if (s != nullptr) arm(s);
  }
  // Pending WaitAsyncs' cells (for notifiers in other processes).
  const int waits_first = n;
  n += async_waits_->ArmSleep(std::span<FutexWaitEntry>(entries + n, kMaxFutexWaitEntries - n));
  // A source whose cross-process doorbell could not be fenced from here
  // (EventCount::TakeBoundedSleep): re-check it every kBoundedSleep.
  if (sync_internal::EventCount::TakeBoundedSleep()) {
    wake_at = std::min(wake_at, absl::Now() + sync_internal::EventCount::kBoundedSleep);
  }
  int woken = -1;
  if (!HasWork() && Alive()) {
    const FutexWaitAnyResult r = FutexWaitAny(std::span<const FutexWaitEntry>(entries, n), wake_at);
    if (r.result == FutexWaitResult::kWoken) woken = r.index;
  }
  wake_.CancelWait();
  for (int i = 0; i < armed_count; ++i) {
    const Armed& a = armed[i];
    a.source->DisarmSleep(woken >= a.first && woken < a.first + a.count ? woken - a.first : -1);
  }
  async_waits_->DisarmSleep(woken >= waits_first ? woken - waits_first : -1);
}

bool EventLoop::Loop(absl::Time deadline) {
  CurrentScope scope(this);
  for (;;) {
    // Loads first: the loop writes these lines only when they changed (the
    // producers read the line beside them).
    if (stop_.load(std::memory_order_relaxed) && stop_.exchange(false, std::memory_order_seq_cst)) {
      return true;
    }
    // Cleared before the pass that reads what the kick announced.
    if (kicked_.load(std::memory_order_relaxed)) kicked_.store(false, std::memory_order_relaxed);
    RunPass();
    if (stop_.load(std::memory_order_seq_cst)) continue;
    if (!Alive()) return true;
    absl::Time wake_at = deadline;
    const int64_t next = next_deadline_ns_.load(std::memory_order_relaxed);
    if (next != INT64_MAX) wake_at = std::min(wake_at, absl::FromUnixNanos(next));
    if (wake_at != absl::InfiniteFuture()) {
      // Only with a deadline or a timer: no clock read on the message path.
      const absl::Time now = absl::Now();
      if (wake_at <= now) {
        if (now >= deadline) return false;
        continue;  // a timer is due
      }
    }
    // After messages or closures, watch for more a bounded time (a reply to
    // what a handler sent usually comes within µs); a pass that ran only
    // timers, or nothing, goes straight to sleep: a loop woken by a periodic
    // timer pays no spin.
    if (HasWork()) continue;
    if (busy_ && SpinForWork(wake_at)) continue;
    Sleep(wake_at);
    if (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) return false;
  }
}

}  // namespace wharf
