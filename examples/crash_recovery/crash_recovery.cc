// crash_recovery: process workers that crash, are killed or run out of memory
// end alone; the owner hears why, and its other workers carry on.
//
// The owner starts four process workers:
//   healthy     echoes what it gets; "stop" makes it exit 0
//   segfaulter  raises SIGSEGV when it gets a message
//   victim      posts its pid, then echoes; the owner SIGKILLs it as soon as
//               the pid arrives, with its own messages still in flight
//   hog         resource_limits.max_memory_bytes = 256 MiB; allocates and
//               touches 64 MiB chunks until an allocation throws bad_alloc
// and prints, for each, how it ended: OnError's type and message, then
// OnExit's code (128 + signal for a signal). Once the three have ended it does
// a few more round trips with "healthy", stops it, and checks that no name
// was left behind in /dev/shm (the runtime's links are memfds: nothing named).
//
// What it shows:
//  - with Isolation::kProcess a crash, a kill -9 or a limit ends only that
//    worker: OnError / OnExit tell the owner which it was;
//  - resource_limits on a process worker;
//  - nothing to clean up after a worker dies.
//
// Memory limits (RLIMIT_AS) do not work under ASan/TSan, which reserve
// terabytes of address space: built with a sanitizer, or with
// WHARF_UNDER_SANITIZER set, "hog" is skipped and the output says so.
//
// Run:  ./bazelw run //examples/crash_recovery
#include <dirent.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/init_process.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"

namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kHogLimit = 256 * kMiB;
constexpr size_t kHogChunk = 64 * kMiB;
constexpr int kRoundTripsAfter = 5;  // with "healthy", after the others ended

bool UnderSanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#endif
#endif
  return std::getenv("WHARF_UNDER_SANITIZER") != nullptr;
}

// The names in /dev/shm now.
std::set<std::string> ShmNames() {
  std::set<std::string> names;
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (const dirent* e = ::readdir(dir)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        names.insert(e->d_name);
      }
    }
    ::closedir(dir);
  }
  return names;
}

// The names in /dev/shm now that were not in `before`. Another program (a
// test running beside this one) may create and remove its own names
// meanwhile: a name is only reported if it stays for two seconds, as one we
// leaked would.
std::set<std::string> NewShmNames(const std::set<std::string>& before) {
  std::set<std::string> added;
  const absl::Time give_up = absl::Now() + absl::Seconds(2);
  do {
    added.clear();
    for (const std::string& name : ShmNames()) {
      if (!before.contains(name)) added.insert(name);
    }
    if (added.empty()) break;
    absl::SleepFor(absl::Milliseconds(50));
  } while (absl::Now() < give_up);
  return added;
}

}  // namespace

WHARF_WORKER_ENTRY(healthy) {
  ctx.parent_port().OnMessage([&ctx](wharf::Value v) {
    if (v.AsString().value_or("") == "stop") {
      ctx.parent_port().Close();  // nothing ref'd left: exits 0
      return;
    }
    (void)ctx.parent_port().PostMessage(std::move(v));
  });
}

WHARF_WORKER_ENTRY(segfaulter) {
  ctx.parent_port().OnMessage([](wharf::Value) {
    // A sanitizer's handler would turn the signal into a report and exit(1):
    // let it kill the process, as it would an unsanitized one.
    std::signal(SIGSEGV, SIG_DFL);
    std::raise(SIGSEGV);
  });
}

WHARF_WORKER_ENTRY(victim) {
  (void)ctx.parent_port().PostMessage(wharf::Value(static_cast<int64_t>(::getpid())));
  ctx.parent_port().OnMessage(
      [&ctx](wharf::Value v) { (void)ctx.parent_port().PostMessage(std::move(v)); });
}

WHARF_WORKER_ENTRY(hog) {
  std::vector<std::unique_ptr<char[]>> chunks;
  for (;;) {
    chunks.emplace_back(new char[kHogChunk]);        // throws std::bad_alloc past the limit
    std::memset(chunks.back().get(), 1, kHogChunk);  // touch every page
    (void)ctx.parent_port().PostMessage(wharf::Value(static_cast<int64_t>(chunks.size())));
  }
}

namespace {

// One worker: what we expect of its end, and what we saw.
struct Case {
  const char* name;           // its entry and its name
  const char* expected_type;  // of OnError; "" = no error expected
  const char* expected_text;  // a part of OnError's message
  int expected_code;          // OnExit's
  wharf::ResourceLimits limits{};
  std::optional<wharf::Worker> worker{};
  std::optional<wharf::ErrorRecord> error{};
  int code = -1;

  bool AsExpected() const {
    const bool error_ok = *expected_type == '\0'
                              ? !error.has_value()
                              : error.has_value() && error->type == expected_type &&
                                    error->message.find(expected_text) != std::string::npos;
    return error_ok && code == expected_code;
  }
};

}  // namespace

