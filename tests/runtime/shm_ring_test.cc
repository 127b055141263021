#include "wharf/runtime/internal/shm_ring.h"

#include <fcntl.h>
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/runtime/shm_ring_record.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf::runtime_internal {
namespace {

using ::wharf::testing::CheckRingRecord;
using ::wharf::testing::HelperPath;
using ::wharf::testing::RingRecord;
using ::wharf::testing::Subprocess;
using ::wharf::testing::Watchdog;

// A ring in a memfd SharedBuffer (what two processes would map).
struct TestRing {
  explicit TestRing(size_t capacity) {
    buffer = SharedBuffer::Create(ShmRing::BytesFor(capacity)).value();
    EXPECT_TRUE(ShmRing::Init(buffer.data(), buffer.size()).ok());
  }
  ShmRing Attach() { return ShmRing::Attach(buffer.data(), buffer.size()).value(); }
  SharedBuffer buffer;
};

bool ReadOne(ShmRing& r, std::string& out) {
  absl::StatusOr<bool> got = r.TryRead(out);
  EXPECT_TRUE(got.ok()) << got.status();
  return got.ok() && *got;
}

// The helper maps the ring through this inherited memfd.
std::string InheritableFd(const SharedBuffer& buffer) {
  const int fd = buffer.fd();
  EXPECT_EQ(::fcntl(fd, F_SETFD, 0), 0);  // the child inherits it across exec
  return absl::StrCat(fd);
}

TEST(ShmRingTest, InitAndAttachCheckTheMemory) {
  alignas(64) static std::byte memory[ShmRing::BytesFor(1024) + 64];
  EXPECT_EQ(ShmRing::Init(memory + 8, 2048).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShmRing::Init(memory, 100).code(), absl::StatusCode::kInvalidArgument);
  std::memset(memory, 0, sizeof(memory));
  // Memory that holds no ring (never initialised).
  absl::StatusOr<ShmRing> none = ShmRing::Attach(memory, sizeof(memory));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("no Wharf ring"), std::string::npos) << none.status();

  ASSERT_TRUE(ShmRing::Init(memory, sizeof(memory)).ok());
  ShmRing ring = ShmRing::Attach(memory, sizeof(memory)).value();
  EXPECT_EQ(ring.capacity(), 1024u);  // the largest power of two that fits
  EXPECT_EQ(ring.max_record(), 1024u / 4 - 8);
  // A mapping smaller than the ring claims.
  EXPECT_EQ(ShmRing::Attach(memory, ShmRing::BytesFor(512)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Another version.
  ring.HeaderForTesting().version = 99;
  absl::StatusOr<ShmRing> other = ShmRing::Attach(memory, sizeof(memory));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("version 99"), std::string::npos) << other.status();
}

// Lockstep writes and reads of every size up to the limit, many times
// around a small ring: FIFO, contents intact, padding at the end skipped.
TEST(ShmRingTest, RecordsRoundTripAcrossTheWrap) {
  TestRing t(1024);
  ShmRing w = t.Attach();
  ShmRing r = t.Attach();
  std::string out = "untouched";
  EXPECT_FALSE(ReadOne(r, out));
  EXPECT_EQ(out, "untouched");
  EXPECT_FALSE(r.Readable());
  for (uint64_t i = 0; i < 5000; ++i) {
    const std::string rec = RingRecord(i, w.max_record());
    ASSERT_EQ(w.TryWrite(rec), RingWrite::kOk) << i;
    ASSERT_TRUE(r.Readable());
    ASSERT_TRUE(ReadOne(r, out)) << i;
    ASSERT_EQ(CheckRingRecord(out, w.max_record()), static_cast<int64_t>(i));
  }
  // An empty record is a record.
  ASSERT_EQ(w.TryWrite(std::string_view()), RingWrite::kOk);
  out = "x";
  ASSERT_TRUE(ReadOne(r, out));
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(ReadOne(r, out));
}

TEST(ShmRingTest, FullUntilTheReaderMakesRoom) {
  Watchdog dog("ShmRing full", absl::Seconds(30));
  TestRing t(1024);
  ShmRing w = t.Attach();
  ShmRing r = t.Attach();
  const std::string rec(100, 'a');  // 8 + 104 bytes a record: 9 fit in 1024
  int written = 0;
  while (w.TryWrite(rec) == RingWrite::kOk) ++written;
  EXPECT_EQ(written, 9);
  EXPECT_EQ(w.TryWrite(rec), RingWrite::kFull);
  EXPECT_FALSE(w.WaitWritable(rec.size(), absl::Now() + absl::Milliseconds(20)));
  std::thread reader([&] {
    absl::SleepFor(absl::Milliseconds(10));
    std::string out;
    EXPECT_TRUE(ReadOne(r, out));
  });
  EXPECT_TRUE(w.WaitWritable(rec.size(), absl::Now() + absl::Seconds(20)));  // woken by the read
  reader.join();
  EXPECT_EQ(w.TryWrite(rec), RingWrite::kOk);
}

TEST(ShmRingTest, TooLargeRecordsAreRefusedNotTruncated) {
  TestRing t(1024);
  ShmRing w = t.Attach();
  ShmRing r = t.Attach();
  EXPECT_EQ(w.TryWrite(std::string(w.max_record() + 1, 'x')), RingWrite::kTooLarge);
  EXPECT_FALSE(w.WaitWritable(w.max_record() + 1, absl::InfiniteFuture()));  // never fits
  ASSERT_EQ(w.TryWrite(std::string(w.max_record(), 'y')), RingWrite::kOk);
  std::string out;
  ASSERT_TRUE(ReadOne(r, out));
  EXPECT_EQ(out, std::string(w.max_record(), 'y'));
}

TEST(ShmRingTest, CloseDrainsThenEnds) {
  Watchdog dog("ShmRing close", absl::Seconds(30));
  TestRing t(1024);
  ShmRing w = t.Attach();
  ShmRing r = t.Attach();
  ASSERT_EQ(w.TryWrite(std::string_view("one")), RingWrite::kOk);
  ASSERT_EQ(w.TryWrite(std::string_view("two")), RingWrite::kOk);
  w.CloseWriter();
  EXPECT_EQ(w.TryWrite(std::string_view("three")), RingWrite::kClosed);
  EXPECT_FALSE(r.Drained());  // two records still to read
  std::string out;
  ASSERT_TRUE(ReadOne(r, out));
  EXPECT_EQ(out, "one");
  ASSERT_TRUE(ReadOne(r, out));
  EXPECT_EQ(out, "two");
  EXPECT_TRUE(r.Drained());
  EXPECT_TRUE(r.WaitReadable(absl::InfiniteFuture()));  // closed: does not sleep

  // A reader that closes ends the writer's sends and its wait.
  TestRing t2(1024);
  ShmRing w2 = t2.Attach();
  ShmRing r2 = t2.Attach();
  while (w2.TryWrite(std::string(200, 'z')) == RingWrite::kOk) {
  }
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(10));
    r2.CloseReader();
  });
  EXPECT_FALSE(w2.WaitWritable(200, absl::Now() + absl::Seconds(20)));
  closer.join();
  EXPECT_EQ(w2.TryWrite(std::string_view("late")), RingWrite::kClosed);
  EXPECT_TRUE(w2.reader_closed());
}

