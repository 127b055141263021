#include "wharf/sync/shared_segment.h"

// How SharedSegment is built.
//
// A segment has the layout of Boost.Interprocess's managed_shared_memory, so
// that plain Boost programs of the same Boost version can open Wharf's
// segments and the other way round: a 32-bit state word at offset 0 (Boost's
// managed_open_or_create_impl: uninitialised, initialising, initialised,
// corrupted), then Boost's segment manager (allocator + name index + its
// process-shared mutex) at kBoostUserOffset, filling the rest of the file.
//
// Open and Create map the file themselves and hand the memory to Boost's
// basic_managed_external_buffer — the same segment manager type as
// managed_shared_memory, over memory the caller provides — instead of
// constructing a managed_shared_memory. The reason is the owner/mode check
// (sync/internal/shm_object.h): managed_shared_memory opens the name itself,
// inside its constructor, and exposes no fd, so a check could only be made
// by path (a check-then-open race: the name can be swapped between the check
// and Boost's open) or after Boost had already read the memory of an object
// that another user controls (its open spins without bound on the state word
// and trusts the segment manager it finds). Opening, checking and mapping
// the fd here means the object checked is the object mapped, and nothing in
// it is read before the check. The cost is that the state-word protocol
// below mirrors Boost's; the Boost version is recorded in every segment and
// checked, and tests open Wharf segments with plain Boost and the reverse.
//
// Create: shm_open(O_CREAT | O_EXCL, 0600), ftruncate, mmap, state word
// "initialising", segment manager, Wharf's record (SegmentInfo), then state
// word "initialised" with a release store (C). Any failure marks the word
// "corrupted" and removes the name. Open: shm_open(O_NOFOLLOW) + the check
// on the fd, then waits (bounded) until the state word reads "initialised"
// — Boost's own open would spin without bound — maps the file, loads the
// state word with acquire (matches C), and looks up Wharf's record.
// Segments made by older Wharf builds (through managed_shared_memory)
// published "initialised" before adding the record, so Open still waits,
// bounded, for a missing record.

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <thread>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/version.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "wharf/sync/internal/errno_status.h"
#include "wharf/sync/internal/fd_guard.h"
#include "wharf/sync/internal/shm_object.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/internal/thread_identity.h"

