// Future<T> / Promise<T>: a one-shot result handed from one thread to another —
// what Worker::Terminate, WaitAsync and the pool return.
//
//   wharf::Promise<int> p;
//   wharf::Future<int> f = p.GetFuture();
//   std::thread t([p = std::move(p)]() mutable { (void)p.SetValue(42); });
//   absl::StatusOr<int> r = f.Get();  // blocks; 42
//
// A Future<T> holds an absl::StatusOr<T> (Future<void>: an absl::Status): the
// producer calls SetValue or SetError once. A Promise destroyed without
// either completes its future with kAborted "promise destroyed without a
// value" (a broken promise never hangs a waiter). Setting twice returns
// FailedPrecondition and changes nothing.
//
// A Future is move-only and has one consumer: either read it with
// Get()/WaitFor()/IsReady() (any number of times), or hand it on with one of
// the consuming calls — Then(loop, fn), OnReady(fn), WhenAll, WhenAny — after
// which it is empty (valid() == false).
//
// Python's concurrent.futures.Future, for producers that run work (the
// pools): Cancel() completes a future whose work has not started with
// kCancelled and runs the producer's OnCancel hook (a pool drops the queued
// task); it fails once the producer called SetRunning() (Python's
// set_running_or_notify_cancel). Cancelled(), Running(), Done(),
// Get(timeout), and AddDoneCallback(fn) — any number, each run once with the
// result, on the completing thread or at once if done. Wait() and
// AsCompleted() (future_wait.h, as_completed.h) are built on it.
//
// Thread-safety: a Promise and its Future may be used concurrently from
// different threads; one Future (or Promise) object from one thread at a time.
// Memory ordering: everything the producer did before SetValue/SetError is
// visible to the consumer after Get()/a ready WaitFor()/IsReady() returns, and
// inside Then/OnReady continuations.
//
// Cost: a shared state allocation per promise (a pool's job holds its
// future's state: one allocation per task); completion with nobody
// blocked is a spin-lock section, a store and one atomic RMW
// (wharf::Notification, no syscall); a Get() that finds no result watches
// for it up to ~20 µs (a result from another CPU usually comes sooner than a
// futex hand-off would take), then sleeps on the Notification's futex.
//
// Interruption: a Get()/WaitFor() that has to sleep is an interruption point
// (sync/interrupt.h): in a worker being terminated it throws
// wharf::Interrupted. Setting a result never is (its internal lock is
// uninterruptible).

#ifndef WHARF_RUNTIME_FUTURE_H_
#define WHARF_RUNTIME_FUTURE_H_

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/sync/internal/spin.h"
#include "wharf/sync/internal/spin_lock.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/notification.h"

namespace wharf {

template <class T>
class Future;
template <class T>
class Promise;

namespace future_internal {

template <class T>
struct ResultOf {
  using type = absl::StatusOr<T>;
};
template <>
struct ResultOf<void> {
  using type = absl::Status;
};

}  // namespace future_internal

// What a Future<T> carries: absl::StatusOr<T>, or absl::Status for T = void.
template <class T>
using FutureResult = typename future_internal::ResultOf<T>::type;

namespace future_internal {

// A done-callback's exception is reported and dropped (as Python logs it):
// the completing thread is the producer's, which must not be unwound by it.
inline void ReportCallbackException(const char* what) {
  std::fprintf(stderr, "wharf: a Future done-callback threw (ignored): %s\n", what);
}

template <class T>
class State {
 public:
  using Result = FutureResult<T>;
  using Continuation = absl::AnyInvocable<void(Result&&)>;
  using DoneCallback = absl::AnyInvocable<void(const Result&)>;

  // Stores the result once; runs the done callbacks, then the continuation
  // (if any), on this thread.
  absl::Status Set(Result result) { return Complete(std::move(result), /*cancel=*/false); }

  // Future::Cancel: completes with kCancelled unless running or done; then
  // runs the producer's cancel hook. True if cancelled (now or before).
  bool Cancel() {
    {
      std::lock_guard<sync_internal::SpinLock> lock(mu_);
      if (result_.has_value()) return cancelled_;
      if (running_) return false;
    }
    // Complete re-checks under the lock (the producer may start or finish
    // in between; then this is not a cancellation).
    (void)Complete(Result(absl::CancelledError("cancelled before it started")), /*cancel=*/true);
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    return cancelled_;
  }

