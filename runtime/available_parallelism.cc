#include "wharf/runtime/available_parallelism.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace wharf {
namespace runtime_internal {
namespace {

// Far more than any cpu.max (two numbers) or /proc/self/cgroup (one line per
// v1 hierarchy) holds; anything longer is not what we are looking for.
constexpr std::size_t kMaxCpuMaxBytes = 4096;
constexpr std::size_t kMaxProcCgroupBytes = 64 * 1024;

// sched_getaffinity's set is grown up to this many CPUs (EINVAL: the kernel's
// mask is larger than the set we passed).
constexpr int kMaxAffinityCpus = 1 << 22;

constexpr bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// The next whitespace-separated token of `s` (consumed), or empty at the end.
std::string_view NextToken(std::string_view& s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  std::size_t n = 0;
  while (n < s.size() && !IsSpace(s[n])) ++n;
  std::string_view token = s.substr(0, n);
  s.remove_prefix(n);
  return token;
}

// A positive decimal integer, the whole of `s`.
std::optional<std::int64_t> ParsePositive(std::string_view s) {
  std::int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || ptr != end || v <= 0) return std::nullopt;
  return v;
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// The contents of the regular file `path`, at most `max_bytes` of it; nullopt
// if it cannot be opened or read, is not a regular file, or is longer. Opened
// non-blocking so that a FIFO in a strange tree cannot hang the caller.
std::optional<std::string> ReadSmallFile(const std::string& path,
                                         std::size_t max_bytes) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return std::nullopt;
  FdCloser closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  std::string text;
  char chunk[4096];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > max_bytes) {
      return std::nullopt;
    }
    text.append(chunk, static_cast<std::size_t>(n));
  }
  return text;
}

struct CpuSetDeleter {
  void operator()(cpu_set_t* set) const { CPU_FREE(set); }
};

int OnlineCpus() noexcept {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) return 1;
  return n > INT_MAX ? INT_MAX : static_cast<int>(n);
}

}  // namespace

int AffinityCpuCount() noexcept {
  for (int cpus = CPU_SETSIZE; cpus <= kMaxAffinityCpus; cpus *= 2) {
    std::unique_ptr<cpu_set_t, CpuSetDeleter> set(CPU_ALLOC(cpus));
    if (set == nullptr) break;
    const std::size_t size = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(size, set.get());
    if (::sched_getaffinity(0, size, set.get()) == 0) {
      const int count = CPU_COUNT_S(size, set.get());
      if (count >= 1) return count;
      break;
    }
    if (errno != EINVAL) break;  // EINVAL: our set is smaller than the kernel's
  }
  return OnlineCpus();
}

std::optional<double> ParseCgroupCpuMax(std::string_view cpu_max) {
  std::string_view rest = cpu_max;
  const std::string_view quota = NextToken(rest);
  const std::string_view period = NextToken(rest);
  if (quota.empty() || period.empty() || !Trim(rest).empty()) {
    return std::nullopt;
  }
  if (quota == "max") return std::nullopt;
  const std::optional<std::int64_t> q = ParsePositive(quota);
  const std::optional<std::int64_t> p = ParsePositive(period);
  if (!q.has_value() || !p.has_value()) return std::nullopt;
  return static_cast<double>(*q) / static_cast<double>(*p);
}

std::optional<std::string> ParseCgroupV2Path(std::string_view proc_self_cgroup) {
  std::string_view text = proc_self_cgroup;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    line = Trim(line);
    // "hierarchy-ID:controller-list:cgroup-path"; v2 is ID 0, no controllers.
    constexpr std::string_view kV2Prefix = "0::";
    if (line.substr(0, kV2Prefix.size()) != kV2Prefix) continue;
    const std::string_view path = line.substr(kV2Prefix.size());
    if (path.empty() || path.front() != '/') return std::nullopt;
    return std::string(path);
  }
  return std::nullopt;
}

int CombineParallelism(int affinity_cpus, std::optional<double> quota_cpus) {
  const int affinity = affinity_cpus < 1 ? 1 : affinity_cpus;
  if (!quota_cpus.has_value()) return affinity;
  const double quota = *quota_cpus;
  // NaN and +inf fail the first test; -inf and anything <= 1 the second: the
  // cast below only sees values in (1, affinity).
  if (!(quota < static_cast<double>(affinity))) return affinity;
  if (!(quota > 1.0)) return 1;
  return static_cast<int>(std::ceil(quota));
}

std::optional<double> CgroupCpuQuota(const std::string& cgroup_root,
                                     std::string_view proc_self_cgroup) {
  const std::optional<std::string> path = ParseCgroupV2Path(proc_self_cgroup);
  if (!path.has_value()) return std::nullopt;

  // The path's components, "" and "." dropped. ".." cannot be mapped onto
  // the mount (the cgroup is outside this namespace's root): read only the
  // root's own file then.
  std::vector<std::string_view> parts;
  std::string_view rest = *path;
  bool climbs = false;
  while (!rest.empty()) {
    const std::size_t slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    rest.remove_prefix(slash == std::string_view::npos ? rest.size()
                                                       : slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      climbs = true;
      break;
    }
    parts.push_back(part);
  }
  if (climbs) parts.clear();

  std::string root = cgroup_root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root == "/") root.clear();

  // root, root/a, root/a/b, ...: every level from the root to the cgroup.
  std::optional<double> smallest;
  std::string dir = root;
  for (std::size_t level = 0; level <= parts.size(); ++level) {
    if (level > 0) {
      dir += '/';
      dir.append(parts[level - 1]);
    }
    const std::optional<std::string> text =
        ReadSmallFile(dir + "/cpu.max", kMaxCpuMaxBytes);
    if (!text.has_value()) continue;
    const std::optional<double> quota = ParseCgroupCpuMax(*text);
    if (quota.has_value() && (!smallest.has_value() || *quota < *smallest)) {
      smallest = quota;
    }
  }
  return smallest;
}

CpuLimits CurrentCpuLimits(const std::string& cgroup_root) noexcept {
  CpuLimits limits;
  limits.affinity_cpus = AffinityCpuCount();
  try {
    const std::optional<std::string> cgroup =
        ReadSmallFile("/proc/self/cgroup", kMaxProcCgroupBytes);
    if (cgroup.has_value()) {
      limits.quota_cpus = CgroupCpuQuota(cgroup_root, *cgroup);
    }
  } catch (...) {
    // Out of memory for a path: no quota known; the affinity still counts.
    limits.quota_cpus.reset();
  }
  return limits;
}

}  // namespace runtime_internal

int AvailableParallelism() noexcept {
  using runtime_internal::CombineParallelism;
  try {
    const runtime_internal::CpuLimits limits =
        runtime_internal::CurrentCpuLimits(runtime_internal::kDefaultCgroupRoot);
    return CombineParallelism(limits.affinity_cpus, limits.quota_cpus);
  } catch (...) {  // the root's std::string: no quota known
    return CombineParallelism(runtime_internal::AffinityCpuCount(), std::nullopt);
  }
}

}  // namespace wharf
