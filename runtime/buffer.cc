#include "wharf/runtime/buffer.h"

#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace wharf {
namespace {

absl::Status DetachedError() {
  return absl::FailedPreconditionError(
      "buffer was transferred (detached): its bytes now belong to the receiver; "
      "Clone() it before transferring to keep a copy");
}

}  // namespace

Buffer::Buffer(Buffer&& other) noexcept
    : heap_(std::move(other.heap_)),
      shared_(std::move(other.shared_)),
      bytes_(std::exchange(other.bytes_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      detached_(std::exchange(other.detached_, true)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    heap_ = std::move(other.heap_);
    shared_ = std::move(other.shared_);
    bytes_ = std::exchange(other.bytes_, nullptr);
    size_ = std::exchange(other.size_, 0);
    detached_ = std::exchange(other.detached_, true);
  }
  return *this;
}

absl::StatusOr<Buffer> Buffer::AllocateShared(size_t size) {
  if (size > kMaxSize) {
    return absl::InvalidArgumentError(absl::StrCat("Buffer::AllocateShared(", size,
                                                   "): larger than Buffer::kMaxSize (", kMaxSize,
                                                   " bytes)"));
  }
  absl::StatusOr<SharedBuffer> memory = SharedBuffer::Create(size);
  if (!memory.ok()) return memory.status();
  return OverSharedMemory(*std::move(memory), size);
}

absl::StatusOr<Buffer> Buffer::OverSharedMemory(SharedBuffer memory, size_t size) {
  // reserved_size(), not size(): no read of the header, so no page fault on
  // a mapping that has just arrived (the receiver pays for the pages it uses).
  if (memory.reserved_size() < size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a shared Buffer of ", size, " bytes over a mapping of ", memory.reserved_size()));
  }
  Buffer b;
  b.bytes_ = memory.data();
  b.size_ = size;
  b.shared_ = std::make_unique<SharedBuffer>(std::move(memory));
  return b;
}

absl::StatusOr<Buffer> Buffer::Allocate(size_t size) {
  if (size > kMaxSize) {
    return absl::InvalidArgumentError(absl::StrCat("Buffer::Allocate(", size,
                                                   "): larger than Buffer::kMaxSize (", kMaxSize,
                                                   " bytes); use a SharedBuffer for huge data"));
  }
  if (size == 0) return Buffer();
  std::unique_ptr<std::byte[]> data(new (std::nothrow) std::byte[size]());
  if (data == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Buffer::Allocate(", size, "): out of memory"));
  }
  return Buffer(std::move(data), size);
}

absl::StatusOr<Buffer> Buffer::CopyFrom(std::span<const std::byte> bytes) {
  absl::StatusOr<Buffer> buffer = Allocate(bytes.size());
  if (buffer.ok() && !bytes.empty()) std::memcpy(buffer->data(), bytes.data(), bytes.size());
  return buffer;
}

absl::StatusOr<std::span<std::byte>> Buffer::Bytes() {
  if (detached_) return DetachedError();
  return span();
}

absl::StatusOr<std::span<const std::byte>> Buffer::Bytes() const {
  if (detached_) return DetachedError();
  return span();
}

absl::StatusOr<Buffer> Buffer::Clone() const {
  if (detached_) return DetachedError();
  return CopyFrom(span());
}

absl::StatusOr<Buffer> Buffer::Transfer() {
  if (detached_) return DetachedError();
  return Buffer(std::move(*this));
}

bool operator==(const Buffer& a, const Buffer& b) {
  if (a.detached_ != b.detached_ || a.size_ != b.size_) return false;
  return a.size_ == 0 || std::memcmp(a.data(), b.data(), a.size_) == 0;
}

}  // namespace wharf
