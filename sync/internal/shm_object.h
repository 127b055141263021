// Internal: POSIX shared-memory objects by name (/dev/shm/NAME), the part
// SharedBuffer and SharedSegment share — the name rules, exclusive creation
// with an exact mode, open-by-name with the owner/mode check, removal of
// exactly the object one made — each written once, with one set of
// absl::Status messages.
//
// Why the owner/mode check: /dev/shm is writable by every local user, so a
// name can be taken by anyone first. Without the check, a user who creates
// /dev/shm/NAME (mode 0666, a valid header) before the real creator makes
// every later opener map memory that user controls. OpenShm therefore opens
// the name with O_NOFOLLOW (a symlink is refused, never followed) and checks
// the fd it returns with fstat — the very object that will be mapped, so
// there is no check-then-open race — and refuses it unless it is a regular
// file owned by the caller's effective uid (or an explicitly trusted uid)
// whose mode grants no access to others and no group access beyond what the
// caller allowed.
#ifndef WHARF_SYNC_INTERNAL_SHM_OBJECT_H_
#define WHARF_SYNC_INTERNAL_SHM_OBJECT_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wharf::sync_internal {

// How the messages name the caller's kind of object and its functions.
struct ShmKind {
  const char* type;     // "SharedBuffer": prefixes name errors
  const char* noun;     // "shared memory": "no shared memory named 'x'"
  const char* create;   // "SharedBuffer::CreateNamed"
  const char* open;     // "SharedBuffer::OpenNamed"
  const char* remove;   // "SharedBuffer::Unlink"
  const char* options;  // "SharedBuffer::OpenOptions": named in the hints
  size_t max_name_length;
};

// Which objects OpenShm accepts besides the caller's own private ones.
struct ShmTrust {
  // Also accept objects owned by this uid (besides geteuid()).
  std::optional<uid_t> allowed_owner = std::nullopt;
  // Group permission bits (within 0070) the object may have. Bits for others
  // (0007) are never accepted.
  mode_t allowed_group_bits = 0;
};

// InvalidArgument unless `name` has 1..kind.max_name_length characters, no
// '/' or NUL, and is not "." or "..".
absl::Status ValidateShmName(const ShmKind& kind, std::string_view name);

// The shm_open(3) path of a name: "/NAME" (glibc maps it to /dev/shm/NAME).
std::string ShmPath(std::string_view name);

// Creates `name` exclusively (O_CREAT | O_EXCL | O_NOFOLLOW), read-write,
// with exactly `mode` (fchmod after the open: the umask is not applied).
// Returns the fd (O_CLOEXEC) and fills `*st` from fstat of it. AlreadyExists
// if the name is taken (also by a symlink); otherwise ErrnoStatus. On failure
// nothing is left behind.
absl::StatusOr<int> CreateShm(const ShmKind& kind, std::string_view name, mode_t mode,
                              struct stat* st);

// Checks `mode` for CreateShm: permission bits only, none for others.
// InvalidArgument naming the mode otherwise.
absl::Status ValidateCreateMode(const ShmKind& kind, std::string_view name, mode_t mode);

// Opens `name` read-write without following a symlink and checks the opened
// fd (see the file comment). Returns the fd (O_CLOEXEC) and fills `*st` from
// its fstat. NotFound if absent; PermissionDenied for a symlink, an untrusted
// owner or mode (the message names owner, expected uid and mode), or EACCES;
// InvalidArgument if not a regular file or `trust` is malformed. Never
// blocks (O_RDWR does not wait for a FIFO's peer on Linux, and a FIFO is
// refused).
absl::StatusOr<int> OpenShm(const ShmKind& kind, std::string_view name, const ShmTrust& trust,
                            struct stat* st);

// The owner/mode check of OpenShm on an fstat result.
absl::Status CheckShmTrust(const ShmKind& kind, std::string_view name, const struct stat& st,
                           const ShmTrust& trust);

// Removes `name` (existing mappings stay valid). NotFound if absent, else
// ErrnoStatus; kind.remove prefixes the messages.
absl::Status UnlinkShm(const ShmKind& kind, std::string_view name);

// Removes `name` only while it still is the object (dev, ino) — never a newer
// object that took the name since. Best effort, never blocks, never fails.
void UnlinkShmIfSame(std::string_view name, dev_t dev, ino_t ino);

}  // namespace wharf::sync_internal

#endif  // WHARF_SYNC_INTERNAL_SHM_OBJECT_H_
