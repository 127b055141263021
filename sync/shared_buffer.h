// SharedBuffer: JavaScript's SharedArrayBuffer for C++ — a block of memory
// that several threads, and several processes, map at the same time.
//
//   auto buf = wharf::SharedBuffer::Create(4096).value();       // threads, children
//   auto cells = buf.View<int32_t>().value();                   // std::span<int32_t>
//   wharf::atomics::Add(cells[0], 1);
//
//   auto named = wharf::SharedBuffer::CreateNamed("jobs", 1 << 20);  // unrelated processes
//   auto other = wharf::SharedBuffer::OpenNamed("jobs");             // ...in another process
//
// Use Create / CreateGrowable for threads and for child processes you hand
// fd() to (inherited, or over a unix socket with SCM_RIGHTS; they attach with
// FromFd): the memory vanishes with its last fd and mapping, with no name to
// leak. Use CreateNamed / OpenNamed (/dev/shm/NAME) for unrelated processes.
// For named objects and containers, use SharedSegment.
//
// A SharedBuffer is a ref-counted handle: copies share one mapping, which is
// unmapped (and its fd closed) when the last handle in this process goes.
// Pointers and spans into the buffer are valid while some handle lives. data()
// is 64-byte aligned; size 0 is allowed. A growable buffer (JS maxByteLength
// and grow()) never moves: spans taken before a Grow stay valid, new bytes
// read as zero, and every handle in every process sees the new size().
//
// Trust: OpenNamed refuses (PermissionDenied) a name whose owner is not the
// caller's effective uid or whose mode gives any group or other access — a
// local user who created the name first would otherwise control the memory
// you map — and never follows a symlink. The check is made on the opened fd,
// the object that is mapped. OpenOptions allows one other owner uid and group
// access for deliberate sharing between users. CreateNamed makes names 0600
// whatever the umask.
//
// Thread-safety: handles may be copied, assigned and destroyed concurrently
// from any thread (std::shared_ptr semantics); const methods and Grow() may be
// called concurrently on one handle. The bytes are plain memory, as in JS:
// synchronise them with atomics (wharf/sync/atomics.h) or a lock placed in the
// buffer (wharf/sync/mutex.h).
//
// Memory ordering: Grow() publishes the new size with a release store after
// extending the file, and size() is an acquire load: a thread (in any
// process) that reads size() >= n may touch bytes below n. Nothing else is
// ordered by SharedBuffer.
//
// Blocking: OpenNamed waits up to OpenOptions::init_timeout for a creator
// still initialising; Grow waits for a concurrent Grow; ReapOrphans reads
// files. Nothing else blocks.
//
// Errors: absl::Status, never an exception or a crash on bad input. Bad
// arguments are InvalidArgument/OutOfRange; a missing name NotFound; a taken
// name AlreadyExists; an untrusted owner or mode, or a symlink,
// PermissionDenied; a buffer its creator has not finished initialising
// Unavailable; a file of another format FailedPrecondition; a truncated or
// corrupt one DataLoss; out of memory/space ResourceExhausted; other system
// failures Internal with strerror.
//
// Limits: a named buffer whose creator is SIGKILLed stays in /dev/shm until
// someone calls Unlink or ReapOrphans. At most kMaxSize (64 TiB) bytes.
// Touching bytes past size() of a growable buffer raises SIGBUS. All
// processes must run the same SharedBuffer format version (checked). How it
// is built (memfd seals, the header protocol): sync/shared_buffer.cc.

#ifndef WHARF_SYNC_SHARED_BUFFER_H_
#define WHARF_SYNC_SHARED_BUFFER_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "wharf/sync/mutex.h"