// Reads 64-byte-max RingRecords in order until the ring is drained, closing
// the reader once `close_after` were read. `writer_gone()` is asked when the
// ring is empty before the close (a writer that ended then is a failure).
// The count read, or -1 after a reported failure.
int64_t ReadClosingAfter(ShmRing& r, uint64_t close_after, absl::FunctionRef<bool()> writer_gone) {
  std::string out;
  uint64_t next = 0;
  while (!r.Drained()) {
    if (next == close_after) r.CloseReader();
    absl::StatusOr<bool> got = r.TryRead(out);
    if (!got.ok()) {
      ADD_FAILURE() << got.status();
      return -1;
    }
    if (!*got) {
      if (next < close_after && r.Empty() && writer_gone()) {
        ADD_FAILURE() << "the writer ended before the reader closed, after " << next;
        return -1;
      }
      (void)r.WaitReadable(absl::Now() + absl::Milliseconds(50));
      continue;
    }
    if (CheckRingRecord(out, 64) != static_cast<int64_t>(next)) {
      ADD_FAILURE() << "record " << next << " is corrupt or out of order";
      return -1;
    }
    ++next;
  }
  return static_cast<int64_t>(next);
}

// The reader closes while a writer streams: every write that returned kOk
// is read before the reader calls itself Drained (the writer's in-write mark
// against the reader's close: Close in shm_ring.cc), every later one is
// refused. Threads here; processes in the next test.
TEST(ShmRingTest, ReaderCloseRacingWritesLosesNoAcceptedRecord) {
  Watchdog dog("ShmRing reader close race", absl::Seconds(120));
  std::mt19937 rng(5);
  for (int round = 0; round < 300; ++round) {
    TestRing t(4096);
    ShmRing w = t.Attach();
    ShmRing r = t.Attach();
    std::atomic<uint64_t> accepted{0};
    std::thread writer([&] {
      for (uint64_t i = 0;; ++i) {
        const std::string rec = RingRecord(i, 64);
        RingWrite res;
        while ((res = w.TryWrite(rec)) == RingWrite::kFull) {
          (void)w.WaitWritable(rec.size(), absl::Now() + absl::Seconds(60));
        }
        if (res != RingWrite::kOk) {
          EXPECT_EQ(res, RingWrite::kClosed);
          return;
        }
        accepted.store(i + 1, std::memory_order_relaxed);
      }
    });
    const int64_t read = ReadClosingAfter(r, rng() % 2000, [] { return false; });
    writer.join();
    ASSERT_GE(read, 0) << "round " << round;
    EXPECT_EQ(static_cast<uint64_t>(read), accepted.load())
        << "round " << round << ": an accepted record was lost";
  }
}

