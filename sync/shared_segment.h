// SharedSegment: a named shared-memory heap of named objects — the C++ answer
// to Python's SharedMemoryManager / ShareableList — over Boost.Interprocess's
// segment manager, with absl::Status errors.
//
//   auto seg = wharf::SharedSegment::Create("jobs", 1 << 20).value();
//   auto* counter = seg.Construct<std::atomic<int64_t>>("counter", 0).value();
//   using IntVec = boost::interprocess::vector<int, wharf::SharedSegment::Allocator<int>>;
//   auto* v = seg.Construct<IntVec>("ids", seg.allocator<int>()).value();
//   v->push_back(42);
//   // in another process:
//   auto other = wharf::SharedSegment::Open("jobs").value();
//   auto* c = other.Find<std::atomic<int64_t>>("counter").value();
//
// Use it when processes need to share structured data (counters, lock-and-
// data structs, offset_ptr containers) that they look up by name. For a flat
// byte array, SharedBuffer is simpler and cheaper.
//
// Objects placed in a segment must follow the shared-memory rules: no raw
// pointers (use boost::interprocess::offset_ptr or offsets), no vtables, no
// std:: containers or std::mutex (use boost::interprocess containers with
// Allocator<T>, and wharf::Mutex, which is robust and fine in shared memory).
// The segment is mapped at a different address in each process.
//
// Trust: as SharedBuffer::OpenNamed, Open refuses (PermissionDenied) a
// segment not owned by the caller's effective uid, or whose mode gives any
// group or other access, or a symlink; the check is on the opened fd, before
// anything in it is read. OpenOptions allows another owner and group access
// for deliberate sharing. Create makes segments 0600 whatever the umask.
//
// Thread-safety: a handle is move-only; its methods may be called
// concurrently from several threads and processes — Boost serialises
// allocation and the name index with a process-shared mutex inside the
// segment (Construct, Find, FindOrConstruct, Destroy block on it). The
// objects themselves are not protected: synchronise them yourself.
// Memory ordering: an object constructed by Construct() is fully constructed
// before Find() in any process can return it (both hold the segment lock).
// Open blocks up to OpenOptions::init_timeout for a creator still building it.
//
// Errors: absl::Status; Boost exceptions never escape. InvalidArgument for
// bad names/sizes and for shared memory that is not a Wharf segment;
// NotFound for a missing segment or object; AlreadyExists for a taken name;
// PermissionDenied for an untrusted owner or mode, or a symlink;
// ResourceExhausted when the segment is full; FailedPrecondition for a
// segment of another Wharf format or Boost version, or an object of another
// size than the requested type; Unavailable for a segment its creator has not
// finished initialising; DataLoss for a corrupt one. Empty (moved-from)
// handles give FailedPrecondition.
//
// Limits — read before use:
//  - The segment lock is NOT robust: a process SIGKILLed inside
//    Construct / FindOrConstruct / Destroy, or while a container in the
//    segment allocates, leaves it locked, and every later allocation or
//    lookup in that segment blocks forever. Don't kill processes that may be
//    allocating, or recreate the segment after such a death.
//  - A segment persists until Remove() (or reboot), including after its
//    creator dies; the handle's destructor only unmaps.
//  - Find<T>/Destroy<T> check the stored object's size against sizeof(T),
//    not its type: asking for another type of the same size is undetected.
//  - Open trusts Boost's layout (managed_shared_memory's) once its
//    "initialised" word is set and the Wharf record is found; all processes
//    must be built with the same Boost version (checked) and Wharf format
//    (checked).
//  - T's constructor and destructor run under the segment lock: they may
//    allocate from the segment (the lock is recursive) but must not wait for
//    another process that needs the segment.
// How it is built, and why it maps the file itself: sync/shared_segment.cc.

#ifndef WHARF_SYNC_SHARED_SEGMENT_H_
#define WHARF_SYNC_SHARED_SEGMENT_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace wharf {

