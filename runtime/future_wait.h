// Wait(futures, mode, timeout): Python's concurrent.futures.wait for
// wharf::Future — block until the first of a set completes, the first fails,
// or all complete, or the timeout passes; then say which are done.
//
//   std::vector<wharf::Future<int>> fs = ...;   // e.g. pool.Run(...) results
//   absl::StatusOr<wharf::DoneAndNotDone> r =
//       wharf::Wait(fs, wharf::WaitMode::kFirstException, absl::Seconds(5));
//   for (size_t i : r->done) use(fs[i].Get());
//
// The futures are not consumed (Get() stays usable on each). `done` and
// `not_done` hold indices into `futures`, each in input order; together they
// name every future once. kFirstException returns when a future completes
// with an error other than kCancelled (Python counts a cancelled future as
// done, not as an exception) or when all are done. A timeout is not an
// error: Wait returns what is done by then (Python's behaviour).
//
// Errors: InvalidArgument if an input future is empty (consumed or default-
// constructed: it would never complete), naming its index.
// Blocking: sleeps on one Notification; an interruption point
// (sync/interrupt.h) like Future::Get. Thread-safety: the futures must not
// be consumed or moved by another thread during the call; completions may
// come from any thread. Cost: one callback per pending future, which stays
// registered (holding a small shared record) until that future completes.

#ifndef WHARF_RUNTIME_FUTURE_WAIT_H_
#define WHARF_RUNTIME_FUTURE_WAIT_H_

#include <cstddef>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/future.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/notification.h"

namespace wharf {

enum class WaitMode {
  kFirstCompleted,  // any future done (value, error or cancelled)
  kFirstException,  // any future failed (not kCancelled), else all done
  kAllCompleted,    // every future done
};

struct DoneAndNotDone {
  std::vector<size_t> done;      // indices, input order
  std::vector<size_t> not_done;  // indices, input order
};

namespace future_internal {

// Whether a completed future's result counts as Python's "exception".
template <class R>
bool IsException(const R& result) {
  const absl::Status& s = [&]() -> const absl::Status& {
    if constexpr (std::is_same_v<R, absl::Status>) {
      return result;
    } else {
      return result.status();
    }
  }();
  return !s.ok() && s.code() != absl::StatusCode::kCancelled;
}

}  // namespace future_internal

template <class T>
absl::StatusOr<DoneAndNotDone> Wait(std::span<const Future<T>> futures,
                                WaitMode mode = WaitMode::kAllCompleted,
                                absl::Duration timeout = absl::InfiniteDuration()) {
  for (size_t i = 0; i < futures.size(); ++i) {
    if (!futures[i].valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Wait: future ", i, " is empty (consumed or default-constructed): it can never complete"));
    }
  }
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  struct Pending {
    Mutex mu;
    size_t remaining = 0;  // guarded by mu
    bool fired = false;    // guarded by mu: ready notified (once)
    WaitMode mode = WaitMode::kAllCompleted;
    Notification ready;
  };
  auto pending = std::make_shared<Pending>();
  pending->mode = mode;
  {
    MutexLock lock(pending->mu);
    pending->remaining = futures.size();
  }
  if (futures.empty()) pending->ready.Notify();
  for (const Future<T>& f : futures) {
    // Runs here when already done, else on the completing thread.
    f.AddDoneCallback([pending](const FutureResult<T>& r) {
      bool fire;
      {
        MutexLock lock(pending->mu);
        const bool last = --pending->remaining == 0;
        fire = !pending->fired &&
               (last || pending->mode == WaitMode::kFirstCompleted ||
                (pending->mode == WaitMode::kFirstException && future_internal::IsException(r)));
        pending->fired |= fire;
      }
      if (fire) pending->ready.Notify();  // once: `fired` under the lock
    });
  }
  (void)pending->ready.WaitForNotificationWithDeadline(deadline);
  DoneAndNotDone out;
  for (size_t i = 0; i < futures.size(); ++i) {
    (futures[i].Done() ? out.done : out.not_done).push_back(i);
  }
  return out;
}

template <class T>
absl::StatusOr<DoneAndNotDone> Wait(const std::vector<Future<T>>& futures,
                                WaitMode mode = WaitMode::kAllCompleted,
                                absl::Duration timeout = absl::InfiniteDuration()) {
  return Wait(std::span<const Future<T>>(futures), mode, timeout);
}

}  // namespace wharf

#endif  // WHARF_RUNTIME_FUTURE_WAIT_H_
