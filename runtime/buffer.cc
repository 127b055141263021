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
    : data_(std::move(other.data_)),
      size_(std::exchange(other.size_, 0)),
      detached_(std::exchange(other.detached_, true)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
    detached_ = std::exchange(other.detached_, true);
  }
  return *this;
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
