// parallel_sum: K workers sum one SharedBuffer of int32s, each its own slice,
// and hand their partial sums back through the same shared memory with
// wharf::atomics — no messages on the way back.
//
// What it shows:
//  - a SharedBuffer (SharedArrayBuffer) passed in WorkerOptions::worker_data:
//    every worker maps the same bytes, nothing is copied;
//  - atomics::Store into a per-worker cell, atomics::Add on a "done" counter
//    and atomics::Notify to wake the main thread, which sleeps in
//    atomics::Wait (Atomics.wait) until every worker reported;
//  - the result checked against a serial sum on the main thread.
//
// It mirrors the worker_threads docs pattern of sharing a SharedArrayBuffer
// with workers through workerData and synchronising with Atomics
// (Atomics.store / Atomics.add / Atomics.notify in the workers,
// Atomics.wait in the waiting thread).
//
// Run:  ./bazelw run //examples/parallel_sum [-- COUNT WORKERS]  (default 10000000 4)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/shared_buffer.h"

namespace {

// Layout of the shared buffer: a header of cells, then the int32 data.
//   [0, 4)            uint32 done   — workers finished (atomics)
//   [8, 8 + 8*K)      int64 partial[K] — each worker's sum (atomics)
//   [data_offset, …)  int32 values[COUNT]
size_t DataOffset(int workers) { return (8 + 8 * static_cast<size_t>(workers) + 63) / 64 * 64; }

int32_t ValueAt(size_t i) { return static_cast<int32_t>((i * 7919) % 2001) - 1000; }

void SumSlice(wharf::WorkerContext& ctx) {
  wharf::Value& d = ctx.worker_data();
  const wharf::SharedBuffer& buf = *d["buffer"]->GetSharedBuffer();
  const int k = static_cast<int>(d["k"]->AsInt().value());
  const int workers = static_cast<int>(d["workers"]->AsInt().value());
  const size_t count = static_cast<size_t>(d["count"]->AsInt().value());

  std::span<int32_t> values = buf.View<int32_t>(DataOffset(workers), count).value();
  std::span<int64_t> partial = buf.View<int64_t>(8, workers).value();
  uint32_t& done = buf.View<uint32_t>(0, 1).value()[0];

  const size_t begin = count * k / workers, end = count * (k + 1) / workers;
  int64_t sum = 0;
  for (size_t i = begin; i < end; ++i) sum += values[i];

  wharf::atomics::Store(partial[k], sum);   // Atomics.store(partial, k, sum)
  wharf::atomics::Add(done, 1u);            // Atomics.add(done, 0, 1)
  wharf::atomics::Notify(done);             // Atomics.notify(done, 0)
}

}  // namespace

int main(int argc, char** argv) {
  const long count = argc > 1 ? std::atol(argv[1]) : 10000000;
  const int workers = argc > 2 ? std::atoi(argv[2]) : 4;
  if (count < 1 || workers < 1 || workers > 256) {
    std::fprintf(stderr, "usage: %s [COUNT>=1] [WORKERS 1..256]\n", argv[0]);
    return 2;
  }
  const size_t offset = DataOffset(workers);
  auto buffer = wharf::SharedBuffer::Create(offset + sizeof(int32_t) * count);
  if (!buffer.ok()) {
    std::fprintf(stderr, "SharedBuffer::Create: %s\n", buffer.status().ToString().c_str());
    return 1;
  }
  std::span<int32_t> values = buffer->View<int32_t>(offset, count).value();
  for (size_t i = 0; i < values.size(); ++i) values[i] = ValueAt(i);
  uint32_t& done = buffer->View<uint32_t>(0, 1).value()[0];
  std::span<int64_t> partial = buffer->View<int64_t>(8, workers).value();
  std::printf("parallel_sum: %ld int32s (%.1f MiB) in one SharedBuffer, %d workers\n", count,
              static_cast<double>(count) * 4 / (1 << 20), workers);

  wharf::EventLoop loop;
  bool ok = true;
  int exits = 0;
  std::vector<wharf::Worker> pool;
  const absl::Time start = absl::Now();
  for (int k = 0; k < workers; ++k) {
    wharf::Value data = wharf::Value::Map();
    data.GetMap()->Set("buffer", *buffer);  // shared, never copied
    data.GetMap()->Set("k", k);
    data.GetMap()->Set("workers", workers);
    data.GetMap()->Set("count", static_cast<int64_t>(count));
    auto w = wharf::Worker::Start(SumSlice, wharf::WorkerOptions{.worker_data = std::move(data),
                                                                  .name = "sum" + std::to_string(k),
                                                                  .loop = &loop});
    if (!w.ok()) {
      std::fprintf(stderr, "Worker::Start: %s\n", w.status().ToString().c_str());
      return 1;
    }
    w->OnError([&](std::string what) {
      std::fprintf(stderr, "worker error: %s\n", what.c_str());
      ok = false;
    });
    w->OnExit([&](int code) {
      ++exits;
      ok = ok && code == 0;
    });
    pool.push_back(*std::move(w));
  }
  // Atomics.wait: sleep until every worker has bumped `done`.
  for (uint32_t d; (d = wharf::atomics::Load(done)) < static_cast<uint32_t>(workers);) {
    wharf::atomics::Wait(done, d);
  }
  int64_t total = 0;
  for (int k = 0; k < workers; ++k) total += wharf::atomics::Load(partial[k]);
  const absl::Duration parallel_time = absl::Now() - start;

  loop.Run();  // the workers' exit events; returns once all have exited
  pool.clear();

  const absl::Time serial_start = absl::Now();
  int64_t serial = 0;
  for (int32_t v : values) serial += v;
  const absl::Duration serial_time = absl::Now() - serial_start;

  std::printf("  workers' sum : %lld (%s, thread start-up included)\n",
              static_cast<long long>(total), absl::FormatDuration(parallel_time).c_str());
  std::printf("  serial sum   : %lld (%s)\n", static_cast<long long>(serial),
              absl::FormatDuration(serial_time).c_str());
  ok = ok && exits == workers && total == serial;
  std::printf("%s\n", ok ? "OK: the workers' sum matches the serial sum" : "FAILED");
  return ok ? 0 : 1;
}
