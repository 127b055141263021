#include "wharf/sync/internal/shm_object.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "wharf/sync/internal/errno_status.h"
#include "wharf/sync/internal/str_cat.h"

namespace wharf::sync_internal {

namespace {

constexpr mode_t kGroupBits = 0070;
constexpr mode_t kOtherBits = 0007;

// 0600, 060, 0: permission bits as chmod(1) and C write them.
std::string Octal(mode_t mode) {
  mode &= 07777;
  return mode == 0 ? std::string("0") : absl::StrFormat("0%o", mode);
}

// "rw" for the read and write bits of one class of users (r = 4, w = 2, x = 1).
std::string Access(mode_t bits) {
  std::string s;
  if (bits & 4) s += 'r';
  if (bits & 2) s += 'w';
  if (bits & 1) s += 'x';
  return s;
}

}  // namespace

absl::Status ValidateShmName(const ShmKind& kind, std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(Cat(kind.type, " name is empty"));
  if (name.size() > kind.max_name_length) {
    return absl::InvalidArgumentError(Cat(kind.type, " name is ", name.size(),
                                          " characters long; the limit is ", kind.max_name_length));
  }
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat(kind.type, " name '", absl::CHexEscape(CatArg(name)),
            "' contains '/' or NUL; use a plain name such as 'myapp_jobs'"));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(Cat(kind.type, " name '", name, "' is reserved"));
  }
  return absl::OkStatus();
}

std::string ShmPath(std::string_view name) { return Cat("/", name); }