TEST(ShmRingTest, ReaderCloseRacingAWriterProcessLosesNoAcceptedRecord) {
  Watchdog dog("ShmRing reader close race, processes", absl::Seconds(240));
  std::mt19937 rng(9);
  for (int round = 0; round < 100; ++round) {
    TestRing t(4096);
    ShmRing r = t.Attach();
    auto child = Subprocess::Spawn(HelperPath("tests/runtime/shm_ring_helper"),
                                   {"write_until_closed", InheritableFd(t.buffer), "100000000",
                                    "64"});
    ASSERT_TRUE(child.ok()) << child.status();
    std::optional<int> early;
    const int64_t read = ReadClosingAfter(r, rng() % 2000, [&] {
      early = child->TryWait();
      return early.has_value();
    });
    ASSERT_GE(read, 0) << "round " << round << (early ? ": the writer exited with " : "")
                       << (early ? std::to_string(*early) : "");
    absl::StatusOr<int> code = child->Wait(absl::Seconds(60));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0) << round;
    const auto* header = reinterpret_cast<const ShmRingHeader*>(t.buffer.data());
    EXPECT_EQ(static_cast<uint64_t>(read), header->records_written.load())
        << "round " << round << ": an accepted record was lost";
  }
}

// A sleeping reader is woken by a publish, and a sleeping writer by a read,
// with no lost wake-up: 2·10^5 records through a 4 KiB ring, each checked.
TEST(ShmRingTest, StressWriterAndReaderThreads) {
  Watchdog dog("ShmRing stress", absl::Seconds(120));
  constexpr uint64_t kRecords = 200000;
  TestRing t(4096);
  ShmRing w = t.Attach();
  ShmRing r = t.Attach();
  const size_t max_len = 300;
  std::thread writer([&] {
    for (uint64_t i = 0; i < kRecords; ++i) {
      const std::string rec = RingRecord(i, max_len);
      while (w.TryWrite(rec) != RingWrite::kOk) {
        ASSERT_TRUE(w.WaitWritable(rec.size(), absl::Now() + absl::Seconds(60))) << i;
      }
    }
    w.CloseWriter();
  });
  std::string out;
  uint64_t next = 0;
  while (!r.Drained()) {
    absl::StatusOr<bool> got = r.TryRead(out);
    ASSERT_TRUE(got.ok()) << got.status();
    if (!*got) {
      ASSERT_TRUE(r.WaitReadable(absl::Now() + absl::Seconds(60)));
      continue;
    }
    ASSERT_EQ(CheckRingRecord(out, max_len), static_cast<int64_t>(next));
    ++next;
  }
  writer.join();
  EXPECT_EQ(next, kRecords);
}

