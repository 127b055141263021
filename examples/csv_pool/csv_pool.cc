// csv_pool: a large CSV file parsed on a process pool, each chunk handed to a
// worker in shared memory (never copied into a message), the result checked
// against a serial parse of the same file.
//
// It writes about --mb MB of sales rows (id,city,product,quantity,amount) to
// a file in a temporary directory, then
//   1. serially: reads the file in 1 MiB blocks into one reused buffer and
//      parses it on this thread;
//   2. on a process pool: splits the file into chunks of about --chunk_mb MB
//      at line boundaries, reads each chunk straight into a shared-memory
//      Buffer (Buffer::AllocateShared) and Runs "parse_csv_chunk" with it;
//      each worker returns its chunk's totals (rows, quantity and amount per
//      city) and the parent adds them up;
// and prints the throughput of each (MB/s, 1 MB = 10^6 bytes, reading the
// file included), the speed-up and the core count, then the totals per city.
// It exits 1 unless the pool's totals equal the serial parse's, which equal
// what the generator wrote.
//
// What it shows:
//  - zero-copy hand-over: a Buffer in shared memory, moved into a task's
//    argument, reaches the worker process as that memory — whatever its
//    size — and the worker sees Buffer::shared() (the report counts them);
//  - back-pressure: max_queue with FullPolicy::kWait makes Run block while
//    2 x workers chunks wait, so the parent holds a few chunks at a time,
//    however big the file;
//  - a result type with a Codec<T> (Totals), the untyped task's way to
//    return a struct;
//  - exact aggregation: amounts are parsed into integer cents, because sums
//    of doubles added in another order differ in the last bits.
//
// Where the time goes: every chunk is fresh memory, so the parent's first
// write to each of its pages and the worker's first read of it are page
// faults; the serial loop reuses one buffer and has none. Where a fault costs
// a fraction of a microsecond the parse dominates and the pool gains with
// the cores; in a VM where it costs ~20-30 us (measured on the 2-core VM
// this was written on) the faults dominate and the pool can be slower than
// the serial loop. The "parent spent" line shows which case you are in.
//
// The CSV is plain: no quoted fields, no embedded commas or newlines (a
// real one needs a real parser, and a chunk split that knows about quotes).
//
// Run:  ./bazelw run //examples/csv_pool [-- --mb=N --chunk_mb=N --workers=N]  (--help)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "wharf/runtime/available_parallelism.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/init_process.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker_pool.h"

namespace {

constexpr char kHeader[] = "id,city,product,quantity,amount\n";
constexpr const char* kCities[] = {"Amsterdam", "Berlin", "Cairo", "Delhi", "Istanbul", "Lagos",
                                   "Lima",      "Osaka",  "Paris", "Seoul", "Sydney",   "Toronto"};
constexpr const char* kProducts[] = {"apples", "bread", "coffee", "lamps",
                                     "paper",  "shoes", "tea",    "tyres"};
constexpr size_t kMB = 1'000'000;

// --- The parse, and its result ------------------------------------------------

struct CityTotals {
  int64_t rows = 0;
  int64_t quantity = 0;
  int64_t cents = 0;  // the amounts' sum, exact
  bool operator==(const CityTotals&) const = default;
};

struct Totals {
  int64_t rows = 0;
  int64_t bad_lines = 0;  // not five fields, or a quantity or amount that does not parse
  std::map<std::string, CityTotals, std::less<>> cities;

