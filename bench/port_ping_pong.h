// The in-process reference that several benchmarks put beside their own
// figures: a MessagePort ping-pong between two pinned threads, PostMessage
// plus blocking Receive() on both sides (an int64 Value each way). One
// iteration = one round trip. Used by port_bench (BM_PingPong/wharf_port),
// loop_bench (wharf_blocking_receive) and ipc_bench (wharf_port_threads).
#ifndef WHARF_BENCH_PORT_PING_PONG_H_
#define WHARF_BENCH_PORT_PING_PONG_H_

#include <cstdint>
#include <utility>

#include "absl/time/time.h"
#include "bench/ping_pong.h"
#include "benchmark/benchmark.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"

namespace wharf_bench {

struct PortPair {
  PortPair() {
    auto [a, b] = wharf::MessageChannel::Create();
    ping = std::move(a);
    pong = std::move(b);
  }
  wharf::MessagePort ping;
  wharf::MessagePort pong;
  alignas(64) int32_t pong_ready = 0;
};

// `timeout` bounds each Receive, so that a lost message fails the run
// (SkipWithError) instead of hanging it.
inline void PortPingPongThreads(benchmark::State& state,
                                absl::Duration timeout = absl::InfiniteDuration()) {
  constexpr int64_t kStop = -1;
  PingPongThreads<PortPair>(
      state,
      [timeout](benchmark::State& st, PortPair& s) {
        int64_t i = 0;
        for (auto _ : st) {
          if (!s.ping.PostMessage(wharf::Value(++i)).ok()) st.SkipWithError("post failed");
          auto r = s.ping.Receive(timeout);
          if (!r.ok()) {
            st.SkipWithError("receive failed");
            break;
          }
          benchmark::DoNotOptimize(r);
        }
        (void)s.ping.PostMessage(wharf::Value(kStop));
      },
      [timeout](PortPair& s) {
        for (;;) {
          auto r = s.pong.Receive(timeout);
          if (!r.ok()) return;
          auto v = r->AsInt();
          if (!v.ok() || *v == kStop) return;
          if (!s.pong.PostMessage(std::move(*r)).ok()) return;
        }
      });
}

}  // namespace wharf_bench

#endif  // WHARF_BENCH_PORT_PING_PONG_H_