// A hostile writer: valid records, then random bytes anywhere in the
// mapping's record space and the writer's cursor. Every read either returns
// a record no longer than the limit, or nothing, or DataLoss (then always
// DataLoss); it never reads out of bounds (ASan) and a bounded number of
// reads empties the ring.
TEST(ShmRingTest, HostileWriterGivesDataLossNeverACrash) {
  Watchdog dog("ShmRing hostile", absl::Seconds(120));
  std::mt19937_64 rng(12345);
  int data_loss = 0;
  for (int round = 0; round < 3000; ++round) {
    TestRing t(1024);
    ShmRing w = t.Attach();
    ShmRing r = t.Attach();
    const int valid = static_cast<int>(rng() % 8);
    for (int i = 0; i < valid; ++i) {
      (void)w.TryWrite(RingRecord(rng() % 1000, w.max_record()));
    }
    std::span<std::byte> bytes = w.RecordsForTesting();
    switch (round % 4) {
      case 0:  // flip bits
        for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
          bytes[rng() % bytes.size()] ^= std::byte{static_cast<uint8_t>(1u << (rng() % 8))};
        }
        break;
      case 1:  // random bytes, random cursor
        for (auto& b : bytes) b = std::byte{static_cast<uint8_t>(rng())};
        w.HeaderForTesting().tail.store(rng(), std::memory_order_relaxed);
        break;
      case 2:  // a cursor that claims more than was written
        w.HeaderForTesting().tail.fetch_add(8 * (1 + rng() % 200), std::memory_order_relaxed);
        break;
      case 3: {  // a forged header: huge length or an unknown tag
        ShmRecordHeader forged{static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng() % 4)};
        std::memcpy(bytes.data(), &forged, sizeof(forged));
        if (w.HeaderForTesting().tail.load() == 0) w.HeaderForTesting().tail.store(64);
        break;
      }
    }
    std::string out;
    bool poisoned = false;
    for (size_t reads = 0;; ++reads) {
      ASSERT_LE(reads, r.capacity() / 8 + 1) << "round " << round << ": the reader loops";
      absl::StatusOr<bool> got = r.TryRead(out);
      if (!got.ok()) {
        EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
        poisoned = true;
        ++data_loss;
        // Stays poisoned.
        EXPECT_EQ(r.TryRead(out).status().code(), absl::StatusCode::kDataLoss);
        break;
      }
      if (!*got) break;
      ASSERT_LE(out.size(), r.max_record());
    }
    (void)poisoned;
  }
  EXPECT_GT(data_loss, 500);  // the corruptions were noticed, not read as data
}

// Named checks of the reader's validation, each with its message.
TEST(ShmRingTest, CorruptRecordsNameWhatIsWrong) {
  const auto check = [](auto corrupt, absl::string_view expected) {
    TestRing t(1024);
    ShmRing w = t.Attach();
    ShmRing r = t.Attach();
    ASSERT_EQ(w.TryWrite(std::string(40, 'q')), RingWrite::kOk);
    corrupt(w);
    std::string out;
    absl::StatusOr<bool> got = r.TryRead(out);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(got.status().message().find(expected), std::string::npos) << got.status();
  };
  check(
      [](ShmRing& w) {
        ShmRecordHeader h{40, 7};
        std::memcpy(w.RecordsForTesting().data(), &h, sizeof(h));
      },
      "unknown record tag 7");
  check(
      [](ShmRing& w) {
        ShmRecordHeader h{1u << 30, ShmRing::kData};
        std::memcpy(w.RecordsForTesting().data(), &h, sizeof(h));
      },
      "exceeds the ring's limit");
  check([](ShmRing& w) { w.HeaderForTesting().tail.store(1u << 20); }, "bytes past the reader's");
  check(
      [](ShmRing& w) {
        ShmRecordHeader h{200, ShmRing::kData};  // longer than the 48 published bytes
        std::memcpy(w.RecordsForTesting().data(), &h, sizeof(h));
      },
      "runs past the published bytes");
  check(
      [](ShmRing& w) {
        ShmRecordHeader h{16, ShmRing::kPad};
        std::memcpy(w.RecordsForTesting().data(), &h, sizeof(h));
      },
      "padding record");
}

// A hostile reader process can overwrite the reader's cursor: the writer
// then refuses (kCorrupt for a cursor off a record boundary, kFull for one
// that claims more than was written, once it reloads the cursor) and never
// writes outside the ring.
TEST(ShmRingTest, HostileReaderCursorNeverMakesTheWriterOverrun) {
  std::mt19937_64 rng(99);
  for (int round = 0; round < 2000; ++round) {
    TestRing t(1024);
    ShmRing w = t.Attach();
    for (int i = 0; i < static_cast<int>(rng() % 6); ++i) (void)w.TryWrite(std::string(rng() % 200, 'w'));
    const uint64_t head = round % 2 == 0 ? rng() : (rng() % 4096);
    w.HeaderForTesting().head.store(head, std::memory_order_relaxed);
    // The writer reloads the reader's cursor once its cached copy shows no
    // room; from then on it refuses.
    RingWrite result = RingWrite::kOk;
    for (int i = 0; i < 100 && result == RingWrite::kOk; ++i) {
      result = w.TryWrite(std::string(rng() % w.max_record(), 'v'));
    }
    EXPECT_EQ(result, head % 8 != 0 ? RingWrite::kCorrupt : RingWrite::kFull) << head;
    (void)w.WaitWritable(8, absl::Now());  // a check, never a sleep past the deadline
  }
}

