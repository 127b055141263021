// Internal: the thread isolation of a Worker — starting and joining the
// thread that runs RunWorkerEntry. (The process isolation is the other
// backend.)

#ifndef WHARF_RUNTIME_INTERNAL_THREAD_BACKEND_H_
#define WHARF_RUNTIME_INTERNAL_THREAD_BACKEND_H_

#include <pthread.h>

#include <cstddef>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace wharf::runtime_internal {

class ThreadBackend {
 public:
  ThreadBackend() = default;
  ThreadBackend(const ThreadBackend&) = delete;
  ThreadBackend& operator=(const ThreadBackend&) = delete;

  // Runs `body` on a new thread named `name` (its first 15 bytes), with a
  // stack of `stack_size` bytes (0: the default; raised to PTHREAD_STACK_MIN).
  // InvalidArgument for a stack size the system refuses, ResourceExhausted
  // when no thread can be created. Owner thread.
  absl::Status Start(const std::string& name, size_t stack_size,
                     absl::AnyInvocable<void()> body);
  // Waits for the thread to end; a no-op once joined or never started.
  void Join();

 private:
  pthread_t thread_{};
  bool joinable_ = false;
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_THREAD_BACKEND_H_
