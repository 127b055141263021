// Internal: FdGuard closes a file descriptor on scope exit unless released.
#ifndef WHARF_SYNC_INTERNAL_FD_GUARD_H_
#define WHARF_SYNC_INTERNAL_FD_GUARD_H_

#include <unistd.h>

#include <utility>

namespace wharf::sync_internal {

class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  FdGuard(FdGuard&& other) noexcept : fd_(other.release()) {}
  FdGuard& operator=(FdGuard&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_FD_GUARD_H_
