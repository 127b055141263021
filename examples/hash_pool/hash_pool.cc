// hash_pool: the same CPU-bound work — scrypt password hashes, as Node's
// crypto.scryptSync computes them — serially, then on a thread pool, then on
// a process pool; the throughput and speed-up of each, and a check that
// every hash a pool returned equals the serial one.
//
// What it shows:
//  - a typed task: a plain function registered with WHARF_TYPED_TASK, whose
//    arguments Submit checks at compile time and encodes for the trip to a
//    worker (also one in another process);
//  - threads or processes is one option, PoolOptions::isolation — the task
//    and the code that submits it do not change;
//  - a process worker is this program started again: wharf::InitProcess
//    comes first in main, and everything a task needs travels in its
//    arguments (a worker process never sees the flags main parsed, which is
//    why the scrypt cost is an argument and not a global);
//  - the pools' metrics for Prometheus (--metrics_port): a PoolCollector
//    reads each pool's Stats() when scraped.
//
// Run:  ./bazelw run //examples/hash_pool [-- --count=N --cost=N ...]  (--help)
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "prometheus/exposer.h"
#include "wharf/runtime/available_parallelism.h"
#include "wharf/runtime/init_process.h"
#include "wharf/runtime/worker_pool.h"
#include "wharf/runtime/worker_pool_prometheus.h"

// scrypt's block size r and parallelism p are Node's defaults; so is the
// 64-byte key. Node's cost N is 16384 (~100 ms a hash here); --cost picks
// ours, 256 by default so that the whole run takes seconds.
constexpr uint64_t kBlockSize = 8;    // r
constexpr uint64_t kParallelism = 1;  // p
constexpr size_t kKeyBytes = 64;

// The task: scrypt(password, salt) with cost N, as 128 hex digits. An
// exception fails this task only: its future holds the message.
std::string HashPassword(std::string password, std::string salt, int64_t cost) {
  unsigned char key[kKeyBytes];
  // scrypt needs 128·r·(N + p) bytes; OpenSSL refuses to use more than maxmem.
  const uint64_t maxmem = 128 * kBlockSize * (static_cast<uint64_t>(cost) + kParallelism) + (1 << 20);
  if (EVP_PBE_scrypt(password.data(), password.size(),
                     reinterpret_cast<const unsigned char*>(salt.data()), salt.size(),
                     static_cast<uint64_t>(cost), kBlockSize, kParallelism, maxmem, key,
                     sizeof key) != 1) {
    char why[256];
    ERR_error_string_n(ERR_get_error(), why, sizeof why);
    throw std::runtime_error(absl::StrCat("EVP_PBE_scrypt(N=", cost, ") failed: ", why));
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(key), sizeof key));
}
WHARF_TYPED_TASK(HashPassword);  // by name, so that a worker process finds it

// OpenSSL frees a thread's state (the error queue a hash touches) when the
// thread ends, and tears itself down in an atexit handler. A pool's worker
// threads may still be ending after the pool is gone and main has returned
// (WorkerPool's workers are detached threads); if the teardown comes first,
// a worker's state is never freed (LeakSanitizer reports it). So leave
// OpenSSL up until the process is gone — in a worker process too, hence a
// static initialiser rather than a call in main.
[[maybe_unused]] static const bool openssl_stays_up =
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) == 1;

namespace {

constexpr char kUsage[] = R"(usage: hash_pool [flags]
Hashes passwords with scrypt serially, on a thread pool and on a process pool,
and checks that every pool's hashes equal the serial ones.
  --count=N         passwords to hash (default 4000)
  --cost=N          scrypt's N, a power of two (default 256; Node's is 16384)
  --workers=N       workers per pool (default: the CPUs available, AvailableParallelism())
  --metrics_port=N  serve the pools' metrics at http://127.0.0.1:N/metrics while
                    running (0: any free port, printed)
  --linger_ms=N     with --metrics_port: keep serving N ms after the work
  --help            this text
)";

struct Flags {
  int64_t count = 4000;
  int64_t cost = 256;
  int64_t workers = 0;        // 0: AvailableParallelism()
  int64_t metrics_port = -1;  // -1: no metrics server
  int64_t linger_ms = 0;
};

