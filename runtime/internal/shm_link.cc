#include "wharf/runtime/internal/shm_link.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "wharf/runtime/internal/fd_passing.h"
#include "wharf/runtime/internal/shm_ring.h"
#include "wharf/sync/internal/thread_identity.h"

namespace wharf::runtime_internal {

uint64_t ShmLink::ThisProcess() {
  static std::atomic<uint64_t> cached{0};
  const uint32_t pid = static_cast<uint32_t>(::getpid());
  uint64_t id = cached.load(std::memory_order_relaxed);
  if (id == 0 || sync_internal::OwnerTid(id) != pid) {  // first call, or a fork()ed child
    bool alive = false;
    const uint32_t tag = sync_internal::ReadStartTag(pid, &alive);
    id = (uint64_t{tag} << 32) | pid;
    cached.store(id, std::memory_order_relaxed);
  }
  return id;
}

absl::StatusOr<std::shared_ptr<ShmLink>> ShmLink::Create(size_t ring_capacity) {
  if (ring_capacity < ShmRing::kMinCapacity || ring_capacity > ShmRing::kMaxCapacity ||
      (ring_capacity & (ring_capacity - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared-memory link: ring capacity ", ring_capacity, " is not a power of two in [",
        ShmRing::kMinCapacity, ", ", ShmRing::kMaxCapacity, "]"));
  }
  const size_t ring_bytes = ShmRing::BytesFor(ring_capacity);
  absl::StatusOr<SharedBuffer> memory = SharedBuffer::Create(kRingsOffset + 2 * ring_bytes);
  if (!memory.ok()) return memory.status();
  auto* h = new (memory->data()) ShmLinkHeader;
  std::memset(static_cast<void*>(h), 0, sizeof(ShmLinkHeader));
  h->version = kVersion;
  h->ring_bytes = static_cast<uint32_t>(ring_bytes);
  for (int i = 0; i < 2; ++i) {
    if (absl::Status s = ShmRing::Init(memory->data() + kRingsOffset + i * ring_bytes, ring_bytes);
        !s.ok()) {
      return s;
    }
  }
  std::atomic_ref<uint64_t>(h->magic).store(kMagic, std::memory_order_release);
  int sockets[2];
  if (absl::Status s = MakeFdSocketPair(sockets); !s.ok()) return s;
  return std::shared_ptr<ShmLink>(new ShmLink(*std::move(memory), ring_bytes, sockets[0], sockets[1]));
}

absl::StatusOr<std::shared_ptr<ShmLink>> ShmLink::Attach(int memfd, int socket_end1) {
  sync_internal::FdGuard mem_guard(memfd);
  sync_internal::FdGuard sock_guard(socket_end1);
  absl::StatusOr<SharedBuffer> memory = SharedBuffer::FromFd(memfd);  // dups memfd
  if (!memory.ok()) return memory.status();
  if (memory->size() < kRingsOffset) {
    return absl::DataLossError("shared-memory link: the mapping is too small to hold a link");
  }
  const auto* h = reinterpret_cast<const ShmLinkHeader*>(memory->data());
  if (std::atomic_ref<uint64_t>(const_cast<uint64_t&>(h->magic)).load(std::memory_order_acquire) != kMagic) {
    return absl::FailedPreconditionError(
        "shared-memory link: the inherited memory holds no Wharf link (bad magic)");
  }
  if (h->version != kVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shared-memory link: version ", h->version, ", this build speaks version ", kVersion,
        " (the parent and the worker executable come from different Wharf builds)"));
  }
  const size_t ring_bytes = h->ring_bytes;
  if (ring_bytes < ShmRing::BytesFor(ShmRing::kMinCapacity) ||
      kRingsOffset + 2 * ring_bytes > memory->size()) {
    return absl::DataLossError(absl::StrCat("shared-memory link: rings of ", ring_bytes,
                                            " bytes do not fit a mapping of ", memory->size()));
  }
  return std::shared_ptr<ShmLink>(new ShmLink(*std::move(memory), ring_bytes, -1,
                                              sock_guard.release()));
}

}  // namespace wharf::runtime_internal
