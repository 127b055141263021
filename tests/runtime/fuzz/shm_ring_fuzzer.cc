// libFuzzer target for the shared-memory ring's reader (ShmRing::TryRead),
// as a hostile peer process would drive it: the input is the reader's and
// the writer's cursors (8 bytes each, little-endian) and then the ring's
// record bytes. Reading
// must end (a bounded number of reads), never touch memory outside the
// ring, never return a record above the ring's limit, and report bad
// framing as DataLoss; each record read is handed to the Value decoder, as
// a cross-process port does, which must return a status for any bytes.
//
// Built two ways, as codec_fuzzer.cc: by run_fuzzer.sh (TARGET shm_ring)
// with clang -fsanitize=fuzzer, and by Bazel with fuzz_driver_main.cc as
// shm_ring_fuzzer_regression_test over fuzz/ring_corpus.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/status/statusor.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/internal/shm_ring.h"
#include "wharf/runtime/value.h"

namespace {

using wharf::runtime_internal::ShmRing;

constexpr size_t kCapacity = 4096;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "shm_ring_fuzzer finding: %s\n", what);
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  alignas(64) static std::byte memory[ShmRing::BytesFor(kCapacity)];
  std::memset(memory, 0, sizeof(memory));
  Check(ShmRing::Init(memory, sizeof(memory)).ok(), "Init failed");
  ShmRing ring = ShmRing::Attach(memory, sizeof(memory)).value();
  uint64_t head = 0;
  uint64_t tail = 0;
  if (size >= 16) {
    std::memcpy(&head, data, 8);
    std::memcpy(&tail, data + 8, 8);
    data += 16;
    size -= 16;
  }
  std::memcpy(ring.RecordsForTesting().data(), data, std::min(size, kCapacity));
  ring.HeaderForTesting().head.store(head, std::memory_order_relaxed);
  ring.HeaderForTesting().tail.store(tail, std::memory_order_relaxed);

  std::string out;
  for (size_t reads = 0;; ++reads) {
    Check(reads <= kCapacity / 8 + 1, "the reader does not end");
    absl::StatusOr<bool> got = ring.TryRead(out);
    if (!got.ok()) {
      Check(got.status().code() == absl::StatusCode::kDataLoss, "an error other than DataLoss");
      Check(!ring.TryRead(out).ok(), "a poisoned ring read again");
      break;
    }
    if (!*got) break;
    Check(out.size() <= ring.max_record(), "a record above the ring's limit");
    absl::StatusOr<wharf::Value> v = wharf::DecodeValue(std::string_view(out));
    if (v.ok()) Check(wharf::EncodeValue(*v).ok(), "a decoded Value does not re-encode");
  }
  return 0;
}
