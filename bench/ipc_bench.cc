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
//   wharf_port_processes (in BM_PingPong and BM_Throughput): MessagePorts
//                        over a shared-memory link (ShmChannel) in two
//                        processes — the full port path: encode, ring,
//                        decode; blocking Receive on both sides.
//   BM_HandOver64M/<how> 64 MiB to another process and an 8-byte ack back:
//                        shared_buffer (a SharedBuffer in the message: its
//                        memfd crosses, nothing is copied),
//                        transferred_shared_memory_buffer (a Buffer from
//                        Buffer::AllocateShared, moved: its memory crosses,
//                        the sender is left detached) or copied_buffer (a
//                        heap Buffer: out of line, copied in and out);
//                        _touched: the receiver also reads every byte (so
//                        the page faults of a fresh mapping show).
//   BM_LoopPingPong/worker_<isolation>
//                        the owner's EventLoop and a Worker, OnMessage
//                        handlers on both sides (the path users write):
//                        the owner posts i, the worker echoes, the owner's
//                        handler posts i+1; one iteration = one round trip.
//   BM_IdleWorker/process  a process worker with an OnMessage handler and
//                        nothing to do: its CPU time per 100 ms (the bounded
//                        spin, then sleep: it should be ~0).
//   BM_WorkerStart/<isolation>_online|_first_reply  Worker::Start until
//                        OnOnline / until the first message from the worker
//                        arrives, beside BM_WorkerStart/posix_spawn_bin_true
//                        (posix_spawn + waitpid of /bin/true).
//
// Core count: every figure in docs/benchmarks.md names it (2 on the
// development VM); both sides are pinned to the first two allowed CPUs.

#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/ping_pong.h"
#include "bench/port_ping_pong.h"
#include "benchmark/benchmark.h"
#include "boost/interprocess/ipc/message_queue.hpp"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/init_process.h"
#include "wharf/runtime/internal/port_access.h"
#include "wharf/runtime/internal/shm_channel.h"
#include "wharf/runtime/internal/shm_link.h"
#include "wharf/runtime/internal/shm_ring.h"
#include "wharf/runtime/worker.h"
#include "wharf/sync/shared_buffer.h"
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


// --- MessagePorts between two processes (ShmChannel) ----------------------------

// Both processes' ports over one link made before the fork (its memfd and
// socket are inherited); each side opens its end after the fork.
struct LinkShared {
  alignas(64) int32_t pong_ready = 0;
};

wharf::MessagePort PortOn(const std::shared_ptr<wharf::runtime_internal::ShmLink>& link, int end) {
  return wharf::runtime_internal::PortAccess::OverLink(
      wharf::runtime_internal::ShmChannelEnd::Open(link, end).value(), wharf::PortOptions{});
}

void BM_PingPong_PortProcesses(benchmark::State& state) {
  auto link = wharf::runtime_internal::ShmLink::Create().value();
  wharf_bench::PingPongProcesses<LinkShared>(
      state,
      [&link](benchmark::State& st, LinkShared&) {
        wharf::MessagePort port = PortOn(link, 0);
        int64_t i = 0;
        for (auto _ : st) {
          if (!port.PostMessage(wharf::Value(++i)).ok()) st.SkipWithError("post failed");
          auto r = port.Receive(absl::Seconds(10));
          if (!r.ok()) {
            st.SkipWithError("receive failed");
            break;
          }
          benchmark::DoNotOptimize(r);
        }
        (void)port.PostMessage(wharf::Value(kStop));
      },
      [&link](LinkShared&) {
        wharf::MessagePort port = PortOn(link, 1);
        for (;;) {
          auto r = port.Receive(absl::Seconds(10));
          if (!r.ok() || r->AsInt().value_or(kStop) == kStop) return;
          if (!port.PostMessage(*std::move(r)).ok()) return;
        }
      });
}
BENCHMARK(BM_PingPong_PortProcesses)->Name("BM_PingPong/wharf_port_processes")->UseRealTime();

