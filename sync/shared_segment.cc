#include "wharf/sync/shared_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <thread>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/version.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "wharf/sync/internal/errno_status.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/internal/thread_identity.h"

namespace wharf {

namespace bip = boost::interprocess;

namespace {

using sync_internal::Cat;

// Wharf's record inside every segment, a named object constructed by the
// creator. It lives in shared memory: plain data, fixed-width fields. Open
// checks it so that a process of another Wharf format, or built against
// another Boost (whose segment layout may differ), fails with a clear status.
struct SegmentInfo {
  uint64_t magic;              // SharedSegment::kMagic
  uint32_t version;            // SharedSegment::kVersion
  uint32_t boost_version;      // BOOST_VERSION of the creator
  uint32_t creator_pid;        // for a future reaper
  uint32_t creator_start_tag;  // low 32 bits of its start time
  uint64_t reserved;
};
static_assert(sizeof(SegmentInfo) == 32);
static_assert(std::is_trivially_copyable_v<SegmentInfo>);

constexpr const char* kInfoName = "__wharf.segment_info";

// Boost.Interprocess's state word at offset 0 of a managed segment (its
// managed_open_or_create_impl enum): the creator sets kInitialized after
// building the segment manager, kCorrupted (or truncates to 1 byte) when that
// failed. Boost's own open spins on the first two states without a bound;
// Open checks them first with one.
enum BoostSegmentState : uint32_t {
  kUninitialized = 0,
  kInitializing = 1,
  kInitialized = 2,
  kCorrupted = 3,
};

std::string ShmPath(std::string_view name) { return Cat("/", name); }

// As SharedBuffer's (sync/shared_buffer.cc): the same name rules.
absl::Status ValidateName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("SharedSegment name is empty");
  if (name.size() > SharedSegment::kMaxNameLength) {
    return absl::InvalidArgumentError(Cat("SharedSegment name is ", name.size(),
                                          " characters long; the limit is ",
                                          SharedSegment::kMaxNameLength));
  }
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("SharedSegment name '", absl::CHexEscape(sync_internal::CatArg(name)),
            "' contains '/' or NUL; use a plain name such as 'myapp_jobs'"));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(Cat("SharedSegment name '", name, "' is reserved"));
  }
  return absl::OkStatus();
}


absl::Status BoostError(std::string_view what, const bip::interprocess_exception& e) {
  switch (e.get_error_code()) {
    case bip::already_exists_error:
      return absl::AlreadyExistsError(Cat(what, ": already exists"));
    case bip::not_found_error:
      return absl::NotFoundError(Cat(what, ": not found"));
    case bip::security_error:
      return absl::PermissionDeniedError(Cat(what, ": ", e.what()));
    case bip::corrupted_error:
      return absl::DataLossError(Cat(what, ": the segment is corrupt (", e.what(), ")"));
    case bip::out_of_memory_error:
    case bip::out_of_space_error:
    case bip::size_error:
      return absl::ResourceExhaustedError(Cat(what, ": ", e.what()));
    default:
      if (e.get_native_error() != 0) return sync_internal::ErrnoStatus(what, e.get_native_error());
      return absl::InternalError(Cat(what, ": ", e.what()));
  }
}

