// MessageChannel / MessagePort and Value codec microbenchmarks, with their
// peers in the same binary.
//
//   BM_PingPong/<peer>      one iteration = one round trip between two pinned
//                           threads (bench/ping_pong.h): ping sends i, pong
//                           echoes it. Peers: wharf_port (PostMessage(Value(i))
//                           + blocking Receive() on both sides), moodycamel
//                           (a pair of BlockingConcurrentQueue<int>, enqueue +
//                           wait_dequeue), moodycamel_value (the same pair
//                           carrying wharf::Value: what the element size
//                           costs), raw_futex_private (store + FUTEX_WAKE,
//                           FUTEX_WAIT loop) and pure_spin (the physical floor:
//                           no syscall at all).
//   BM_IdleReceiver/<peer>  one iteration = a receive on an empty queue with a
//                           100 ms timeout; counter cpu_us = CPU time of the
//                           waiting thread per wait (CLOCK_THREAD_CPUTIME_ID).
//   BM_Throughput/<peer>/<window>
//                           one iteration = one small message from a producer
//                           thread to the consumer (the timed thread), both
//                           pinned; items/s. window 0: the producer runs ahead
//                           without bound; 4096: it stays at most 4096 items
//                           ahead (credit from the consumer every 256), the
//                           steady state of a busy channel. wharf_port_receive:
//                           PostMessage(Value(i)) / Receive() (sleeps when
//                           empty, so the producer pays the wake-ups);
//                           wharf_port_tryreceive: TryReceive() polled;
//                           moodycamel: ConcurrentQueue<int> enqueue /
//                           try_dequeue polled; moodycamel_value: the same
//                           with wharf::Value elements; moodycamel_blocking:
//                           BlockingConcurrentQueue<int> / wait_dequeue.
//   BM_Buffer/<mode>/<size> a Buffer of `size` bytes in a map, posted and
//                           received on one thread: transfer (in the transfer
//                           list: moved) vs copy (structured clone). bytes/s.
//   BM_Codec/<op>/<value>   EncodeValue / DecodeValue of a map of 5 scalars, an
//                           array of 10^4 ints and 1 MiB of bytes; bytes/s of
//                           the encoded form.
//
// Every benchmark with a partner thread stops and joins it before returning.
// Results and commands: docs/benchmarks.md.

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "bench/ping_pong.h"
#include "bench/port_ping_pong.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/internal/spin.h"