namespace wharf {

namespace sync_internal {

// The first 64 bytes of every SharedBuffer mapping; the data follows. It is
// read by other processes, possibly built from another version of this code:
// plain data only, and any change of layout or meaning bumps
// SharedBuffer::kVersion. Its initialisation protocol (A, B below) is
// described in sync/shared_buffer.cc.
struct SharedBufferHeader {
  std::atomic<uint64_t> magic;  // 0: initialising; SharedBuffer::kMagic: ready (A)
  uint32_t version;             // SharedBuffer::kVersion of the creator
  uint32_t flags;               // kSharedBufferGrowable
  std::atomic<uint64_t> size;   // current data bytes; release-stored by Grow (B)
  uint64_t max_size;            // data bytes reserved; == size unless growable
  uint32_t creator_pid;         // for a future reaper of dead creators' names
  uint32_t creator_start_tag;   // low 32 bits of its start time (/proc stat 22)
  uint32_t header_size;         // 64: where the data starts
  uint32_t reserved0;           // 0
  Mutex grow_mutex;             // serialises Grow() across processes (robust)
  uint64_t reserved1;           // 0
};

inline constexpr uint32_t kSharedBufferGrowable = 1u << 0;
// The name belongs to its creator (NamedOptions::unlink_on_close): once the
// creator is dead, SharedBuffer::ReapOrphans may remove it.
inline constexpr uint32_t kSharedBufferCreatorOwnsName = 1u << 1;
inline constexpr uint32_t kSharedBufferKnownFlags =
    kSharedBufferGrowable | kSharedBufferCreatorOwnsName;

static_assert(sizeof(SharedBufferHeader) == 64, "the data starts at offset 64");
static_assert(alignof(SharedBufferHeader) == 8);
static_assert(offsetof(SharedBufferHeader, magic) == 0);
static_assert(offsetof(SharedBufferHeader, version) == 8);
static_assert(offsetof(SharedBufferHeader, flags) == 12);
static_assert(offsetof(SharedBufferHeader, size) == 16);
static_assert(offsetof(SharedBufferHeader, max_size) == 24);
static_assert(offsetof(SharedBufferHeader, creator_pid) == 32);
static_assert(offsetof(SharedBufferHeader, creator_start_tag) == 36);
static_assert(offsetof(SharedBufferHeader, header_size) == 40);
static_assert(offsetof(SharedBufferHeader, grow_mutex) == 48);
static_assert(std::is_standard_layout_v<SharedBufferHeader>);
static_assert(std::is_trivially_destructible_v<SharedBufferHeader>);
static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "a lock-based atomic would not work across processes");

// Checks a View request; returns the element count. Out of line, shared by
// every View<T> instantiation.
absl::StatusOr<size_t> CheckSharedBufferView(const std::byte* data, size_t size, size_t byte_offset,
                                             size_t count, size_t elem_size, size_t elem_align);

}  // namespace sync_internal

// Options of SharedBuffer::CreateNamed.
struct SharedBufferNamedOptions {
  // Remove the name from /dev/shm when the creator's last handle goes away.
  // Default true: a name outliving its creator is a leak unless someone
  // planned to reopen it later; set false for that (and call Unlink()).
  // Processes that opened the buffer keep using it either way.
  bool unlink_on_close = true;
  // 0: not growable (max_size() == size()). Otherwise the buffer is growable
  // up to this many data bytes (>= size, <= kMaxSize).
  size_t max_size = 0;
  // Permission bits of the name (the umask is not applied): owner and group
  // bits only (InvalidArgument otherwise). A group bit makes OpenNamed refuse
  // the name unless the opener allows it (OpenOptions::allowed_group_bits).
  mode_t mode = 0600;
};

// Options of SharedBuffer::OpenNamed.
struct SharedBufferOpenOptions {
  // How long to wait for a creator that is still initialising the buffer
  // (file empty or magic 0) before giving up with Unavailable.
  absl::Duration init_timeout = absl::Seconds(1);
  // Deliberate sharing between users. By default only a name owned by the
  // caller's effective uid, with no group or other permission bits, opens.
  // Also accept a name owned by this uid:
  std::optional<uid_t> allowed_owner = std::nullopt;
  // Also accept these group permission bits (within 070, e.g. 060 for a
  // buffer shared read-write with the file's group). Bits for other users are
  // never accepted: any other bit here is InvalidArgument.
  mode_t allowed_group_bits = 0;
};