namespace wharf {

namespace bip = boost::interprocess;

namespace {

using sync_internal::Cat;

// Boost's segment manager over memory we map ourselves: the allocation
// algorithm and index of managed_shared_memory, hence its segment manager.
using BoostAlgorithm = bip::rbtree_best_fit<bip::mutex_family>;
using ManagedMemory = bip::basic_managed_external_buffer<char, BoostAlgorithm, bip::iset_index>;
static_assert(std::is_same_v<ManagedMemory::segment_manager, SharedSegment::SegmentManager>,
              "the segment manager must be managed_shared_memory's");

// Where managed_shared_memory puts its segment manager: after the state word,
// rounded up to the algorithm's alignment.
constexpr size_t kBoostUserOffset =
    bip::ipcdetail::shmem_open_or_create<BoostAlgorithm>::type::ManagedOpenOrCreateUserOffset;
static_assert(kBoostUserOffset >= sizeof(uint32_t) && kBoostUserOffset % alignof(uint32_t) == 0);
static_assert(SharedSegment::kMinSize > kBoostUserOffset);

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
// failed.
enum BoostSegmentState : uint32_t {
  kUninitialized = 0,
  kInitializing = 1,
  kInitialized = 2,
  kCorrupted = 3,
};

// How shm_object.h's messages name SharedSegment and its functions.
constexpr sync_internal::ShmKind kShmKind{
    .type = "SharedSegment",
    .noun = "shared segment",
    .create = "SharedSegment::Create",
    .open = "SharedSegment::Open",
    .remove = "SharedSegment::Remove",
    .options = "SharedSegment::OpenOptions",
    .max_name_length = SharedSegment::kMaxNameLength,
};

absl::Status ValidateName(std::string_view name) {
  return sync_internal::ValidateShmName(kShmKind, name);
}

std::atomic_ref<uint32_t> StateWord(void* base) {
  return std::atomic_ref<uint32_t>(*static_cast<uint32_t*>(base));
}

using sync_internal::FdGuard;

// Boost's exceptions as a Status: the one mapping for the segment manager's
// and containers' errors.
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

// Waits (up to `deadline`) until the segment behind `fd` is one that Boost
// has finished initialising; fills `*st` with the fstat of that moment.
// Reads with fstat and pread only: nothing is mapped before this succeeds.
absl::Status AwaitInitialisedBoostSegment(int fd, std::string_view name, absl::Time deadline,
                                          struct stat* st) {
  absl::Duration nap = absl::Microseconds(100);
  for (;;) {
    if (::fstat(fd, st) != 0) {
      return sync_internal::ErrnoStatus(Cat("fstat of shared segment '", name, "'"), errno);
    }
    uint32_t state = kUninitialized;
    if (st->st_size == 1) {
      return absl::DataLossError(Cat("shared segment '", name,
                                     "' is 1 byte long: its creator failed while creating it "
                                     "(Boost's marker); remove it with SharedSegment::Remove"));
    }
    if (st->st_size != 0 && static_cast<size_t>(st->st_size) < SharedSegment::kMinSize) {
      return absl::InvalidArgumentError(Cat(
          "shared memory '", name, "' has ", st->st_size, " bytes, less than any SharedSegment (",
          SharedSegment::kMinSize, "): not a Wharf SharedSegment"));
    }
    if (static_cast<uint64_t>(st->st_size) > SharedSegment::kMaxSize) {
      return absl::InvalidArgumentError(Cat("shared memory '", name, "' has ", st->st_size,
                                            " bytes, more than any SharedSegment (",
                                            SharedSegment::kMaxSize,
                                            "): not a Wharf SharedSegment"));
    }
    if (st->st_size != 0) {  // 0: created, not yet sized
      const ssize_t n = ::pread(fd, &state, sizeof(state), 0);
      if (n != static_cast<ssize_t>(sizeof(state))) {
        return sync_internal::ErrnoStatus(Cat("reading shared segment '", name, "'"),
                                          n < 0 ? errno : EIO);
      }
      if (state == kInitialized) return absl::OkStatus();
      if (state == kCorrupted) {
        return absl::DataLossError(Cat("shared segment '", name,
                                       "' is marked corrupt: its creator failed while building "
                                       "it; remove it with SharedSegment::Remove"));
      }
      if (state != kUninitialized && state != kInitializing) {
        return absl::InvalidArgumentError(
            absl::StrFormat("shared memory '%s' is not a Wharf SharedSegment (first word 0x%08x; a "
                            "SharedBuffer? open those with SharedBuffer::OpenNamed)",
                            name, state));
      }
    }
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(
          Cat("shared segment '", name, "' is not initialised (",
              st->st_size == 0 ? std::string("size 0") : Cat("Boost state word ", state),
              "): its creator is still building it, or died while doing so; remove a stale one "
              "with SharedSegment::Remove"));
    }
    std::this_thread::sleep_for(absl::ToChronoMicroseconds(nap));
    nap = std::min(nap * 2, absl::Milliseconds(10));
  }
}

}  // namespace

// The mapping of one segment, owned by one handle.
struct SharedSegment::Mapping {
  void* base = nullptr;
  size_t length = 0;
  ~Mapping() {
    if (base != nullptr) ::munmap(base, length);
  }
};

SharedSegment::SharedSegment(std::unique_ptr<Mapping> mapping, SegmentManager* manager,
                             std::string name, bool created)
    : mapping_(std::move(mapping)), manager_(manager), name_(std::move(name)), created_(created) {}

SharedSegment::SharedSegment(SharedSegment&& other) noexcept
    : mapping_(std::move(other.mapping_)),
      manager_(std::exchange(other.manager_, nullptr)),
      name_(std::exchange(other.name_, std::string())),
      created_(std::exchange(other.created_, false)) {}