// A writer process SIGKILLed at every step of the record protocol, at a
// random record: the reader gets exactly the records published before the
// death, each intact, in order — never a partial record, never DataLoss —
// and the ring stays readable.
TEST(ShmRingTest, WriterKilledAtAnyStepLosesOnlyItsRecord) {
  Watchdog dog("ShmRing writer kill loop", absl::Seconds(240));
  std::mt19937 rng(7);
  constexpr int kIterations = 100;
  constexpr uint64_t kCount = 400;
  constexpr size_t kMaxLen = 200;
  for (int it = 0; it < kIterations; ++it) {
    TestRing t(4096);  // small: the writer wraps and waits for room
    ShmRing r = t.Attach();
    const int step = it % 4;
    const uint64_t index = rng() % kCount;
    auto child = Subprocess::Spawn(
        HelperPath("tests/runtime/shm_ring_helper"),
        {"write", InheritableFd(t.buffer), absl::StrCat(kCount), absl::StrCat(kMaxLen),
         absl::StrCat(step), absl::StrCat(index)});
    ASSERT_TRUE(child.ok()) << child.status();
    std::string out;
    uint64_t next = 0;
    std::optional<int> code;
    for (;;) {
      absl::StatusOr<bool> got = r.TryRead(out);
      ASSERT_TRUE(got.ok()) << "iteration " << it << ": " << got.status();
      if (*got) {
        ASSERT_EQ(CheckRingRecord(out, kMaxLen), static_cast<int64_t>(next)) << it;
        ++next;
        continue;
      }
      if (code.has_value()) break;  // dead, and everything it published was read
      code = child->TryWait();
      if (!code.has_value()) (void)r.WaitReadable(absl::Now() + absl::Milliseconds(5));
    }
    EXPECT_EQ(*code, 128 + SIGKILL) << it;
    // Killed before publishing record `index`: exactly the records before it;
    // after publishing (kPublished), that record too.
    EXPECT_EQ(next, step == static_cast<int>(ShmWriteStep::kPublished) ? index + 1 : index)
        << "iteration " << it << ", step " << step;
    EXPECT_FALSE(r.Drained());  // died without closing: the port layer learns it from the pid
  }
}

// A reader process SIGKILLed between records: the ring's head is at a record
// boundary, so a new reader continues with the next record — none lost,
// none twice — and the writer never blocks for good.
TEST(ShmRingTest, ReaderKilledMidStreamLeavesTheRestReadable) {
  Watchdog dog("ShmRing reader kill loop", absl::Seconds(240));
  std::mt19937 rng(11);
  constexpr int kIterations = 100;
  constexpr uint64_t kCount = 300;
  constexpr size_t kMaxLen = 200;
  for (int it = 0; it < kIterations; ++it) {
    TestRing t(4096);
    ShmRing w = t.Attach();
    const uint64_t kill_after = rng() % kCount;
    auto child = Subprocess::Spawn(HelperPath("tests/runtime/shm_ring_helper"),
                                   {"read", InheritableFd(t.buffer), absl::StrCat(kCount),
                                    absl::StrCat(kMaxLen), absl::StrCat(kill_after)});
    ASSERT_TRUE(child.ok()) << child.status();
    uint64_t written = 0;
    std::optional<int> code;
    while (written < kCount) {
      const std::string rec = RingRecord(written, kMaxLen);
      if (w.TryWrite(rec) == RingWrite::kOk) {
        ++written;
        continue;
      }
      code = child->TryWait();
      if (code.has_value()) break;  // the reader died: the ring stays full
      (void)w.WaitWritable(rec.size(), absl::Now() + absl::Milliseconds(5));
    }
    if (!code.has_value()) code = child->Wait(absl::Seconds(60)).value();
    ASSERT_EQ(*code, 128 + SIGKILL) << it;
    // A replacement reader resumes at record kill_after + 1.
    ShmRing r = t.Attach();
    std::string out;
    uint64_t next = kill_after + 1;
    while (next < kCount) {
      if (!ReadOne(r, out)) {
        ASSERT_LT(written, kCount);  // more to write now that there is room
        const std::string rec = RingRecord(written, kMaxLen);
        ASSERT_EQ(w.TryWrite(rec), RingWrite::kOk);
        ++written;
        continue;
      }
      ASSERT_EQ(CheckRingRecord(out, kMaxLen), static_cast<int64_t>(next)) << it;
      ++next;
    }
  }
}

}  // namespace
}  // namespace wharf::runtime_internal