class SharedBuffer {
 public:
  using NamedOptions = SharedBufferNamedOptions;
  using OpenOptions = SharedBufferOpenOptions;

  static constexpr uint64_t kMagic = 0x3142534652414857;  // "WHARFSB1", little-endian
  static constexpr uint32_t kVersion = 1;
  static constexpr size_t kHeaderSize = sizeof(sync_internal::SharedBufferHeader);
  static constexpr size_t kMaxSize = size_t{1} << 46;
  static constexpr size_t kMaxNameLength = 200;
  static constexpr size_t npos = ~size_t{0};

  // An empty handle: size() 0, data() nullptr; View and Grow fail with
  // FailedPrecondition. Moved-from handles are empty too.
  SharedBuffer() = default;
  SharedBuffer(const SharedBuffer&) = default;
  SharedBuffer& operator=(const SharedBuffer&) = default;
  SharedBuffer(SharedBuffer&& other) noexcept;
  SharedBuffer& operator=(SharedBuffer&& other) noexcept;
  ~SharedBuffer() = default;

  // --- Anonymous buffers (a memfd) -----------------------------------------

  // A zero-filled buffer of `size` bytes (0..kMaxSize; else InvalidArgument).
  // ResourceExhausted/Internal (with strerror) if memfd/ftruncate/mmap fail.
  static absl::StatusOr<SharedBuffer> Create(size_t size);

  // A growable buffer: `size` bytes now (0 allowed), up to `max_size`
  // (1..kMaxSize, >= size; else InvalidArgument) through Grow().
  static absl::StatusOr<SharedBuffer> CreateGrowable(size_t size, size_t max_size);

  // Attaches to the buffer behind `fd` (from fd() of a buffer made in this or
  // another process). The caller keeps ownership of `fd`: it is duplicated.
  // Validates the header: InvalidArgument (not a SharedBuffer / bad fd),
  // FailedPrecondition (other format version), DataLoss (truncated/corrupt),
  // Unavailable (never initialised). Does not block.
  static absl::StatusOr<SharedBuffer> FromFd(int fd);

  // --- Named buffers (/dev/shm/NAME) ---------------------------------------

  // Creates /dev/shm/`name` holding a zero-filled buffer of `size` bytes
  // (0..kMaxSize), mode options.mode (0600). Names: 1..kMaxNameLength chars,
  // no '/' or NUL, not "." or ".." (else InvalidArgument). AlreadyExists if
  // the name is taken (also by a symlink); PermissionDenied,
  // ResourceExhausted, Internal for system failures (the name is removed
  // again on any failure after it was created).
  static absl::StatusOr<SharedBuffer> CreateNamed(std::string_view name, size_t size,
                                                  NamedOptions options = {});

  // Opens a named buffer made by CreateNamed (in any process). NotFound if no
  // such name; PermissionDenied if it is a symlink or its owner or mode is
  // not trusted (see "Trust" above; the message names the owner found, the
  // uid expected and the mode). Blocks up to options.init_timeout while the
  // creator is still initialising it, then Unavailable. Other header errors
  // as FromFd.
  static absl::StatusOr<SharedBuffer> OpenNamed(std::string_view name, OpenOptions options = {});

  // Removes the name (existing mappings stay valid). NotFound if absent,
  // PermissionDenied if not ours. Never blocks.
  static absl::Status Unlink(std::string_view name);

  // The reaper: removes every /dev/shm name starting with `prefix` that holds
  // a SharedBuffer whose creator process is dead and whose name belonged to
  // it (created with unlink_on_close, the default) — what a creator killed by
  // SIGKILL leaves behind. Liveness is the creator's pid plus its start time
  // from the header, so a reused pid does not keep a leftover alive. Files
  // that are not SharedBuffers, still initialising, made with
  // unlink_on_close = false, or whose creator lives are left alone; processes
  // that still map a reaped buffer keep it (as with unlink(2)). Returns how
  // many names were removed. InvalidArgument for an empty or invalid prefix.
  // Blocks on filesystem reads only (one open + 64-byte read per candidate).
  static absl::StatusOr<int> ReapOrphans(std::string_view prefix);