int main(int argc, char** argv) {
  wharf::InitProcess(argc, argv);  // in a worker process: runs its entry, never returns
  if (argc != 1) {
    std::fprintf(stderr, "usage: %s   (no arguments)\n", argv[0]);
    return 2;
  }
  const bool skip_hog = UnderSanitizer();
  const std::set<std::string> shm_before = ShmNames();

  wharf::EventLoop loop;  // before the Workers: they must be destroyed first
  const std::string oom_text =
      "worker ran out of memory: resource_limits.max_memory_bytes = " + std::to_string(kHogLimit);
  Case healthy{"healthy", "", "", 0};
  Case segfaulter{"segfaulter", "wharf::WorkerKilled", "killed by signal 11 (SIGSEGV)", 128 + 11};
  Case victim{"victim", "wharf::WorkerKilled", "killed by signal 9 (SIGKILL)", 128 + 9};
  Case hog{"hog", "std::bad_alloc", oom_text.c_str(), 1, {.max_memory_bytes = kHogLimit}};
  std::vector<Case*> crashers = {&segfaulter, &victim};
  if (!skip_hog) crashers.push_back(&hog);

  bool ok = true;
  size_t ended = 0;       // crashers that ended
  int64_t next_echo = 0;  // healthy's round trips after the others ended
  int64_t victim_echoes = 0, hog_chunks = 0;

  std::vector<Case*> all = crashers;
  all.push_back(&healthy);
  for (Case* c : all) {
    auto w = wharf::Worker::Start(c->name, wharf::WorkerOptions{
                                               .name = c->name,
                                               .loop = &loop,
                                               .isolation = wharf::Isolation::kProcess,
                                               .resource_limits = c->limits,
                                           });
    if (!w.ok()) {
      std::fprintf(stderr, "FAILED: Worker::Start(\"%s\"): %s\n", c->name,
                   w.status().ToString().c_str());
      return 1;
    }
    c->worker.emplace(*std::move(w));
    c->worker->OnError([c](const wharf::ErrorRecord& e) { c->error = e; });
    c->worker->OnExit([&, c](int code) {
      c->code = code;
      std::printf("  %-10s exited with code %d%s%s\n", c->name, code, c->error ? " after " : "",
                  c->error ? c->error->ToString().c_str() : "");
      if (c == &healthy) return;
      // The others are gone: healthy must still answer.
      if (++ended == crashers.size()) (void)healthy.worker->PostMessage(wharf::Value(next_echo));
    });
  }

  healthy.worker->OnMessage([&](wharf::Value v) {
    if (v.AsInt().value_or(-1) != next_echo) {
      std::fprintf(stderr, "FAILED: healthy answered %s, %lld expected\n", v.ToString().c_str(),
                   static_cast<long long>(next_echo));
      ok = false;
    } else if (++next_echo < kRoundTripsAfter) {
      (void)healthy.worker->PostMessage(wharf::Value(next_echo));
      return;
    }
    (void)healthy.worker->PostMessage(wharf::Value("stop"));
  });
  (void)segfaulter.worker->PostMessage(wharf::Value("crash, please"));
  victim.worker->OnMessage([&](wharf::Value v) {
    if (v.IsInt()) {  // its pid: kill -9 it while our strings are in flight to it
      std::printf("  victim     pid %lld: sending it SIGKILL\n",
                  static_cast<long long>(*v.AsInt()));
      ::kill(static_cast<pid_t>(*v.AsInt()), SIGKILL);
    } else {
      ++victim_echoes;
    }
  });
  for (const char* s : {"one", "two", "three"}) (void)victim.worker->PostMessage(wharf::Value(s));
  if (!skip_hog) {
    hog.worker->OnMessage([&](wharf::Value v) { hog_chunks = v.AsInt().value_or(-1); });
  }

  // A watchdog: a worker that does not end as planned must not hang us.
  const wharf::TimerId watchdog = loop.SetTimeout(absl::Seconds(30), [&] {
    std::fprintf(stderr, "FAILED: the workers had not all ended after 30 s\n");
    ok = false;
    for (Case* c : all) (void)c->worker->Terminate();
  });
  loop.UnrefTimer(watchdog);

  std::printf("crash_recovery: %zu process workers, %zu of them doomed\n", all.size(),
              crashers.size());
  if (skip_hog) {
    std::printf("  hog        skipped: memory limits (RLIMIT_AS) do not work under ASan/TSan\n");
  }
  loop.Run();  // returns once every worker has exited

  if (!skip_hog) {
    std::printf("  hog        had touched %lld MiB before the allocation that failed\n",
                static_cast<long long>(hog_chunks * static_cast<int64_t>(kHogChunk / kMiB)));
  }
  std::printf("  victim     echoed %lld of our 3 messages before it was killed\n",
              static_cast<long long>(victim_echoes));
  std::printf("  healthy    answered %lld round trips after the others had ended\n",
              static_cast<long long>(next_echo));
  for (Case* c : all) {
    if (!c->AsExpected()) {
      std::fprintf(stderr,
                   "FAILED: %s ended with code %d, error '%s'; expected code %d, error '%s' "
                   "containing '%s'\n",
                   c->name, c->code, c->error ? c->error->ToString().c_str() : "", c->expected_code,
                   c->expected_type, c->expected_text);
      ok = false;
    }
  }
  if (next_echo != kRoundTripsAfter) {
    std::fprintf(stderr, "FAILED: healthy answered %lld of %d round trips\n",
                 static_cast<long long>(next_echo), kRoundTripsAfter);
    ok = false;
  }
  const std::set<std::string> leaked = NewShmNames(shm_before);
  for (const std::string& name : leaked) {
    std::fprintf(stderr, "FAILED: left behind in /dev/shm: %s\n", name.c_str());
    ok = false;
  }
  std::printf("  /dev/shm   %zu names before, %zu new after\n", shm_before.size(), leaked.size());
  if (!ok) return 1;
  std::printf(
      "OK: %s each ended with the expected cause; healthy kept answering and exited 0; "
      "nothing left in /dev/shm\n",
      skip_hog ? "segfaulter and victim" : "segfaulter, victim and hog");
  return 0;
}
