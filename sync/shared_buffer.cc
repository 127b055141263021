#include "wharf/sync/shared_buffer.h"

// How SharedBuffer is built.
//
// Anonymous buffers (Create, CreateGrowable) are a memfd
// (memfd_create(MFD_CLOEXEC | MFD_ALLOW_SEALING)) mapped MAP_SHARED, chosen
// over MAP_ANONYMOUS because an anonymous mapping cannot be given to a process
// that was not forked from ours, while a memfd travels by inheritance or
// SCM_RIGHTS and vanishes with its last fd and mapping (no name to leak). The
// memfd is sealed against shrinking (F_SEAL_SHRINK), so a peer cannot pull
// pages from under a mapping (which would raise SIGBUS), and, when not
// growable, against growing; then F_SEAL_SEAL.
//
// Named buffers (CreateNamed, OpenNamed) are POSIX shm objects, /dev/shm/NAME,
// created and opened by sync/internal/shm_object.h with shm_open(3): O_EXCL
// and an exact mode (0600 by default, whatever the umask) on create,
// O_NOFOLLOW plus the owner/mode check on the opened fd on open. (Before, Boost
// Interprocess's shared_memory_object did the shm_open; it offers no
// O_NOFOLLOW and adds nothing a check on the fd needs, so the calls are now
// made directly, and shared with SharedSegment.) The mapping is a raw mmap of
// that fd, not a boost::interprocess::mapped_region, because a growable buffer
// must reserve address space past the end of the file (mapped_region maps the
// file's size), and because one mapping path then serves memfd and named
// buffers alike.
//
// Layout: every mapping starts with the 64-byte SharedBufferHeader and the
// data follows at offset 64 (kHeaderSize), so data() is 64-byte aligned. The
// header carries a magic and a format version, checked on every attach (Attach
// below): a file of another format version, or not a SharedBuffer at all, is
// refused with a clear status, never read as garbage. It also records the
// creator's pid and start-time tag, for ReapOrphans.
//
// Initialisation protocol: the creator extends the file, writes every other
// header field, then stores `magic` LAST with release order (A). An opener
// loads `magic` with acquire (matches A): 0 means "creator still
// initialising" (it retries until its deadline), kMagic means every other
// field is valid. `version`, `flags`, `max_size`, `creator_*` and
// `header_size` never change afterwards; `size` changes only under
// `grow_mutex`, by Grow(), which extends the file before it release-stores the
// new size (B); size() loads it with acquire (matches B).
//
// Growable buffers reserve kHeaderSize + max_size bytes of address space
// (MAP_NORESERVE) at creation, while the file holds only header + size()
// bytes; Grow() extends the file. Bytes past size() are past the end of the
// file: touching them raises SIGBUS, as an out-of-bounds access should.
//
// Zero-length buffers (JS allows new SharedArrayBuffer(0)) are a 64-byte file
// or memfd holding just the header: data() points one past it, views have no
// elements, and a growable one grows from there.

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

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "wharf/sync/internal/errno_status.h"
#include "wharf/sync/internal/fd_guard.h"
#include "wharf/sync/internal/shm_object.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/internal/thread_identity.h"