  CityTotals& City(std::string_view name) {
    auto it = cities.find(name);
    if (it == cities.end()) it = cities.emplace(std::string(name), CityTotals{}).first;
    return it->second;
  }
  void Add(const Totals& other) {
    rows += other.rows;
    bad_lines += other.bad_lines;
    for (const auto& [name, c] : other.cities) {
      CityTotals& mine = City(name);
      mine.rows += c.rows;
      mine.quantity += c.quantity;
      mine.cents += c.cents;
    }
  }
  bool operator==(const Totals&) const = default;
};

bool ParseInt(std::string_view text, int64_t& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// "123.45" -> 12345.
bool ParseCents(std::string_view text, int64_t& cents) {
  const size_t dot = text.find('.');
  int64_t whole = 0, fraction = 0;
  if (dot == std::string_view::npos || text.size() - dot != 3) return false;
  if (!ParseInt(text.substr(0, dot), whole) || !ParseInt(text.substr(dot + 1), fraction)) {
    return false;
  }
  if (whole < 0 || fraction < 0) return false;
  cents = whole * 100 + fraction;
  return true;
}

// Adds the rows of `text` (whole lines, no header) to `t`.
void ParseCsv(std::string_view text, Totals& t) {
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    // id,city,product,quantity,amount
    std::string_view field[5];
    size_t start = 0, n = 0;
    for (; n < 5; ++n) {
      const size_t comma = line.find(',', start);
      field[n] = line.substr(start, comma == std::string_view::npos ? comma : comma - start);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    int64_t quantity = 0, cents = 0;
    if (n != 4 || field[1].empty() || !ParseInt(field[3], quantity) ||
        !ParseCents(field[4], cents)) {
      ++t.bad_lines;
      continue;
    }
    ++t.rows;
    CityTotals& c = t.City(field[1]);
    ++c.rows;
    c.quantity += quantity;
    c.cents += cents;
  }
}

}  // namespace

// How Totals crosses between processes: [rows, bad_lines, {city: [rows,
// quantity, cents]}]. Decode checks the shape: the Value comes from another
// process.
template <>
struct wharf::Codec<Totals> {
  static Value Encode(const Totals& t) {
    ValueMap cities;
    for (const auto& [name, c] : t.cities) {
      cities.Set(name, Value::Array(c.rows, c.quantity, c.cents));
    }
    return Value::Array(t.rows, t.bad_lines, Value(std::move(cities)));
  }
  static absl::StatusOr<Totals> Decode(const Value& v) {
    const ValueArray* a = v.GetArray();
    const ValueMap* cities = a != nullptr && a->size() == 3 ? (*a)[2].GetMap() : nullptr;
    if (cities == nullptr || !(*a)[0].IsInt() || !(*a)[1].IsInt()) {
      return absl::InvalidArgumentError("Totals: want [rows, bad_lines, {city: [...]}]");
    }
    Totals t;
    t.rows = *(*a)[0].GetInt();
    t.bad_lines = *(*a)[1].GetInt();
    for (const auto& [name, value] : *cities) {
      const ValueArray* c = value.GetArray();
      if (c == nullptr || c->size() != 3 || !(*c)[0].IsInt() || !(*c)[1].IsInt() ||
          !(*c)[2].IsInt()) {
        return absl::InvalidArgumentError(
            absl::StrCat("Totals: city '", name, "': want [rows, quantity, cents]"));
      }
      t.cities[name] = {*(*c)[0].GetInt(), *(*c)[1].GetInt(), *(*c)[2].GetInt()};
    }
    return t;
  }
};

// The task: the totals of one chunk. `arg` is the chunk, a Buffer of whole
// lines (its memory is the parent's shared Buffer: no copy was made).
// Returns [totals, whether the chunk arrived in shared memory, this pid].
WHARF_TASK(parse_csv_chunk) {
  const wharf::Buffer* chunk = arg.GetBuffer();
  if (chunk == nullptr) return absl::InvalidArgumentError("parse_csv_chunk: want a Buffer");
  Totals t;
  ParseCsv(std::string_view(reinterpret_cast<const char*>(chunk->data()), chunk->size()), t);
  return wharf::Value::Array(wharf::Codec<Totals>::Encode(t), chunk->shared(),
                             static_cast<int64_t>(getpid()));
}

namespace {

constexpr char kUsage[] = R"(usage: csv_pool [flags]
Writes a CSV file of sales rows, then totals it per city serially and on a
process pool (chunks handed to the workers in shared memory), and checks that
the two agree.
  --mb=N        size of the CSV file in MB (default 200; 1 MB = 10^6 bytes)
  --chunk_mb=N  size of a chunk in MB (default 4)
  --workers=N   process workers (default: the CPUs available, AvailableParallelism())
  --help        this text
)";

struct Flags {
  int64_t mb = 200;
  int64_t chunk_mb = 4;
  int64_t workers = 0;  // 0: AvailableParallelism()
};

// Parses --name=value flags; nullopt after printing why (or --help).
std::optional<Flags> ParseFlags(int argc, char** argv, int& exit_code) {
  Flags f;
  struct Spec {
    std::string_view name;
    int64_t* value;
    int64_t min, max;
  };
  const Spec specs[] = {{"--mb", &f.mb, 1, 100'000},
                        {"--chunk_mb", &f.chunk_mb, 1, 1024},
                        {"--workers", &f.workers, 1, 256}};
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
      std::fprintf(stderr, "csv_pool: unknown flag '%s' (see --help)\n", argv[i]);
      return std::nullopt;
    }
    if (name.size() == arg.size()) {
      std::fprintf(stderr, "csv_pool: %s needs a value: %s=N (see --help)\n", argv[i], argv[i]);
      return std::nullopt;
    }
    const std::string_view text = arg.substr(name.size() + 1);
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < spec->min || v > spec->max) {
      std::fprintf(stderr, "csv_pool: %s: want a whole number from %lld to %lld (see --help)\n",
                   argv[i], static_cast<long long>(spec->min), static_cast<long long>(spec->max));
      return std::nullopt;
    }
    *spec->value = v;
  }
  return f;
}

