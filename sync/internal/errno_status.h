// Internal: an errno turned into an absl::Status a person can act on.
//
// "Out of something" (ENOMEM, ENOSPC, EFBIG, EMFILE, ENFILE, EDQUOT) is
// ResourceExhausted; EACCES/EPERM PermissionDenied; ENOENT NotFound; EBADF
// InvalidArgument; anything else Internal. The message is "<what>: <strerror>".
#ifndef WHARF_SYNC_INTERNAL_ERRNO_STATUS_H_
#define WHARF_SYNC_INTERNAL_ERRNO_STATUS_H_

#include <errno.h>

#include <cstring>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "wharf/sync/internal/str_cat.h"

namespace wharf::sync_internal {

inline absl::Status ErrnoStatus(std::string_view what, int err) {
  std::string msg = Cat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOMEM:
    case ENOSPC:
    case EFBIG:
    case EMFILE:
    case ENFILE:
    case EDQUOT:
      return absl::ResourceExhaustedError(std::move(msg));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(std::move(msg));
    case ENOENT:
      return absl::NotFoundError(std::move(msg));
    case EBADF:
      return absl::InvalidArgumentError(std::move(msg));
    default:
      return absl::InternalError(std::move(msg));
  }
}

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_ERRNO_STATUS_H_
