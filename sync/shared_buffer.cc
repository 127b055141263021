#include "wharf/sync/shared_buffer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <thread>
#include <utility>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "wharf/sync/internal/errno_status.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/internal/thread_identity.h"

namespace wharf {

namespace bip = boost::interprocess;
using sync_internal::SharedBufferHeader;

namespace {

using sync_internal::Cat;

// Closes an fd on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};


// The shm_open path for a name; the same rule Boost.Interprocess applies on
// Linux (a leading slash; the object lives in /dev/shm/NAME).
std::string ShmPath(std::string_view name) { return Cat("/", name); }

absl::Status ValidateName(std::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("SharedBuffer name is empty");
  }
  if (name.size() > SharedBuffer::kMaxNameLength) {
    return absl::InvalidArgumentError(Cat("SharedBuffer name is ", name.size(),
                                          " characters long; the limit is ",
                                          SharedBuffer::kMaxNameLength));
  }
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("SharedBuffer name '", absl::CHexEscape(sync_internal::CatArg(name)),
            "' contains '/' or NUL; use a plain name such as 'myapp_jobs'"));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(Cat("SharedBuffer name '", name, "' is reserved"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSizes(size_t size, size_t max_size, bool growable) {
  if (max_size > SharedBuffer::kMaxSize) {
    return absl::InvalidArgumentError(Cat("SharedBuffer max_size ", max_size,
                                          " exceeds the limit of ", SharedBuffer::kMaxSize,
                                          " bytes (2^46)"));
  }
  if (size > SharedBuffer::kMaxSize) {
    return absl::InvalidArgumentError(Cat("SharedBuffer size ", size, " exceeds the limit of ",
                                          SharedBuffer::kMaxSize, " bytes (2^46)"));
  }
  if (growable && max_size == 0) {
    return absl::InvalidArgumentError("SharedBuffer max_size is 0 for a growable buffer");
  }
  if (size > max_size) {
    return absl::InvalidArgumentError(
        Cat("SharedBuffer size ", size, " is larger than max_size ", max_size));
  }
  return absl::OkStatus();
}

// ftruncate, retried on EINTR.
int Truncate(int fd, size_t length) {
  int r;
  do {
    r = ::ftruncate(fd, static_cast<off_t>(length));
  } while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : errno;
}

}  // namespace

// One mapping of one buffer, shared by every handle copied from it.
struct SharedBuffer::Mapping {
  std::byte* base = nullptr;  // header at base, data at base + kHeaderSize
  size_t length = 0;          // kHeaderSize + max_size: the reserved range
  int fd = -1;
  std::string name;  // empty: anonymous
  bool unlink_on_close = false;
  dev_t dev = 0;  // identity of the shm object, so that unlink_on_close never
  ino_t ino = 0;  // removes a newer object that reused the name

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  ~Mapping() {
    if (base != nullptr) ::munmap(base, length);
    if (unlink_on_close && !name.empty()) {
      const std::string path = ShmPath(name);
      const int other = ::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
      if (other >= 0) {
        struct stat st;
        const bool same = ::fstat(other, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
        ::close(other);
        if (same) ::shm_unlink(path.c_str());
      }
    }
    if (fd >= 0) ::close(fd);
  }
};

SharedBuffer::SharedBuffer(std::shared_ptr<Mapping> mapping)
    : mapping_(std::move(mapping)),
      header_(reinterpret_cast<SharedBufferHeader*>(mapping_->base)) {}

SharedBuffer::SharedBuffer(SharedBuffer&& other) noexcept
    : mapping_(std::move(other.mapping_)), header_(std::exchange(other.header_, nullptr)) {}

SharedBuffer& SharedBuffer::operator=(SharedBuffer&& other) noexcept {
  if (this != &other) {
    mapping_ = std::move(other.mapping_);
    header_ = std::exchange(other.header_, nullptr);
  }
  return *this;
}

int SharedBuffer::fd() const { return mapping_ == nullptr ? -1 : mapping_->fd; }

const std::string& SharedBuffer::name() const {
  static const std::string* const kEmpty = new std::string;
  return mapping_ == nullptr ? *kEmpty : mapping_->name;
}

namespace {

// Maps `length` bytes of `fd` read-write, shared.
absl::StatusOr<std::byte*> MapShared(int fd, size_t length, std::string_view what) {
  // MAP_NORESERVE: a growable buffer reserves address space, not memory.
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) {
    return sync_internal::ErrnoStatus(Cat("mmap of ", length, " bytes of ", what), errno);
  }
  return static_cast<std::byte*>(p);
}

// Writes the header of a fresh mapping; magic last (A).
void InitHeader(std::byte* base, size_t size, size_t max_size, bool growable,
                bool creator_owns_name = false) {
  auto* h = new (base) SharedBufferHeader{};  // the file is zero already
  h->version = SharedBuffer::kVersion;
  h->flags = (growable ? sync_internal::kSharedBufferGrowable : 0) |
             (creator_owns_name ? sync_internal::kSharedBufferCreatorOwnsName : 0);
  h->size.store(size, std::memory_order_relaxed);
  h->max_size = max_size;
  const pid_t pid = ::getpid();
  bool alive = false;
  h->creator_pid = static_cast<uint32_t>(pid);
  h->creator_start_tag = sync_internal::ReadStartTag(static_cast<uint32_t>(pid), &alive);
  h->header_size = static_cast<uint32_t>(SharedBuffer::kHeaderSize);
  // A: publishes every field above to an opener's acquire load of magic.
  h->magic.store(SharedBuffer::kMagic, std::memory_order_release);
}

}  // namespace

absl::StatusOr<SharedBuffer> SharedBuffer::Create(size_t size) {
  if (absl::Status s = ValidateSizes(size, size, false); !s.ok()) return s;
  const int raw = ::memfd_create("wharf_shared_buffer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (raw < 0) return sync_internal::ErrnoStatus("memfd_create", errno);
  FdGuard fd(raw);
  if (int err = Truncate(fd.get(), kHeaderSize + size); err != 0) {
    return sync_internal::ErrnoStatus(Cat("ftruncate of a memfd to ", kHeaderSize + size, " bytes"), err);
  }
  // A fixed-size buffer: no peer may shrink (SIGBUS for us) or grow it.
  ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  absl::StatusOr<std::byte*> base = MapShared(fd.get(), kHeaderSize + size, "a memfd");
  if (!base.ok()) return base.status();
  auto m = std::make_shared<Mapping>();
  m->base = *base;
  m->length = kHeaderSize + size;
  m->fd = fd.release();
  InitHeader(m->base, size, size, false);
  return SharedBuffer(std::move(m));
}

absl::StatusOr<SharedBuffer> SharedBuffer::CreateGrowable(size_t size, size_t max_size) {
  if (absl::Status s = ValidateSizes(size, max_size, true); !s.ok()) return s;
  const int raw = ::memfd_create("wharf_shared_buffer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (raw < 0) return sync_internal::ErrnoStatus("memfd_create", errno);
  FdGuard fd(raw);
  if (int err = Truncate(fd.get(), kHeaderSize + size); err != 0) {
    return sync_internal::ErrnoStatus(Cat("ftruncate of a memfd to ", kHeaderSize + size, " bytes"), err);
  }
  ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL);
  absl::StatusOr<std::byte*> base = MapShared(fd.get(), kHeaderSize + max_size, "a memfd");
  if (!base.ok()) return base.status();
  auto m = std::make_shared<Mapping>();
  m->base = *base;
  m->length = kHeaderSize + max_size;
  m->fd = fd.release();
  InitHeader(m->base, size, max_size, true);
  return SharedBuffer(std::move(m));
}

absl::StatusOr<SharedBuffer> SharedBuffer::CreateNamed(std::string_view name, size_t size,
                                                       NamedOptions options) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
  const bool growable = options.max_size != 0;
  const size_t max_size = growable ? options.max_size : size;
  if (absl::Status s = ValidateSizes(size, max_size, growable); !s.ok()) {
    return absl::Status(s.code(), Cat(s.message(), " (creating '", name, "')"));
  }
  const std::string name_str(name);
  int raw = -1;
  try {
    bip::shared_memory_object shm(bip::create_only, name_str.c_str(), bip::read_write,
                                  bip::permissions(options.mode));
    raw = ::fcntl(shm.get_mapping_handle().handle, F_DUPFD_CLOEXEC, 0);
    if (raw < 0) {
      const int err = errno;
      bip::shared_memory_object::remove(name_str.c_str());
      return sync_internal::ErrnoStatus(Cat("dup of the fd of shared memory '", name, "'"), err);
    }
  } catch (const bip::interprocess_exception& e) {
    switch (e.get_error_code()) {
      case bip::already_exists_error:
        return absl::AlreadyExistsError(Cat(
            "shared memory '", name, "' already exists (/dev/shm/", name,
            "): open it with OpenNamed, or remove it with SharedBuffer::Unlink if it is stale"));
      case bip::security_error:
        return absl::PermissionDeniedError(Cat("creating shared memory '", name, "': ", e.what()));
      default:
        if (e.get_native_error() == 0) {
          return absl::InternalError(Cat("creating shared memory '", name, "': ", e.what()));
        }
        return sync_internal::ErrnoStatus(Cat("creating shared memory '", name, "'"), e.get_native_error());
    }
  } catch (const std::exception& e) {
    return absl::InternalError(Cat("creating shared memory '", name, "': ", e.what()));
  }
  FdGuard fd(raw);
  // From here on, any failure removes the name we created.
  auto fail = [&](absl::Status s) {
    ::shm_unlink(ShmPath(name).c_str());
    return s;
  };
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return fail(sync_internal::ErrnoStatus("fstat", errno));
  if (int err = Truncate(fd.get(), kHeaderSize + size); err != 0) {
    return fail(sync_internal::ErrnoStatus(
        Cat("ftruncate of shared memory '", name, "' to ", kHeaderSize + size, " bytes"), err));
  }
  absl::StatusOr<std::byte*> base =
      MapShared(fd.get(), kHeaderSize + max_size, Cat("shared memory '", name, "'"));
  if (!base.ok()) return fail(base.status());
  auto m = std::make_shared<Mapping>();
  m->base = *base;
  m->length = kHeaderSize + max_size;
  m->fd = fd.release();
  m->name = name_str;
  m->unlink_on_close = options.unlink_on_close;
  m->dev = st.st_dev;
  m->ino = st.st_ino;
  InitHeader(m->base, size, max_size, growable, options.unlink_on_close);
  return SharedBuffer(std::move(m));
}

absl::StatusOr<SharedBuffer> SharedBuffer::OpenNamed(std::string_view name, OpenOptions options) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
  const std::string name_str(name);
  int raw = -1;
  try {
    bip::shared_memory_object shm(bip::open_only, name_str.c_str(), bip::read_write);
    raw = ::fcntl(shm.get_mapping_handle().handle, F_DUPFD_CLOEXEC, 0);
    if (raw < 0) {
      return sync_internal::ErrnoStatus(Cat("dup of the fd of shared memory '", name, "'"), errno);
    }
  } catch (const bip::interprocess_exception& e) {
    switch (e.get_error_code()) {
      case bip::not_found_error:
        return absl::NotFoundError(Cat(
            "no shared memory named '", name, "' (/dev/shm/", name,
            "): was it created with SharedBuffer::CreateNamed, and is its creator still alive?"));
      case bip::security_error:
        return absl::PermissionDeniedError(Cat("opening shared memory '", name, "': ", e.what()));
      default:
        if (e.get_native_error() == 0) {
          return absl::InternalError(Cat("opening shared memory '", name, "': ", e.what()));
        }
        return sync_internal::ErrnoStatus(Cat("opening shared memory '", name, "'"), e.get_native_error());
    }
  } catch (const std::exception& e) {
    return absl::InternalError(Cat("opening shared memory '", name, "': ", e.what()));
  }
  return Attach(raw, name_str, absl::Now() + options.init_timeout,
                Cat("shared memory '", name, "'"));
}

absl::StatusOr<SharedBuffer> SharedBuffer::FromFd(int fd) {
  if (fd < 0) {
    return absl::InvalidArgumentError(Cat("SharedBuffer::FromFd: bad fd ", fd));
  }
  const int raw = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (raw < 0) return sync_internal::ErrnoStatus(Cat("SharedBuffer::FromFd: dup of fd ", fd), errno);
  return Attach(raw, "", absl::Now(), Cat("fd ", fd));
}

// Validates the header behind `raw_fd` (owned) and maps the whole buffer.
absl::StatusOr<SharedBuffer> SharedBuffer::Attach(int raw_fd, std::string name, absl::Time deadline,
                                                  std::string_view what) {
  FdGuard fd(raw_fd);
  absl::Duration nap = absl::Microseconds(100);
  // Sleeps before another look at a buffer whose creator is still
  // initialising it; false once the deadline has passed.
  auto nap_before_retry = [&]() -> bool {
    if (absl::Now() >= deadline) return false;
    std::this_thread::sleep_for(absl::ToChronoMicroseconds(nap));
    nap = std::min(nap * 2, absl::Milliseconds(10));
    return true;
  };
  for (;;) {
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return sync_internal::ErrnoStatus(Cat("fstat of ", what), errno);
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(
          Cat(what, " is not a shared-memory file: not a Wharf SharedBuffer"));
    }
    if (st.st_size == 0) {
      absl::Status s = absl::UnavailableError(
          Cat(what,
              " is empty: its creator has not initialised it (still creating it, or it "
              "died while creating it; remove a stale name with SharedBuffer::Unlink)"));
      if (nap_before_retry()) continue;
      return s;
    }
    if (static_cast<size_t>(st.st_size) < kHeaderSize) {
      return absl::DataLossError(Cat(what, " is truncated: ", st.st_size,
                                     " bytes, shorter than the ", kHeaderSize,
                                     "-byte SharedBuffer header"));
    }
    void* hp = ::mmap(nullptr, kHeaderSize, PROT_READ, MAP_SHARED, fd.get(), 0);
    if (hp == MAP_FAILED) return sync_internal::ErrnoStatus(Cat("mmap of the header of ", what), errno);
    const auto* h = static_cast<const SharedBufferHeader*>(hp);
    const uint64_t magic = h->magic.load(std::memory_order_acquire);  // matches A
    const uint32_t version = h->version;
    const uint32_t flags = h->flags;
    const uint64_t size = h->size.load(std::memory_order_acquire);  // matches B
    const uint64_t max_size = h->max_size;
    const uint32_t header_size = h->header_size;
    ::munmap(hp, kHeaderSize);

    if (magic == 0) {
      absl::Status s = absl::UnavailableError(
          Cat(what,
              " is not initialised yet (magic 0): its creator is still writing the header, "
              "or died while doing so; remove a stale name with SharedBuffer::Unlink"));
      if (nap_before_retry()) continue;
      return s;
    }
    if (magic != kMagic) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s is not a Wharf SharedBuffer (magic 0x%016x, expected 0x%016x)", what, magic, kMagic));
    }
    if (version != kVersion) {
      return absl::FailedPreconditionError(
          Cat(what, " has SharedBuffer format version ", version, ", but this build reads version ",
              kVersion, ": every process sharing it must use the same Wharf format"));
    }
    const bool growable = (flags & sync_internal::kSharedBufferGrowable) != 0;
    if (header_size != kHeaderSize || (flags & ~sync_internal::kSharedBufferKnownFlags) != 0 ||
        max_size > kMaxSize || size > max_size || (!growable && size != max_size)) {
      return absl::DataLossError(Cat(what, " has a corrupt SharedBuffer header (header_size ",
                                     header_size, ", flags ", flags, ", size ", size, ", max_size ",
                                     max_size, ")"));
    }
    // fstat again after reading `size`: a concurrent Grow extends the file
    // before it publishes the size (B), so the file now covers `size`.
    if (::fstat(fd.get(), &st) != 0) return sync_internal::ErrnoStatus(Cat("fstat of ", what), errno);
    if (static_cast<uint64_t>(st.st_size) < kHeaderSize + size) {
      return absl::DataLossError(Cat(what, " is truncated: the file has ", st.st_size,
                                     " bytes but its header says ", kHeaderSize, " + ", size, " = ",
                                     kHeaderSize + size));
    }
    absl::StatusOr<std::byte*> base = MapShared(fd.get(), kHeaderSize + max_size, what);
    if (!base.ok()) return base.status();
    auto m = std::make_shared<Mapping>();
    m->base = *base;
    m->length = kHeaderSize + max_size;
    m->fd = fd.release();
    m->name = std::move(name);
    m->dev = st.st_dev;
    m->ino = st.st_ino;
    return SharedBuffer(std::move(m));
  }
}

