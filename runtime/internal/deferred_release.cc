#include "wharf/runtime/internal/deferred_release.h"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

namespace wharf::runtime_internal {
namespace {

// The thread starts with the first Push (under mu_), so an unused Releaser
// can be deleted.
class Releaser {
 public:
  void Push(Buffer&& b) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!started_) {
        started_ = true;
        std::thread([this] { Run(); }).detach();
      }
      queue_.push_back(std::move(b));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return !queue_.empty(); });
      Buffer b = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      b = Buffer();  // the unmap, outside the lock
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Buffer> queue_;
  bool started_ = false;
};

// The process's Releaser; never destroyed (its thread outlives exit).
std::atomic<Releaser*> releaser{nullptr};

// A child of fork() (without exec) has no copy of the parent's thread, so
// it must not use the parent's Releaser — its queue would grow forever (a
// forked process that transferred Buffers kept every mapping and descriptor
// of them until it hit its descriptor limit). The child forgets it (the old
// object is left as it was: its mutex may have been held at the fork) and
// makes its own on first use.
void ForgetReleaserInChild() { releaser.store(nullptr, std::memory_order_relaxed); }

Releaser& TheReleaser() {
  static const bool registered = [] {
    (void)pthread_atfork(nullptr, nullptr, &ForgetReleaserInChild);
    return true;
  }();
  (void)registered;
  Releaser* r = releaser.load(std::memory_order_acquire);
  if (r != nullptr) return *r;
  auto* fresh = new Releaser;
  if (releaser.compare_exchange_strong(r, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;  // another thread's came first (its thread has not started)
  return *r;
}

}  // namespace

void DeferRelease(Buffer&& buffer) {
  if (!buffer.shared() || buffer.size() < kDeferReleaseAbove) {
    Buffer gone = std::move(buffer);
    return;
  }
  TheReleaser().Push(std::move(buffer));
}

}  // namespace wharf::runtime_internal
