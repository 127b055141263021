// transfer_buffer: a large Buffer (ArrayBuffer) sent to a worker and back,
// first by *transfer* (in the transfer list: the bytes change owner, the same
// memory comes back — data() is unchanged), then by *copy* (structured clone:
// a new allocation and a memcpy at each hop). Both round trips are timed.
//
// What it shows:
//  - Worker::PostMessage(message, transfer) with the Buffer in the transfer
//    list, the sender's Buffer left detached (size 0);
//  - the same call without a transfer list: a deep copy, the original kept;
//  - a worker that echoes on parent_port() and closes it when done.
//
// It mirrors the worker_threads docs pattern of
//   worker.postMessage(arrayBuffer, [arrayBuffer])   // transfer, zero-copy
// versus worker.postMessage(arrayBuffer)             // structured clone.
//
// Run:  ./bazelw run //examples/transfer_buffer [-- MIB]   (default 100)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"

namespace {

uint64_t Checksum(const wharf::Buffer& b) {
  uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const uint64_t*>(b.data());
  for (size_t i = 0; i < b.size() / 8; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int64_t Address(const void* p) { return static_cast<int64_t>(reinterpret_cast<intptr_t>(p)); }

// Echoes each message back the way it came: transferred if "mode" is
// "transfer", cloned otherwise; notes where it saw the bytes. Two messages,
// then it closes its port and exits.
void Echo(wharf::WorkerContext& ctx) {
  auto seen = std::make_shared<int>(0);
  ctx.parent_port().OnMessage([&ctx, seen](wharf::Value v) {
    v.GetMap()->Set("worker_saw", Address(v["buffer"]->GetBuffer()->data()));
    // (Taken after Set: adding a key may move the map's entries.)
    wharf::Buffer* buf = v["buffer"]->GetBuffer();
    absl::Status s;
    if (v["mode"]->AsString().value_or("") == "transfer") {
      wharf::Transferable list[] = {buf};
      s = ctx.parent_port().PostMessage(v, list);
    } else {
      s = ctx.parent_port().PostMessage(v);  // no transfer list: a copy
    }
    if (!s.ok()) throw std::runtime_error(s.ToString());
    if (++*seen == 2) ctx.parent_port().Close();
  });
}

}  // namespace

int main(int argc, char** argv) {
  const long mib = argc > 1 ? std::atol(argv[1]) : 100;
  if (mib < 1 || mib > 16384) {
    std::fprintf(stderr, "usage: %s [MIB 1..16384]\n", argv[0]);
    return 2;
  }
  const size_t size = static_cast<size_t>(mib) << 20;
  auto allocated = wharf::Buffer::Allocate(size);
  if (!allocated.ok()) {
    std::fprintf(stderr, "Buffer::Allocate: %s\n", allocated.status().ToString().c_str());
    return 1;
  }
  wharf::Buffer original = *std::move(allocated);
  for (size_t i = 0; i < size; ++i) original.data()[i] = static_cast<std::byte>(i * 131 % 251);
  const uint64_t checksum = Checksum(original);
  const std::byte* const address = original.data();
  std::printf("transfer_buffer: a %ld MiB Buffer to a worker and back\n", mib);

  wharf::EventLoop loop;
  bool ok = true;
  int exit_code = -1;
  absl::Time sent;
  absl::Duration transfer_time, copy_time;

  auto worker = wharf::Worker::Start(Echo, wharf::WorkerOptions{.name = "echo", .loop = &loop});
  if (!worker.ok()) {
    std::fprintf(stderr, "Worker::Start: %s\n", worker.status().ToString().c_str());
    return 1;
  }
  wharf::Value message = wharf::Value::Map();
  auto send = [&](const char* mode, wharf::Buffer buffer) {
    message = wharf::Value::Map();
    message.GetMap()->Set("mode", mode);
    message.GetMap()->Set("buffer", std::move(buffer));
    wharf::Buffer* b = message["buffer"]->GetBuffer();
    sent = absl::Now();
    absl::Status s;
    if (std::string(mode) == "transfer") {
      wharf::Transferable list[] = {b};
      s = worker->PostMessage(message, list);
      std::printf("  transfer: after PostMessage ours is detached=%d size=%zu\n", b->detached(),
                  b->size());
      ok = ok && b->detached() && b->size() == 0;
    } else {
      s = worker->PostMessage(message);  // structured clone: ours stays intact
      std::printf("  copy    : after PostMessage ours is detached=%d size=%zu\n", b->detached(),
                  b->size());
      ok = ok && !b->detached() && b->size() == size;
    }
    if (!s.ok()) {
      std::fprintf(stderr, "PostMessage: %s\n", s.ToString().c_str());
      ok = false;
    }
  };

  int replies = 0;
  worker->OnMessage([&](wharf::Value v) {
    const absl::Duration rtt = absl::Now() - sent;
    wharf::Buffer back = std::move(*v["buffer"]->GetBuffer());
    const int64_t worker_saw = v["worker_saw"]->AsInt().value_or(0);
    const bool intact = back.size() == size && Checksum(back) == checksum;
    if (++replies == 1) {
      transfer_time = rtt;
      const bool same = back.data() == address && worker_saw == Address(address);
      std::printf("  transfer: data() sent %p, seen by the worker %p, back %p -> %s, bytes %s\n",
                  static_cast<const void*>(address), reinterpret_cast<void*>(worker_saw),
                  static_cast<void*>(back.data()), same ? "unchanged" : "CHANGED",
                  intact ? "intact" : "CORRUPT");
      ok = ok && same && intact;
      send("copy", std::move(back));  // now the same bytes by copy
    } else {
      copy_time = rtt;
      const bool distinct = back.data() != address && worker_saw != Address(address) &&
                            back.data() != reinterpret_cast<std::byte*>(worker_saw);
      std::printf("  copy    : data() sent %p, seen by the worker %p, back %p -> %s, bytes %s\n",
                  static_cast<const void*>(address), reinterpret_cast<void*>(worker_saw),
                  static_cast<void*>(back.data()), distinct ? "three copies" : "SHARED?",
                  intact ? "intact" : "CORRUPT");
      ok = ok && distinct && intact;
    }
  });
  worker->OnError([&](std::string what) {
    std::fprintf(stderr, "worker error: %s\n", what.c_str());
    ok = false;
  });
  worker->OnExit([&](int code) { exit_code = code; });

  send("transfer", std::move(original));
  loop.Run();  // until the worker has exited

  std::printf("  round trip by transfer : %s\n", absl::FormatDuration(transfer_time).c_str());
  std::printf("  round trip by copy     : %s (%.1fx the transfer)\n",
              absl::FormatDuration(copy_time).c_str(),
              absl::FDivDuration(copy_time, transfer_time));
  ok = ok && replies == 2 && exit_code == 0;
  std::printf("%s\n", ok ? "OK: transfer kept the same memory, copy made new ones, bytes intact"
                         : "FAILED");
  return ok ? 0 : 1;
}
