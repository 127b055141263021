// Cross-process messaging: Wharf's shared-memory ring (the lane a
// cross-process port is built from, runtime/internal/shm_ring.h) against the
// channels a user would otherwise pick between processes, in one binary:
//
//   BM_PingPong/<peer>   one iteration = one round trip of an 8-byte message
//                        between two pinned sides (bench/ping_pong.h); the
//                        partner is a forked process unless named _threads.
//     wharf_port_threads   MessagePort between two threads (PostMessage +
//                          Receive, as port_bench's wharf_port): the
//                          in-process reference.
//     shm_ring_threads / shm_ring_processes
//                          two ShmRings (one per direction) in a shared
//                          mapping; the receiver spins up to 20 µs on the
//                          ring (as MessagePort::Receive does), then sleeps
//                          on the ring's event count.
//     pipe, eventfd, socketpair
//                          blocking read/write of 8 bytes, one pair per
//                          direction (a unix stream socketpair: one).
//     boost_message_queue  boost::interprocess::message_queue (a named
//                          segment; blocking send/receive).
//   BM_Throughput/<peer> one-way, 8-byte messages, process to process; the
//                        items/s counter is the figure. Window: the whole
//                        ring (64 KiB) or the queue's 4096 messages.
//   BM_Throughput4K/<peer>  the same with 4 KiB messages (bytes/s), beside a
//                        4 KiB memcpy in one process.
//
// Core count: every figure in docs/benchmarks.md names it (2 on the
// development VM); both sides are pinned to the first two allowed CPUs.

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/ping_pong.h"
#include "bench/port_ping_pong.h"
#include "benchmark/benchmark.h"
#include "boost/interprocess/ipc/message_queue.hpp"
#include "wharf/runtime/internal/shm_ring.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/internal/spin.h"