absl::Status SharedBuffer::Unlink(std::string_view name) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
  if (::shm_unlink(ShmPath(name).c_str()) == 0) return absl::OkStatus();
  const int err = errno;
  if (err == ENOENT) {
    return absl::NotFoundError(Cat("SharedBuffer::Unlink: no shared memory named '", name, "'"));
  }
  return sync_internal::ErrnoStatus(Cat("SharedBuffer::Unlink('", name, "')"), err);
}

absl::StatusOr<int> SharedBuffer::ReapOrphans(std::string_view prefix) {
  if (prefix.empty()) {
    return absl::InvalidArgumentError(
        "SharedBuffer::ReapOrphans: the prefix must not be empty (it would scan every "
        "shared-memory object of the machine)");
  }
  if (absl::Status s = ValidateName(prefix); !s.ok()) return s;
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return sync_internal::ErrnoStatus("SharedBuffer::ReapOrphans: opendir(/dev/shm)", errno);
  int reaped = 0;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name(entry->d_name);
    if (name.substr(0, prefix.size()) != prefix) continue;
    const std::string path = Cat("/dev/shm/", name);
    FdGuard fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) continue;  // gone already, or not ours to read
    struct stat st;
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<size_t>(st.st_size) < kHeaderSize) {
      continue;
    }
    // The fields the reaper needs, read as bytes (the header's layout is
    // pinned by static_asserts).
    unsigned char raw[kHeaderSize];
    if (::pread(fd.get(), raw, sizeof(raw), 0) != static_cast<ssize_t>(sizeof(raw))) continue;
    uint64_t magic;
    uint32_t flags, creator_pid, creator_tag;
    std::memcpy(&magic, raw + offsetof(SharedBufferHeader, magic), sizeof(magic));
    std::memcpy(&flags, raw + offsetof(SharedBufferHeader, flags), sizeof(flags));
    std::memcpy(&creator_pid, raw + offsetof(SharedBufferHeader, creator_pid), sizeof(creator_pid));
    std::memcpy(&creator_tag, raw + offsetof(SharedBufferHeader, creator_start_tag),
                sizeof(creator_tag));
    if (magic != kMagic || (flags & sync_internal::kSharedBufferCreatorOwnsName) == 0 ||
        creator_pid == 0) {
      continue;
    }
    const uint64_t creator = (uint64_t{creator_tag} << 32) | creator_pid;
    if (sync_internal::CheckOwner(creator) != sync_internal::OwnerState::kDead) continue;
    // Remove only the object we inspected, not one that took its name since.
    struct stat now;
    if (::stat(path.c_str(), &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
      continue;
    }
    if (::shm_unlink(ShmPath(name).c_str()) == 0) ++reaped;
  }
  ::closedir(dir);
  return reaped;
}