absl::Status ErrnoError(const char* what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// A directory of our own under $TEST_TMPDIR, $TMPDIR or /tmp, removed with
// the file in it when this goes (a killed run leaves it behind).
class TempFile {
 public:
  TempFile() {
    const char* base = std::getenv("TEST_TMPDIR");
    if (base == nullptr || *base == '\0') base = std::getenv("TMPDIR");
    if (base == nullptr || *base == '\0') base = "/tmp";
    std::string dir = absl::StrCat(base, "/csv_pool.XXXXXX");
    if (::mkdtemp(dir.data()) != nullptr) {
      dir_ = dir;
      path_ = dir + "/sales.csv";
    }
  }
  ~TempFile() {
    if (dir_.empty()) return;
    (void)::unlink(path_.c_str());
    (void)::rmdir(dir_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  // Empty if the directory could not be made.
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

// A file descriptor closed when this goes.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) (void)::close(fd);
  }
};

// A small, fast, seeded generator (SplitMix64): the same file every run.
struct SplitMix64 {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
};

absl::Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("cannot write", path);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Writes a header and rows to `path` until it holds at least `bytes` bytes;
// returns the totals of what it wrote (what every parse must find).
absl::StatusOr<Totals> WriteCsv(const std::string& path, size_t bytes) {
  Fd out{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (out.fd < 0) return ErrnoError("cannot create", path);
  Totals truth;
  SplitMix64 rng{42};
  std::string block(kHeader);
  size_t written = 0;
  for (int64_t id = 1; written + block.size() < bytes; ++id) {
    const char* city = kCities[rng.Below(std::size(kCities))];
    const char* product = kProducts[rng.Below(std::size(kProducts))];
    const int64_t quantity = 1 + static_cast<int64_t>(rng.Below(20));
    const int64_t cents = 1 + static_cast<int64_t>(rng.Below(99'999));  // 0.01 to 999.99
    absl::StrAppend(&block, id, ",", city, ",", product, ",", quantity, ",", cents / 100,
                    cents % 100 < 10 ? ".0" : ".", cents % 100, "\n");
    ++truth.rows;
    CityTotals& c = truth.City(city);
    ++c.rows;
    c.quantity += quantity;
    c.cents += cents;
    if (block.size() >= (1 << 20)) {
      if (absl::Status s = WriteAll(out.fd, block, path); !s.ok()) return s;
      written += block.size();
      block.clear();
    }
  }
  if (absl::Status s = WriteAll(out.fd, block, path); !s.ok()) return s;
  return truth;
}

// Reads exactly `into.size()` bytes at `offset`.
absl::Status ReadAt(int fd, uint64_t offset, std::span<std::byte> into, const std::string& path) {
  while (!into.empty()) {
    const ssize_t n = ::pread(fd, into.data(), into.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot read", path);
    if (n == 0) return absl::DataLossError(absl::StrCat(path, ": shorter than expected"));
    into = into.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

// Where the line that holds byte `at` ends (just past its '\n'), or `size`.
absl::StatusOr<uint64_t> LineEnd(int fd, uint64_t at, uint64_t size, const std::string& path) {
  char window[4096];
  while (at < size) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof window, size - at));
    if (absl::Status s = ReadAt(fd, at, std::as_writable_bytes(std::span(window, n)), path);
        !s.ok()) {
      return s;
    }
    if (const void* nl = std::memchr(window, '\n', n)) {
      return at + static_cast<uint64_t>(static_cast<const char*>(nl) - window) + 1;
    }
    at += n;
  }
  return size;
}

// The rows from `begin` to `size`, read in blocks into one reused buffer:
// the whole lines of each block are parsed, the partial last one is moved to
// the front and completed by the next read.
absl::StatusOr<Totals> ParseSerially(int fd, uint64_t begin, uint64_t size,
                                     const std::string& path) {
  std::vector<char> buf(1 << 20);
  size_t kept = 0;  // the partial line at the front of buf
  Totals t;
  while (begin < size) {
    if (kept == buf.size()) buf.resize(2 * buf.size());  // a line longer than buf
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size() - kept, size - begin));
    const std::span<std::byte> into = std::as_writable_bytes(std::span(buf)).subspan(kept, n);
    if (absl::Status s = ReadAt(fd, begin, into, path); !s.ok()) return s;
    begin += n;
    const std::string_view data(buf.data(), kept + n);
    const size_t end = begin == size ? data.size() : data.rfind('\n') + 1;  // npos + 1 == 0
    ParseCsv(data.substr(0, end), t);
    kept = data.size() - end;
    std::memmove(buf.data(), buf.data() + end, kept);
  }
  return t;
}

struct PoolResult {
  Totals totals;
  size_t chunks = 0;
  size_t arrived_shared = 0;             // chunks a worker saw in shared memory
  std::map<int64_t, size_t> per_worker;  // pid -> chunks
  // Where the parent's time went: reading chunks into shared memory (the
  // part no worker can do for it), and blocked in Run while the queue was
  // full (the workers were the bottleneck then).
  absl::Duration reading, blocked;
};

// Hands the file's rows (from `begin`) to `pool` in chunks of about
// `chunk_bytes`, each cut after a '\n', and adds up the workers' totals.
absl::StatusOr<PoolResult> ParseOnPool(wharf::WorkerPool& pool, int fd, uint64_t begin,
                                       uint64_t size, uint64_t chunk_bytes,
                                       const std::string& path) {
  std::vector<wharf::Future<wharf::Value>> futures;
  PoolResult r;
  while (begin < size) {
    const absl::Time read_start = absl::Now();
    absl::StatusOr<uint64_t> end = LineEnd(fd, std::min(begin + chunk_bytes, size) - 1, size, path);
    if (!end.ok()) return end.status();
    absl::StatusOr<wharf::Buffer> chunk = wharf::Buffer::AllocateShared(*end - begin);
    if (!chunk.ok()) return chunk.status();
    // Straight from the file into shared memory: the only copy of the bytes.
    if (absl::Status s = ReadAt(fd, begin, chunk->span(), path); !s.ok()) return s;
    const absl::Time run_start = absl::Now();
    r.reading += run_start - read_start;
    // Moved into the argument, so transferred: the worker maps this memory.
    // Blocks while the queue is full (FullPolicy::kWait).
    futures.push_back(pool.Run("parse_csv_chunk", wharf::Value(*std::move(chunk))));
    r.blocked += absl::Now() - run_start;
    begin = *end;
  }
  for (wharf::Future<wharf::Value>& f : futures) {
    const absl::StatusOr<wharf::Value>& v = f.Get();
    if (!v.ok()) return v.status();
    const wharf::ValueArray* a = v->GetArray();
    if (a == nullptr || a->size() != 3 || !(*a)[1].IsBool() || !(*a)[2].IsInt()) {
      return absl::InternalError(absl::StrCat("parse_csv_chunk returned ", v->ToString()));
    }
    absl::StatusOr<Totals> t = (*a)[0].To<Totals>();
    if (!t.ok()) return t.status();
    r.totals.Add(*t);
    ++r.chunks;
    r.arrived_shared += *(*a)[1].GetBool() ? 1 : 0;
    ++r.per_worker[*(*a)[2].GetInt()];
  }
  return r;
}

void Report(const char* label, uint64_t bytes, absl::Duration took, absl::Duration serial) {
  const double s = absl::ToDoubleSeconds(took);
  std::printf("  %-12s: %.1f MB in %.2f s, %6.0f MB/s", label, static_cast<double>(bytes) / kMB, s,
              static_cast<double>(bytes) / kMB / s);
  if (serial != absl::ZeroDuration()) {
    std::printf(", %.2fx serial", absl::FDivDuration(serial, took));
  }
  std::printf("\n");
}

// The first difference between two totals, for a person; "" if none.
std::string Difference(const Totals& a, const Totals& b) {
  if (a.rows != b.rows) return absl::StrCat(a.rows, " rows against ", b.rows);
  if (a.bad_lines != b.bad_lines) {
    return absl::StrCat(a.bad_lines, " bad lines against ", b.bad_lines);
  }
  for (const auto& [name, c] : a.cities) {
    auto it = b.cities.find(name);
    if (it == b.cities.end()) return absl::StrCat("city ", name, " missing from the other");
    if (!(c == it->second)) {
      return absl::StrCat(name, ": ", c.rows, " rows, quantity ", c.quantity, ", ", c.cents,
                          " cents against ", it->second.rows, ", ", it->second.quantity, ", ",
                          it->second.cents);
    }
  }
  if (a.cities.size() != b.cities.size()) return "the other has more cities";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  wharf::InitProcess(argc, argv);  // in a process worker: runs its tasks here, never returns

  int exit_code = 0;
  const std::optional<Flags> flags = ParseFlags(argc, argv, exit_code);
  if (!flags) return exit_code;
  const int cores = wharf::AvailableParallelism();
  const int workers = flags->workers > 0 ? static_cast<int>(flags->workers) : cores;
  const uint64_t chunk_bytes = static_cast<uint64_t>(flags->chunk_mb) * kMB;

  const TempFile file;
  if (file.path().empty()) {
    std::fprintf(stderr, "FAILED: cannot make a temporary directory: %s\n", std::strerror(errno));
    return 1;
  }
  const std::string& path = file.path();

  // 0. The data, and what it holds.
  absl::Time start = absl::Now();
  const absl::StatusOr<Totals> truth = WriteCsv(path, static_cast<size_t>(flags->mb) * kMB);
  if (!truth.ok()) {
    std::fprintf(stderr, "FAILED: %s\n", truth.status().ToString().c_str());
    return 1;
  }
  const absl::Duration generate_time = absl::Now() - start;
  Fd in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  struct stat st {};
  if (in.fd < 0 || ::fstat(in.fd, &st) != 0) {
    std::fprintf(stderr, "FAILED: %s\n", ErrnoError("cannot open", path).ToString().c_str());
    return 1;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t header = sizeof kHeader - 1;
  std::printf("csv_pool: %.1f MB of CSV, %lld rows, in %s (written in %.2f s)\n",
              static_cast<double>(size) / kMB, static_cast<long long>(truth->rows), path.c_str(),
              absl::ToDoubleSeconds(generate_time));
  std::printf("  %d cores available (%u online); %d worker process%s; chunks of %lld MB\n", cores,
              std::thread::hardware_concurrency(), workers, workers == 1 ? "" : "es",
              static_cast<long long>(flags->chunk_mb));

  char first[sizeof kHeader - 1];
  if (absl::Status s = ReadAt(in.fd, 0, std::as_writable_bytes(std::span(first)), path);
      !s.ok() || std::string_view(first, sizeof first) != kHeader) {
    std::fprintf(stderr, "FAILED: %s does not start with the header %s", path.c_str(), kHeader);
    return 1;
  }

  // 1. Serially, on this thread.
  start = absl::Now();
  const absl::StatusOr<Totals> serial = ParseSerially(in.fd, header, size, path);
  const absl::Duration serial_time = absl::Now() - start;
  if (!serial.ok()) {
    std::fprintf(stderr, "FAILED: serial: %s\n", serial.status().ToString().c_str());
    return 1;
  }
  Report("serial", size, serial_time, absl::ZeroDuration());

  // 2. On a process pool (the time includes starting its workers).
  absl::StatusOr<std::unique_ptr<wharf::WorkerPool>> pool = wharf::WorkerPool::Create({
      .isolation = wharf::Isolation::kProcess,
      .max_workers = workers,
      .max_queue = 2 * static_cast<size_t>(workers),  // chunks waiting, at most
      .on_full = wharf::FullPolicy::kWait,            // then Run blocks: back-pressure
      .name = "csv",
  });
  if (!pool.ok()) {
    std::fprintf(stderr, "FAILED: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  start = absl::Now();
  const absl::StatusOr<PoolResult> pooled =
      ParseOnPool(**pool, in.fd, header, size, chunk_bytes, path);
  const absl::Duration pool_time = absl::Now() - start;
  if (!pooled.ok()) {
    std::fprintf(stderr, "FAILED: process pool: %s\n", pooled.status().ToString().c_str());
    return 1;
  }
  Report("process pool", size, pool_time, serial_time);
  std::string spread;
  for (const auto& [pid, n] : pooled->per_worker) {
    absl::StrAppend(&spread, spread.empty() ? "" : ", ", n);
  }
  std::printf(
      "  %zu chunk%s, %zu of them seen by their worker in shared memory; chunks per "
      "worker process: %s\n",
      pooled->chunks, pooled->chunks == 1 ? "" : "s", pooled->arrived_shared, spread.c_str());
  std::printf(
      "  the parent spent %.2f s reading chunks into shared memory and %.2f s blocked in "
      "Run (queue full)\n",
      absl::ToDoubleSeconds(pooled->reading), absl::ToDoubleSeconds(pooled->blocked));

  std::printf("  %-10s %10s %12s %16s\n", "city", "rows", "quantity", "amount");
  for (const auto& [name, c] : pooled->totals.cities) {
    std::printf("  %-10s %10lld %12lld %13lld.%02lld\n", name.c_str(),
                static_cast<long long>(c.rows), static_cast<long long>(c.quantity),
                static_cast<long long>(c.cents / 100), static_cast<long long>(c.cents % 100));
  }

  bool ok = true;
  const auto check = [&ok](const char* what, const Totals& got, const Totals& want) {
    if (!(got == want)) {
      std::fprintf(stderr, "FAILED: %s: %s\n", what, Difference(got, want).c_str());
      ok = false;
    }
  };
  check("the serial parse differs from what was written", *serial, *truth);
  check("the pool's totals differ from the serial parse's", pooled->totals, *serial);
  if (pooled->arrived_shared != pooled->chunks) {
    std::fprintf(stderr, "FAILED: %zu of %zu chunks reached their worker as a copy\n",
                 pooled->chunks - pooled->arrived_shared, pooled->chunks);
    ok = false;
  }
  if (!ok) return 1;
  std::printf(
      "OK: the pool's totals equal the serial parse's and the generator's (%lld rows, "
      "%zu cities, no bad lines)\n",
      static_cast<long long>(serial->rows), serial->cities.size());
  return 0;
}