template <size_t kBytes>
void BM_Throughput_PortProcesses(benchmark::State& state) {
  auto link = wharf::runtime_internal::ShmLink::Create().value();
  wharf_bench::PingPongProcesses<LinkShared>(
      state,
      [&link](benchmark::State& st, LinkShared&) {
        wharf::MessagePort port = PortOn(link, 0);
        int64_t sent = 0;
        const std::string payload(kBytes > 8 ? kBytes : 0, 'p');
        for (auto _ : st) {
          absl::Status s = kBytes > 8 ? port.PostMessage(wharf::Value(payload))
                                      : port.PostMessage(wharf::Value(sent));
          if (!s.ok()) {
            st.SkipWithError("post failed");
            return;
          }
          ++sent;
        }
        (void)port.PostMessage(wharf::Value(kStop));
        auto ack = port.Receive(absl::Seconds(30));
        if (!ack.ok() || ack->AsInt().value_or(-2) != sent) st.SkipWithError("messages were lost");
        st.SetItemsProcessed(sent);
        st.SetBytesProcessed(sent * static_cast<int64_t>(kBytes));
      },
      [&link](LinkShared&) {
        wharf::MessagePort port = PortOn(link, 1);
        int64_t n = 0;
        for (;;) {
          auto r = port.Receive(absl::Seconds(30));
          if (!r.ok()) return;
          if (r->IsInt() && *r->AsInt() == kStop) break;
          ++n;
        }
        (void)port.PostMessage(wharf::Value(n));
      });
}
BENCHMARK(BM_Throughput_PortProcesses<8>)->Name("BM_Throughput/wharf_port_processes")->UseRealTime();
BENCHMARK(BM_Throughput_PortProcesses<4096>)
    ->Name("BM_Throughput4K/wharf_port_processes")
    ->UseRealTime();

// 64 MiB to another process: one iteration = the message there and an ack back.
enum class HandOver { kSharedBuffer, kCopiedBuffer, kTransferredBuffer };

// shared_buffer / copied_buffer: one iteration = the 64 MiB there and an
// 8-byte ack back. transferred_shared_memory_buffer: the same Buffer goes
// there and comes back (two transfers per iteration, the memory changing
// owner each time), so no 64 MiB is allocated or freed in the loop.
template <HandOver kHow, bool kTouch>
void BM_HandOver64M(benchmark::State& state) {
  constexpr size_t kSize = size_t{64} << 20;
  auto link = wharf::runtime_internal::ShmLink::Create().value();
  wharf_bench::PingPongProcesses<LinkShared>(
      state,
      [&link](benchmark::State& st, LinkShared&) {
        wharf::MessagePort port = PortOn(link, 0);
        wharf::SharedBuffer sb = wharf::SharedBuffer::Create(kSize).value();
        std::memset(sb.data(), 1, kSize);
        wharf::Buffer mine;
        if (kHow == HandOver::kTransferredBuffer) {
          mine = wharf::Buffer::AllocateShared(kSize).value();
          std::memset(mine.data(), 1, kSize);
        }
        for (auto _ : st) {
          absl::Status s;
          if (kHow == HandOver::kSharedBuffer) {
            s = port.PostMessage(wharf::Value(sb));  // a handle: the memory is shared
          } else if (kHow == HandOver::kTransferredBuffer) {
            s = port.PostMessage(wharf::Value(std::move(mine)));  // moved: a transfer
          } else {
            st.PauseTiming();
            wharf::Buffer b = wharf::Buffer::Allocate(kSize).value();
            std::memset(b.data(), 1, kSize);
            st.ResumeTiming();
            s = port.PostMessage(wharf::Value(std::move(b)));
          }
          if (!s.ok()) {
            st.SkipWithError(std::string(s.message()).c_str());
            break;
          }
          auto reply = port.Receive(absl::Seconds(30));
          if (!reply.ok()) {
            st.SkipWithError(("no reply: " + reply.status().ToString()).c_str());
            break;
          }
          if (kHow == HandOver::kTransferredBuffer) {
            wharf::Buffer* back = reply->GetBuffer();
            if (back == nullptr || !back->shared() || back->size() != kSize) {
              st.SkipWithError("the Buffer did not come back in shared memory");
              break;
            }
            mine = std::move(*back);
          } else if (reply->AsInt().value_or(0) != static_cast<int64_t>(kSize)) {
            st.SkipWithError("no ack");
            break;
          }
        }
        (void)port.PostMessage(wharf::Value(kStop));
        st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kSize));
      },
      [&link](LinkShared&) {
        wharf::MessagePort port = PortOn(link, 1);
        for (;;) {
          auto r = port.Receive(absl::Seconds(30));
          if (!r.ok()) fprintf(stderr, "child: %s\n", r.status().ToString().c_str());
          if (!r.ok() || r->IsInt()) return;
          // Untouched: the hand-over only (a SharedBuffer's header is in its
          // mapping: even size() would fault its first page in).
          int64_t ack = static_cast<int64_t>(kSize);
          if (kTouch) {
            std::span<const std::byte> bytes;
            if (const wharf::SharedBuffer* sb = r->GetSharedBuffer()) bytes = sb->bytes();
            if (const wharf::Buffer* b = r->GetBuffer()) bytes = b->span();
            uint64_t sum = 0;
            for (size_t i = 0; i < bytes.size(); i += 64) sum += static_cast<uint8_t>(bytes[i]);
            benchmark::DoNotOptimize(sum);
            ack = static_cast<int64_t>(bytes.size());
          } else if (r->GetSharedBuffer() == nullptr && r->GetBuffer() == nullptr) {
            ack = -1;
          }
          if (kHow == HandOver::kTransferredBuffer) {
            if (absl::Status ps = port.PostMessage(*std::move(r)); !ps.ok()) {
              fprintf(stderr, "child post: %s\n", ps.ToString().c_str());
              return;
            }
            continue;
          }
          if (!port.PostMessage(wharf::Value(ack)).ok()) return;
        }
      });
}
BENCHMARK(BM_HandOver64M<HandOver::kSharedBuffer, false>)
    ->Name("BM_HandOver64M/shared_buffer")
    ->UseRealTime();