namespace wharf {

using sync_internal::SharedBufferHeader;

namespace {

using sync_internal::Cat;
using sync_internal::FdGuard;

// How shm_object.h's messages name SharedBuffer and its functions.
constexpr sync_internal::ShmKind kShmKind{
    .type = "SharedBuffer",
    .noun = "shared memory",
    .create = "SharedBuffer::CreateNamed",
    .open = "SharedBuffer::OpenNamed",
    .remove = "SharedBuffer::Unlink",
    .options = "SharedBuffer::OpenOptions",
    .max_name_length = SharedBuffer::kMaxNameLength,
};

absl::Status ValidateName(std::string_view name) {
  return sync_internal::ValidateShmName(kShmKind, name);
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
    if (unlink_on_close && !name.empty()) sync_internal::UnlinkShmIfSame(name, dev, ino);
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

size_t SharedBuffer::reserved_size() const {
  return mapping_ == nullptr ? 0 : mapping_->length - kHeaderSize;
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
  return CreateMemfd(size, size, /*growable=*/false);
}

absl::StatusOr<SharedBuffer> SharedBuffer::CreateGrowable(size_t size, size_t max_size) {
  if (absl::Status s = ValidateSizes(size, max_size, true); !s.ok()) return s;
  return CreateMemfd(size, max_size, /*growable=*/true);
}

// Create and CreateGrowable, after their checks.
absl::StatusOr<SharedBuffer> SharedBuffer::CreateMemfd(size_t size, size_t max_size,
                                                       bool growable) {
  const int raw = ::memfd_create("wharf_shared_buffer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (raw < 0) return sync_internal::ErrnoStatus("memfd_create", errno);
  FdGuard fd(raw);
  if (int err = Truncate(fd.get(), kHeaderSize + size); err != 0) {
    return sync_internal::ErrnoStatus(
        Cat("ftruncate of a memfd to ", kHeaderSize + size, " bytes"), err);
  }
  // No peer may shrink the memfd (SIGBUS for us), nor grow a fixed-size one.
  ::fcntl(fd.get(), F_ADD_SEALS,
          F_SEAL_SHRINK | (growable ? 0 : F_SEAL_GROW) | F_SEAL_SEAL);
  absl::StatusOr<std::byte*> base = MapShared(fd.get(), kHeaderSize + max_size, "a memfd");
  if (!base.ok()) return base.status();
  auto m = std::make_shared<Mapping>();
  m->base = *base;
  m->length = kHeaderSize + max_size;
  m->fd = fd.release();
  InitHeader(m->base, size, max_size, growable);
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
  if (absl::Status s = sync_internal::ValidateCreateMode(kShmKind, name, options.mode); !s.ok()) {
    return s;
  }
  struct stat st;
  absl::StatusOr<int> created = sync_internal::CreateShm(kShmKind, name, options.mode, &st);
  if (!created.ok()) return created.status();
  FdGuard fd(*created);
  // From here on, any failure removes the name we created (and only that).
  auto fail = [&](absl::Status s) {
    sync_internal::UnlinkShmIfSame(name, st.st_dev, st.st_ino);
    return s;
  };
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
  m->name = std::string(name);
  m->unlink_on_close = options.unlink_on_close;
  m->dev = st.st_dev;
  m->ino = st.st_ino;
  InitHeader(m->base, size, max_size, growable, options.unlink_on_close);
  return SharedBuffer(std::move(m));
}

absl::StatusOr<SharedBuffer> SharedBuffer::OpenNamed(std::string_view name, OpenOptions options) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
  // The owner/mode check is made on the fd that Attach maps (shm_object.h).
  struct stat st;
  absl::StatusOr<int> fd = sync_internal::OpenShm(
      kShmKind, name,
      {.allowed_owner = options.allowed_owner, .allowed_group_bits = options.allowed_group_bits},
      &st);
  if (!fd.ok()) return fd.status();
  return Attach(*fd, std::string(name), absl::Now() + options.init_timeout,
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
    // The header is read with pread, not through a mapping: touching a page
    // of a fresh mapping costs a page fault (~1 µs on bare metal, 150-300 µs
    // on a paravirtualised VM), and a process receiving a SharedBuffer in a
    // message should not pay one before it uses the bytes. pread copies in
    // address order and `magic` (offset 0) is published last (A, release):
    // on x86-64 (TSO, the platform Wharf targets) the later fields read
    // after it are at least as new.
    alignas(SharedBufferHeader) unsigned char raw[sizeof(SharedBufferHeader)];
    ssize_t got;
    while ((got = ::pread(fd.get(), raw, sizeof raw, 0)) < 0 && errno == EINTR) {
    }
    if (got != static_cast<ssize_t>(sizeof raw)) {
      return sync_internal::ErrnoStatus(Cat("reading the header of ", what), got < 0 ? errno : EIO);
    }
    const auto field = [&raw](size_t offset, auto& out) { std::memcpy(&out, raw + offset, sizeof out); };
    uint64_t magic, size, max_size;
    uint32_t version, flags, header_size;
    field(offsetof(SharedBufferHeader, magic), magic);  // matches A
    field(offsetof(SharedBufferHeader, version), version);
    field(offsetof(SharedBufferHeader, flags), flags);
    field(offsetof(SharedBufferHeader, size), size);  // matches B
    field(offsetof(SharedBufferHeader, max_size), max_size);
    field(offsetof(SharedBufferHeader, header_size), header_size);
    std::atomic_thread_fence(std::memory_order_acquire);

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
  return sync_internal::UnlinkShm(kShmKind, name);
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
    if (::shm_unlink(sync_internal::ShmPath(name).c_str()) == 0) ++reaped;
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
