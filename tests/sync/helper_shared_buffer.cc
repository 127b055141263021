// sync_process_helper subcommands for shared_buffer_test and
// shared_segment_test. Exit codes: 0 ok, 3 open failed, 4 check failed,
// 5 bad arguments.
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <boost/interprocess/containers/vector.hpp>

#include "absl/status/status.h"
#include "tests/sync/process_helper_registry.h"
#include "wharf/sync/shared_buffer.h"
#include "wharf/sync/shared_segment.h"

namespace wharf::testing {
namespace {

// The byte the cross-process SharedBuffer tests write at index i.
uint8_t PatternByte(size_t i, unsigned seed) { return static_cast<uint8_t>(i * 31 + seed); }

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "helper: %s\n", s.ToString().c_str());
  return 3;
}

int WritePattern(const SharedBuffer& buffer, unsigned seed) {
  std::span<std::byte> bytes = buffer.bytes();
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = std::byte{PatternByte(i, seed)};
  return 0;
}

}  // namespace

// shared_buffer_write_pattern NAME SEED: opens the named buffer and fills it
// with PatternByte(i, SEED).
WHARF_HELPER_COMMAND(shared_buffer_write_pattern) {
  if (args.size() != 2) return 5;
  auto buffer = SharedBuffer::OpenNamed(args[0]);
  if (!buffer.ok()) return Fail(buffer.status());
  return WritePattern(*buffer, static_cast<unsigned>(std::stoul(args[1])));
}

// shared_buffer_from_fd FD SEED: attaches to the inherited fd and fills the
// buffer with PatternByte(i, SEED).
WHARF_HELPER_COMMAND(shared_buffer_from_fd) {
  if (args.size() != 2) return 5;
  auto buffer = SharedBuffer::FromFd(std::stoi(args[0]));
  if (!buffer.ok()) return Fail(buffer.status());
  return WritePattern(*buffer, static_cast<unsigned>(std::stoul(args[1])));
}

// shared_buffer_grow_check NAME SIZE NEW_SIZE: opens a growable named buffer,
// checks that it has SIZE bytes, byte 0 is 0xAB (written by the parent) and
// the last byte is 0 (fresh from a Grow); writes 0xCD to the last byte, then
// grows the buffer to NEW_SIZE for the parent to see.
WHARF_HELPER_COMMAND(shared_buffer_grow_check) {
  if (args.size() != 3) return 5;
  auto buffer = SharedBuffer::OpenNamed(args[0]);
  if (!buffer.ok()) return Fail(buffer.status());
  const size_t size = std::stoul(args[1]);
  const size_t new_size = std::stoul(args[2]);
  if (!buffer->growable() || buffer->size() != size) {
    std::fprintf(stderr, "helper: size %zu (expected %zu), growable %d\n", buffer->size(), size,
                 buffer->growable());
    return 4;
  }
  std::span<std::byte> bytes = buffer->bytes();
  if (bytes[0] != std::byte{0xAB} || bytes[size - 1] != std::byte{0}) return 4;
  bytes[size - 1] = std::byte{0xCD};
  if (absl::Status s = buffer->Grow(new_size); !s.ok()) return Fail(s);
  return 0;
}

// shared_buffer_die_in_grow NAME: opens a growable named buffer, takes the
// Grow lock, extends the file by a page of 0xEE bytes past size() (as a Grow
// that never published its size), then dies with SIGKILL holding the lock.
WHARF_HELPER_COMMAND(shared_buffer_die_in_grow) {
  if (args.size() != 1) return 5;
  auto buffer = SharedBuffer::OpenNamed(args[0]);
  if (!buffer.ok()) return Fail(buffer.status());
  auto* header = reinterpret_cast<sync_internal::SharedBufferHeader*>(buffer->data() -
                                                                      SharedBuffer::kHeaderSize);
  if (header->grow_mutex.Lock() != LockResult::kOk) return 4;
  const size_t size = buffer->size();
  if (::ftruncate(buffer->fd(), static_cast<off_t>(SharedBuffer::kHeaderSize + size + 4096)) != 0) {
    return 4;
  }
  for (size_t i = size; i < size + 4096; ++i) buffer->data()[i] = std::byte{0xEE};
  ::raise(SIGKILL);
  return 4;  // not reached
}

// shared_segment_increment NAME N: opens the segment, adds N to the int64
// "counter" and appends 0..N-1 to the IntVec "ids" (allocating from the
// segment in this process).
WHARF_HELPER_COMMAND(shared_segment_increment) {
  if (args.size() != 2) return 5;
  using IntVec = boost::interprocess::vector<int32_t, SharedSegment::Allocator<int32_t>>;
  auto segment = SharedSegment::Open(args[0]);
  if (!segment.ok()) return Fail(segment.status());
  const int n = std::stoi(args[1]);
  auto counter = segment->Find<int64_t>("counter");
  if (!counter.ok()) return Fail(counter.status());
  auto ids = segment->Find<IntVec>("ids");
  if (!ids.ok()) return Fail(ids.status());
  for (int i = 0; i < n; ++i) {
    ++**counter;
    (*ids)->push_back(i);
  }
  // An object made here, for the parent to find.
  auto made = segment->Construct<int64_t>("from_child", int64_t{::getpid()});
  if (!made.ok()) return Fail(made.status());
  return 0;
}

}  // namespace wharf::testing

namespace wharf::testing {

// shared_buffer_create_and_hang NAME OWNS_NAME: creates a named buffer
// (unlink_on_close = OWNS_NAME == "1") and hangs until killed, leaving the
// name behind as a SIGKILLed creator does.
WHARF_HELPER_COMMAND(shared_buffer_create_and_hang) {
  if (args.size() != 2) return 5;
  SharedBuffer::NamedOptions options;
  options.unlink_on_close = args[1] == "1";
  auto buffer = SharedBuffer::CreateNamed(args[0], 4096, options);
  if (!buffer.ok()) return Fail(buffer.status());
  for (;;) ::pause();
}

}  // namespace wharf::testing
