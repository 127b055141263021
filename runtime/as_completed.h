// AsCompleted: Python's concurrent.futures.as_completed for wharf::Future —
// the futures of a set one by one in the order they complete, so results can
// be used while the rest still run.
//
//   std::vector<wharf::Future<std::string>> fs = ...;
//   wharf::AsCompleted<std::string> order(fs, absl::Minutes(1));
//   for (;;) {
//     absl::StatusOr<size_t> i = order.Next();
//     if (absl::IsOutOfRange(i.status())) break;        // every one returned
//     if (!i.ok()) { /* DeadlineExceeded: the minute passed */ break; }
//     use(fs[*i].Get());
//   }
//
// Next() returns the index (into the input) of a future that is done and was
// not returned before: those done at construction first, in input order,
// then each as it completes. OutOfRange once all were returned;
// DeadlineExceeded when none is done and the overall timeout (counted from
// construction, as Python's) has passed — a later Next() still returns any
// future that completed meanwhile, at once.
// The futures are not consumed and must outlive the use of their results;
// the AsCompleted object may die before they complete.
//
// Errors: the constructor cannot fail; an empty input future makes every
// Next() after the others return InvalidArgument naming it (it would never
// complete). Thread-safety: one AsCompleted from one thread at a time;
// completions come from any thread. Blocking: Next() sleeps on a Semaphore
// (an interruption point, sync/interrupt.h).

#ifndef WHARF_RUNTIME_AS_COMPLETED_H_
#define WHARF_RUNTIME_AS_COMPLETED_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/future.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/semaphore.h"

namespace wharf {

template <class T>
class AsCompleted {
 public:
  explicit AsCompleted(std::span<const Future<T>> futures,
                       absl::Duration timeout = absl::InfiniteDuration())
      : deadline_(timeout == absl::InfiniteDuration() ? absl::InfiniteFuture()
                                                      : absl::Now() + timeout),
        total_(futures.size()),
        queue_(std::make_shared<Queue>()) {
    for (size_t i = 0; i < futures.size(); ++i) {
      if (!futures[i].valid()) {
        empty_.push_back(i);
        continue;
      }
      // Runs now for a done future (input order), else on the completing
      // thread. Holds the queue, not this object.
      futures[i].AddDoneCallback([queue = queue_, i](const FutureResult<T>&) {
        {
          MutexLock lock(queue->mu);
          queue->done.push_back(i);
        }
        queue->ready.release();
      });
    }
  }
  AsCompleted(const std::vector<Future<T>>& futures,
              absl::Duration timeout = absl::InfiniteDuration())
      : AsCompleted(std::span<const Future<T>>(futures), timeout) {}

  // The next completed future's index; OutOfRange when all were returned;
  // DeadlineExceeded past the overall timeout; InvalidArgument for an empty
  // input future once only such ones are left.
  absl::StatusOr<size_t> Next() {
    if (returned_ == total_) {
      return absl::OutOfRangeError(
          absl::StrCat("AsCompleted: all ", total_, " futures were returned"));
    }
    if (returned_ + empty_.size() == total_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "AsCompleted: future ", empty_.front(),
          " is empty (consumed or default-constructed): it can never complete"));
    }
    if (!queue_->ready.AcquireUntil(deadline_)) {
      return absl::DeadlineExceededError(absl::StrCat(
          "AsCompleted: ", total_ - returned_ - empty_.size(), " of ", total_,
          " futures not done before the timeout"));
    }
    MutexLock lock(queue_->mu);
    const size_t i = queue_->done.front();
    queue_->done.pop_front();
    ++returned_;
    return i;
  }

  // Futures not returned yet (empty ones included).
  size_t remaining() const { return total_ - returned_; }

 private:
  struct Queue {
    Mutex mu;
    std::deque<size_t> done;  // guarded by mu
    Semaphore ready{0};       // one permit per entry of `done`
  };
  const absl::Time deadline_;
  const size_t total_;
  size_t returned_ = 0;
  std::vector<size_t> empty_;
  std::shared_ptr<Queue> queue_;
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_AS_COMPLETED_H_
