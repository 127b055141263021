// ping_pong: two workers exchange N messages through a MessageChannel that the
// main thread created and whose ends it handed over by *transfer*.
//
// What it shows:
//  - Worker::Start with a callable entry, OnMessage/OnExit on the owner loop;
//  - a MessagePort travelling inside a Value: it goes in the message and in the
//    transfer list (a port is never cloned), and the worker that receives it
//    attaches its own OnMessage/OnClose handlers on its own EventLoop;
//  - Node's rule for lifetime: a port with a handler keeps its worker alive
//    until the port is closed; then the worker exits with code 0.
//
// It mirrors the worker_threads docs pattern for MessageChannel:
//   const { port1, port2 } = new MessageChannel();
//   worker.postMessage({ hereIsYourPort: port1 }, [port1]);
//   parentPort.once('message', (value) => { value.hereIsYourPort.postMessage(...) });
// here with one end given to a "ping" worker and the other to a "pong" worker.
//
// Run:  ./bazelw run //examples/ping_pong [-- ROUND_TRIPS]     (default 100000)
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"

namespace {

// Takes the port out of the setup message and keeps it in ctx.worker_data(),
// which lives as long as the worker (and is destroyed before its loop).
wharf::MessagePort* AdoptPort(wharf::WorkerContext& ctx, wharf::Value& setup) {
  wharf::Value* slot = setup["port"];
  if (slot == nullptr || !slot->IsPort()) return nullptr;
  ctx.worker_data() = std::move(*slot);
  return ctx.worker_data().GetPort();
}

// "ping": sends 0, 1, 2, ... and checks that each comes back before sending
// the next; after N round trips it reports and closes the channel.
void Ping(wharf::WorkerContext& ctx) {
  ctx.parent_port().OnMessage([&ctx](wharf::Value setup) {
    wharf::MessagePort* port = AdoptPort(ctx, setup);
    const int64_t n = setup["n"] != nullptr ? setup["n"]->AsInt().value_or(0) : 0;
    if (port == nullptr || n < 1) {
      (void)ctx.parent_port().PostMessage(wharf::Value("ping: bad setup message"));
      ctx.Exit(2);
      return;
    }
    const absl::Time start = absl::Now();
    // Handlers are std::functions (copyable): keep mutable state outside.
    auto next_ptr = std::make_shared<int64_t>(0);
    port->OnMessage([&ctx, port, n, start, next_ptr](wharf::Value v) {
      int64_t& next = *next_ptr;
      if (v.AsInt().value_or(-1) != next) {
        (void)ctx.parent_port().PostMessage(wharf::Value("ping: out-of-order reply"));
        ctx.Exit(3);
        return;
      }
      if (++next < n) {
        (void)port->PostMessage(wharf::Value(next));
        return;
      }
      const absl::Duration elapsed = absl::Now() - start;
      wharf::Value report = wharf::Value::Map();
      report.GetMap()->Set("round_trips", next);
      report.GetMap()->Set("ns", absl::ToInt64Nanoseconds(elapsed));
      (void)ctx.parent_port().PostMessage(std::move(report));
      port->Close();  // closes both ends: pong's OnClose runs too
    });
    port->OnClose([&ctx] { ctx.parent_port().Close(); });
    (void)port->PostMessage(wharf::Value(int64_t{0}));
  });
}

// "pong": echoes every message; when the channel closes, reports how many it
// echoed and lets the worker end.
void Pong(wharf::WorkerContext& ctx) {
  ctx.parent_port().OnMessage([&ctx](wharf::Value setup) {
    wharf::MessagePort* port = AdoptPort(ctx, setup);
    if (port == nullptr) {
      (void)ctx.parent_port().PostMessage(wharf::Value("pong: bad setup message"));
      ctx.Exit(2);
      return;
    }
    auto echoed = std::make_shared<int64_t>(0);
    port->OnMessage([port, echoed](wharf::Value v) {
      ++*echoed;
      (void)port->PostMessage(std::move(v));
    });
    port->OnClose([&ctx, echoed] {
      wharf::Value report = wharf::Value::Map();
      report.GetMap()->Set("echoed", *echoed);
      (void)ctx.parent_port().PostMessage(std::move(report));
      ctx.parent_port().Close();
    });
  });
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 100000;
  if (n < 1) {
    std::fprintf(stderr, "usage: %s [ROUND_TRIPS>=1]\n", argv[0]);
    return 2;
  }
  wharf::EventLoop loop;
  bool ok = true;
  int64_t round_trips = -1, echoed = -1, ns = 0;
  int exits = 0;

  auto ping = wharf::Worker::Start(Ping, wharf::WorkerOptions{.name = "ping", .loop = &loop});
  auto pong = wharf::Worker::Start(Pong, wharf::WorkerOptions{.name = "pong", .loop = &loop});
  if (!ping.ok() || !pong.ok()) {
    std::fprintf(stderr, "Worker::Start failed\n");
    return 1;
  }
  for (wharf::Worker* w : {&*ping, &*pong}) {
    w->OnMessage([&](wharf::Value v) {
      if (const std::string* s = v.GetString()) {
        std::fprintf(stderr, "%s\n", s->c_str());
        ok = false;
      } else if (v["round_trips"] != nullptr) {
        round_trips = v["round_trips"]->AsInt().value_or(-1);
        ns = v["ns"]->AsInt().value_or(0);
      } else if (v["echoed"] != nullptr) {
        echoed = v["echoed"]->AsInt().value_or(-1);
      }
    });
    w->OnError([&](std::string what) {
      std::fprintf(stderr, "worker error: %s\n", what.c_str());
      ok = false;
    });
    w->OnExit([&](int code) {
      ++exits;
      ok = ok && code == 0;
    });
  }

  // One channel; each end goes to a worker inside a message, by transfer.
  auto [end1, end2] = wharf::MessageChannel::Create();
  wharf::Value to_ping = wharf::Value::Map();
  to_ping.GetMap()->Set("port", std::move(end1));
  to_ping.GetMap()->Set("n", static_cast<int64_t>(n));
  wharf::Transferable ping_list[] = {to_ping["port"]->GetPort()};
  wharf::Value to_pong = wharf::Value::Map();
  to_pong.GetMap()->Set("port", std::move(end2));
  wharf::Transferable pong_list[] = {to_pong["port"]->GetPort()};
  // Pong first, so it is listening (messages would be kept anyway).
  if (absl::Status s = pong->PostMessage(to_pong, pong_list); !s.ok()) {
    std::fprintf(stderr, "post to pong: %s\n", s.ToString().c_str());
    return 1;
  }
  if (absl::Status s = ping->PostMessage(to_ping, ping_list); !s.ok()) {
    std::fprintf(stderr, "post to ping: %s\n", s.ToString().c_str());
    return 1;
  }
  // The transferred ports left empty ports behind in our messages.
  ok = ok && !to_ping["port"]->GetPort()->valid() && !to_pong["port"]->GetPort()->valid();

  loop.Run();  // returns once both workers have exited

  const double seconds = static_cast<double>(ns) / 1e9;
  std::printf("ping_pong: %ld round trips between two workers over a transferred MessageChannel\n",
              n);
  std::printf("  round trips : %lld (pong echoed %lld)\n", static_cast<long long>(round_trips),
              static_cast<long long>(echoed));
  std::printf("  time        : %.3f s, %.0f round trips/s, %.2f us per round trip\n", seconds,
              seconds > 0 ? static_cast<double>(round_trips) / seconds : 0.0,
              round_trips > 0 ? seconds * 1e6 / static_cast<double>(round_trips) : 0.0);
  ok = ok && exits == 2 && round_trips == n && echoed == n;
  std::printf("%s\n", ok ? "OK: every message came back, in order; both workers exited 0"
                         : "FAILED");
  return ok ? 0 : 1;
}
