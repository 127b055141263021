#include "wharf/runtime/internal/thread_backend.h"

#include <climits>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include <algorithm>

#include "wharf/sync/internal/str_cat.h"

namespace wharf::runtime_internal {
namespace {

struct ThreadArg {
  std::string name;
  absl::AnyInvocable<void()> body;
};

void* ThreadMain(void* raw) {
  std::unique_ptr<ThreadArg> arg(static_cast<ThreadArg*>(raw));
  if (!arg->name.empty()) {
    char tname[16];
    std::snprintf(tname, sizeof tname, "%s", arg->name.c_str());
    pthread_setname_np(pthread_self(), tname);
  }
  absl::AnyInvocable<void()> body = std::move(arg->body);
  arg.reset();
  body();
  return nullptr;
}

}  // namespace

absl::Status ThreadBackend::Start(const std::string& name, size_t stack_size,
                                  absl::AnyInvocable<void()> body) {
  using sync_internal::Cat;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (stack_size != 0) {
    const size_t size = std::max<size_t>(stack_size, PTHREAD_STACK_MIN);
    if (int err = pthread_attr_setstacksize(&attr, size); err != 0) {
      pthread_attr_destroy(&attr);
      return absl::InvalidArgumentError(
          Cat("Worker::Start: stack_size ", stack_size, ": ", std::strerror(err)));
    }
  }
  auto* arg = new ThreadArg{name, std::move(body)};
  const int err = pthread_create(&thread_, &attr, &ThreadMain, arg);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    delete arg;
    std::string msg = Cat("Worker::Start: pthread_create: ", std::strerror(err));
    return err == EAGAIN ? absl::ResourceExhaustedError(msg) : absl::InternalError(msg);
  }
  joinable_ = true;
  return absl::OkStatus();
}

void ThreadBackend::Join() {
  if (!joinable_) return;
  joinable_ = false;
  pthread_join(thread_, nullptr);
}

}  // namespace wharf::runtime_internal