  // --- Access ----------------------------------------------------------------

  // Current data size in bytes (grows with Grow(), from any handle/process).
  size_t size() const {
    return header_ == nullptr ? 0 : header_->size.load(std::memory_order_acquire);  // matches B
  }
  // Reserved data size: == size() unless growable.
  size_t max_size() const { return header_ == nullptr ? 0 : header_->max_size; }
  bool growable() const {
    return header_ != nullptr && (header_->flags & sync_internal::kSharedBufferGrowable) != 0;
  }

  // The first data byte (64-byte aligned), or nullptr for an empty handle.
  // Const handles give mutable bytes: the handle is shallow, like a pointer.
  std::byte* data() const {
    return header_ == nullptr ? nullptr : reinterpret_cast<std::byte*>(header_) + kHeaderSize;
  }
  std::span<std::byte> bytes() const { return {data(), size()}; }

  // The bytes [byte_offset, byte_offset + count * sizeof(T)) as T's; with
  // count == npos, as many whole T's as fit before size(). Never blocks.
  // InvalidArgument if byte_offset is not a multiple of alignof(T);
  // OutOfRange if the range does not fit in size() (overflow-safe);
  // FailedPrecondition on an empty handle. T must be trivially copyable
  // (std::atomic<T> is not: view plain integers and use wharf::atomics).
  template <class T>
  absl::StatusOr<std::span<T>> View(size_t byte_offset = 0, size_t count = npos) const {
    static_assert(std::is_trivially_copyable_v<T>,
                  "SharedBuffer::View<T> needs a trivially copyable T (no pointers "
                  "into this process, no vtables: the bytes are shared)");
    absl::StatusOr<size_t> n = sync_internal::CheckSharedBufferView(data(), size(), byte_offset,
                                                                    count, sizeof(T), alignof(T));
    if (!n.ok()) return n.status();
    return std::span<T>(reinterpret_cast<T*>(data() + byte_offset), *n);
  }

  // Grows the buffer to `new_size` data bytes (JS grow()): new bytes are
  // zero; the address does not move. Equal size is a no-op. Blocks only on a
  // concurrent Grow (of any handle or process, serialised by a robust lock in
  // the header). FailedPrecondition if not growable or empty; InvalidArgument
  // if new_size < size(); OutOfRange if new_size > max_size();
  // ResourceExhausted if /dev/shm or memory is full.
  absl::Status Grow(size_t new_size);

  // --- Identity --------------------------------------------------------------

  // The memfd or shm fd, owned by the mapping (closed with the last handle).
  // Pass it on (inheritance, SCM_RIGHTS) for FromFd; do not close it. -1 if empty.
  int fd() const;
  // The name for named buffers; empty for anonymous ones.
  const std::string& name() const;
  // The creator's pid and start-time tag, from the header (0 if empty).
  uint32_t creator_pid() const { return header_ == nullptr ? 0 : header_->creator_pid; }
  uint32_t creator_start_tag() const { return header_ == nullptr ? 0 : header_->creator_start_tag; }
  // How many handles in this process share this mapping (0 if empty).
  long use_count() const { return mapping_.use_count(); }
  // max_size() from this process's own record of the mapping, without
  // reading the header (no page fault on a mapping not used yet). 0 if empty.
  size_t reserved_size() const;
  explicit operator bool() const { return header_ != nullptr; }

 private:
  struct Mapping;
  explicit SharedBuffer(std::shared_ptr<Mapping> mapping);

  static absl::StatusOr<SharedBuffer> CreateMemfd(size_t size, size_t max_size, bool growable);
  static absl::StatusOr<SharedBuffer> Attach(int fd, std::string name, absl::Time deadline,
                                             std::string_view what);

  std::shared_ptr<Mapping> mapping_;
  sync_internal::SharedBufferHeader* header_ = nullptr;  // == mapping_->base
};

}  // namespace wharf

#endif  // WHARF_SYNC_SHARED_BUFFER_H_