// Waits (up to `deadline`) until /dev/shm/NAME holds a segment that Boost has
// finished initialising, so that Boost's unbounded spins in open never run.
absl::Status AwaitInitialisedBoostSegment(std::string_view name, absl::Time deadline) {
  const std::string path = ShmPath(name);
  const int fd = ::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(
          Cat("no shared segment named '", name, "' (/dev/shm/", name,
              "): was it created with SharedSegment::Create, and not removed since?"));
    }
    return sync_internal::ErrnoStatus(Cat("opening shared segment '", name, "'"), err);
  }
  absl::Duration nap = absl::Microseconds(100);
  absl::Status result;
  for (;;) {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      result = sync_internal::ErrnoStatus(Cat("fstat of shared segment '", name, "'"), errno);
      break;
    }
    uint32_t state = kUninitialized;
    bool in_progress = false;
    if (st.st_size == 0) {
      in_progress = true;  // created, not yet sized
    } else if (st.st_size == 1) {
      result = absl::DataLossError(Cat("shared segment '", name,
                                       "' is 1 byte long: its creator failed while creating it "
                                       "(Boost's marker); remove it with SharedSegment::Remove"));
      break;
    } else if (static_cast<size_t>(st.st_size) < SharedSegment::kMinSize) {
      result = absl::InvalidArgumentError(Cat(
          "shared memory '", name, "' has ", st.st_size, " bytes, less than any SharedSegment (",
          SharedSegment::kMinSize, "): not a Wharf SharedSegment"));
      break;
    } else {
      const ssize_t n = ::pread(fd, &state, sizeof(state), 0);
      if (n != static_cast<ssize_t>(sizeof(state))) {
        result = sync_internal::ErrnoStatus(Cat("reading shared segment '", name, "'"), n < 0 ? errno : EIO);
        break;
      }
      if (state == kInitialized) break;  // result OK
      if (state == kCorrupted) {
        result = absl::DataLossError(Cat("shared segment '", name,
                                         "' is marked corrupt: its creator failed while building "
                                         "it; remove it with SharedSegment::Remove"));
        break;
      }
      if (state != kUninitialized && state != kInitializing) {
        result = absl::InvalidArgumentError(
            absl::StrFormat("shared memory '%s' is not a Wharf SharedSegment (first word 0x%08x; a "
                            "SharedBuffer? open those with SharedBuffer::OpenNamed)",
                            name, state));
        break;
      }
      in_progress = true;
    }
    if (in_progress) {
      if (absl::Now() >= deadline) {
        result = absl::UnavailableError(
            Cat("shared segment '", name, "' is not initialised (",
                st.st_size == 0 ? "size 0" : "Boost state word " + std::to_string(state),
                "): its creator is still building it, or died while doing so; remove a stale one "
                "with SharedSegment::Remove"));
        break;
      }
      std::this_thread::sleep_for(absl::ToChronoMicroseconds(nap));
      nap = std::min(nap * 2, absl::Milliseconds(10));
    }
  }
  ::close(fd);
  return result;
}

// Boost leaves a failed creation behind as a 1-byte (or empty) object; remove
// it, but never a complete segment someone else made.
void RemoveFailedCreation(std::string_view name) {
  const std::string path = ShmPath(name);
  const int fd = ::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return;
  struct stat st;
  const bool broken = ::fstat(fd, &st) == 0 && st.st_size <= 1;
  ::close(fd);
  if (broken) ::shm_unlink(path.c_str());
}

}  // namespace

SharedSegment::SharedSegment(std::unique_ptr<bip::managed_shared_memory> segment, std::string name,
                             bool created)
    : segment_(std::move(segment)), name_(std::move(name)), created_(created) {}

SharedSegment::SharedSegment(SharedSegment&& other) noexcept
    : segment_(std::move(other.segment_)),
      name_(std::exchange(other.name_, std::string())),
      created_(std::exchange(other.created_, false)) {}

SharedSegment& SharedSegment::operator=(SharedSegment&& other) noexcept {
  if (this != &other) {
    segment_ = std::move(other.segment_);
    name_ = std::exchange(other.name_, std::string());
    created_ = std::exchange(other.created_, false);
  }
  return *this;
}

SharedSegment::~SharedSegment() = default;

absl::StatusOr<SharedSegment> SharedSegment::Create(std::string_view name, size_t size) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
  if (size < kMinSize || size > kMaxSize) {
    return absl::InvalidArgumentError(Cat("SharedSegment size ", size, " is outside [", kMinSize,
                                          ", ", kMaxSize, "] (creating '", name, "')"));
  }
  const std::string name_str(name);
  std::unique_ptr<bip::managed_shared_memory> segment;
  try {
    segment = std::make_unique<bip::managed_shared_memory>(bip::create_only, name_str.c_str(), size,
                                                           nullptr, bip::permissions(0600));
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::already_exists_error) {
      return absl::AlreadyExistsError(Cat(
          "shared segment '", name, "' already exists (/dev/shm/", name,
          "): open it with SharedSegment::Open, or remove it with SharedSegment::Remove if stale"));
    }
    if (e.get_error_code() != bip::security_error) RemoveFailedCreation(name);
    return BoostError(Cat("creating shared segment '", name, "' of ", size, " bytes"), e);
  } catch (const std::exception& e) {
    RemoveFailedCreation(name);
    return absl::InternalError(Cat("creating shared segment '", name, "': ", e.what()));
  }
  // Boost has initialised the segment; add Wharf's record. Openers that come
  // before it wait (bounded) for it.
  try {
    // Constructed whole, under Boost's segment lock, which Open's find also
    // takes: an opener sees no record or a complete one.
    bool alive = false;
    const pid_t pid = ::getpid();
    const SegmentInfo info{
        .magic = kMagic,
        .version = kVersion,
        .boost_version = BOOST_VERSION,
        .creator_pid = static_cast<uint32_t>(pid),
        .creator_start_tag = sync_internal::ReadStartTag(static_cast<uint32_t>(pid), &alive),
        .reserved = 0,
    };
    segment->construct<SegmentInfo>(kInfoName)(info);
  } catch (const std::exception& e) {
    segment.reset();
    bip::shared_memory_object::remove(name_str.c_str());
    return absl::ResourceExhaustedError(
        Cat("creating shared segment '", name, "': no room for Wharf's record: ", e.what()));
  }
  return SharedSegment(std::move(segment), name_str, /*created=*/true);
}