absl::Status SharedBuffer::Grow(size_t new_size) {
  if (header_ == nullptr) {
    return absl::FailedPreconditionError("SharedBuffer::Grow on an empty handle");
  }
  if (!growable()) {
    return absl::FailedPreconditionError(
        Cat("SharedBuffer::Grow(", new_size, "): this buffer is not growable (size ", size(),
            " fixed at creation); create it with CreateGrowable or NamedOptions::max_size"));
  }
  if (new_size > header_->max_size) {
    return absl::OutOfRangeError(
        Cat("SharedBuffer::Grow(", new_size, ") exceeds max_size ", header_->max_size));
  }
  const LockResult r = header_->grow_mutex.Lock();
  if (!Acquired(r)) {
    return absl::InternalError(
        Cat("SharedBuffer::Grow: the grow lock is unusable (", LockResultName(r), ")"));
  }
  // A grower that died inside this section at worst extended the file without
  // publishing the size: the repair below covers it, so the state is always
  // consistent once we hold the lock.
  if (r == LockResult::kOwnerDied) (void)header_->grow_mutex.MarkConsistent();
  struct Unlocker {
    Mutex& mu;
    ~Unlocker() { mu.Unlock(); }
  } unlock{header_->grow_mutex};

  const uint64_t current = header_->size.load(std::memory_order_relaxed);  // we hold the lock
  if (new_size < current) {
    return absl::InvalidArgumentError(Cat("SharedBuffer::Grow(", new_size,
                                          ") would shrink the buffer from ", current,
                                          " bytes: buffers only grow"));
  }
  if (new_size == current) return absl::OkStatus();
  // Repair after a grower that died between ftruncate and publishing: bring
  // the file back to the published size so that the new bytes are zero.
  // (A memfd sealed against shrinking refuses; its bytes past size() could
  // only have been written by a program bug.)
  struct stat st;
  if (::fstat(mapping_->fd, &st) == 0 &&
      static_cast<uint64_t>(st.st_size) > kHeaderSize + current) {
    (void)Truncate(mapping_->fd, kHeaderSize + current);
  }
  if (int err = Truncate(mapping_->fd, kHeaderSize + new_size); err != 0) {
    return sync_internal::ErrnoStatus(
        Cat("SharedBuffer::Grow(", new_size, "): ftruncate to ", kHeaderSize + new_size, " bytes"),
        err);
  }
  // B: the file covers new_size before anyone can read it (matches size()'s acquire).
  header_->size.store(new_size, std::memory_order_release);
  return absl::OkStatus();
}