BENCHMARK(BM_HandOver64M<HandOver::kSharedBuffer, true>)
    ->Name("BM_HandOver64M/shared_buffer_touched")
    ->UseRealTime();
BENCHMARK(BM_HandOver64M<HandOver::kTransferredBuffer, false>)
    ->Name("BM_HandOver64M/transferred_shared_memory_buffer")
    ->UseRealTime();
BENCHMARK(BM_HandOver64M<HandOver::kTransferredBuffer, true>)
    ->Name("BM_HandOver64M/transferred_shared_memory_buffer_touched")
    ->UseRealTime();
BENCHMARK(BM_HandOver64M<HandOver::kCopiedBuffer, false>)
    ->Name("BM_HandOver64M/copied_buffer")
    ->UseRealTime();
BENCHMARK(BM_HandOver64M<HandOver::kCopiedBuffer, true>)
    ->Name("BM_HandOver64M/copied_buffer_touched")
    ->UseRealTime();

// --- Workers (these start threads: registered after every fork()-based one) ---

WHARF_WORKER_ENTRY(ipc_bench_echo) {
  ctx.parent_port().OnMessage([&ctx](wharf::Value v) {
    if (v.IsInt() && *v.AsInt() == kStop) {
      ctx.parent_port().Close();
      return;
    }
    (void)ctx.parent_port().PostMessage(std::move(v));
  });
}

// Posts its pid, then keeps an OnMessage handler (and so its loop) alive.
WHARF_WORKER_ENTRY(ipc_bench_idle) {
  (void)ctx.parent_port().PostMessage(wharf::Value(static_cast<int64_t>(::getpid())));
  ctx.parent_port().OnMessage([&ctx](wharf::Value) { ctx.parent_port().Close(); });
}

// Replies "up" at once, then ends.
WHARF_WORKER_ENTRY(ipc_bench_hello) {
  (void)ctx.parent_port().PostMessage(wharf::Value("up"));
  ctx.parent_port().Close();
}

template <wharf::Isolation kIsolation>
void BM_LoopPingPong_Worker(benchmark::State& state) {
  wharf::EventLoop loop;
  auto w = wharf::Worker::Start(
      "ipc_bench_echo", wharf::WorkerOptions{.loop = &loop, .isolation = kIsolation});
  if (!w.ok()) {
    state.SkipWithError(std::string(w.status().message()).c_str());
    return;
  }
  int64_t left = 0, next = 0;
  w->OnMessage([&](wharf::Value v) {
    if (v.AsInt().value_or(-1) != next) {
      left = 0;
      loop.Stop();
      return;
    }
    if (--left == 0) {
      loop.Stop();
      return;
    }
    (void)w->PostMessage(wharf::Value(++next));
  });
  while (state.KeepRunningBatch(state.max_iterations)) {
    left = static_cast<int64_t>(state.max_iterations);
    (void)w->PostMessage(wharf::Value(next));
    if (!loop.RunUntil(absl::Now() + absl::Seconds(60)) && left != 0) {
      // Stopped: fine. RunUntil returns true when stopped or ended.
    }
    if (left != 0) {
      state.SkipWithError("round trips were lost");
      break;
    }
    ++next;
  }
  (void)w->PostMessage(wharf::Value(kStop));
  loop.Run();
}
BENCHMARK(BM_LoopPingPong_Worker<wharf::Isolation::kThread>)
    ->Name("BM_LoopPingPong/worker_thread")
    ->UseRealTime();