namespace {

using wharf::runtime_internal::RingWrite;
using wharf::runtime_internal::ShmRing;

constexpr int64_t kStop = -1;
constexpr size_t kRingCapacity = 64 * 1024;

// --- MessagePort between threads (the reference) -----------------------------

void BM_PingPong_PortThreads(benchmark::State& state) { wharf_bench::PortPingPongThreads(state); }
BENCHMARK(BM_PingPong_PortThreads)->Name("BM_PingPong/wharf_port_threads")->UseRealTime();

// --- ShmRing ------------------------------------------------------------------

struct RingShared {
  RingShared() {
    (void)ShmRing::Init(to_pong, sizeof(to_pong));
    (void)ShmRing::Init(to_ping, sizeof(to_ping));
  }
  alignas(64) int32_t pong_ready = 0;
  alignas(64) std::byte to_pong[ShmRing::BytesFor(kRingCapacity)];
  alignas(64) std::byte to_ping[ShmRing::BytesFor(kRingCapacity)];
};

ShmRing Attach(std::byte* memory, size_t bytes) { return ShmRing::Attach(memory, bytes).value(); }

// Writes one record, waiting for room; false when the ring closed or broke.
bool Write(ShmRing& ring, std::string_view bytes) {
  for (;;) {
    const RingWrite w = ring.TryWrite(bytes);
    if (w == RingWrite::kOk) return true;
    if (w != RingWrite::kFull || !ring.WaitWritable(bytes.size(), absl::InfiniteFuture())) {
      return false;
    }
  }
}

bool Send(ShmRing& ring, int64_t v) {
  return Write(ring, std::string_view(reinterpret_cast<const char*>(&v), sizeof(v)));
}

// The next message, spinning up to 20 µs before sleeping (MessagePort's
// Receive policy); false when the ring closed or broke.
bool Receive(ShmRing& ring, std::string& out) {
  for (;;) {
    absl::StatusOr<bool> got = ring.TryRead(out);
    if (!got.ok()) return false;
    if (*got) return true;
    if (ring.Drained()) return false;
    if (!wharf::sync_internal::SpinFor(absl::Microseconds(20), absl::InfiniteFuture(),
                                       [&] { return ring.Readable(); })) {
      ring.WaitReadable(absl::InfiniteFuture());
    }
  }
}

int64_t AsInt(const std::string& s) {
  int64_t v = 0;
  if (s.size() == sizeof(v)) std::memcpy(&v, s.data(), sizeof(v));
  return v;
}

void RingPing(benchmark::State& st, RingShared& s) {
  ShmRing out = Attach(s.to_pong, sizeof(s.to_pong));
  ShmRing in = Attach(s.to_ping, sizeof(s.to_ping));
  std::string msg;
  int64_t i = 0;
  for (auto _ : st) {
    if (!Send(out, ++i) || !Receive(in, msg) || AsInt(msg) != i) {
      st.SkipWithError("ring round trip failed");
      break;
    }
  }
  (void)Send(out, kStop);
}

void RingPong(RingShared& s) {
  ShmRing in = Attach(s.to_pong, sizeof(s.to_pong));
  ShmRing out = Attach(s.to_ping, sizeof(s.to_ping));
  std::string msg;
  while (Receive(in, msg)) {
    const int64_t v = AsInt(msg);
    if (v == kStop || !Send(out, v)) return;
  }
}

void BM_PingPong_RingThreads(benchmark::State& state) {
  wharf_bench::PingPongThreads<RingShared>(state, RingPing, RingPong);
}
void BM_PingPong_RingProcesses(benchmark::State& state) {
  wharf_bench::PingPongProcesses<RingShared>(state, RingPing, RingPong);
}
BENCHMARK(BM_PingPong_RingThreads)->Name("BM_PingPong/shm_ring_threads")->UseRealTime();
BENCHMARK(BM_PingPong_RingProcesses)->Name("BM_PingPong/shm_ring_processes")->UseRealTime();

// --- File-descriptor peers ------------------------------------------------------

enum class FdKind { kPipe, kEventfd, kSocketpair };

// Opened in the constructor, before the fork: both processes inherit the
// same descriptor numbers. Closed by the parent's destructor.
template <FdKind kKind>
struct FdShared {
  FdShared() {
    switch (kKind) {
      case FdKind::kPipe:
        ok = pipe(to_pong) == 0 && pipe(to_ping) == 0;
        break;
      case FdKind::kEventfd:  // one counter per direction: read takes it all
        to_pong[0] = to_pong[1] = eventfd(0, 0);
        to_ping[0] = to_ping[1] = eventfd(0, 0);
        ok = to_pong[0] >= 0 && to_ping[0] >= 0;
        break;
      case FdKind::kSocketpair: {
        int sv[2];
        ok = socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0;
        to_pong[1] = to_ping[0] = sv[0];  // ping's end
        to_pong[0] = to_ping[1] = sv[1];  // pong's end
        break;
      }
    }
  }
  ~FdShared() {
    for (int fd : {to_pong[0], to_pong[1], to_ping[0], to_ping[1]}) {
      if (fd >= 0) close(fd);  // a shared number closes twice: EBADF, harmless
    }
  }
  int to_pong[2] = {-1, -1};  // [0] pong reads, [1] ping writes
  int to_ping[2] = {-1, -1};  // [0] ping reads, [1] pong writes
  bool ok = false;
  alignas(64) int32_t pong_ready = 0;
};

// 8 bytes each way; an eventfd carries a counter, so the value sent is >= 1.
bool WriteAll(int fd, int64_t v) { return write(fd, &v, sizeof(v)) == sizeof(v); }
bool ReadAll(int fd, int64_t& v) { return read(fd, &v, sizeof(v)) == sizeof(v); }

template <FdKind kKind>
void BM_PingPong_Fd(benchmark::State& state) {
  constexpr int64_t kFdStop = int64_t{1} << 40;  // eventfd: no negative values
  wharf_bench::PingPongProcesses<FdShared<kKind>>(
      state,
      [](benchmark::State& st, FdShared<kKind>& s) {
        if (!s.ok) {
          st.SkipWithError("opening the descriptors failed");
          return;
        }
        int64_t i = 0;
        int64_t back = 0;
        for (auto _ : st) {
          ++i;
          if (!WriteAll(s.to_pong[1], i) || !ReadAll(s.to_ping[0], back)) {
            st.SkipWithError("fd round trip failed");
            break;
          }
        }
        (void)WriteAll(s.to_pong[1], kFdStop);
      },
      [](FdShared<kKind>& s) {
        int64_t v = 0;
        while (s.ok && ReadAll(s.to_pong[0], v) && v != kFdStop) {
          if (!WriteAll(s.to_ping[1], v)) return;
        }
      });
}
BENCHMARK(BM_PingPong_Fd<FdKind::kPipe>)->Name("BM_PingPong/pipe")->UseRealTime();
BENCHMARK(BM_PingPong_Fd<FdKind::kEventfd>)->Name("BM_PingPong/eventfd")->UseRealTime();
BENCHMARK(BM_PingPong_Fd<FdKind::kSocketpair>)->Name("BM_PingPong/socketpair")->UseRealTime();

// --- boost::interprocess::message_queue ------------------------------------------

namespace bip = boost::interprocess;

std::string QueueName(const char* what) {
  return absl::StrCat("wharf_bench_mq_", what, "_", getpid());
}

// Names made in the constructor (before the fork), removed by the parent's
// destructor; each process opens its own handles.
template <size_t kMsgBytes>
struct QueueShared {
  QueueShared() {
    std::snprintf(to_pong, sizeof(to_pong), "%s", QueueName("to_pong").c_str());
    std::snprintf(to_ping, sizeof(to_ping), "%s", QueueName("to_ping").c_str());
    bip::message_queue::remove(to_pong);
    bip::message_queue::remove(to_ping);
    try {
      bip::message_queue a(bip::create_only, to_pong, 4096, kMsgBytes);
      bip::message_queue b(bip::create_only, to_ping, 4096, sizeof(int64_t));
      ok = true;
    } catch (const bip::interprocess_exception&) {
      ok = false;
    }
  }
  ~QueueShared() {
    bip::message_queue::remove(to_pong);
    bip::message_queue::remove(to_ping);
  }
  char to_pong[64];
  char to_ping[64];
  bool ok = false;
  alignas(64) int32_t pong_ready = 0;
};

// Receives one message into `buf` (at least the queue's message size) and
// returns its first 8 bytes.
int64_t QueueReceive(bip::message_queue& q, void* buf, size_t size) {
  size_t got = 0;
  unsigned prio = 0;
  q.receive(buf, size, got, prio);
  int64_t v = 0;
  std::memcpy(&v, buf, sizeof(v));
  return v;
}
int64_t QueueReceive(bip::message_queue& q) {
  int64_t v = 0;
  return QueueReceive(q, &v, sizeof(v));
}

void BM_PingPong_MessageQueue(benchmark::State& state) {
  wharf_bench::PingPongProcesses<QueueShared<8>>(
      state,
      [](benchmark::State& st, QueueShared<8>& s) {
        if (!s.ok) {
          st.SkipWithError("creating the message queues failed");
          return;
        }
        bip::message_queue out(bip::open_only, s.to_pong);
        bip::message_queue in(bip::open_only, s.to_ping);
        int64_t i = 0;
        for (auto _ : st) {
          ++i;
          out.send(&i, sizeof(i), 0);
          benchmark::DoNotOptimize(QueueReceive(in));
        }
        out.send(&kStop, sizeof(kStop), 0);
      },
      [](QueueShared<8>& s) {
        if (!s.ok) return;
        bip::message_queue in(bip::open_only, s.to_pong);
        bip::message_queue out(bip::open_only, s.to_ping);
        for (;;) {
          const int64_t v = QueueReceive(in);
          if (v == kStop) return;
          out.send(&v, sizeof(v), 0);
        }
      });
}
BENCHMARK(BM_PingPong_MessageQueue)->Name("BM_PingPong/boost_message_queue")->UseRealTime();

// --- One-way throughput, process to process -------------------------------------

// The consumer counts what it got and reports the total back (ack), so the
// timed region ends only when every message was received.
struct RingStream : RingShared {
};

template <size_t kBytes>
void BM_Throughput_Ring(benchmark::State& state) {
  wharf_bench::PingPongProcesses<RingStream>(
      state,
      [](benchmark::State& st, RingStream& s) {
        ShmRing out = Attach(s.to_pong, sizeof(s.to_pong));
        ShmRing acks = Attach(s.to_ping, sizeof(s.to_ping));
        std::string payload(kBytes, 'p');
        int64_t sent = 0;
        for (auto _ : st) {
          std::memcpy(payload.data(), &sent, sizeof(sent));
          if (!Write(out, payload)) {
            st.SkipWithError("ring write failed");
            return;
          }
          ++sent;
        }
        int64_t stop = kStop;
        std::memcpy(payload.data(), &stop, sizeof(stop));
        if (!Write(out, payload)) st.SkipWithError("ring write failed");
        std::string ack;
        if (!Receive(acks, ack) || AsInt(ack) != sent) st.SkipWithError("messages were lost");
        st.SetItemsProcessed(sent);
        st.SetBytesProcessed(sent * static_cast<int64_t>(kBytes));
      },
      [](RingStream& s) {
        ShmRing in = Attach(s.to_pong, sizeof(s.to_pong));
        ShmRing acks = Attach(s.to_ping, sizeof(s.to_ping));
        std::string msg;
        int64_t n = 0;
        while (Receive(in, msg)) {
          int64_t v = 0;
          std::memcpy(&v, msg.data(), sizeof(v));
          if (v == kStop) break;
          ++n;
        }
        (void)Send(acks, n);
      });
}
BENCHMARK(BM_Throughput_Ring<8>)->Name("BM_Throughput/shm_ring")->UseRealTime();
BENCHMARK(BM_Throughput_Ring<4096>)->Name("BM_Throughput4K/shm_ring")->UseRealTime();

template <size_t kBytes>
void BM_Throughput_MessageQueue(benchmark::State& state) {
  wharf_bench::PingPongProcesses<QueueShared<kBytes>>(
      state,
      [](benchmark::State& st, QueueShared<kBytes>& s) {
        if (!s.ok) {
          st.SkipWithError("creating the message queues failed");
          return;
        }
        bip::message_queue out(bip::open_only, s.to_pong);
        bip::message_queue acks(bip::open_only, s.to_ping);
        std::string payload(kBytes, 'p');
        int64_t sent = 0;
        for (auto _ : st) {
          std::memcpy(payload.data(), &sent, sizeof(sent));
          out.send(payload.data(), payload.size(), 0);
          ++sent;
        }
        std::memcpy(payload.data(), &kStop, sizeof(kStop));
        out.send(payload.data(), payload.size(), 0);
        if (QueueReceive(acks) != sent) st.SkipWithError("messages were lost");
        st.SetItemsProcessed(sent);
        st.SetBytesProcessed(sent * static_cast<int64_t>(kBytes));
      },
      [](QueueShared<kBytes>& s) {
        if (!s.ok) return;
        bip::message_queue in(bip::open_only, s.to_pong);
        bip::message_queue acks(bip::open_only, s.to_ping);
        std::string buf(kBytes, '\0');
        int64_t n = 0;
        while (QueueReceive(in, buf.data(), buf.size()) != kStop) ++n;
        acks.send(&n, sizeof(n), 0);
      });
}
BENCHMARK(BM_Throughput_MessageQueue<8>)->Name("BM_Throughput/boost_message_queue")->UseRealTime();
BENCHMARK(BM_Throughput_MessageQueue<4096>)
    ->Name("BM_Throughput4K/boost_message_queue")
    ->UseRealTime();

// The floor for 4 KiB messages: one copy of 4 KiB in one process.
void BM_Throughput4K_Memcpy(benchmark::State& state) {
  std::string from(4096, 'm');
  std::string to(4096, '\0');
  for (auto _ : state) {
    std::memcpy(to.data(), from.data(), from.size());
    benchmark::DoNotOptimize(to.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * 4096);
}
BENCHMARK(BM_Throughput4K_Memcpy)->Name("BM_Throughput4K/memcpy");

}  // namespace