namespace {

constexpr int kStop = -1;

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// --- 1. Ping-pong ---------------------------------------------------------

void BM_PingPong_Port(benchmark::State& state) { wharf_bench::PortPingPongThreads(state); }

struct QueueShared {
  moodycamel::BlockingConcurrentQueue<int> to_pong;
  moodycamel::BlockingConcurrentQueue<int> to_ping;
  alignas(64) int32_t pong_ready = 0;
};

void BM_PingPong_Moodycamel(benchmark::State& state) {
  wharf_bench::PingPongThreads<QueueShared>(
      state,
      [](benchmark::State& st, QueueShared& s) {
        moodycamel::ProducerToken tok(s.to_pong);
        int i = 0, got = 0;
        for (auto _ : st) {
          s.to_pong.enqueue(tok, ++i);
          s.to_ping.wait_dequeue(got);
          benchmark::DoNotOptimize(got);
        }
        s.to_pong.enqueue(tok, kStop);
      },
      [](QueueShared& s) {
        moodycamel::ProducerToken tok(s.to_ping);
        int v = 0;
        for (;;) {
          s.to_pong.wait_dequeue(v);
          if (v == kStop) return;
          s.to_ping.enqueue(tok, v);
        }
      });
}

struct QueueValueShared {
  moodycamel::BlockingConcurrentQueue<wharf::Value> to_pong;
  moodycamel::BlockingConcurrentQueue<wharf::Value> to_ping;
  alignas(64) int32_t pong_ready = 0;
};

void BM_PingPong_MoodycamelValue(benchmark::State& state) {
  wharf_bench::PingPongThreads<QueueValueShared>(
      state,
      [](benchmark::State& st, QueueValueShared& s) {
        int i = 0;
        wharf::Value got;
        for (auto _ : st) {
          s.to_pong.enqueue(wharf::Value(++i));
          s.to_ping.wait_dequeue(got);
          benchmark::DoNotOptimize(got);
        }
        s.to_pong.enqueue(wharf::Value(kStop));
      },
      [](QueueValueShared& s) {
        wharf::Value v;
        for (;;) {
          s.to_pong.wait_dequeue(v);
          if (*v.AsInt() == kStop) return;
          s.to_ping.enqueue(std::move(v));
        }
      });
}
BENCHMARK(BM_PingPong_MoodycamelValue)->Name("BM_PingPong/moodycamel_value")->UseRealTime();

struct alignas(64) Cell {
  int32_t value = 0;
};
struct CellShared {
  Cell ping;
  Cell pong;
  alignas(64) int32_t pong_ready = 0;
};

template <bool kSpin>
void Signal(Cell& c, int32_t v) {
  std::atomic_ref<int32_t>(c.value).store(v, std::memory_order_seq_cst);
  if (!kSpin) syscall(SYS_futex, &c.value, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, nullptr, nullptr, 0);
}
template <bool kSpin>
void WaitChange(Cell& c, int32_t old) {
  while (std::atomic_ref<int32_t>(c.value).load(std::memory_order_seq_cst) == old) {
    if (kSpin) {
      wharf::sync_internal::CpuRelax();
    } else {
      syscall(SYS_futex, &c.value, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, old, nullptr, nullptr, 0);
    }
  }
}

template <bool kSpin>
void BM_PingPong_Cell(benchmark::State& state) {
  wharf_bench::PingPongThreads<CellShared>(
      state,
      [](benchmark::State& st, CellShared& s) {
        int32_t i = 0;
        for (auto _ : st) {
          Signal<kSpin>(s.ping, ++i);
          WaitChange<kSpin>(s.pong, i - 1);
        }
        Signal<kSpin>(s.ping, kStop);
      },
      [](CellShared& s) {
        int32_t seen = 0;
        for (;;) {
          WaitChange<kSpin>(s.ping, seen);
          seen = std::atomic_ref<int32_t>(s.ping.value).load(std::memory_order_seq_cst);
          if (seen == kStop) return;
          Signal<kSpin>(s.pong, seen);
        }
      });
}

BENCHMARK(BM_PingPong_Port)->Name("BM_PingPong/wharf_port")->UseRealTime();
BENCHMARK(BM_PingPong_Moodycamel)->Name("BM_PingPong/moodycamel")->UseRealTime();
BENCHMARK(BM_PingPong_Cell<false>)->Name("BM_PingPong/raw_futex_private")->UseRealTime();
BENCHMARK(BM_PingPong_Cell<true>)->Name("BM_PingPong/pure_spin")->UseRealTime();

// --- Idle receiver --------------------------------------------------------

constexpr absl::Duration kIdle = absl::Milliseconds(100);

void BM_IdleReceiver_Port(benchmark::State& state) {
  auto [a, b] = wharf::MessageChannel::Create();
  double cpu = 0;
  for (auto _ : state) {
    const double t0 = ThreadCpuSeconds();
    auto r = b.Receive(kIdle);
    cpu += ThreadCpuSeconds() - t0;
    if (r.ok() || !absl::IsDeadlineExceeded(r.status())) state.SkipWithError("unexpected message");
  }
  state.counters["cpu_us"] = benchmark::Counter(cpu * 1e6, benchmark::Counter::kAvgIterations);
}

void BM_IdleReceiver_Moodycamel(benchmark::State& state) {
  moodycamel::BlockingConcurrentQueue<int> q;
  double cpu = 0;
  int v = 0;
  for (auto _ : state) {
    const double t0 = ThreadCpuSeconds();
    const bool got = q.wait_dequeue_timed(v, absl::ToInt64Microseconds(kIdle));
    cpu += ThreadCpuSeconds() - t0;
    if (got) state.SkipWithError("unexpected item");
  }
  state.counters["cpu_us"] = benchmark::Counter(cpu * 1e6, benchmark::Counter::kAvgIterations);
}

void BM_IdleReceiver_Futex(benchmark::State& state) {
  int32_t cell = 0;
  double cpu = 0;
  for (auto _ : state) {
    const double t0 = ThreadCpuSeconds();
    const timespec ts = absl::ToTimespec(kIdle);
    syscall(SYS_futex, &cell, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0, &ts, nullptr, 0);
    cpu += ThreadCpuSeconds() - t0;
  }
  state.counters["cpu_us"] = benchmark::Counter(cpu * 1e6, benchmark::Counter::kAvgIterations);
}

BENCHMARK(BM_IdleReceiver_Port)->Name("BM_IdleReceiver/wharf_port")->UseRealTime()->Iterations(3);
BENCHMARK(BM_IdleReceiver_Moodycamel)->Name("BM_IdleReceiver/moodycamel")->UseRealTime()->Iterations(3);
BENCHMARK(BM_IdleReceiver_Futex)->Name("BM_IdleReceiver/raw_futex_private")->UseRealTime()->Iterations(3);

// --- 2. One-way throughput ------------------------------------------------
// The producer sends exactly state.max_iterations items (fixed below, which
// also bounds the queue's growth when the producer runs ahead) after the
// consumer says go; the consumer takes one per iteration.

constexpr int64_t kThroughputItems = int64_t{1} << 21;

template <class Channel>
struct ThroughputShared {
  Channel ch;
  alignas(64) std::atomic<bool> go{false};
  alignas(64) std::atomic<int64_t> consumed{0};
  alignas(64) int32_t pong_ready = 0;
};

struct PortPair {
  PortPair() {
    auto [a, b] = wharf::MessageChannel::Create();
    tx = std::move(a);
    rx = std::move(b);
  }
  wharf::MessagePort tx, rx;
};

template <class Channel, class Produce, class Consume>
void Throughput(benchmark::State& state, Produce produce, Consume consume) {
  const int64_t n = state.max_iterations;
  // range(0) = window: 0 lets the producer run ahead without bound (the
  // queue's memory grows, and first-touch page faults of that memory weigh
  // in); W keeps it at most W items ahead of the consumer, which reports
  // progress every kCredit items — the steady state of a busy channel.
  const int64_t window = state.range(0);
  constexpr int64_t kCredit = 256;
  using Shared = ThroughputShared<Channel>;
  wharf_bench::PingPongThreads<Shared>(
      state,
      [consume](benchmark::State& st, Shared& s) {
        s.go.store(true, std::memory_order_release);
        int64_t taken = 0;
        for (auto _ : st) {
          if (!consume(s.ch)) {
            st.SkipWithError("receive failed");
            break;
          }
          if (++taken % kCredit == 0) s.consumed.store(taken, std::memory_order_release);
        }
      },
      [produce, n, window](Shared& s) {
        while (!s.go.load(std::memory_order_acquire)) wharf::sync_internal::CpuRelax();
        for (int64_t i = 0; i < n; ++i) {
          if (window != 0) {
            while (i - s.consumed.load(std::memory_order_acquire) >= window) {
              wharf::sync_internal::CpuRelax();
            }
          }
          produce(s.ch, i);
        }
      });
  state.SetItemsProcessed(state.iterations());
}

void BM_Throughput_PortReceive(benchmark::State& state) {
  Throughput<PortPair>(
      state,
      [](PortPair& p, int64_t i) { (void)p.tx.PostMessage(wharf::Value(i)); },
      [](PortPair& p) {
        auto r = p.rx.Receive();
        benchmark::DoNotOptimize(r);
        return r.ok();
      });
}

void BM_Throughput_PortTryReceive(benchmark::State& state) {
  Throughput<PortPair>(
      state,
      [](PortPair& p, int64_t i) { (void)p.tx.PostMessage(wharf::Value(i)); },
      [](PortPair& p) {
        for (;;) {
          auto r = p.rx.TryReceive();
          if (r.has_value()) {
            benchmark::DoNotOptimize(r);
            return true;
          }
          wharf::sync_internal::CpuRelax();
        }
      });
}

void BM_Throughput_Moodycamel(benchmark::State& state) {
  using Q = moodycamel::ConcurrentQueue<int>;
  Throughput<Q>(
      state,
      [](Q& q, int64_t i) { q.enqueue(static_cast<int>(i)); },
      [](Q& q) {
        int v;
        while (!q.try_dequeue(v)) wharf::sync_internal::CpuRelax();
        benchmark::DoNotOptimize(v);
        return true;
      });
}

// The same queue carrying wharf::Value (48 bytes) instead of int: what the
// element size alone costs (the queue's memory grows while the producer runs
// ahead, 12x faster with 48-byte slots than with 4-byte ones).
void BM_Throughput_MoodycamelValue(benchmark::State& state) {
  using Q = moodycamel::ConcurrentQueue<wharf::Value>;
  Throughput<Q>(
      state,
      [](Q& q, int64_t i) { q.enqueue(wharf::Value(i)); },
      [](Q& q) {
        wharf::Value v;
        while (!q.try_dequeue(v)) wharf::sync_internal::CpuRelax();
        benchmark::DoNotOptimize(v);
        return true;
      });
}

void BM_Throughput_MoodycamelBlocking(benchmark::State& state) {
  using Q = moodycamel::BlockingConcurrentQueue<int>;
  Throughput<Q>(
      state,
      [](Q& q, int64_t i) { q.enqueue(static_cast<int>(i)); },
      [](Q& q) {
        int v;
        q.wait_dequeue(v);
        benchmark::DoNotOptimize(v);
        return true;
      });
}

BENCHMARK(BM_Throughput_PortReceive)->Name("BM_Throughput/wharf_port_receive")
    ->UseRealTime()->Iterations(kThroughputItems)->Arg(0)->Arg(4096);
BENCHMARK(BM_Throughput_PortTryReceive)->Name("BM_Throughput/wharf_port_tryreceive")
    ->UseRealTime()->Iterations(kThroughputItems)->Arg(0)->Arg(4096);
BENCHMARK(BM_Throughput_Moodycamel)->Name("BM_Throughput/moodycamel")
    ->UseRealTime()->Iterations(kThroughputItems)->Arg(0)->Arg(4096);
BENCHMARK(BM_Throughput_MoodycamelValue)->Name("BM_Throughput/moodycamel_value")
    ->UseRealTime()->Iterations(kThroughputItems)->Arg(0)->Arg(4096);
BENCHMARK(BM_Throughput_MoodycamelBlocking)->Name("BM_Throughput/moodycamel_blocking")
    ->UseRealTime()->Iterations(kThroughputItems)->Arg(0)->Arg(4096);

// --- 3. Buffer: transfer vs copy ------------------------------------------

template <bool kTransfer>
void BM_Buffer(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  auto [a, b] = wharf::MessageChannel::Create();
  wharf::Value msg = wharf::Value::Map();
  auto buf = wharf::Buffer::Allocate(size);
  if (!buf.ok()) {
    state.SkipWithError("allocate failed");
    return;
  }
  msg.GetMap()->Set("data", std::move(*buf));
  for (auto _ : state) {
    absl::Status s;
    if (kTransfer) {
      wharf::Transferable list[] = {msg["data"]->GetBuffer()};
      s = a.PostMessage(msg, list);
    } else {
      s = a.PostMessage(msg);
    }
    auto r = b.TryReceive();
    if (!s.ok() || !r.has_value() || (*r)["data"]->GetBuffer()->size() != size) {
      state.SkipWithError("post/receive failed");
      break;
    }
    if (kTransfer) msg = std::move(*r);  // the moved Buffer goes round again
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

BENCHMARK(BM_Buffer<true>)->Name("BM_Buffer/transfer")->UseRealTime()
    ->Arg(1 << 20)->Arg(64 << 20);
BENCHMARK(BM_Buffer<false>)->Name("BM_Buffer/copy")->UseRealTime()
    ->Arg(1 << 20)->Arg(64 << 20);

// --- 4. Codec -------------------------------------------------------------

wharf::Value SmallMap() {
  wharf::Value v = wharf::Value::Map();
  v.GetMap()->Set("id", wharf::Value(12345));
  v.GetMap()->Set("ratio", wharf::Value(0.75));
  v.GetMap()->Set("ok", wharf::Value(true));
  v.GetMap()->Set("name", wharf::Value("sensor-7"));
  v.GetMap()->Set("ts", wharf::Value(int64_t{1764086400000}));
  return v;
}

wharf::Value IntArray() {
  wharf::ValueArray a;
  a.reserve(10000);
  for (int i = 0; i < 10000; ++i) a.emplace_back(i * 37 - 5000);
  return wharf::Value(std::move(a));
}

wharf::Value OneMiBBytes() {
  wharf::ValueBytes bytes(1 << 20);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 131);
  return wharf::Value(std::move(bytes));
}

template <wharf::Value (*kMake)()>
void BM_Encode(benchmark::State& state) {
  const wharf::Value v = kMake();
  size_t size = 0;
  for (auto _ : state) {
    auto wire = wharf::EncodeValue(v);
    if (!wire.ok()) {
      state.SkipWithError("encode failed");
      break;
    }
    size = wire->size();
    benchmark::DoNotOptimize(wire);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
  state.counters["wire_bytes"] = static_cast<double>(size);
}

template <wharf::Value (*kMake)()>
void BM_Decode(benchmark::State& state) {
  const std::string wire = wharf::EncodeValue(kMake()).value();
  for (auto _ : state) {
    auto v = wharf::DecodeValue(std::string_view(wire));
    if (!v.ok()) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(wire.size()));
  state.counters["wire_bytes"] = static_cast<double>(wire.size());
}

BENCHMARK(BM_Encode<SmallMap>)->Name("BM_Codec/encode/map5")->UseRealTime();
BENCHMARK(BM_Decode<SmallMap>)->Name("BM_Codec/decode/map5")->UseRealTime();
BENCHMARK(BM_Encode<IntArray>)->Name("BM_Codec/encode/int_array_1e4")->UseRealTime();
BENCHMARK(BM_Decode<IntArray>)->Name("BM_Codec/decode/int_array_1e4")->UseRealTime();
BENCHMARK(BM_Encode<OneMiBBytes>)->Name("BM_Codec/encode/bytes_1MiB")->UseRealTime();
BENCHMARK(BM_Decode<OneMiBBytes>)->Name("BM_Codec/decode/bytes_1MiB")->UseRealTime();

}  // namespace