// Options of SharedSegment::Open / OpenOrCreate.
struct SharedSegmentOpenOptions {
  // How long to wait for a creator that is still initialising the segment
  // before giving up with Unavailable.
  absl::Duration init_timeout = absl::Seconds(1);
  // Deliberate sharing between users. By default only a segment owned by the
  // caller's effective uid, with no group or other permission bits, opens.
  // Also accept a segment owned by this uid:
  std::optional<uid_t> allowed_owner = std::nullopt;
  // Also accept these group permission bits (within 070, e.g. 060 for a
  // segment shared read-write with the file's group). Bits for other users
  // are never accepted: any other bit here is InvalidArgument.
  mode_t allowed_group_bits = 0;
};

class SharedSegment {
 public:
  using SegmentManager = boost::interprocess::managed_shared_memory::segment_manager;
  // The allocator for Boost.Interprocess containers living in the segment.
  template <class T>
  using Allocator = boost::interprocess::allocator<T, SegmentManager>;
  using OpenOptions = SharedSegmentOpenOptions;

  static constexpr uint64_t kMagic = 0x3153535346524857;  // "WHARFSS1", little-endian
  static constexpr uint32_t kVersion = 1;
  static constexpr size_t kMinSize = 4096;
  static constexpr size_t kMaxSize = size_t{1} << 46;
  static constexpr size_t kMaxNameLength = 200;
  // Object names starting with this are Wharf's own (InvalidArgument).
  static constexpr std::string_view kReservedPrefix = "__wharf";

  // Creates /dev/shm/`name` (mode 0600) with `size` bytes (kMinSize..kMaxSize;
  // Boost's bookkeeping takes a few hundred of them). Names as SharedBuffer:
  // 1..kMaxNameLength chars, no '/' or NUL. AlreadyExists if taken (also by a
  // symlink); ResourceExhausted/Internal on system failure (the name is then
  // removed).
  static absl::StatusOr<SharedSegment> Create(std::string_view name, size_t size);

  // Opens an existing segment. NotFound if absent; PermissionDenied if it is a
  // symlink or its owner or mode is not trusted (see "Trust" above; the
  // message names the owner found, the uid expected and the mode). Blocks up
  // to options.init_timeout while its creator is still initialising it, then
  // Unavailable; DataLoss if corrupt; InvalidArgument if not a Wharf
  // segment; FailedPrecondition if of another Wharf format or Boost version.
  static absl::StatusOr<SharedSegment> Open(std::string_view name, OpenOptions options = {});

  // Opens `name`, or creates it with `size` bytes if absent (size is ignored
  // when opening). created() tells which happened. Errors as Create/Open.
  static absl::StatusOr<SharedSegment> OpenOrCreate(std::string_view name, size_t size,
                                                    OpenOptions options = {});

  // Removes the name (mappings stay valid). NotFound if absent.
  static absl::Status Remove(std::string_view name);

  SharedSegment(SharedSegment&& other) noexcept;
  SharedSegment& operator=(SharedSegment&& other) noexcept;
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;
  ~SharedSegment();  // unmaps; never removes the name

  // Constructs a T named `object_name` from `args`. Blocks on Boost's segment
  // lock. AlreadyExists if the name is taken; ResourceExhausted if the
  // segment is full; Internal if T's constructor throws (nothing is left
  // behind); InvalidArgument for an empty or reserved name.
  template <class T, class... Args>
  absl::StatusOr<T*> Construct(std::string_view object_name, Args&&... args) {
    CheckType<T>();
    if (absl::Status s = CheckObjectName(object_name); !s.ok()) return s;
    const std::string key(object_name);
    try {
      return manager_->construct<T>(key.c_str())(std::forward<Args>(args)...);
    } catch (...) {
      return CurrentExceptionToStatus("Construct", object_name, sizeof(T));
    }
  }

