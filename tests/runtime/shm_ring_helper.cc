// The other process of shm_ring_test: maps the test's ring through an
// inherited memfd and writes or reads RingRecords, dying by SIGKILL at a
// chosen point.
//
//   shm_ring_helper write FD COUNT MAX_LEN KILL_STEP KILL_INDEX
//     writes records 0..COUNT-1, then closes the writer; with KILL_STEP >= 0
//     raises SIGKILL at that ShmWriteStep of record KILL_INDEX.
//   shm_ring_helper read FD COUNT MAX_LEN KILL_AFTER
//     reads and checks records 0..COUNT-1; with KILL_AFTER >= 0 raises
//     SIGKILL right after reading record KILL_AFTER (before reading on).
// Exit codes: 0 done, 2 usage, 3 a ring call failed, 4 a bad record.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "wharf/runtime/internal/shm_ring.h"
#include "wharf/sync/shared_buffer.h"
#include "tests/runtime/shm_ring_record.h"

namespace {

using wharf::runtime_internal::RingWrite;
using wharf::runtime_internal::ShmRing;
using wharf::runtime_internal::ShmWriteStep;

int kill_step = -1;
uint64_t kill_index = 0;

void KillHook(ShmWriteStep step, uint64_t index) {
  if (static_cast<int>(step) == kill_step && index == kill_index) raise(SIGKILL);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s write|write_until_closed|read FD COUNT MAX_LEN ...\n",
                 argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  auto buf = wharf::SharedBuffer::FromFd(std::atoi(argv[2]));
  if (!buf.ok()) {
    std::fprintf(stderr, "FromFd: %s\n", buf.status().ToString().c_str());
    return 3;
  }
  auto ring = ShmRing::Attach(buf->data(), buf->size());
  if (!ring.ok()) {
    std::fprintf(stderr, "Attach: %s\n", ring.status().ToString().c_str());
    return 3;
  }
  const uint64_t count = std::strtoull(argv[3], nullptr, 10);
  const size_t max_len = std::strtoull(argv[4], nullptr, 10);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  if (mode == "write" && argc == 7) {
    kill_step = std::atoi(argv[5]);
    kill_index = std::strtoull(argv[6], nullptr, 10);
    if (kill_step >= 0) wharf::runtime_internal::SetShmWriteHookForTesting(&KillHook);
    for (uint64_t i = 0; i < count; ++i) {
      const std::string rec = wharf::testing::RingRecord(i, max_len);
      for (;;) {
        const RingWrite w = ring->TryWrite(rec);
        if (w == RingWrite::kOk) break;
        if (w != RingWrite::kFull || !ring->WaitWritable(rec.size(), deadline)) {
          std::fprintf(stderr, "write %llu failed\n", static_cast<unsigned long long>(i));
          return 3;
        }
      }
    }
    ring->CloseWriter();
    return 0;
  }
  if (mode == "write_until_closed" && argc == 5) {
    // Until the reader closes: the parent compares what it read with the
    // header's records_written once this exits.
    for (uint64_t i = 0; i < count; ++i) {
      const std::string rec = wharf::testing::RingRecord(i, max_len);
      for (;;) {
        const RingWrite w = ring->TryWrite(rec);
        if (w == RingWrite::kOk) break;
        if (w == RingWrite::kClosed) return 0;
        if (w != RingWrite::kFull) return 3;
        (void)ring->WaitWritable(rec.size(), deadline);
        if (absl::Now() > deadline) return 3;
      }
    }
    return 5;  // the reader never closed
  }
  if (mode == "read" && argc == 6) {
    const long long kill_after = std::atoll(argv[5]);
    std::string out;
    for (uint64_t i = 0; i < count;) {
      auto r = ring->TryRead(out);
      if (!r.ok()) {
        std::fprintf(stderr, "read: %s\n", r.status().ToString().c_str());
        return 3;
      }
      if (!*r) {
        if (!ring->WaitReadable(deadline)) return 3;
        continue;
      }
      if (wharf::testing::CheckRingRecord(out, max_len) != static_cast<int64_t>(i)) return 4;
      if (static_cast<long long>(i) == kill_after) raise(SIGKILL);
      ++i;
    }
    return 0;
  }
  std::fprintf(stderr, "bad arguments\n");
  return 2;
}