// Parses --name=value flags; nullopt after printing why (or --help).
std::optional<Flags> ParseFlags(int argc, char** argv, int& exit_code) {
  Flags f;
  struct Spec {
    std::string_view name;
    int64_t* value;
    int64_t min, max;
  };
  const Spec specs[] = {
      {"--count", &f.count, 1, 10'000'000},        {"--cost", &f.cost, 2, 1 << 20},
      {"--workers", &f.workers, 1, 1024},          {"--metrics_port", &f.metrics_port, 0, 65535},
      {"--linger_ms", &f.linger_ms, 0, 3'600'000},
  };
  exit_code = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      exit_code = 0;
      return std::nullopt;
    }
    const std::string_view name = arg.substr(0, arg.find('='));
    const Spec* spec = nullptr;
    for (const Spec& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr) {
      std::fprintf(stderr, "hash_pool: unknown flag '%s' (see --help)\n", argv[i]);
      return std::nullopt;
    }
    if (name.size() == arg.size()) {
      std::fprintf(stderr, "hash_pool: %s needs a value: %s=N (see --help)\n", argv[i], argv[i]);
      return std::nullopt;
    }
    const std::string_view text = arg.substr(name.size() + 1);
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < spec->min || v > spec->max) {
      std::fprintf(stderr, "hash_pool: %s: want a whole number from %lld to %lld (see --help)\n",
                   argv[i], static_cast<long long>(spec->min), static_cast<long long>(spec->max));
      return std::nullopt;
    }
    *spec->value = v;
  }
  if ((f.cost & (f.cost - 1)) != 0) {
    std::fprintf(stderr, "hash_pool: --cost=%lld: scrypt's N must be a power of two\n",
                 static_cast<long long>(f.cost));
    return std::nullopt;
  }
  if (f.linger_ms > 0 && f.metrics_port < 0) {
    std::fprintf(stderr, "hash_pool: --linger_ms needs --metrics_port\n");
    return std::nullopt;
  }
  return f;
}

// "\r  thread pool: 1234/4000" on stderr, ten times a second at most, when
// stderr is a terminal.
class Progress {
 public:
  explicit Progress(const char* label) : label_(label), on_(isatty(STDERR_FILENO) == 1) {}
  ~Progress() {
    if (on_) std::fprintf(stderr, "\r%60s\r", "");  // clear the line
  }
  void Show(size_t done, size_t total) {
    if (!on_ || absl::Now() < next_) return;
    next_ = absl::Now() + absl::Milliseconds(100);
    std::fprintf(stderr, "\r  %s: %zu/%zu", label_, done, total);
  }

 private:
  const char* label_;
  bool on_;
  absl::Time next_ = absl::InfinitePast();
};

struct Inputs {
  std::vector<std::string> passwords, salts;
};

void Report(const char* label, size_t n, absl::Duration took, absl::Duration serial) {
  const double s = absl::ToDoubleSeconds(took);
  std::printf("  %-12s: %zu hashes in %6.2f s, %7.0f hashes/s", label, n, s,
              static_cast<double>(n) / s);
  if (serial != absl::ZeroDuration()) std::printf(", %.2fx serial", absl::FDivDuration(serial, took));
  std::printf("\n");
}

// Submits every hash to `pool`, then collects the results in order into `out`.
absl::Status HashOnPool(wharf::WorkerPool& pool, const char* label, const Inputs& in,
                        int64_t cost, std::vector<std::string>& out) {
  const size_t n = in.passwords.size();
  std::vector<wharf::Future<std::string>> futures;
  futures.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // Checked at compile time against HashPassword's parameters.
    futures.push_back(pool.Submit(&HashPassword, in.passwords[i], in.salts[i], cost));
  }
  Progress progress(label);
  for (size_t i = 0; i < n; ++i) {
    const absl::StatusOr<std::string>& hash = futures[i].Get();  // blocks until done
    if (!hash.ok()) return hash.status();  // the task threw: its message is here
    out[i] = *hash;
    progress.Show(i + 1, n);
  }
  return absl::OkStatus();
}