absl::Status ValidateCreateMode(const ShmKind& kind, std::string_view name, mode_t mode) {
  if ((mode & ~mode_t{0777}) != 0) {
    return absl::InvalidArgumentError(Cat(kind.create, "('", name, "'): mode ", Octal(mode),
                                          " has bits beyond the permission bits 0777"));
  }
  if ((mode & kOtherBits) != 0) {
    return absl::InvalidArgumentError(
        Cat(kind.create, "('", name, "'): mode ", Octal(mode), " gives every local user ",
            Access(mode & kOtherBits),
            " access, so any of them could change the memory under you, and ", kind.open,
            " refuses such objects; use 0600 (the default), or 0660 together with ", kind.options,
            "::allowed_group_bits = 060 to share with the file's group"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> CreateShm(const ShmKind& kind, std::string_view name, mode_t mode,
                              struct stat* st) {
  const std::string path = ShmPath(name);
  // O_EXCL fails on any existing entry, a symlink included; O_NOFOLLOW says so
  // again for the reader.
  const int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      return absl::AlreadyExistsError(Cat(kind.noun, " '", name, "' already exists (/dev/shm/",
                                          name, "): open it with ", kind.open,
                                          ", or remove it with ", kind.remove, " if it is stale"));
    }
    return ErrnoStatus(Cat("creating ", kind.noun, " '", name, "'"), err);
  }
  if (::fstat(fd, st) != 0) {
    const int err = errno;
    ::close(fd);
    ::shm_unlink(path.c_str());  // ours: O_EXCL made it a moment ago
    return ErrnoStatus(Cat("fstat of new ", kind.noun, " '", name, "'"), err);
  }
  // The open applied the umask; the caller asked for exactly `mode`.
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    ::close(fd);
    UnlinkShmIfSame(name, st->st_dev, st->st_ino);
    return ErrnoStatus(Cat("fchmod of new ", kind.noun, " '", name, "' to ", Octal(mode)), err);
  }
  st->st_mode = (st->st_mode & ~mode_t{07777}) | mode;
  return fd;
}

absl::Status CheckShmTrust(const ShmKind& kind, std::string_view name, const struct stat& st,
                           const ShmTrust& trust) {
  const uid_t me = ::geteuid();
  const bool owner_trusted =
      st.st_uid == me || (trust.allowed_owner.has_value() && st.st_uid == *trust.allowed_owner);
  if (!owner_trusted) {
    const std::string expected =
        trust.allowed_owner.has_value()
            ? Cat("uid ", me, " (this process) or uid ", *trust.allowed_owner, " (allowed_owner)")
            : Cat("uid ", me, " (this process's effective uid)");
    return absl::PermissionDeniedError(
        Cat(kind.open, "('", name, "'): /dev/shm/", name, " is owned by uid ", st.st_uid,
            ", expected ", expected, "; mode ", Octal(st.st_mode),
            ". Another local user may have created the name first to control the memory you "
            "would map. Remove it if it is stale (",
            kind.remove,
            "), or, to share with that "
            "user on purpose, set ",
            kind.options, "::allowed_owner = ", st.st_uid));
  }
  const mode_t refused =
      (st.st_mode & kOtherBits) | (st.st_mode & kGroupBits & ~trust.allowed_group_bits);
  if (refused != 0) {
    std::string grants;
    if (st.st_mode & kGroupBits) grants = Cat("its group ", Access((st.st_mode & kGroupBits) >> 3));
    if (st.st_mode & kOtherBits) {
      grants = Cat(grants, grants.empty() ? "" : " and ", "every other user ",
                   Access(st.st_mode & kOtherBits));
    }
    return absl::PermissionDeniedError(Cat(
        kind.open, "('", name, "'): /dev/shm/", name, " has mode ", Octal(st.st_mode),
        " (owner uid ", st.st_uid, "), which gives ", grants,
        " access: those users could read or change the memory you map. Its owner should make it "
        "0600 (the default when Wharf creates it)",
        (st.st_mode & kOtherBits) != 0
            ? "; access for other users is never accepted"
            : Cat(", or, to share with the file's group on purpose, set ", kind.options,
                  "::allowed_group_bits = ", Octal(st.st_mode & kGroupBits))));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> OpenShm(const ShmKind& kind, std::string_view name, const ShmTrust& trust,
                            struct stat* st) {
  if ((trust.allowed_group_bits & ~kGroupBits) != 0) {
    return absl::InvalidArgumentError(Cat(
        kind.open, "('", name, "'): ", kind.options, "::allowed_group_bits is ",
        Octal(trust.allowed_group_bits),
        "; it may hold group bits only (within 070): access for other users is never accepted"));
  }
  const std::string path = ShmPath(name);
  // O_RDWR: what is mapped. On Linux an O_RDWR open of a FIFO does not wait
  // for a peer, so this never blocks; the FIFO is refused below.
  const int fd = ::shm_open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    switch (err) {
      case ENOENT:
        return absl::NotFoundError(Cat("no ", kind.noun, " named '", name, "' (/dev/shm/", name,
                                       "): was it created with ", kind.create,
                                       ", and not removed since?"));
      case ELOOP:
        return absl::PermissionDeniedError(
            Cat(kind.open, "('", name, "'): /dev/shm/", name,
                " is a symbolic link; Wharf never follows one (it would map whatever file "
                "the link's maker chose). Remove it if it is stale (",
                kind.remove, ")"));
      case EISDIR:
      case EINVAL:  // glibc's shm_open reports a directory as EINVAL
        return absl::InvalidArgumentError(Cat("/dev/shm/", name, " cannot be opened as a ",
                                              kind.noun, " object (", std::strerror(err),
                                              "; a directory?): not a Wharf ", kind.type));
      default:
        return ErrnoStatus(Cat("opening ", kind.noun, " '", name, "'"), err);
    }
  }
  absl::Status s;
  if (::fstat(fd, st) != 0) {
    s = ErrnoStatus(Cat("fstat of ", kind.noun, " '", name, "'"), errno);
  } else if (s = CheckShmTrust(kind, name, *st, trust); s.ok() && !S_ISREG(st->st_mode)) {
    s = absl::InvalidArgumentError(Cat("/dev/shm/", name, " is not a regular file (mode ",
                                       absl::StrFormat("0%o", st->st_mode), "): not a Wharf ",
                                       kind.type));
  }
  if (!s.ok()) {
    ::close(fd);
    return s;
  }
  return fd;
}

absl::Status UnlinkShm(const ShmKind& kind, std::string_view name) {
  if (::shm_unlink(ShmPath(name).c_str()) == 0) return absl::OkStatus();
  const int err = errno;
  if (err == ENOENT) {
    return absl::NotFoundError(Cat(kind.remove, ": no ", kind.noun, " named '", name, "'"));
  }
  return ErrnoStatus(Cat(kind.remove, "('", name, "')"), err);
}

void UnlinkShmIfSame(std::string_view name, dev_t dev, ino_t ino) {
  const std::string path = ShmPath(name);
  // O_NONBLOCK | O_NOFOLLOW: whatever took the name since (a FIFO, a symlink)
  // can neither block nor redirect this look.
  const int fd = ::shm_open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) return;
  struct stat st;
  const bool same = ::fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
  ::close(fd);
  // A newer object could take the name between the fstat and the unlink only
  // if someone removed ours in that instant: the window is not worth a lock.
  if (same) ::shm_unlink(path.c_str());
}

}  // namespace wharf::sync_internal
