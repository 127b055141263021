#include "wharf/runtime/internal/idle_workers.h"

#include <mutex>

#include "wharf/sync/futex.h"
#include "wharf/sync/internal/spin.h"

namespace wharf::pool_internal {

void IdleWorkers::Enter(Waiter& w) {
  w.state.store(kIdle, std::memory_order_relaxed);  // its own: no post is pending (protocol)
  {
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    w.prev = nullptr;
    w.next = top_;
    if (top_ != nullptr) top_->prev = &w;
    top_ = &w;
    w.listed = true;
    count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // A: matches B
}

void IdleWorkers::Unlink(Waiter& w) {
  if (w.prev != nullptr) {
    w.prev->next = w.next;
  } else {
    top_ = w.next;
  }
  if (w.next != nullptr) w.next->prev = w.prev;
  w.prev = w.next = nullptr;
  w.listed = false;
  count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

void IdleWorkers::Leave(Waiter& w) {
  {
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    if (w.listed) {
      Unlink(w);
      return;
    }
  }
  AwaitPost(w);  // popped: its post follows at once
}

bool IdleWorkers::Sleep(Waiter& w, absl::Time deadline) {
  // Watch the word first (kReplySpin, read-only): a notifier that pops us
  // meanwhile sees kIdle and posts without a syscall, and we run its task
  // without a futex hand-off. (BM_TinyTasks/wharf_thread, 2 cores, A/B in
  // one sitting: 0.90-0.92 M/s with it, 0.78-0.82 M/s without; one task on
  // an idle pool costs the same either way, 2.4-2.5 µs: there the Future's
  // spin is what counts.)
  if (sync_internal::SpinFor(
          sync_internal::kReplySpin, deadline,
          [&w] { return w.state.load(std::memory_order_acquire) == kPosted; },
          sync_internal::kReplyPureSpin)) {
    return true;
  }
  uint32_t s = kIdle;
  if (w.state.compare_exchange_strong(s, kSleeping, std::memory_order_acq_rel)) {
    for (;;) {
      const FutexWaitResult r = FutexWait(&w.state, kSleeping, FutexScope::kPrivate, deadline);
      s = w.state.load(std::memory_order_acquire);
      if (s == kPosted) return true;
      if (r == FutexWaitResult::kTimedOut) break;  // else spurious: sleep again
    }
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    if (w.listed) {
      Unlink(w);
      return false;
    }
  } else if (s == kPosted) {
    return true;  // posted before it could sleep
  }
  AwaitPost(w);  // popped just as the deadline passed: take the wake
  return true;
}

void IdleWorkers::AwaitPost(Waiter& w) {
  // The notifier popped `w` under mu_ and posts right after: sleep for the
  // post (kSleeping makes it wake us), or see it already there.
  uint32_t s = w.state.load(std::memory_order_acquire);
  while (s != kPosted) {
    if (s == kIdle &&
        !w.state.compare_exchange_strong(s, kSleeping, std::memory_order_acq_rel)) {
      continue;  // s now holds what the notifier wrote
    }
    (void)FutexWait(&w.state, kSleeping, FutexScope::kPrivate);
    s = w.state.load(std::memory_order_acquire);
  }
}

void IdleWorkers::Post(Waiter& w) {
  // acq_rel: the worker's kSleeping CAS and this exchange are ordered on the
  // one word; release publishes the pop (and the caller's push) to it.
  if (w.state.exchange(kPosted, std::memory_order_acq_rel) == kSleeping) {
    (void)FutexWake(&w.state, 1, FutexScope::kPrivate);
  }
}

bool IdleWorkers::NotifyOne() {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // B: matches A
  if (count_.load(std::memory_order_relaxed) == 0) return false;
  Waiter* w;
  {
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    w = top_;
    if (w == nullptr) return false;
    Unlink(*w);
  }
  Post(*w);
  return true;
}

void IdleWorkers::NotifyAll() {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // B: matches A
  if (count_.load(std::memory_order_relaxed) == 0) return;
  Waiter* all;
  {
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    all = top_;
    for (Waiter* w = all; w != nullptr; w = w->next) {
      w->listed = false;
    }
    top_ = nullptr;
    count_.store(0, std::memory_order_relaxed);
  }
  // The chain stays readable: a worker leaves only after its post, and the
  // next pointer is read before that post.
  while (all != nullptr) {
    Waiter* next = all->next;
    all->prev = all->next = nullptr;
    Post(*all);
    all = next;
  }
}

}  // namespace wharf::pool_internal