  // Promise::SetRunning: false (and nothing changes) once cancelled.
  bool SetRunning() {
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    if (cancelled_) return false;
    if (!result_.has_value()) running_ = true;
    return true;
  }
  void OnCancel(absl::AnyInvocable<void()> hook) {
    {
      std::lock_guard<sync_internal::SpinLock> lock(mu_);
      if (!cancelled_) {
        on_cancel_ = std::move(hook);
        return;
      }
    }
    hook();
  }
  bool Cancelled() {
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    return cancelled_;
  }
  bool Running() {
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    return running_ && !result_.has_value();
  }

  // Runs `fn(result)` once the result is set (now, if it is).
  void AddDoneCallback(DoneCallback fn) {
    {
      std::lock_guard<sync_internal::SpinLock> lock(mu_);
      if (!result_.has_value() || delivering_) {  // Complete runs it, after ready_
        callbacks_.push_back(std::move(fn));
        return;
      }
    }
    RunCallback(fn);
  }

  // Runs `cont` with the result now (ready) or when Set is called.
  void Subscribe(Continuation cont) {
    {
      std::lock_guard<sync_internal::SpinLock> lock(mu_);
      if (!result_.has_value() || delivering_) {  // callbacks may still read result_
        cont_ = std::move(cont);
        return;
      }
    }
    cont(std::move(*result_));
  }

  bool Satisfied() {
    std::lock_guard<sync_internal::SpinLock> lock(mu_);
    return result_.has_value();
  }
  bool IsReady() const { return ready_.HasBeenNotified(); }
  bool WaitUntil(absl::Time deadline) const {
    if (ready_.HasBeenNotified()) return true;
    // Watch for a result from another CPU before sleeping (kReplySpin): a
    // pool task's or a worker's reply usually comes within a few µs, and a
    // futex sleep plus wake-up costs 7-12 µs each way here. The notifier then
    // finds no sleeper and makes no syscall either.
    if (sync_internal::SpinFor(
            sync_internal::kReplySpin, deadline, [this] { return ready_.HasBeenNotified(); },
            sync_internal::kReplyPureSpin)) {
      return true;
    }
    return ready_.WaitForNotificationWithDeadline(deadline);
  }
  const Result& Get() const {
    (void)WaitUntil(absl::InfiniteFuture());
    return *result_;
  }
  bool TakeFutureOnce() { return !future_taken_.exchange(true); }

 private:
  absl::Status Complete(Result result, bool cancel) {
    absl::AnyInvocable<void()> hook;
    {
      std::lock_guard<sync_internal::SpinLock> lock(mu_);
      if (result_.has_value()) {
        return absl::FailedPreconditionError(cancelled_ ? "the future was cancelled"
                                                        : "promise already satisfied");
      }
      if (cancel && running_) return absl::FailedPreconditionError("already running");
      result_.emplace(std::move(result));
      cancelled_ = cancel;
      delivering_ = true;
      if (cancel) hook = std::move(on_cancel_);
      on_cancel_ = nullptr;
    }
    // result_ is final from here. Done() first (release: publishes result_
    // to Get()), so a callback's waiter (Wait) sees the future done; then
    // the callbacks read it — also those added meanwhile (delivering_ sends
    // them here rather than running them on the adding thread before
    // ready_, where a Wait woken by one would see its future not yet done);
    // then a continuation — the future was consumed, nobody else reads
    // result_ — takes it, once no callback can still be reading.
    ready_.Notify();
    Continuation cont;
    for (;;) {
      std::vector<DoneCallback> batch;
      {
        std::lock_guard<sync_internal::SpinLock> lock(mu_);
        batch.swap(callbacks_);
        if (batch.empty()) {
          delivering_ = false;
          cont = std::move(cont_);
          break;
        }
      }
      for (DoneCallback& fn : batch) RunCallback(fn);
    }
    if (cont) cont(std::move(*result_));
    if (hook) hook();
    return absl::OkStatus();
  }
  void RunCallback(DoneCallback& fn) {
    try {
      fn(*result_);
    } catch (const std::exception& e) {
      ReportCallbackException(e.what());
    } catch (...) {
      ReportCallbackException("a non-standard exception");
    }
  }

