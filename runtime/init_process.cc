#include "wharf/runtime/init_process.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "wharf/runtime/internal/broadcast_relay.h"
#include "wharf/runtime/internal/port_access.h"
#include "wharf/runtime/internal/process_backend.h"
#include "wharf/runtime/internal/shm_channel.h"
#include "wharf/runtime/internal/thread_backend.h"
#include "wharf/runtime/internal/worker_runner.h"
#include "wharf/runtime/worker.h"
#include "wharf/sync/atomics.h"

namespace wharf {
namespace {

using runtime_internal::ProcessWorkerArgs;
using runtime_internal::ShmLink;
using runtime_internal::WorkerExitRecord;

constexpr int kSetupFailed = 70;  // EX_SOFTWARE

bool is_process_worker = false;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "wharf process worker: %s\n", what.c_str());
  std::fflush(stderr);
  ::_exit(kSetupFailed);
}

absl::Status ApplyLimits(const ResourceLimits& l) {
  const auto set = [](int resource, rlim_t soft, rlim_t hard, const char* what) -> absl::Status {
    rlimit r{soft, hard};
    if (::setrlimit(resource, &r) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("resource_limits.", what, ": setrlimit: ", std::strerror(errno)));
    }
    return absl::OkStatus();
  };
  if (l.max_memory_bytes != 0) {
    if (absl::Status s = set(RLIMIT_AS, l.max_memory_bytes, l.max_memory_bytes, "max_memory_bytes");
        !s.ok()) {
      return s;
    }
  }
  if (l.max_cpu_time > absl::ZeroDuration()) {
    const rlim_t secs = static_cast<rlim_t>(absl::ToInt64Seconds(l.max_cpu_time));
    // SIGXCPU at the limit; SIGKILL a second later for a child that ignores it.
    if (absl::Status s = set(RLIMIT_CPU, secs, secs + 1, "max_cpu_time"); !s.ok()) return s;
  }
  if (l.max_open_files != 0) {
    const rlim_t n = static_cast<rlim_t>(l.max_open_files);
    if (absl::Status s = set(RLIMIT_NOFILE, n, n, "max_open_files"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void WriteExitRecord(runtime_internal::ShmLinkHeader& h, const WorkerExitRecord& r,
                     const ResourceLimits& limits) {
  h.exit_code = r.code;
  h.has_error = r.error.has_value() ? 1 : 0;
  if (r.error.has_value()) {
    std::string message = r.error->message;
    if (r.error->type == "std::bad_alloc" && limits.max_memory_bytes != 0) {
      message = absl::StrCat("worker ran out of memory: resource_limits.max_memory_bytes = ",
                             limits.max_memory_bytes, " (", message, ")");
    }
    const size_t tl = std::min(r.error->type.size(), sizeof h.error_type);
    const size_t ml = std::min(message.size(), sizeof h.error_message);
    std::memcpy(h.error_type, r.error->type.data(), tl);
    std::memcpy(h.error_message, message.data(), ml);
    h.error_type_len = static_cast<uint32_t>(tl);
    h.error_message_len = static_cast<uint32_t>(ml);
  }
  h.exit_written.store(1, std::memory_order_release);
}

[[noreturn]] void RunAsWorker(ProcessWorkerArgs args) {
  is_process_worker = true;
  // Die with the owner; a owner that died before this line is seen as a
  // changed parent pid.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != args.parent_pid) ::_exit(kSetupFailed);
  absl::StatusOr<WorkerFunction> entry = WorkerRegistry::Find(args.entry);
  if (!entry.ok()) {
    Fail(absl::StrCat(entry.status().message(), " in this executable"));
  }
  absl::StatusOr<std::shared_ptr<ShmLink>> link =
      ShmLink::Attach(ProcessWorkerArgs::kLinkFd, ProcessWorkerArgs::kSocketFd);
  if (!link.ok()) Fail(std::string(link.status().message()));
  absl::StatusOr<runtime_internal::ShmChannelEnd> end =
      runtime_internal::ShmChannelEnd::Open(*link, 1);
  if (!end.ok()) Fail(std::string(end.status().message()));
  end->watch_peer = false;  // this process dies with its owner (PR_SET_PDEATHSIG)
  MessagePort port = runtime_internal::PortAccess::OverLink(*std::move(end), PortOptions{});
  runtime_internal::ShmLinkHeader& header = (*link)->header();
  // worker_data: the first message, posted before the child was started.
  absl::StatusOr<Value> data = port.Receive(absl::Seconds(10));
  if (!data.ok()) Fail(absl::StrCat("no worker_data from the owner: ", data.status().message()));
  // Then this process's link of the BroadcastChannel tree.
  absl::StatusOr<Value> bus = port.Receive(absl::Seconds(10));
  if (!bus.ok() || bus->GetPort() == nullptr || !bus->GetPort()->valid()) {
    Fail("no BroadcastChannel link from the owner");
  }
  runtime_internal::PortAccess::UnwatchPeer(*bus->GetPort());  // the owner's death ends us
  runtime_internal::BroadcastRelay::Get().Add(std::move(*bus->GetPort()));
  if (absl::Status s = ApplyLimits(args.limits); !s.ok()) Fail(std::string(s.message()));

  runtime_internal::WorkerControl control;
  control.SetTerminatedElsewhere(
      [&header] { return (header.terminate.load(std::memory_order_acquire) & 1) != 0; });
  // Terminate(): the owner sets the word and notifies it.
  std::atomic<bool> done{false};
  int32_t& terminate_cell = *reinterpret_cast<int32_t*>(&header.terminate);
  std::thread watcher([&] {
    while (!done.load(std::memory_order_acquire)) {
      if (header.terminate.load(std::memory_order_acquire) != 0) {
        control.RequestTerminate();
        return;
      }
      (void)atomics::Wait(terminate_cell, 0);
    }
  });
  WorkerExitRecord record;
  auto body = [&] {
    record = runtime_internal::RunWorkerEntry(
        *std::move(entry), std::move(port), *std::move(data), args.id, args.name, control,
        [&header] {
          header.online.store(1, std::memory_order_release);
          (void)atomics::Notify(*reinterpret_cast<int32_t*>(&header.online));
        },
        std::move(args.user_args));
  };
  if (args.limits.stack_bytes != 0) {
    // The entry on a thread with the requested stack (the main thread's
    // stack is fixed at exec).
    runtime_internal::ThreadBackend thread;
    if (absl::Status s = thread.Start(args.name, args.limits.stack_bytes, body); !s.ok()) {
      Fail(std::string(s.message()));
    }
    thread.Join();
  } else {
    body();
  }
  WriteExitRecord(header, record, args.limits);
  done.store(true, std::memory_order_release);
  header.terminate.fetch_or(2, std::memory_order_release);  // wakes the watcher; never read as 0
  (void)atomics::Notify(terminate_cell);
  watcher.join();
  std::fflush(nullptr);
  ::_exit(record.code);
}

}  // namespace

void InitProcess(int argc, char** argv) {
  absl::StatusOr<std::optional<ProcessWorkerArgs>> args = ProcessWorkerArgs::Parse(argc, argv);
  if (!args.ok()) Fail(std::string(args.status().message()));
  if (!args->has_value()) return;
  RunAsWorker(**std::move(args));
}

bool IsProcessWorker() { return is_process_worker; }

}  // namespace wharf