namespace sync_internal {

absl::StatusOr<size_t> CheckSharedBufferView(const std::byte* data, size_t size, size_t byte_offset,
                                             size_t count, size_t elem_size, size_t elem_align) {
  if (data == nullptr) {
    return absl::FailedPreconditionError("SharedBuffer::View on an empty handle");
  }
  if ((reinterpret_cast<uintptr_t>(data) + byte_offset) % elem_align != 0) {
    return absl::InvalidArgumentError(Cat("SharedBuffer::View: byte_offset ", byte_offset,
                                          " is not a multiple of the element's "
                                          "alignment ",
                                          elem_align, " (element size ", elem_size,
                                          ", buffer size ", size, ")"));
  }
  if (byte_offset > size) {
    return absl::OutOfRangeError(Cat("SharedBuffer::View: byte_offset ", byte_offset,
                                     " is past the end of the buffer (size ", size, ", alignment ",
                                     elem_align, ")"));
  }
  const size_t fit = (size - byte_offset) / elem_size;
  if (count == SharedBuffer::npos) return fit;
  if (count > fit) {
    return absl::OutOfRangeError(Cat("SharedBuffer::View: ", count, " elements of ", elem_size,
                                     " bytes at byte_offset ", byte_offset,
                                     " do not fit in the buffer (size ", size, ", room for ", fit,
                                     " elements, alignment ", elem_align, ")"));
  }
  return count;
}

}  // namespace sync_internal

}  // namespace wharf
