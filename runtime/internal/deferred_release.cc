#include "wharf/runtime/internal/deferred_release.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

namespace wharf::runtime_internal {
namespace {

class Releaser {
 public:
  Releaser() { std::thread([this] { Run(); }).detach(); }

  void Push(Buffer&& b) {
    {
      std::lock_guard<std::mutex> lock(mu_);
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
};

}  // namespace

void DeferRelease(Buffer&& buffer) {
  if (!buffer.shared() || buffer.size() < kDeferReleaseAbove) {
    Buffer gone = std::move(buffer);
    return;
  }
  static Releaser* releaser = new Releaser;  // never destroyed: its thread outlives exit
  releaser->Push(std::move(buffer));
}

}  // namespace wharf::runtime_internal