absl::StatusOr<SharedSegment> SharedSegment::Open(std::string_view name, OpenOptions options) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
  const absl::Time deadline = absl::Now() + options.init_timeout;
  if (absl::Status s = AwaitInitialisedBoostSegment(name, deadline); !s.ok()) return s;
  const std::string name_str(name);
  std::unique_ptr<bip::managed_shared_memory> segment;
  try {
    segment = std::make_unique<bip::managed_shared_memory>(bip::open_only, name_str.c_str());
  } catch (const bip::interprocess_exception& e) {
    return BoostError(Cat("opening shared segment '", name, "'"), e);
  } catch (const std::exception& e) {
    return absl::InternalError(Cat("opening shared segment '", name, "': ", e.what()));
  }
  // Wharf's record: found once the creator has constructed it.
  absl::Duration nap = absl::Microseconds(100);
  for (;;) {
    std::pair<char*, size_t> found{nullptr, 0};
    try {
      found = segment->find<char>(kInfoName);
    } catch (const std::exception& e) {
      return absl::InternalError(Cat("opening shared segment '", name, "': ", e.what()));
    }
    if (found.first != nullptr) {
      if (found.second != sizeof(SegmentInfo)) {
        return absl::FailedPreconditionError(
            Cat("shared segment '", name, "' has a Wharf record of ", found.second, " bytes, not ",
                sizeof(SegmentInfo), ": made by another Wharf format"));
      }
      SegmentInfo info;
      std::memcpy(&info, found.first, sizeof(info));
      if (info.magic != kMagic) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "shared segment '%s' is not a Wharf SharedSegment (record magic 0x%016x)", name,
            info.magic));
      }
      if (info.version != kVersion) {
        return absl::FailedPreconditionError(
            Cat("shared segment '", name, "' has SharedSegment format version ", info.version,
                ", but this build reads version ", kVersion));
      }
      if (info.boost_version != BOOST_VERSION) {
        return absl::FailedPreconditionError(
            Cat("shared segment '", name, "' was made by a build with Boost ", info.boost_version,
                ", this one uses Boost ", BOOST_VERSION,
                ": managed segment layouts differ between Boost versions"));
      }
      return SharedSegment(std::move(segment), name_str, /*created=*/false);
    }
    if (absl::Now() >= deadline) {
      return absl::InvalidArgumentError(
          Cat("shared segment '", name,
              "' has no Wharf record: it was not made by "
              "wharf::SharedSegment (plain Boost?), or its creator died while creating it"));
    }
    std::this_thread::sleep_for(absl::ToChronoMicroseconds(nap));
    nap = std::min(nap * 2, absl::Milliseconds(10));
  }
}

absl::StatusOr<SharedSegment> SharedSegment::OpenOrCreate(std::string_view name, size_t size,
                                                          OpenOptions options) {
  // Create, else Open; a segment removed between the two is created again.
  // Bounded: each round needs another process to remove the name.
  for (int round = 0; round < 100; ++round) {
    absl::StatusOr<SharedSegment> created = Create(name, size);
    if (created.ok() || !absl::IsAlreadyExists(created.status())) return created;
    absl::StatusOr<SharedSegment> opened = Open(name, options);
    if (opened.ok() || !absl::IsNotFound(opened.status())) return opened;
  }
  return absl::UnavailableError(
      Cat("SharedSegment::OpenOrCreate('", name, "'): the name keeps appearing and vanishing"));
}