  // A spin lock: every section is a few loads and stores (callbacks and
  // continuations run outside it), and a robust Mutex costs more per task
  // than the rest of a pool's hand-over (measured: 7% of a tiny-task run).
  sync_internal::SpinLock mu_;
  std::optional<Result> result_;  // guarded by mu_ until ready_
  Continuation cont_;             // guarded by mu_
  std::vector<DoneCallback> callbacks_;   // guarded by mu_
  absl::AnyInvocable<void()> on_cancel_;  // guarded by mu_
  bool running_ = false;                  // guarded by mu_
  bool cancelled_ = false;                // guarded by mu_; final once result_ is set
  bool delivering_ = false;  // guarded by mu_: Complete is still running callbacks
  Notification ready_;
  std::atomic<bool> future_taken_{false};
};

// Future<U> for a continuation returning R: StatusOr<V> -> V, Status -> void.
template <class R>
struct Unwrap {
  using type = R;
};
template <class V>
struct Unwrap<absl::StatusOr<V>> {
  using type = V;
};
template <>
struct Unwrap<absl::Status> {
  using type = void;
};

// For producers that embed a State in an object of their own (the pools'
// jobs: one allocation per task): the future of `state`, which must be
// fresh (no other future taken). The producer completes it with
// state.Set(...) and must do so on every path — nothing breaks it for them.
template <class T>
Future<T> FutureOfState(std::shared_ptr<State<T>> state);

}  // namespace future_internal

template <class T>
class Promise {
 public:
  using Result = FutureResult<T>;

