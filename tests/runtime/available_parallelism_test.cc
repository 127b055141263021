#include "wharf/runtime/available_parallelism.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "gtest/gtest.h"

namespace wharf {
namespace {

using ::wharf::runtime_internal::AffinityCpuCount;
using ::wharf::runtime_internal::CgroupCpuQuota;
using ::wharf::runtime_internal::CombineParallelism;
using ::wharf::runtime_internal::CpuLimits;
using ::wharf::runtime_internal::CurrentCpuLimits;
using ::wharf::runtime_internal::ParseCgroupCpuMax;
using ::wharf::runtime_internal::ParseCgroupV2Path;

// --- ParseCgroupCpuMax -------------------------------------------------------

TEST(ParseCgroupCpuMaxTest, QuotaOverPeriod) {
  EXPECT_EQ(ParseCgroupCpuMax("200000 100000"), 2.0);
  EXPECT_EQ(ParseCgroupCpuMax("150000 100000"), 1.5);
  EXPECT_EQ(ParseCgroupCpuMax("50000 100000"), 0.5);
  EXPECT_EQ(ParseCgroupCpuMax("1000 1000000"), 0.001);
  EXPECT_EQ(ParseCgroupCpuMax("6400000 100000"), 64.0);
}

TEST(ParseCgroupCpuMaxTest, MaxIsNoLimit) {
  EXPECT_EQ(ParseCgroupCpuMax("max 100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("max 100000\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("max"), std::nullopt);
}

TEST(ParseCgroupCpuMaxTest, WhitespaceAndNewline) {
  EXPECT_EQ(ParseCgroupCpuMax("200000 100000\n"), 2.0);
  EXPECT_EQ(ParseCgroupCpuMax("  300000\t100000 \r\n"), 3.0);
  EXPECT_EQ(ParseCgroupCpuMax("\n400000\n100000\n\n"), 4.0);
}

TEST(ParseCgroupCpuMaxTest, EmptyIsNullopt) {
  EXPECT_EQ(ParseCgroupCpuMax(""), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax(" \n\t"), std::nullopt);
}

TEST(ParseCgroupCpuMaxTest, GarbageIsNullopt) {
  EXPECT_EQ(ParseCgroupCpuMax("garbage"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("200000"), std::nullopt);          // no period
  EXPECT_EQ(ParseCgroupCpuMax("200000 100000 7"), std::nullopt);  // extra field
  EXPECT_EQ(ParseCgroupCpuMax("200000x 100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("200000 1e5"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("2.5 1"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("+200000 100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("MAX 100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("max max"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("99999999999999999999999 100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax(std::string_view("2\0 1", 4)), std::nullopt);
}

TEST(ParseCgroupCpuMaxTest, ZeroOrNegativeIsNullopt) {
  EXPECT_EQ(ParseCgroupCpuMax("200000 0"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("200000 -100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("0 100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("-200000 100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupCpuMax("-1 -1"), std::nullopt);
}

// --- ParseCgroupV2Path -------------------------------------------------------

TEST(ParseCgroupV2PathTest, UnifiedLine) {
  EXPECT_EQ(ParseCgroupV2Path("0::/some/path"), "/some/path");
  EXPECT_EQ(ParseCgroupV2Path("0::/some/path\n"), "/some/path");
  EXPECT_EQ(ParseCgroupV2Path("0::/\n"), "/");
  EXPECT_EQ(ParseCgroupV2Path("0::/user.slice/user-1000.slice/session-2.scope\n"),
            "/user.slice/user-1000.slice/session-2.scope");
}

TEST(ParseCgroupV2PathTest, WhitespaceAroundTheLine) {
  EXPECT_EQ(ParseCgroupV2Path("0::/a/b\r\n"), "/a/b");
  EXPECT_EQ(ParseCgroupV2Path("\n\n0::/a/b  \n\n"), "/a/b");
}

TEST(ParseCgroupV2PathTest, V1LinesMixedIn) {
  constexpr std::string_view kHybrid =
      "9:name=systemd:/\n"
      "8:pids:/\n"
      "4:memory:/process_api/c137\n"
      "1:cpu,cpuacct:/docker/abc\n"
      "0::/system.slice/docker-abc.scope\n";
  EXPECT_EQ(ParseCgroupV2Path(kHybrid), "/system.slice/docker-abc.scope");
  constexpr std::string_view kV2First =
      "0::/first\n"
      "2:cpu:/second\n";
  EXPECT_EQ(ParseCgroupV2Path(kV2First), "/first");
}

TEST(ParseCgroupV2PathTest, NoV2LineIsNullopt) {
  EXPECT_EQ(ParseCgroupV2Path(""), std::nullopt);
  EXPECT_EQ(ParseCgroupV2Path("\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2Path("4:memory:/x\n3:cpuset:/\n1:cpu:/y\n"),
            std::nullopt);
  // A v1 hierarchy numbered 0 still names controllers: not v2.
  EXPECT_EQ(ParseCgroupV2Path("0:cpu:/x\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2Path("10::/x\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2Path("garbage"), std::nullopt);
}

TEST(ParseCgroupV2PathTest, BadPathIsNullopt) {
  EXPECT_EQ(ParseCgroupV2Path("0::"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2Path("0::\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2Path("0::relative/path\n"), std::nullopt);
}

// --- CombineParallelism ------------------------------------------------------

TEST(CombineParallelismTest, NoQuotaIsTheAffinity) {
  EXPECT_EQ(CombineParallelism(8, std::nullopt), 8);
  EXPECT_EQ(CombineParallelism(1, std::nullopt), 1);
  EXPECT_EQ(CombineParallelism(4096, std::nullopt), 4096);
}

TEST(CombineParallelismTest, QuotaBelowAffinity) {
  EXPECT_EQ(CombineParallelism(64, 2.0), 2);
  EXPECT_EQ(CombineParallelism(64, 1.5), 2);  // ceil
  EXPECT_EQ(CombineParallelism(64, 2.01), 3);
  EXPECT_EQ(CombineParallelism(64, 63.5), 64);
}

TEST(CombineParallelismTest, QuotaAboveAffinity) {
  EXPECT_EQ(CombineParallelism(4, 8.0), 4);
  EXPECT_EQ(CombineParallelism(4, 4.0), 4);
  EXPECT_EQ(CombineParallelism(4, 3.5), 4);
  EXPECT_EQ(CombineParallelism(4, 1e300), 4);
  EXPECT_EQ(CombineParallelism(4, std::numeric_limits<double>::infinity()), 4);
}

TEST(CombineParallelismTest, FloorOfOne) {
  EXPECT_EQ(CombineParallelism(64, 0.5), 1);
  EXPECT_EQ(CombineParallelism(64, 0.001), 1);
  EXPECT_EQ(CombineParallelism(64, 0.0), 1);
  EXPECT_EQ(CombineParallelism(64, -3.0), 1);
  EXPECT_EQ(CombineParallelism(64, -std::numeric_limits<double>::infinity()), 1);
  EXPECT_EQ(CombineParallelism(0, std::nullopt), 1);
  EXPECT_EQ(CombineParallelism(-5, std::nullopt), 1);
  EXPECT_EQ(CombineParallelism(0, 3.0), 1);
}

TEST(CombineParallelismTest, NanQuotaIsIgnored) {
  EXPECT_EQ(CombineParallelism(6, std::numeric_limits<double>::quiet_NaN()), 6);
}

// --- CgroupCpuQuota over a fake tree -----------------------------------------

// A fresh directory under the test's temporary directory.
std::string MakeTempRoot() {
  const char* env = std::getenv("TEST_TMPDIR");
  std::string base = env != nullptr && *env != '\0' ? env : ::testing::TempDir();
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  std::string templ = base + "/cgroup_XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << templ;
    return base;
  }
  return templ;
}

void WriteFile(const std::string& path, std::string_view text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

TEST(CgroupCpuQuotaTest, ParentQuotaSmallerThanChild) {
  const std::string root = MakeTempRoot();
  WriteFile(root + "/cpu.max", "max 100000\n");
  WriteFile(root + "/kubepods/cpu.max", "150000 100000\n");         // 1.5
  WriteFile(root + "/kubepods/pod/cpu.max", "400000 100000\n");     // 4
  WriteFile(root + "/kubepods/pod/ctr/cpu.max", "max 100000\n");
  EXPECT_EQ(CgroupCpuQuota(root, "0::/kubepods/pod/ctr\n"), 1.5);
  EXPECT_EQ(CgroupCpuQuota(root, "0::/kubepods/pod\n"), 1.5);
  EXPECT_EQ(CgroupCpuQuota(root, "0::/kubepods\n"), 1.5);
  EXPECT_EQ(CgroupCpuQuota(root, "0::/\n"), std::nullopt);
}

TEST(CgroupCpuQuotaTest, ChildQuotaSmallerThanParent) {
  const std::string root = MakeTempRoot();
  WriteFile(root + "/a/cpu.max", "800000 100000\n");
  WriteFile(root + "/a/b/cpu.max", "250000 100000\n");
  EXPECT_EQ(CgroupCpuQuota(root, "0::/a/b\n"), 2.5);
  EXPECT_EQ(CgroupCpuQuota(root, "0::/a\n"), 8.0);
}

TEST(CgroupCpuQuotaTest, RootOwnFileCounts) {
  // In a container with a cgroup namespace the mount's root is the
  // container's cgroup and /proc/self/cgroup says "0::/".
  const std::string root = MakeTempRoot();
  WriteFile(root + "/cpu.max", "200000 100000\n");
  EXPECT_EQ(CgroupCpuQuota(root, "0::/\n"), 2.0);
  EXPECT_EQ(CgroupCpuQuota(root, "0::/not/created/dirs\n"), 2.0);
  EXPECT_EQ(CgroupCpuQuota(root + "/", "0::/\n"), 2.0);
  EXPECT_EQ(CgroupCpuQuota(root + "//", "0::/\n"), 2.0);
}

TEST(CgroupCpuQuotaTest, MissingFilesAreNoLimit) {
  const std::string root = MakeTempRoot();
  EXPECT_EQ(CgroupCpuQuota(root, "0::/a/b\n"), std::nullopt);
  EXPECT_EQ(CgroupCpuQuota(root + "/does/not/exist", "0::/a\n"), std::nullopt);
  std::filesystem::create_directories(root + "/a/b");
  EXPECT_EQ(CgroupCpuQuota(root, "0::/a/b\n"), std::nullopt);
}

TEST(CgroupCpuQuotaTest, AllMaxIsNoLimit) {
  const std::string root = MakeTempRoot();
  WriteFile(root + "/cpu.max", "max 100000\n");
  WriteFile(root + "/a/cpu.max", "max 100000\n");
  WriteFile(root + "/a/b/cpu.max", "max 100000\n");
  EXPECT_EQ(CgroupCpuQuota(root, "0::/a/b\n"), std::nullopt);
}

TEST(CgroupCpuQuotaTest, OddFilesAreIgnored) {
  const std::string root = MakeTempRoot();
  WriteFile(root + "/cpu.max", "");
  WriteFile(root + "/a/cpu.max", "garbage\n");
  WriteFile(root + "/a/b/cpu.max", "300000 0\n");
  WriteFile(root + "/a/b/c/cpu.max", std::string(100000, '7') + " 100000\n");
  std::filesystem::create_directories(root + "/a/b/c/d/cpu.max");  // a directory
  WriteFile(root + "/a/b/c/d/e/cpu.max", "300000 100000");
  EXPECT_EQ(CgroupCpuQuota(root, "0::/a/b/c/d/e\n"), 3.0);
  EXPECT_EQ(CgroupCpuQuota(root, "0::/a/b/c/d\n"), std::nullopt);
}

TEST(CgroupCpuQuotaTest, FifoDoesNotBlock) {
  const std::string root = MakeTempRoot();
  std::filesystem::create_directories(root + "/a");
  ASSERT_EQ(::mkfifo((root + "/a/cpu.max").c_str(), 0600), 0);
  WriteFile(root + "/cpu.max", "100000 100000\n");
  EXPECT_EQ(CgroupCpuQuota(root, "0::/a\n"), 1.0);
}

TEST(CgroupCpuQuotaTest, PathComponents) {
  const std::string root = MakeTempRoot();
  WriteFile(root + "/cpu.max", "max 100000\n");
  WriteFile(root + "/a/cpu.max", "700000 100000\n");
  WriteFile(root + "/a/b/cpu.max", "max 100000\n");
  EXPECT_EQ(CgroupCpuQuota(root, "0::/a//b/\n"), 7.0);
  EXPECT_EQ(CgroupCpuQuota(root, "0::/./a/./b\n"), 7.0);
  // Outside the namespace's root: only the root's own file is read.
  EXPECT_EQ(CgroupCpuQuota(root, "0::/../a/b\n"), std::nullopt);
  WriteFile(root + "/cpu.max", "500000 100000\n");
  EXPECT_EQ(CgroupCpuQuota(root, "0::/../../elsewhere\n"), 5.0);
}

TEST(CgroupCpuQuotaTest, NoV2LineIsNoLimit) {
  const std::string root = MakeTempRoot();
  WriteFile(root + "/cpu.max", "100000 100000\n");
  EXPECT_EQ(CgroupCpuQuota(root, "4:memory:/x\n1:cpu:/\n"), std::nullopt);
  EXPECT_EQ(CgroupCpuQuota(root, ""), std::nullopt);
}

// --- The live system ---------------------------------------------------------

TEST(AvailableParallelismTest, WithinHardwareConcurrency) {
  const int n = AvailableParallelism();
  EXPECT_GE(n, 1);
  const unsigned hw = std::thread::hardware_concurrency();
  if (hw != 0) {
    EXPECT_LE(static_cast<unsigned>(n), hw);
  }
  EXPECT_GE(AffinityCpuCount(), n);
}

TEST(AvailableParallelismTest, CombinesTheCurrentLimits) {
  const CpuLimits limits = CurrentCpuLimits();
  EXPECT_GE(limits.affinity_cpus, 1);
  EXPECT_EQ(AvailableParallelism(),
            CombineParallelism(limits.affinity_cpus, limits.quota_cpus));
}

TEST(AvailableParallelismTest, PinnedThreadGetsOne) {
  // The affinity mask is per thread: pin a new thread to one CPU it may use
  // (CPU 0 unless the test itself runs on a restricted set).
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(::sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int cpu = -1;
  for (int i = 0; i < CPU_SETSIZE; ++i) {
    if (CPU_ISSET(i, &allowed)) {
      cpu = i;
      break;
    }
  }
  if (cpu < 0) GTEST_SKIP() << "no allowed CPU below " << CPU_SETSIZE;

  int pin_error = -1;
  int affinity = 0;
  int available = 0;
  std::thread t([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pin_error = ::pthread_setaffinity_np(::pthread_self(), sizeof(one), &one);
    if (pin_error != 0) return;
    affinity = AffinityCpuCount();
    available = AvailableParallelism();
  });
  t.join();
  if (pin_error != 0) GTEST_SKIP() << "pthread_setaffinity_np: " << pin_error;
  EXPECT_EQ(affinity, 1);
  EXPECT_EQ(available, 1);  // a quota cannot take it below 1
  // The calling thread's mask is unchanged.
  EXPECT_EQ(AffinityCpuCount(), CPU_COUNT(&allowed));
}

}  // namespace
}  // namespace wharf
