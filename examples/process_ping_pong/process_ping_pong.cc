// process_ping_pong: the owner and one *process* worker exchange N round
// trips over the worker's parent port — and the same entry, started with one
// option changed, runs as a thread worker.
//
// What it shows:
//  - wharf::InitProcess(argc, argv) as main's first line: a process worker is
//    this program started again, and InitProcess runs its entry there;
//  - an entry registered by name (WHARF_WORKER_ENTRY), which is what a
//    process worker needs (a lambda cannot cross a process boundary);
//  - threads or processes is one line: `.isolation = wharf::Isolation::kProcess`
//    — the worker's code and the owner's handlers do not change;
//  - what a round trip costs across processes (shared-memory rings) next to
//    one between threads (run it both ways).
//
// The owner posts 0, checks that 0 comes back, posts 1, ... up to N-1, then
// posts null, on which the worker closes its port and exits 0.
//
// Run:  ./bazelw run //examples/process_ping_pong [-- [--thread] [ROUND_TRIPS]]
//       (default 100000 round trips with a process worker)
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/init_process.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"

// A whole decimal number.
static bool ParseInt(std::string_view s, int64_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// The worker: echoes every int; null means "done".
WHARF_WORKER_ENTRY(echo) {
  ctx.parent_port().OnMessage([&ctx](wharf::Value v) {
    if (v.IsNull()) {
      ctx.parent_port().Close();  // nothing ref'd left: the worker exits 0
      return;
    }
    (void)ctx.parent_port().PostMessage(std::move(v));
  });
}

int main(int argc, char** argv) {
  wharf::InitProcess(argc, argv);  // in the worker process: runs `echo`, never returns

  bool as_thread = false;
  int64_t n = 100000;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--thread") {
      as_thread = true;
    } else if (!ParseInt(arg, n) || n < 1) {
      std::fprintf(stderr, "usage: %s [--thread] [ROUND_TRIPS>=1]\n", argv[0]);
      return 2;
    }
  }
  const wharf::Isolation isolation =
      as_thread ? wharf::Isolation::kThread : wharf::Isolation::kProcess;

  wharf::EventLoop loop;
  auto w = wharf::Worker::Start("echo", wharf::WorkerOptions{
                                            .name = "echo",
                                            .loop = &loop,
                                            .isolation = isolation,
                                        });
  if (!w.ok()) {
    std::fprintf(stderr, "FAILED: Worker::Start: %s\n", w.status().ToString().c_str());
    return 1;
  }

  bool ok = true;
  int64_t next = 0;  // the value we expect back
  int exit_code = -1;
  absl::Time start, end;
  w->OnOnline([&] {
    start = absl::Now();  // the clock starts once the worker runs (spawn not counted)
    (void)w->PostMessage(wharf::Value(next));
  });
  w->OnMessage([&](wharf::Value v) {
    if (v.AsInt().value_or(-1) != next) {
      std::fprintf(stderr, "FAILED: expected %lld back, got %s\n", static_cast<long long>(next),
                   v.ToString().c_str());
      ok = false;
      (void)w->PostMessage(wharf::Value());  // stop the worker
      return;
    }
    if (++next < n) {
      (void)w->PostMessage(wharf::Value(next));
    } else {
      end = absl::Now();
      (void)w->PostMessage(wharf::Value());  // done: the worker exits 0
    }
  });
  w->OnError([&](const wharf::ErrorRecord& e) {
    std::fprintf(stderr, "FAILED: worker error: %s\n", e.ToString().c_str());
    ok = false;
  });
  w->OnExit([&](int code) { exit_code = code; });

  loop.Run();  // returns once the worker has exited

  const double seconds = absl::ToDoubleSeconds(end - start);
  std::printf("process_ping_pong: %lld round trips with a %s worker\n", static_cast<long long>(n),
              as_thread ? "thread" : "process");
  if (next == n && seconds > 0) {
    std::printf("  time : %.3f s, %.0f round trips/s, %.2f us per round trip\n", seconds,
                static_cast<double>(n) / seconds, seconds * 1e6 / static_cast<double>(n));
  }
  if (exit_code != 0) {
    std::fprintf(stderr, "FAILED: the worker exited with code %d, 0 expected\n", exit_code);
    ok = false;
  }
  if (ok && next != n) {
    std::fprintf(stderr, "FAILED: %lld of %lld round trips completed\n",
                 static_cast<long long>(next), static_cast<long long>(n));
    ok = false;
  }
  if (!ok) return 1;
  std::printf("OK: %lld round trips, every value back in order; the %s worker exited 0\n",
              static_cast<long long>(n), as_thread ? "thread" : "process");
  return 0;
}
