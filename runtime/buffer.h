// Buffer: JavaScript's ArrayBuffer for C++ — a block of bytes owned by exactly
// one actor at a time.
//
//   auto buf = wharf::Buffer::Allocate(1 << 20).value();   // zero-filled
//   buf.data()[0] = std::byte{42};
//   wharf::Buffer sent = std::move(buf);                   // transfer: no copy
//   buf.detached();                                        // true, size() 0
//   buf.Bytes().status();  // FailedPrecondition "buffer was transferred (detached)"
//
// A Buffer is move-only. Moving it is a *transfer*, as when an ArrayBuffer is
// in a postMessage transfer list: the bytes change owner without being copied
// and the source becomes detached — size() 0, data() nullptr, and the checked
// accessors (Bytes(), Clone(), Transfer()) return FailedPrecondition. A copy,
// as structured clone makes of a Buffer that is not transferred, is explicit:
// Clone().
//
// A default-constructed Buffer is empty (size 0) but not detached, like
// `new ArrayBuffer(0)`.
//
// Thread-safety: none beyond a plain value type: a Buffer may be used by one
// thread at a time; moving it to another thread hands over the bytes (the
// hand-over itself must be synchronised, e.g. by a MessagePort).
//
// Where the bytes live: Allocate/CopyFrom use this process's heap, so such a
// Buffer crosses a process boundary by copy. AllocateShared puts them in
// shared memory (a memfd mapping): transferred to another process it
// crosses as that memory — zero copy, whatever its size — and the sender is
// left detached, as for a transfer between threads. Allocate does not pick
// shared memory for large sizes by itself: a memfd costs a few system calls
// and counts as shared memory (tmpfs limits, cgroup shmem accounting) for
// every Buffer, most of which never leave their process; the user who sends
// big buffers to processes asks for it.
//
// Limits: at most kMaxSize bytes.

#ifndef WHARF_RUNTIME_BUFFER_H_
#define WHARF_RUNTIME_BUFFER_H_

#include <cstddef>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {

class Buffer {
 public:
  // The largest Buffer Allocate/CopyFrom will make (64 GiB).
  static constexpr size_t kMaxSize = size_t{1} << 36;

  // An empty, not detached buffer (size 0).
  Buffer() = default;
  // Transfer: `other` is left detached. Never allocates, never fails.
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() = default;

  // A zero-filled buffer of `size` bytes. InvalidArgument if size > kMaxSize;
  // ResourceExhausted if the memory cannot be allocated.
  static absl::StatusOr<Buffer> Allocate(size_t size);

  // A buffer holding a copy of `bytes`. Same errors as Allocate.
  static absl::StatusOr<Buffer> CopyFrom(std::span<const std::byte> bytes);

  // A zero-filled buffer of `size` bytes in shared memory (see above).
  // InvalidArgument if size > kMaxSize; ResourceExhausted/Internal from the
  // memfd or the mapping.
  static absl::StatusOr<Buffer> AllocateShared(size_t size);
  // Whether the bytes live in shared memory (AllocateShared, or a shared
  // Buffer received from another process).
  bool shared() const { return shared_ != nullptr; }
  // Internal (transports): the mapping behind a shared Buffer; null if not.
  const SharedBuffer* shared_memory() const { return shared_.get(); }
  // Internal (transports): a Buffer over the first `size` bytes of `memory`
  // (InvalidArgument if it is smaller).
  static absl::StatusOr<Buffer> OverSharedMemory(SharedBuffer memory, size_t size);

  // Unchecked access: a detached buffer gives nullptr / 0 / an empty span.
  std::byte* data() { return bytes_; }
  const std::byte* data() const { return bytes_; }
  size_t size() const { return size_; }
  std::span<std::byte> span() { return {bytes_, size_}; }
  std::span<const std::byte> span() const { return {bytes_, size_}; }

  // True once the bytes were moved (transferred) to another Buffer.
  bool detached() const { return detached_; }

  // Checked access: FailedPrecondition "buffer was transferred (detached)" if
  // detached, else the bytes.
  absl::StatusOr<std::span<std::byte>> Bytes();
  absl::StatusOr<std::span<const std::byte>> Bytes() const;

  // A deep copy (structured clone of an ArrayBuffer). FailedPrecondition if
  // detached; ResourceExhausted if memory runs out.
  absl::StatusOr<Buffer> Clone() const;

  // Checked transfer: moves the bytes into the returned Buffer and detaches
  // this one. FailedPrecondition if already detached (JS: DataCloneError).
  absl::StatusOr<Buffer> Transfer();

  // Same detached state and the same bytes.
  friend bool operator==(const Buffer& a, const Buffer& b);

 private:
  Buffer(std::unique_ptr<std::byte[]> data, size_t size)
      : heap_(std::move(data)), bytes_(heap_.get()), size_(size) {}

  std::unique_ptr<std::byte[]> heap_;     // the bytes, when on the heap
  std::unique_ptr<SharedBuffer> shared_;  // the mapping, when in shared memory (boxed:
                                          // a Value stays 48 bytes)
  std::byte* bytes_ = nullptr;         // into one of the two
  size_t size_ = 0;
  bool detached_ = false;
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_BUFFER_H_
