// AvailableParallelism(): how many CPUs this process may actually run on — the
// default max_workers of a worker pool.
//
//   int n = wharf::AvailableParallelism();  // >= 1; 2 in a 2-CPU container
//
// Node's os.availableParallelism() and Python 3.13's os.process_cpu_count()
// with a cgroup v2 CPU quota on top: the number of CPUs in the calling
// thread's affinity mask (sched_getaffinity(0); any CPU count, including
// hosts with more than 1024; sysconf(_SC_NPROCESSORS_ONLN) if that fails),
// lowered to ceil(quota / period) of the tightest `cpu.max` of the process's
// cgroup v2 and its ancestors under /sys/fs/cgroup (a 1.5-CPU quota gives 2).
// Never below 1. cgroup v1 quotas (cpu.cfs_quota_us) and cpu.weight are not
// looked at: shares are not a limit.
//
// Not cached: each call recomputes, because the affinity mask and the cgroup
// (and its quota) may change while the process runs. The mask is per thread:
// a thread pinned to one CPU gets 1. Call it once and keep the result where
// the number must stay stable (a pool sizes itself once).
//
// Thread-safety: may be called concurrently from any thread.
//
// Blocking and cost: never sleeps; a sched_getaffinity call and reading
// /proc/self/cgroup and one small cpu.max file per cgroup level (a few
// microseconds). Not an interruption point (sync/interrupt.h).
//
// Errors: none reported. Missing or unreadable files mean "no quota"; odd
// contents are ignored; it never throws and never aborts.

#ifndef WHARF_RUNTIME_AVAILABLE_PARALLELISM_H_
#define WHARF_RUNTIME_AVAILABLE_PARALLELISM_H_

#include <optional>
#include <string>
#include <string_view>

namespace wharf {

// The number of CPUs the calling thread may use, within the process's cgroup
// v2 CPU quota. >= 1 always.
[[nodiscard]] int AvailableParallelism() noexcept;

namespace runtime_internal {

// Where the cgroup v2 hierarchy is mounted on a unified (v2-only) system.
inline constexpr char kDefaultCgroupRoot[] = "/sys/fs/cgroup";

// What AvailableParallelism() combines.
struct CpuLimits {
  int affinity_cpus = 1;             // CPUs in the calling thread's mask, >= 1
  std::optional<double> quota_cpus;  // tightest cgroup v2 quota, in CPUs
};

// The calling thread's affinity mask's CPU count (sysconf(_SC_NPROCESSORS_ONLN)
// if sched_getaffinity fails). >= 1.
[[nodiscard]] int AffinityCpuCount() noexcept;

// The limits of the calling thread now, reading /proc/self/cgroup and the
// cgroup tree under `cgroup_root`. Never throws.
[[nodiscard]] CpuLimits CurrentCpuLimits(
    const std::string& cgroup_root = kDefaultCgroupRoot) noexcept;

// `cpu_max` is the text of a cgroup v2 `cpu.max` file, "$QUOTA $PERIOD" in
// microseconds ("200000 100000\n" -> 2.0). nullopt for no limit ("max ...")
// and for anything unparsable (garbage, empty, a missing period, a quota or
// period <= 0, extra fields). Surrounding whitespace is allowed.
[[nodiscard]] std::optional<double> ParseCgroupCpuMax(std::string_view cpu_max);

// `proc_self_cgroup` is the text of /proc/self/cgroup: the path of the cgroup
// v2 line ("0::/some/path" -> "/some/path"); cgroup v1 lines ("4:memory:/x")
// are skipped. nullopt if there is no v2 line or its path does not start
// with '/'. Trailing whitespace (a newline, "\r") is not part of the path.
[[nodiscard]] std::optional<std::string> ParseCgroupV2Path(
    std::string_view proc_self_cgroup);

// min(affinity_cpus, ceil(quota_cpus)), and never below 1. An affinity below
// 1 counts as 1; a NaN quota as none.
[[nodiscard]] int CombineParallelism(int affinity_cpus,
                                     std::optional<double> quota_cpus);

// The smallest quota, in CPUs, among the cpu.max files of the process's
// cgroup (the v2 path of `proc_self_cgroup`) and of each of its ancestors up
// to and including `cgroup_root` itself. nullopt when none of them sets one,
// when the files are not there (cgroup v1, not mounted), or when there is no
// v2 line. A path that climbs with ".." (a cgroup outside this cgroup
// namespace) cannot be located: only `cgroup_root`'s own cpu.max is read.
[[nodiscard]] std::optional<double> CgroupCpuQuota(
    const std::string& cgroup_root, std::string_view proc_self_cgroup);

}  // namespace runtime_internal
}  // namespace wharf

#endif  // WHARF_RUNTIME_AVAILABLE_PARALLELISM_H_