absl::Status SharedSegment::Remove(std::string_view name) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
  if (::shm_unlink(ShmPath(name).c_str()) == 0) return absl::OkStatus();
  const int err = errno;
  if (err == ENOENT) {
    return absl::NotFoundError(Cat("SharedSegment::Remove: no shared segment named '", name, "'"));
  }
  return sync_internal::ErrnoStatus(Cat("SharedSegment::Remove('", name, "')"), err);
}

SharedSegment::SegmentManager* SharedSegment::segment_manager() const {
  return segment_ == nullptr ? nullptr : segment_->get_segment_manager();
}

size_t SharedSegment::size() const { return segment_ == nullptr ? 0 : segment_->get_size(); }

size_t SharedSegment::free_memory() const {
  return segment_ == nullptr ? 0 : segment_->get_free_memory();
}

absl::Status SharedSegment::CheckObjectName(std::string_view object_name) const {
  if (segment_ == nullptr) {
    return absl::FailedPreconditionError("SharedSegment: empty (moved-from) handle");
  }
  if (object_name.empty()) {
    return absl::InvalidArgumentError(Cat("SharedSegment '", name_, "': object name is empty"));
  }
  if (object_name.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(Cat("SharedSegment '", name_, "': object name '",
                                          absl::CHexEscape(sync_internal::CatArg(object_name)), "' contains NUL"));
  }
  if (object_name.substr(0, kReservedPrefix.size()) == kReservedPrefix) {
    return absl::InvalidArgumentError(Cat("SharedSegment '", name_, "': object name '", object_name,
                                          "' starts with the reserved '", kReservedPrefix, "'"));
  }
  return absl::OkStatus();
}

absl::Status SharedSegment::NotFoundStatus(std::string_view object_name) const {
  return absl::NotFoundError(
      Cat("no object named '", object_name, "' in shared segment '", name_, "'"));
}

absl::StatusOr<void*> SharedSegment::FindRaw(std::string_view object_name, size_t size,
                                             size_t align) const {
  if (absl::Status s = CheckObjectName(object_name); !s.ok()) return s;
  const std::string key(object_name);
  std::pair<char*, size_t> found{nullptr, 0};
  try {
    // find<char> reports the object's size in bytes whatever its type, and
    // never trips Boost's size asserts (a find<T> of the wrong T can).
    found = segment_->find<char>(key.c_str());
  } catch (...) {
    return CurrentExceptionToStatus("Find", object_name, 0);
  }
  if (found.first == nullptr) return NotFoundStatus(object_name);
  if (found.second != size) {
    return absl::FailedPreconditionError(
        Cat("object '", object_name, "' in shared segment '", name_, "' has ", found.second,
            " bytes, but the requested type has ", size, ": it was constructed as another type"));
  }
  if (reinterpret_cast<uintptr_t>(found.first) % align != 0) {
    return absl::FailedPreconditionError(
        Cat("object '", object_name, "' in shared segment '", name_, "' is not aligned to ", align,
            " bytes (over-aligned types are not supported by Boost's allocator)"));
  }
  return static_cast<void*>(found.first);
}

absl::Status SharedSegment::CurrentExceptionToStatus(std::string_view op,
                                                     std::string_view object_name,
                                                     size_t bytes) const {
  const std::string what =
      Cat("SharedSegment::", op, "('", object_name, "') in segment '", name_, "'");
  try {
    throw;
  } catch (const bip::bad_alloc& e) {
    return absl::ResourceExhaustedError(Cat(what, ": out of segment memory (", bytes,
                                            " bytes for the object, ", free_memory(), " free of ",
                                            size(), "); create a larger segment"));
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::already_exists_error) {
      return absl::AlreadyExistsError(Cat(what, ": an object of that name exists"));
    }
    return BoostError(what, e);
  } catch (const std::bad_alloc& e) {
    return absl::ResourceExhaustedError(Cat(what, ": out of memory: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(Cat(what,
                                   ": the object's constructor or destructor "
                                   "threw: ",
                                   e.what()));
  } catch (...) {
    return absl::InternalError(Cat(what, ": an unknown exception was thrown"));
  }
}

}  // namespace wharf