BENCHMARK(BM_LoopPingPong_Worker<wharf::Isolation::kProcess>)
    ->Name("BM_LoopPingPong/worker_process")
    ->UseRealTime();

double ProcessCpuSeconds(pid_t pid) {
  clockid_t clock;
  timespec ts{};
  if (clock_getcpuclockid(pid, &clock) != 0 || clock_gettime(clock, &ts) != 0) return -1;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void BM_IdleWorker_Process(benchmark::State& state) {
  wharf::EventLoop loop;
  auto w = wharf::Worker::Start(
      "ipc_bench_idle",
      wharf::WorkerOptions{.loop = &loop, .isolation = wharf::Isolation::kProcess});
  if (!w.ok()) {
    state.SkipWithError(std::string(w.status().message()).c_str());
    return;
  }
  pid_t pid = 0;
  w->OnMessage([&](wharf::Value v) {
    pid = static_cast<pid_t>(v.AsInt().value_or(0));
    loop.Stop();
  });
  loop.RunUntil(absl::Now() + absl::Seconds(30));
  absl::SleepFor(absl::Milliseconds(50));  // past its start-up and spin
  const double start = ProcessCpuSeconds(pid);
  for (auto _ : state) absl::SleepFor(absl::Milliseconds(100));
  const double used = ProcessCpuSeconds(pid) - start;
  state.counters["worker_cpu_per_100ms_us"] =
      used * 1e6 / static_cast<double>(std::max<int64_t>(1, state.iterations()));
  (void)w->PostMessage(wharf::Value(1));
  loop.Run();
}
BENCHMARK(BM_IdleWorker_Process)->Name("BM_IdleWorker/process")->Iterations(10)->UseRealTime();

template <wharf::Isolation kIsolation, bool kToReply>
void BM_WorkerStart(benchmark::State& state) {
  for (auto _ : state) {
    wharf::EventLoop loop;
    auto w = wharf::Worker::Start(
        "ipc_bench_hello", wharf::WorkerOptions{.loop = &loop, .isolation = kIsolation});
    if (!w.ok()) {
      state.SkipWithError(std::string(w.status().message()).c_str());
      return;
    }
    bool done = false;
    if (kToReply) {
      w->OnMessage([&](wharf::Value) {
        done = true;
        loop.Stop();
      });
    } else {
      w->OnOnline([&] {
        done = true;
        loop.Stop();
      });
    }
    while (!done) loop.RunUntil(absl::Now() + absl::Seconds(30));
    state.PauseTiming();
    w->OnMessage(nullptr);
    loop.Run();  // the worker's end, untimed
    state.ResumeTiming();
  }
}
BENCHMARK(BM_WorkerStart<wharf::Isolation::kThread, false>)
    ->Name("BM_WorkerStart/thread_online")
    ->UseRealTime();
BENCHMARK(BM_WorkerStart<wharf::Isolation::kThread, true>)
    ->Name("BM_WorkerStart/thread_first_reply")
    ->UseRealTime();
BENCHMARK(BM_WorkerStart<wharf::Isolation::kProcess, false>)
    ->Name("BM_WorkerStart/process_online")
    ->UseRealTime();
BENCHMARK(BM_WorkerStart<wharf::Isolation::kProcess, true>)
    ->Name("BM_WorkerStart/process_first_reply")
    ->UseRealTime();

extern "C" char** environ;

void BM_WorkerStart_SpawnTrue(benchmark::State& state) {
  char arg0[] = "/bin/true";
  char* argv[] = {arg0, nullptr};
  for (auto _ : state) {
    pid_t pid;
    if (posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) {
      state.SkipWithError("posix_spawn failed");
      return;
    }
    int status;
    waitpid(pid, &status, 0);
  }
}
BENCHMARK(BM_WorkerStart_SpawnTrue)->Name("BM_WorkerStart/posix_spawn_bin_true")->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  wharf::InitProcess(argc, argv);  // this binary is also its own process workers
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