// The index of the first hash that differs from the serial one, or -1.
int64_t FirstMismatch(const std::vector<std::string>& serial, const std::vector<std::string>& got) {
  for (size_t i = 0; i < serial.size(); ++i) {
    if (serial[i] != got[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  wharf::InitProcess(argc, argv);  // in a process worker: runs its tasks here, never returns

  int exit_code = 0;
  const std::optional<Flags> flags = ParseFlags(argc, argv, exit_code);
  if (!flags) return exit_code;
  const int workers = flags->workers > 0 ? static_cast<int>(flags->workers)
                                         : wharf::AvailableParallelism();
  const size_t n = static_cast<size_t>(flags->count);

  // Passwords, and a random 16-byte salt for each (as hex: salts are text here).
  Inputs in;
  for (size_t i = 0; i < n; ++i) {
    unsigned char salt[16];
    if (RAND_bytes(salt, sizeof salt) != 1) {
      std::fprintf(stderr, "FAILED: RAND_bytes: no randomness for the salts\n");
      return 1;
    }
    in.passwords.push_back(absl::StrCat("password-", i));
    in.salts.push_back(absl::BytesToHexString(
        absl::string_view(reinterpret_cast<const char*>(salt), sizeof salt)));
  }

  // Declared in this order so they go in the reverse one: the metrics server
  // stops first, then no scrape can read a pool that is gone.
  std::unique_ptr<wharf::WorkerPool> thread_pool, process_pool;
  const auto collector = std::make_shared<wharf::PoolCollector>();
  std::unique_ptr<prometheus::Exposer> exposer;
  if (flags->metrics_port >= 0) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(absl::StrCat("127.0.0.1:", flags->metrics_port));
    } catch (const std::exception& e) {  // civetweb throws when it cannot listen
      std::fprintf(stderr, "FAILED: cannot serve metrics on 127.0.0.1:%lld: %s\n",
                   static_cast<long long>(flags->metrics_port), e.what());
      return 1;
    }
    exposer->RegisterCollectable(collector);  // held as a weak_ptr
    const std::vector<int> ports = exposer->GetListeningPorts();  // the port 0 picked
    if (ports.empty()) {
      std::fprintf(stderr, "FAILED: the metrics server listens on no port\n");
      return 1;
    }
    std::printf("metrics: http://127.0.0.1:%d/metrics\n", ports[0]);
    std::fflush(stdout);
  }

  std::printf("hash_pool: %zu scrypt hashes (N=%lld, r=%llu, p=%llu, %zu-byte keys), %d worker%s "
              "per pool\n",
              n, static_cast<long long>(flags->cost), static_cast<unsigned long long>(kBlockSize),
              static_cast<unsigned long long>(kParallelism), kKeyBytes, workers,
              workers == 1 ? "" : "s");

  // 1. Serially, on this thread: the reference hashes and the time to beat.
  std::vector<std::string> serial(n);
  absl::Duration serial_time;
  {
    Progress progress("serial");
    const absl::Time start = absl::Now();
    for (size_t i = 0; i < n; ++i) {
      try {
        serial[i] = HashPassword(in.passwords[i], in.salts[i], flags->cost);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "FAILED: serial hash %zu: %s\n", i, e.what());
        return 1;
      }
      progress.Show(i + 1, n);
    }
    serial_time = absl::Now() - start;
  }
  Report("serial", n, serial_time, absl::ZeroDuration());

  // 2. and 3. The same on a thread pool and on a process pool: one option apart.
  struct Mode {
    const char* label;
    wharf::Isolation isolation;
    const char* name;  // the pool's name: its metrics' pool="..." label
    std::unique_ptr<wharf::WorkerPool>* pool;
  };
  const Mode modes[] = {
      {"thread pool", wharf::Isolation::kThread, "hash_threads", &thread_pool},
      {"process pool", wharf::Isolation::kProcess, "hash_processes", &process_pool},
  };
  for (const Mode& mode : modes) {
    absl::StatusOr<std::unique_ptr<wharf::WorkerPool>> pool = wharf::WorkerPool::Create({
        .isolation = mode.isolation,
        .max_workers = workers,
        .max_queue = n,  // all tasks are queued at once (FullPolicy::kWait suits a stream)
        .name = mode.name,
    });
    if (!pool.ok()) {
      std::fprintf(stderr, "FAILED: %s: %s\n", mode.label, pool.status().ToString().c_str());
      return 1;
    }
    *mode.pool = *std::move(pool);
    (void)collector->Add(**mode.pool, mode.name);  // cannot fail: names differ

    std::vector<std::string> hashes(n);
    const absl::Time start = absl::Now();
    if (absl::Status s = HashOnPool(**mode.pool, mode.label, in, flags->cost, hashes); !s.ok()) {
      std::fprintf(stderr, "FAILED: %s: %s\n", mode.label, s.ToString().c_str());
      return 1;
    }
    Report(mode.label, n, absl::Now() - start, serial_time);
    if (const int64_t i = FirstMismatch(serial, hashes); i >= 0) {
      std::fprintf(stderr, "FAILED: %s: hash %lld (of '%s') differs from the serial one:\n  %s\n  %s\n",
                   mode.label, static_cast<long long>(i), in.passwords[i].c_str(),
                   hashes[i].c_str(), serial[i].c_str());
      return 1;
    }
  }

  if (flags->linger_ms > 0) {
    std::printf("metrics: serving for another %lld ms\n", static_cast<long long>(flags->linger_ms));
    std::fflush(stdout);
    absl::SleepFor(absl::Milliseconds(flags->linger_ms));
  }
  std::printf("OK: every pool's hashes equal the serial ones\n");
  return 0;
}
