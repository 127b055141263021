#include "wharf/runtime/internal/fd_passing.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "wharf/sync/internal/errno_status.h"

namespace wharf::runtime_internal {

using sync_internal::FdGuard;

absl::Status MakeFdSocketPair(int out[2]) {
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, out) != 0) {
    return sync_internal::ErrnoStatus("socketpair(AF_UNIX, SOCK_SEQPACKET)", errno);
  }
  return absl::OkStatus();
}

absl::Status SendFds(int socket, uint64_t seq, std::span<const int> fds) {
  if (fds.empty() || fds.size() > static_cast<size_t>(kMaxFds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SendFds: ", fds.size(), " descriptors (1..", kMaxFds, " per message)"));
  }
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  std::memset(control, 0, sizeof control);
  iovec iov{&seq, sizeof seq};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  for (;;) {
    if (::sendmsg(socket, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof seq) return absl::OkStatus();
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      return absl::UnavailableError(
          "the peer process is not taking descriptors (its socket buffer is full)");
    }
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) {
      return absl::FailedPreconditionError("the peer process is gone");
    }
    return sync_internal::ErrnoStatus("sendmsg(SCM_RIGHTS)", errno);
  }
}

absl::StatusOr<std::vector<FdGuard>> ReceiveFds(int socket, uint64_t seq, int count) {
  if (count < 1 || count > kMaxFds) {
    return absl::DataLossError(absl::StrCat("a message names ", count, " descriptors (at most ",
                                            kMaxFds, ")"));
  }
  for (;;) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    uint64_t got_seq = 0;
    iovec iov{&got_seq, sizeof got_seq};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(socket, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (errno == EAGAIN) {
        return absl::DataLossError(absl::StrCat(
            "the descriptors of message ", seq, " never arrived (the sender died sending them?)"));
      }
      return sync_internal::ErrnoStatus("recvmsg(SCM_RIGHTS)", errno);
    }
    if (n == 0) return absl::DataLossError("the descriptor socket was closed by the peer");
    // Take ownership of whatever arrived before judging it.
    std::vector<FdGuard> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds.emplace_back(fd);
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0 || n != sizeof got_seq) {
      return absl::DataLossError("a descriptor batch arrived truncated");
    }
    if (got_seq < seq) continue;  // a dead attempt's batch: closed by `fds`
    if (got_seq > seq || static_cast<int>(fds.size()) != count) {
      return absl::DataLossError(absl::StrCat("descriptor batch ", got_seq, " with ", fds.size(),
                                              " descriptors where batch ", seq, " with ", count,
                                              " was due"));
    }
    return fds;
  }
}

}  // namespace wharf::runtime_internal