  Promise() : state_(std::make_shared<future_internal::State<T>>()) {}
  Promise(Promise&&) noexcept = default;
  Promise& operator=(Promise&& other) noexcept {
    if (this != &other) {
      Abandon();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  // Breaks the promise if unset: the future gets kAborted.
  ~Promise() { Abandon(); }

  // The future of this promise. Call once; a second call returns a future
  // already holding FailedPrecondition.
  Future<T> GetFuture() {
    if (state_ == nullptr || !state_->TakeFutureOnce()) {
      return Future<T>::Ready(Result(absl::FailedPreconditionError(
          "Promise::GetFuture called twice (or on a moved-from promise)")));
    }
    return Future<T>(state_);
  }

  // Completes the future. Never blocks (a continuation subscribed with
  // OnReady runs here). FailedPrecondition if already set or moved from.
  template <class U = T>
  requires(!std::is_void_v<U>) absl::Status SetValue(std::type_identity_t<U> value) {
    return Set(Result(std::move(value)));
  }
  absl::Status SetValue() requires std::is_void_v<T> { return Set(absl::OkStatus()); }
  // Completes the future with an error; `status` must not be OK (an OK
  // status is turned into kInternal). FailedPrecondition if already set.
  absl::Status SetError(absl::Status status) {
    if (status.ok()) status = absl::InternalError("Promise::SetError called with OK");
    return Set(Result(std::move(status)));
  }
  // Completes with a Result (value or error) as is.
  absl::Status SetResult(Result result) { return Set(std::move(result)); }

  // Marks the work as started, so that Future::Cancel fails from now on.
  // False if the future was cancelled first: do not run the work (its
  // future already holds kCancelled). Python's set_running_or_notify_cancel.
  bool SetRunning() { return state_ != nullptr && state_->SetRunning(); }
  // `hook` runs once if the future is cancelled (on the cancelling thread;
  // at once if it already was) — a pool removes the queued task there.
  // Replaces an earlier hook. Must not block.
  void OnCancel(absl::AnyInvocable<void()> hook) {
    if (state_ != nullptr) state_->OnCancel(std::move(hook));
  }
  // Whether the future was cancelled (a producer polling before it starts).
  bool Cancelled() const { return state_ != nullptr && state_->Cancelled(); }

 private:
  absl::Status Set(Result r) {
    if (state_ == nullptr) return absl::FailedPreconditionError("moved-from promise");
    return state_->Set(std::move(r));
  }
  void Abandon() {
    if (state_ != nullptr && !state_->Satisfied()) {
      (void)state_->Set(Result(absl::AbortedError("promise destroyed without a value")));
    }
    state_.reset();
  }

  std::shared_ptr<future_internal::State<T>> state_;
};

template <class T>
class Future {
 public:
  using Result = FutureResult<T>;
  using value_type = T;

  Future() = default;  // empty: valid() is false
  Future(Future&&) noexcept = default;
  Future& operator=(Future&&) noexcept = default;

  // A future that is ready at once.
  static Future Ready(Result result) {
    Promise<T> p;
    Future f = p.GetFuture();
    (void)p.SetResult(std::move(result));
    return f;
  }

  // Whether this object refers to a shared state (not empty or consumed).
  bool valid() const { return state_ != nullptr; }

  // Whether the result is available. Never blocks. False on an empty future.
  bool IsReady() const { return state_ != nullptr && state_->IsReady(); }

  // Blocks until ready. The reference lives as long as this Future. On an
  // empty future: returns a FailedPrecondition result.
  const Result& Get() const {
    if (state_ == nullptr) {
      static const Result* const kEmpty =
          new Result(absl::FailedPreconditionError("Get on an empty (consumed) future"));
      return *kEmpty;
    }
    return state_->Get();
  }

  // Get() waiting at most `timeout`: the result, or (not ready by then) a
  // result holding DeadlineExceeded — Python's result(timeout). The future
  // stays valid either way.
  const Result& Get(absl::Duration timeout) const {
    if (state_ != nullptr && !state_->WaitUntil(absl::Now() + timeout)) {
      static const Result* const kTimedOut = new Result(
          absl::DeadlineExceededError("Future::Get: no result within the timeout"));
      return *kTimedOut;
    }
    return Get();
  }

  // Python's cancel(): a future whose work has not started (no SetRunning)
  // completes with kCancelled at once and the producer's OnCancel hook runs;
  // true then, and true if it was already cancelled. False once running or
  // done, and on an empty future. Never blocks (beyond the hook).
  bool Cancel() { return state_ != nullptr && state_->Cancel(); }
  // Python's cancelled() / running() / done(). Never block.
  bool Cancelled() const { return state_ != nullptr && state_->Cancelled(); }
  bool Running() const { return state_ != nullptr && state_->Running(); }
  bool Done() const { return IsReady(); }

  // Python's add_done_callback: `fn(result)` runs once the future is done
  // — on the completing thread, or here, now, if it already is — before a
  // consuming continuation. Any number may be added; each runs once. Keep
  // them short; an exception from one is reported on stderr and dropped.
  // Does not consume the future (nothing happens on an empty one).
  void AddDoneCallback(absl::AnyInvocable<void(const Result&)> fn) const {
    if (state_ != nullptr) state_->AddDoneCallback(std::move(fn));
  }

  // Block until ready or the timeout/deadline; return IsReady().
  bool WaitFor(absl::Duration timeout) const { return WaitUntil(absl::Now() + timeout); }
  bool WaitUntil(absl::Time deadline) const {
    return state_ != nullptr && state_->WaitUntil(deadline);
  }

  // Consumes the future: `fn(Result&&)` runs on the thread that completes the
  // promise (or here, now, if already complete). Keep it short and
  // non-blocking; it is the building block of Then/WhenAll/WhenAny.
  void OnReady(absl::AnyInvocable<void(Result&&)> fn) && {
    auto state = std::move(state_);
    if (state == nullptr) {
      fn(Result(absl::FailedPreconditionError("OnReady on an empty future")));
      return;
    }
    state->Subscribe(std::move(fn));
  }

  // Consumes the future: when it is ready, runs `fn(Result&&)` on `loop`'s
  // thread (posted; never inline) and completes the returned future with its
  // return value (R = StatusOr<V> -> Future<V>; Status or void -> Future<void>;
  // any other R -> Future<R>). The pending callback refs `loop`, so Run()
  // waits for it. An exception from `fn` completes the returned future with
  // kUnknown (its what()) and then goes to the loop's uncaught-exception
  // handler.
  template <class F, class R = std::invoke_result_t<F, Result&&>,
            class U = typename future_internal::Unwrap<R>::type>
  Future<U> Then(EventLoop& loop, F fn) && {
    Promise<U> promise;
    Future<U> out = promise.GetFuture();
    std::move(*this).OnReady([&loop, ref = loop.MakeRef(), fn = std::move(fn),
                              promise = std::move(promise)](Result&& result) mutable {
      loop.Post([ref = std::move(ref), fn = std::move(fn), promise = std::move(promise),
                 result = std::move(result)]() mutable {
        try {
          if constexpr (std::is_void_v<R>) {
            fn(std::move(result));
            (void)promise.SetValue();
          } else if constexpr (std::is_same_v<R, absl::Status>) {
            absl::Status s = fn(std::move(result));
            (void)(s.ok() ? promise.SetValue() : promise.SetError(std::move(s)));
          } else {
            (void)promise.SetResult(FutureResult<U>(fn(std::move(result))));
          }
        } catch (const std::exception& e) {
          (void)promise.SetError(absl::UnknownError(e.what()));
          throw;
        } catch (...) {
          (void)promise.SetError(absl::UnknownError("non-standard exception"));
          throw;
        }
      });
    });
    return out;
  }

 private:
  friend class Promise<T>;
  friend Future future_internal::FutureOfState<T>(std::shared_ptr<future_internal::State<T>>);
  explicit Future(std::shared_ptr<future_internal::State<T>> s) : state_(std::move(s)) {}

  std::shared_ptr<future_internal::State<T>> state_;
};

template <class T>
Future<T> future_internal::FutureOfState(std::shared_ptr<State<T>> state) {
  (void)state->TakeFutureOnce();
  return Future<T>(std::move(state));
}

// A future of every input's result, in input order, ready when all are.
// Consumes the inputs. An empty input gives a ready, empty vector.
template <class T>
Future<std::vector<FutureResult<T>>> WhenAll(std::vector<Future<T>> futures) {
  using Vec = std::vector<FutureResult<T>>;
  if (futures.empty()) return Future<Vec>::Ready(Vec());
  struct Join {
    Mutex mu;
    std::vector<std::optional<FutureResult<T>>> slots;  // guarded by mu
    size_t remaining;                                   // guarded by mu
    Promise<Vec> promise;
  };
  auto join = std::make_shared<Join>();
  join->slots.resize(futures.size());
  join->remaining = futures.size();
  Future<Vec> out = join->promise.GetFuture();
  for (size_t i = 0; i < futures.size(); ++i) {
    std::move(futures[i]).OnReady([join, i](FutureResult<T>&& r) {
      bool last;
      {
        MutexLock lock(join->mu);
        join->slots[i].emplace(std::move(r));
        last = --join->remaining == 0;
      }
      if (!last) return;
      Vec results;
      results.reserve(join->slots.size());
      for (auto& s : join->slots) results.push_back(std::move(*s));
      (void)join->promise.SetValue(std::move(results));
    });
  }
  return out;
}

// The first input to complete: its index and its result (value or error).
// Consumes the inputs; the other results are dropped. An empty input gives a
// future holding InvalidArgument.
template <class T>
Future<std::pair<size_t, FutureResult<T>>> WhenAny(std::vector<Future<T>> futures) {
  using Pair = std::pair<size_t, FutureResult<T>>;
  if (futures.empty()) {
    return Future<Pair>::Ready(absl::InvalidArgumentError("WhenAny of no futures"));
  }
  struct Race {
    std::atomic<bool> done{false};
    Promise<Pair> promise;
  };
  auto race = std::make_shared<Race>();
  Future<Pair> out = race->promise.GetFuture();
  for (size_t i = 0; i < futures.size(); ++i) {
    std::move(futures[i]).OnReady([race, i](FutureResult<T>&& r) {
      if (!race->done.exchange(true, std::memory_order_acq_rel)) {
        (void)race->promise.SetValue(Pair(i, std::move(r)));
      }
    });
  }
  return out;
}

}  // namespace wharf

#endif  // WHARF_RUNTIME_FUTURE_H_
