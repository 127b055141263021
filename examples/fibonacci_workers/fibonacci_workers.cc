// fibonacci_workers: CPU-bound work in parallel workers — fib(40..43) by naive
// recursion, one worker per number, compared with the same work done serially
// on the main thread.
//
// What it shows:
//  - Worker::Start with WorkerOptions::worker_data (Node's workerData);
//  - a worker that computes, posts its result to parent_port() and ends by
//    itself (nothing ref'd left on its loop: exit code 0);
//  - OnMessage/OnExit on the owner's EventLoop, and loop.Run() returning once
//    every worker has exited.
//
// It mirrors the worker_threads docs pattern of offloading a CPU-intensive
// task: `new Worker(__filename, { workerData: n })` in the main thread and
// `parentPort.postMessage(fib(workerData))` in the worker.
//
// Run:  ./bazelw run //examples/fibonacci_workers [-- FIRST LAST]   (default 40 43)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"

namespace {

// Deliberately the exponential recursion: the point is CPU work.
int64_t Fib(int n) { return n < 2 ? n : Fib(n - 1) + Fib(n - 2); }

// The iterative version, to check the results.
int64_t FibCheck(int n) {
  int64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    const int64_t t = a + b;
    a = b;
    b = t;
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const int first = argc > 1 ? std::atoi(argv[1]) : 40;
  const int last = argc > 2 ? std::atoi(argv[2]) : 43;
  if (first < 1 || last < first || last > 60 || last - first > 63) {
    std::fprintf(stderr, "usage: %s [FIRST>=1] [LAST (FIRST..60)]\n", argv[0]);
    return 2;
  }
  const unsigned cores = std::thread::hardware_concurrency();
  std::printf("fibonacci_workers: fib(%d..%d), %d workers, %u hardware threads\n", first, last,
              last - first + 1, cores);

  wharf::EventLoop loop;
  bool ok = true;
  std::map<int, int64_t> parallel;  // n -> fib(n), filled on the loop thread
  int exits = 0;

  const absl::Time start = absl::Now();
  std::vector<wharf::Worker> workers;
  for (int n = first; n <= last; ++n) {
    auto w = wharf::Worker::Start(
        [](wharf::WorkerContext& ctx) {
          const int n = static_cast<int>(ctx.worker_data().AsInt().value_or(0));
          wharf::Value result = wharf::Value::Map();
          result.GetMap()->Set("n", n);
          result.GetMap()->Set("fib", Fib(n));
          (void)ctx.parent_port().PostMessage(std::move(result));
          // Returning with nothing ref'd: the worker exits with code 0.
        },
        wharf::WorkerOptions{.worker_data = wharf::Value(n),
                             .name = "fib" + std::to_string(n),
                             .loop = &loop});
    if (!w.ok()) {
      std::fprintf(stderr, "Worker::Start: %s\n", w.status().ToString().c_str());
      return 1;
    }
    w->OnMessage([&](wharf::Value v) {
      const int n = static_cast<int>(v["n"]->AsInt().value_or(-1));
      parallel[n] = v["fib"]->AsInt().value_or(-1);
    });
    w->OnError([&](std::string what) {
      std::fprintf(stderr, "worker error: %s\n", what.c_str());
      ok = false;
    });
    w->OnExit([&](int code) {
      ++exits;
      ok = ok && code == 0;
    });
    workers.push_back(*std::move(w));
  }
  loop.Run();  // until every worker has exited
  const absl::Duration parallel_time = absl::Now() - start;
  workers.clear();

  const absl::Time serial_start = absl::Now();
  std::map<int, int64_t> serial;
  for (int n = first; n <= last; ++n) serial[n] = Fib(n);
  const absl::Duration serial_time = absl::Now() - serial_start;

  for (int n = first; n <= last; ++n) {
    const int64_t expected = FibCheck(n);
    const bool good = parallel.count(n) == 1 && parallel[n] == expected && serial[n] == expected;
    std::printf("  fib(%d) = %lld%s\n", n, static_cast<long long>(parallel[n]),
                good ? "" : "  WRONG");
    ok = ok && good;
  }
  std::printf("  workers (parallel) : %s\n", absl::FormatDuration(parallel_time).c_str());
  std::printf("  main thread serial : %s\n", absl::FormatDuration(serial_time).c_str());
  std::printf("  speed-up           : %.2fx with %d workers on %u hardware threads\n",
              absl::FDivDuration(serial_time, parallel_time), last - first + 1, cores);
  ok = ok && exits == last - first + 1;
  std::printf("%s\n", ok ? "OK: every worker's result matches, every worker exited 0" : "FAILED");
  return ok ? 0 : 1;
}