  // The T named `object_name`. NotFound if absent; FailedPrecondition if the
  // stored object's size is not sizeof(T). Blocks on Boost's segment lock.
  template <class T>
  absl::StatusOr<T*> Find(std::string_view object_name) const {
    CheckType<T>();
    absl::StatusOr<void*> p = FindRaw(object_name, sizeof(T), alignof(T));
    if (!p.ok()) return p.status();
    return static_cast<T*>(*p);
  }

  // Find, or Construct from `args` if absent (atomically: one object wins
  // among racing callers in all processes). Errors as Find and Construct.
  template <class T, class... Args>
  absl::StatusOr<T*> FindOrConstruct(std::string_view object_name, Args&&... args) {
    CheckType<T>();
    absl::StatusOr<void*> p = FindRaw(object_name, sizeof(T), alignof(T));
    if (p.ok()) return static_cast<T*>(*p);
    if (!absl::IsNotFound(p.status())) return p.status();
    const std::string key(object_name);
    try {
      return manager_->find_or_construct<T>(key.c_str())(std::forward<Args>(args)...);
    } catch (...) {
      return CurrentExceptionToStatus("FindOrConstruct", object_name, sizeof(T));
    }
  }

  // Runs ~T() on the object and frees it. NotFound if absent;
  // FailedPrecondition on a size mismatch; Internal if ~T() throws.
  template <class T>
  absl::Status Destroy(std::string_view object_name) {
    CheckType<T>();
    absl::StatusOr<void*> p = FindRaw(object_name, sizeof(T), alignof(T));
    if (!p.ok()) return p.status();
    const std::string key(object_name);
    try {
      if (!manager_->destroy<T>(key.c_str())) return NotFoundStatus(object_name);
      return absl::OkStatus();
    } catch (...) {
      return CurrentExceptionToStatus("Destroy", object_name, sizeof(T));
    }
  }

  // Boost's segment manager (for allocate/deallocate, named-object iteration,
  // or anything not wrapped here — whose exceptions are then yours to catch).
  SegmentManager* segment_manager() const;

  // An allocator for containers in the segment, e.g.
  // Construct<boost::interprocess::vector<int, Allocator<int>>>("v", allocator<int>()).
  template <class T>
  Allocator<T> allocator() const {
    return Allocator<T>(segment_manager());
  }

  size_t size() const;         // total bytes of the segment
  size_t free_memory() const;  // bytes still free for objects
  const std::string& name() const { return name_; }
  bool created() const { return created_; }  // this call created it (OpenOrCreate)
  explicit operator bool() const { return manager_ != nullptr; }

 private:
  struct Mapping;  // the mmap of the segment's file (shared_segment.cc)
  SharedSegment(std::unique_ptr<Mapping> mapping, SegmentManager* manager, std::string name,
                bool created);

  template <class T>
  static constexpr void CheckType() {
    static_assert(!std::is_polymorphic_v<T>,
                  "objects in a SharedSegment cannot have a vtable: each process maps "
                  "the segment (and its code) at another address");
    static_assert(!std::is_pointer_v<T> && !std::is_reference_v<T>,
                  "a raw pointer is meaningless in another process: use offset_ptr");
  }

  // Also fails for an empty handle.
  absl::Status CheckObjectName(std::string_view object_name) const;
  absl::StatusOr<void*> FindRaw(std::string_view object_name, size_t size, size_t align) const;
  absl::Status NotFoundStatus(std::string_view object_name) const;
  // Maps the exception being handled to a Status. Call only inside catch.
  absl::Status CurrentExceptionToStatus(std::string_view op, std::string_view object_name,
                                        size_t bytes) const;

  std::unique_ptr<Mapping> mapping_;
  SegmentManager* manager_ = nullptr;  // in *mapping_'s memory
  std::string name_;
  bool created_ = false;
};

}  // namespace wharf

#endif  // WHARF_SYNC_SHARED_SEGMENT_H_