SharedSegment& SharedSegment::operator=(SharedSegment&& other) noexcept {
  if (this != &other) {
    mapping_ = std::move(other.mapping_);
    manager_ = std::exchange(other.manager_, nullptr);
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
  struct stat st;
  absl::StatusOr<int> created = sync_internal::CreateShm(kShmKind, name, 0600, &st);
  if (!created.ok()) return created.status();
  FdGuard fd(*created);
  auto mapping = std::make_unique<Mapping>();
  // From here on, any failure removes the name we created (and only that).
  auto fail = [&](absl::Status s) {
    if (mapping->base != nullptr) StateWord(mapping->base).store(kCorrupted);
    mapping.reset();
    sync_internal::UnlinkShmIfSame(name, st.st_dev, st.st_ino);
    return s;
  };
  int err = 0;
  do {
    err = ::ftruncate(fd.get(), static_cast<off_t>(size)) == 0 ? 0 : errno;
  } while (err == EINTR);
  if (err != 0) {
    return fail(sync_internal::ErrnoStatus(
        Cat("creating shared segment '", name, "': ftruncate to ", size, " bytes"), err));
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) {
    return fail(sync_internal::ErrnoStatus(
        Cat("creating shared segment '", name, "': mmap of ", size, " bytes"), errno));
  }
  mapping->base = base;
  mapping->length = size;
  StateWord(base).store(kInitializing, std::memory_order_relaxed);
  SegmentManager* manager = nullptr;
  try {
    ManagedMemory memory(bip::create_only, static_cast<char*>(base) + kBoostUserOffset,
                         size - kBoostUserOffset);
    manager = memory.get_segment_manager();
    // Wharf's record, before the segment is published: an opener finds a
    // segment not initialised yet, or one with its record.
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
    manager->construct<SegmentInfo>(kInfoName)(info);
  } catch (const bip::interprocess_exception& e) {
    return fail(BoostError(Cat("creating shared segment '", name, "' of ", size, " bytes"), e));
  } catch (const std::exception& e) {
    return fail(absl::ResourceExhaustedError(
        Cat("creating shared segment '", name, "' of ", size, " bytes: ", e.what())));
  }
  // C: publishes the segment manager and the record (matches Open's acquire).
  StateWord(base).store(kInitialized, std::memory_order_release);
  return SharedSegment(std::move(mapping), manager, std::string(name), /*created=*/true);
}

absl::StatusOr<SharedSegment> SharedSegment::Open(std::string_view name, OpenOptions options) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
  const absl::Time deadline = absl::Now() + options.init_timeout;
  // The owner/mode check is made on the fd mapped below (shm_object.h).
  struct stat st;
  absl::StatusOr<int> opened = sync_internal::OpenShm(
      kShmKind, name,
      {.allowed_owner = options.allowed_owner, .allowed_group_bits = options.allowed_group_bits},
      &st);
  if (!opened.ok()) return opened.status();
  FdGuard fd(*opened);
  if (absl::Status s = AwaitInitialisedBoostSegment(fd.get(), name, deadline, &st); !s.ok()) {
    return s;
  }
  // The creator sized the file before it initialised the segment: st_size is final.
  const size_t size = static_cast<size_t>(st.st_size);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) {
    return sync_internal::ErrnoStatus(
        Cat("opening shared segment '", name, "': mmap of ", size, " bytes"), errno);
  }
  auto mapping = std::make_unique<Mapping>();
  mapping->base = base;
  mapping->length = size;
  // Matches C: the segment manager and the record are visible from here on.
  if (StateWord(base).load(std::memory_order_acquire) != kInitialized) {
    return absl::DataLossError(Cat("shared segment '", name,
                                   "' changed state while being opened: its creator marked "
                                   "it corrupt; remove it with SharedSegment::Remove"));
  }
  SegmentManager* manager = nullptr;
  try {
    ManagedMemory memory(bip::open_only, static_cast<char*>(base) + kBoostUserOffset,
                         size - kBoostUserOffset);
    manager = memory.get_segment_manager();
  } catch (const std::exception& e) {
    return absl::InternalError(Cat("opening shared segment '", name, "': ", e.what()));
  }
  if (manager->get_size() != size - kBoostUserOffset) {
    return absl::DataLossError(Cat("shared segment '", name, "' has ", size,
                                   " bytes but its segment manager says ",
                                   manager->get_size() + kBoostUserOffset,
                                   ": truncated, corrupt, or not a Boost segment"));
  }
  // Wharf's record: a segment made by an older build (through Boost's
  // managed_shared_memory) may be published before it has one.
  absl::Duration nap = absl::Microseconds(100);
  for (;;) {
    std::pair<char*, size_t> found{nullptr, 0};
    try {
      found = manager->find<char>(kInfoName);
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
      return SharedSegment(std::move(mapping), manager, std::string(name), /*created=*/false);
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
  return sync_internal::UnlinkShm(kShmKind, name);
}

SharedSegment::SegmentManager* SharedSegment::segment_manager() const { return manager_; }

size_t SharedSegment::size() const { return mapping_ == nullptr ? 0 : mapping_->length; }

size_t SharedSegment::free_memory() const {
  return manager_ == nullptr ? 0 : manager_->get_free_memory();
}

absl::Status SharedSegment::CheckObjectName(std::string_view object_name) const {
  if (manager_ == nullptr) {
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
    found = manager_->find<char>(key.c_str());
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
