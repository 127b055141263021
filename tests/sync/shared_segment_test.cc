#include "wharf/sync/shared_segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

namespace bip = boost::interprocess;
using testing::HelperPath;
using testing::Subprocess;
using testing::UniqueName;
using testing::Watchdog;
using IntVec = bip::vector<int32_t, SharedSegment::Allocator<int32_t>>;
using Chars3 = std::array<char, 3>;
using Megabyte = std::array<char, 1 << 20>;

#define ASSERT_OK(expr)                            \
  do {                                             \
    const absl::Status _st = (expr);               \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st; \
  } while (0)
#define EXPECT_CODE(expr, code_name)                                            \
  do {                                                                          \
    const absl::Status _st = (expr);                                            \
    EXPECT_EQ(_st.code(), absl::StatusCode::code_name) << #expr << ": " << _st; \
  } while (0)

constexpr size_t kSize = 64 * 1024;

// Bazel runs each test in its own PID namespace, so concurrently running
// tests often share a small pid: a random tag per process keeps our names (and
// the leftover scan below) apart from theirs. "wharf_test_<tag>_<pid>_<n>".
const std::string& Tag() {
  static const std::string* const tag = [] {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%s%08x", "seg", std::random_device()());
    return new std::string(buf);
  }();
  return *tag;
}
std::string NewName() { return UniqueName(Tag()); }

bool ShmExists(const std::string& name) {
  struct stat st;
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

struct ShmCleanup {
  std::string name;
  ~ShmCleanup() { ::shm_unlink(("/" + name).c_str()); }
};

void WriteShm(const std::string& name, const void* bytes, size_t size) {
  const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  if (size > 0) {
    ASSERT_EQ(::write(fd, bytes, size), static_cast<ssize_t>(size));
  }
  ::close(fd);
}

bool HasText(const absl::Status& s, std::string_view text) {
  return std::string_view(s.message().data(), s.message().size()).find(text) !=
         std::string_view::npos;
}

TEST(SharedSegmentTest, CreateOpenRemove) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto created = SharedSegment::Create(name, kSize);
  ASSERT_OK(created.status());
  EXPECT_TRUE(created->created());
  EXPECT_EQ(created->name(), name);
  EXPECT_EQ(created->size(), kSize);
  EXPECT_GT(created->free_memory(), kSize / 2);
  EXPECT_LT(created->free_memory(), kSize);
  EXPECT_NE(created->segment_manager(), nullptr);
  struct stat st;
  ASSERT_EQ(::stat(("/dev/shm/" + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto opened = SharedSegment::Open(name);
  ASSERT_OK(opened.status());
  EXPECT_FALSE(opened->created());
  EXPECT_EQ(opened->size(), kSize);

  ASSERT_OK(SharedSegment::Remove(name));
  EXPECT_FALSE(ShmExists(name));
  auto again = SharedSegment::Remove(name);
  EXPECT_CODE(again, kNotFound);
  EXPECT_TRUE(HasText(again, name));
  auto missing = SharedSegment::Open(name);
  EXPECT_CODE(missing.status(), kNotFound);
  EXPECT_TRUE(HasText(missing.status(), name)) << missing.status();
  // Mappings outlive the name.
  ASSERT_OK(opened->Construct<int>("still_mapped", 1).status());
  EXPECT_EQ(*created->Find<int>("still_mapped").value(), 1);
}

TEST(SharedSegmentTest, CreateOnATakenNameIsAlreadyExists) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto first = SharedSegment::Create(name, kSize);
  ASSERT_OK(first.status());
  ASSERT_OK(first->Construct<int>("x", 5).status());
  auto second = SharedSegment::Create(name, kSize * 2);
  EXPECT_CODE(second.status(), kAlreadyExists);
  EXPECT_TRUE(HasText(second.status(), name));
  EXPECT_EQ(*first->Find<int>("x").value(), 5);  // untouched
}

TEST(SharedSegmentTest, SizesAndNamesAreValidated) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  EXPECT_CODE(SharedSegment::Create(name, 0).status(), kInvalidArgument);
  EXPECT_CODE(SharedSegment::Create(name, SharedSegment::kMinSize - 1).status(), kInvalidArgument);
  EXPECT_CODE(SharedSegment::Create(name, SharedSegment::kMaxSize + 1).status(), kInvalidArgument);
  EXPECT_CODE(SharedSegment::Create(name, SIZE_MAX).status(), kInvalidArgument);
  EXPECT_FALSE(ShmExists(name));
  const std::vector<std::string> bad = {"",
                                        "a/b",
                                        ".",
                                        "..",
                                        std::string("a\0b", 3),
                                        std::string(SharedSegment::kMaxNameLength + 1, 'x')};
  for (const std::string& n : bad) {
    EXPECT_CODE(SharedSegment::Create(n, kSize).status(), kInvalidArgument);
    EXPECT_CODE(SharedSegment::Open(n).status(), kInvalidArgument);
    EXPECT_CODE(SharedSegment::OpenOrCreate(n, kSize).status(), kInvalidArgument);
    EXPECT_CODE(SharedSegment::Remove(n), kInvalidArgument);
  }
}

TEST(SharedSegmentTest, ConstructFindDestroy) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  auto x = seg->Construct<int64_t>("x", int64_t{42});
  ASSERT_OK(x.status());
  EXPECT_EQ(**x, 42);
  auto dup = seg->Construct<int64_t>("x", int64_t{1});
  EXPECT_CODE(dup.status(), kAlreadyExists);
  EXPECT_TRUE(HasText(dup.status(), "'x'"));
  EXPECT_EQ(**x, 42);  // the existing object is untouched
  auto found = seg->Find<int64_t>("x");
  ASSERT_OK(found.status());
  EXPECT_EQ(*found, *x);
  // Another type of another size: refused instead of Boost's assert.
  auto wrong = seg->Find<int32_t>("x");
  EXPECT_CODE(wrong.status(), kFailedPrecondition);
  EXPECT_TRUE(HasText(wrong.status(), "8 bytes")) << wrong.status();
  EXPECT_CODE(seg->Find<Chars3>("x").status(), kFailedPrecondition);
  EXPECT_CODE(seg->Destroy<int32_t>("x"), kFailedPrecondition);
  auto missing = seg->Find<int64_t>("nope");
  EXPECT_CODE(missing.status(), kNotFound);
  EXPECT_TRUE(HasText(missing.status(), "'nope'"));
  EXPECT_TRUE(HasText(missing.status(), name));
  ASSERT_OK(seg->Destroy<int64_t>("x"));
  EXPECT_CODE(seg->Destroy<int64_t>("x"), kNotFound);
  EXPECT_CODE(seg->Find<int64_t>("x").status(), kNotFound);
  // Names: empty, NUL, and Wharf's reserved prefix.
  EXPECT_CODE(seg->Construct<int>("", 1).status(), kInvalidArgument);
  EXPECT_CODE(seg->Construct<int>(std::string("a\0b", 3), 1).status(), kInvalidArgument);
  EXPECT_CODE(seg->Construct<int>("__wharf.mine", 1).status(), kInvalidArgument);
  EXPECT_CODE(seg->Find<int>("__wharf.segment_info").status(), kInvalidArgument);
  EXPECT_CODE(seg->Destroy<int>(""), kInvalidArgument);
}

TEST(SharedSegmentTest, FindOrConstructConstructsOnce) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  auto a = seg->FindOrConstruct<int64_t>("n", int64_t{7});
  ASSERT_OK(a.status());
  EXPECT_EQ(**a, 7);
  auto b = seg->FindOrConstruct<int64_t>("n", int64_t{99});
  ASSERT_OK(b.status());
  EXPECT_EQ(*b, *a);
  EXPECT_EQ(**b, 7);
  EXPECT_CODE(seg->FindOrConstruct<int16_t>("n", int16_t{1}).status(), kFailedPrecondition);
}

TEST(SharedSegmentTest, FullSegmentIsResourceExhaustedAndStillUsable) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  const size_t free_before = seg->free_memory();
  auto big = seg->Construct<Megabyte>("big");
  EXPECT_CODE(big.status(), kResourceExhausted);
  EXPECT_TRUE(HasText(big.status(), "larger segment")) << big.status();
  EXPECT_EQ(seg->free_memory(), free_before);
  EXPECT_CODE(seg->Find<Megabyte>("big").status(), kNotFound);
  ASSERT_OK(seg->Construct<int>("small", 1).status());
  // A container that outgrows the segment: Boost's bad_alloc, caught.
  auto vec = seg->Construct<IntVec>("v", seg->allocator<int32_t>());
  ASSERT_OK(vec.status());
  bool threw = false;
  try {
    for (int i = 0; i < 1 << 20; ++i) (*vec)->push_back(i);
  } catch (const bip::bad_alloc&) {
    threw = true;  // container operations are Boost's: their exceptions are the caller's
  }
  EXPECT_TRUE(threw);
  ASSERT_OK(seg->Destroy<IntVec>("v"));
  EXPECT_GE(seg->free_memory(), free_before - 256);
}

struct ThrowsOnConstruction {
  explicit ThrowsOnConstruction(int) { throw std::runtime_error("boom in constructor"); }
  int64_t v = 0;
};

TEST(SharedSegmentTest, ThrowingConstructorLeavesNothingBehind) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  const size_t free_before = seg->free_memory();
  auto t = seg->Construct<ThrowsOnConstruction>("t", 1);
  EXPECT_CODE(t.status(), kInternal);
  EXPECT_TRUE(HasText(t.status(), "boom in constructor")) << t.status();
  EXPECT_CODE(seg->Find<ThrowsOnConstruction>("t").status(), kNotFound);
  EXPECT_EQ(seg->free_memory(), free_before);
}

TEST(SharedSegmentTest, OffsetPtrContainersWorkAcrossMappings) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  auto vec = seg->Construct<IntVec>("ids", seg->allocator<int32_t>());
  ASSERT_OK(vec.status());
  for (int i = 0; i < 1000; ++i) (*vec)->push_back(i * 3);
  // A second mapping of the same segment, at another address.
  auto other = SharedSegment::Open(name);
  ASSERT_OK(other.status());
  auto seen = other->Find<IntVec>("ids");
  ASSERT_OK(seen.status());
  EXPECT_NE(static_cast<void*>(*seen), static_cast<void*>(*vec));
  ASSERT_EQ((*seen)->size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ((**seen)[i], i * 3);
  (*seen)->push_back(-1);  // allocates through the other mapping
  EXPECT_EQ((*vec)->back(), -1);
}

TEST(SharedSegmentTest, WharfMutexLivesInASegment) {
  struct Guarded {
    Mutex mu;
    int64_t value = 0;
  };
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  auto g = seg->Construct<Guarded>("guarded");
  ASSERT_OK(g.status());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        std::scoped_lock lock((*g)->mu);
        ++(*g)->value;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ((*g)->value, 4000);
}

TEST(SharedSegmentTest, ConcurrentConstructionFromThreads) {
  Watchdog dog("segment construction from threads", absl::Seconds(60));
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, 1 << 20);
  ASSERT_OK(seg.status());
  constexpr int kThreads = 4;
  std::barrier start(kThreads);
  std::vector<int64_t*> shared(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      shared[t] = seg->FindOrConstruct<int64_t>("one", int64_t{t}).value();
      for (int i = 0; i < 50; ++i) {
        const std::string own = "t" + std::to_string(t) + "_" + std::to_string(i);
        ASSERT_OK(seg->Construct<int64_t>(own, int64_t{i}).status());
        EXPECT_EQ(*seg->Find<int64_t>(own).value(), i);
        if (i % 2 == 0) ASSERT_OK(seg->Destroy<int64_t>(own));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(shared[t], shared[0]);
  EXPECT_CODE(seg->Find<int64_t>("t0_0").status(), kNotFound);
  EXPECT_EQ(*seg->Find<int64_t>("t3_49").value(), 49);
}

TEST(SharedSegmentTest, MovedFromHandleIsEmpty) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  SharedSegment moved = std::move(*seg);
  EXPECT_TRUE(static_cast<bool>(moved));
  EXPECT_EQ(moved.name(), name);
  EXPECT_FALSE(static_cast<bool>(*seg));  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(seg->size(), 0u);
  EXPECT_EQ(seg->free_memory(), 0u);
  EXPECT_EQ(seg->segment_manager(), nullptr);
  EXPECT_CODE(seg->Construct<int>("x", 1).status(), kFailedPrecondition);
  EXPECT_CODE(seg->Find<int>("x").status(), kFailedPrecondition);
  EXPECT_CODE(seg->FindOrConstruct<int>("x", 1).status(), kFailedPrecondition);
  EXPECT_CODE(seg->Destroy<int>("x"), kFailedPrecondition);
  ASSERT_OK(moved.Construct<int>("x", 1).status());
}

TEST(SharedSegmentTest, OpenOrCreate) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto first = SharedSegment::OpenOrCreate(name, kSize);
  ASSERT_OK(first.status());
  EXPECT_TRUE(first->created());
  ASSERT_OK(first->Construct<int>("x", 3).status());
  auto second = SharedSegment::OpenOrCreate(name, kSize * 4);  // size ignored
  ASSERT_OK(second.status());
  EXPECT_FALSE(second->created());
  EXPECT_EQ(second->size(), kSize);
  EXPECT_EQ(*second->Find<int>("x").value(), 3);
}

// ---- Shared memory that is not (yet) a Wharf segment ----

TEST(SharedSegmentTest, OpenRefusesForeignAndBrokenObjects) {
  Watchdog dog("segment open of bad objects", absl::Seconds(60));
  const SharedSegment::OpenOptions quick{.init_timeout = absl::Milliseconds(30)};
  {  // created, never sized
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    WriteShm(name, nullptr, 0);
    auto s = SharedSegment::Open(name, quick).status();
    EXPECT_CODE(s, kUnavailable);
    EXPECT_TRUE(HasText(s, "not initialised")) << s;
  }
  {  // Boost's mark of a failed creation
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    WriteShm(name, "x", 1);
    EXPECT_CODE(SharedSegment::Open(name, quick).status(), kDataLoss);
  }
  {  // sized, Boost's state word still "uninitialised"
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    std::vector<char> zeros(kSize, 0);
    WriteShm(name, zeros.data(), zeros.size());
    const absl::Time start = absl::Now();
    EXPECT_CODE(SharedSegment::Open(name, quick).status(), kUnavailable);
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  }
  {  // Boost's state word "corrupted"
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    std::vector<char> file(kSize, 0);
    file[0] = 3;
    WriteShm(name, file.data(), file.size());
    EXPECT_CODE(SharedSegment::Open(name, quick).status(), kDataLoss);
  }
  {  // too small to be a segment
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    std::vector<char> file(100, 2);
    WriteShm(name, file.data(), file.size());
    EXPECT_CODE(SharedSegment::Open(name, quick).status(), kInvalidArgument);
  }
  {  // a SharedBuffer is not a segment
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    auto buffer = SharedBuffer::CreateNamed(name, kSize);
    ASSERT_OK(buffer.status());
    auto s = SharedSegment::Open(name, quick).status();
    EXPECT_CODE(s, kInvalidArgument);
    EXPECT_TRUE(HasText(s, "not a Wharf SharedSegment")) << s;
  }
  {  // a plain Boost segment has no Wharf record
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    {
      bip::managed_shared_memory plain(bip::create_only, name.c_str(), kSize, nullptr,
                                       bip::permissions(0600));
    }
    auto s = SharedSegment::Open(name, quick).status();
    EXPECT_CODE(s, kInvalidArgument);
    EXPECT_TRUE(HasText(s, "no Wharf record")) << s;
  }
  {  // Boost's default permissions (0644) let every user read it
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    { bip::managed_shared_memory plain(bip::create_only, name.c_str(), kSize); }
    auto s = SharedSegment::Open(name, quick).status();
    EXPECT_CODE(s, kPermissionDenied);
    EXPECT_TRUE(HasText(s, "mode 0644")) << s;
  }
}

// The layout is managed_shared_memory's: plain Boost (same version) opens a
// Wharf segment and finds its objects, and allocates in it.
TEST(SharedSegmentTest, PlainBoostOpensAWharfSegment) {
  Watchdog dog("plain Boost open", absl::Seconds(30));  // Boost's open spins without bound
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  ASSERT_OK(seg->Construct<int64_t>("x", int64_t{1234}).status());
  bip::managed_shared_memory plain(bip::open_only, name.c_str());
  EXPECT_EQ(plain.get_size(), kSize);
  auto found = plain.find<int64_t>("x");
  ASSERT_NE(found.first, nullptr);
  EXPECT_EQ(*found.first, 1234);
  plain.construct<int32_t>("from_boost")(7);
  EXPECT_EQ(*seg->Find<int32_t>("from_boost").value(), 7);
  EXPECT_EQ(plain.get_free_memory(), seg->free_memory());
}

// ---- Trust: who made the name, and who else may write it ----

std::string ShmFile(const std::string& name) { return "/dev/shm/" + name; }

TEST(SharedSegmentTest, OpenRefusesGroupOrOtherAccessUnlessAllowed) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  ASSERT_OK(seg->Construct<int>("x", 9).status());
  for (mode_t mode : {0666, 0660, 0640, 0604, 0602}) {
    ASSERT_EQ(::chmod(ShmFile(name).c_str(), mode), 0);
    auto s = SharedSegment::Open(name).status();
    EXPECT_CODE(s, kPermissionDenied);
    EXPECT_TRUE(HasText(s, name)) << s;
    char octal[8];
    std::snprintf(octal, sizeof(octal), "0%o", mode);
    EXPECT_TRUE(HasText(s, std::string("mode ") + octal)) << s;
    EXPECT_CODE(SharedSegment::OpenOrCreate(name, kSize).status(), kPermissionDenied);
  }
  ASSERT_EQ(::chmod(ShmFile(name).c_str(), 0660), 0);
  auto shared = SharedSegment::Open(name, {.allowed_group_bits = 060});
  ASSERT_OK(shared.status());
  EXPECT_EQ(*shared->Find<int>("x").value(), 9);
  ASSERT_OK(SharedSegment::OpenOrCreate(name, kSize, {.allowed_group_bits = 060}).status());
  ASSERT_EQ(::chmod(ShmFile(name).c_str(), 0666), 0);
  EXPECT_CODE(SharedSegment::Open(name, {.allowed_group_bits = 060}).status(), kPermissionDenied);
  EXPECT_CODE(SharedSegment::Open(name, {.allowed_group_bits = 06}).status(), kInvalidArgument);
  ASSERT_EQ(::chmod(ShmFile(name).c_str(), 0600), 0);
  ASSERT_OK(SharedSegment::Open(name).status());
}

TEST(SharedSegmentTest, OpenNeverFollowsASymlink) {
  const std::string real = NewName(), link = NewName();
  ShmCleanup c1{real}, c2{link};
  auto seg = SharedSegment::Create(real, kSize);
  ASSERT_OK(seg.status());
  ASSERT_EQ(::symlink(ShmFile(real).c_str(), ShmFile(link).c_str()), 0) << std::strerror(errno);
  auto s = SharedSegment::Open(link).status();
  EXPECT_CODE(s, kPermissionDenied);
  EXPECT_TRUE(HasText(s, "symbolic link")) << s;
  EXPECT_CODE(SharedSegment::Create(link, kSize).status(), kAlreadyExists);
  EXPECT_CODE(SharedSegment::OpenOrCreate(link, kSize).status(), kPermissionDenied);
  ASSERT_OK(SharedSegment::Remove(link));
  ASSERT_OK(SharedSegment::Open(real).status());
}

// ---- Segments owned by another user (needs root outside Bazel's sandbox) ----
// See shared_buffer_test.cc: these run in //tests/sync:shared_segment_owner_test.

TEST(SharedSegmentOwnerTest, OpenRefusesASegmentOwnedByAnotherUser) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  ASSERT_OK(seg->Construct<int>("x", 5).status());
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown a /dev/shm name to another uid";
  if (::chown(ShmFile(name).c_str(), 65534, 65534) != 0) {
    GTEST_SKIP() << "chown to uid 65534 failed (" << std::strerror(errno)
                 << "): a user namespace that maps no other uid, such as Bazel's "
                    "linux-sandbox; run //tests/sync:shared_segment_owner_test";
  }
  auto s = SharedSegment::Open(name).status();
  EXPECT_CODE(s, kPermissionDenied);
  EXPECT_TRUE(HasText(s, "owned by uid 65534")) << s;
  EXPECT_TRUE(HasText(s, "expected uid 0")) << s;
  EXPECT_TRUE(HasText(s, "mode 0600")) << s;
  EXPECT_TRUE(HasText(s, "SharedSegment::OpenOptions::allowed_owner = 65534")) << s;
  EXPECT_CODE(SharedSegment::OpenOrCreate(name, kSize).status(), kPermissionDenied);
  auto shared = SharedSegment::Open(name, {.allowed_owner = 65534});
  ASSERT_OK(shared.status());
  EXPECT_EQ(*shared->Find<int>("x").value(), 5);
  ASSERT_EQ(::chmod(ShmFile(name).c_str(), 0640), 0);
  EXPECT_CODE(SharedSegment::Open(name, {.allowed_owner = 65534}).status(), kPermissionDenied);
  ASSERT_OK(
      SharedSegment::Open(name, {.allowed_owner = 65534, .allowed_group_bits = 040}).status());
}

TEST(SharedSegmentOwnerTest, ZzNoShmEntriesLeftBehind) {
  for (const std::string& n : testing::ShmLeftovers()) {
    ADD_FAILURE() << "left behind: /dev/shm/" << n;
  }
}

TEST(SharedSegmentTest, OtherFormatOrBoostVersionIsFailedPrecondition) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, kSize);
  ASSERT_OK(seg.status());
  // Wharf's record: magic (8 bytes), version (4), Boost version (4), ...
  auto record = seg->segment_manager()->find<char>("__wharf.segment_info");
  ASSERT_NE(record.first, nullptr);
  uint32_t* fields = reinterpret_cast<uint32_t*>(record.first + 8);
  fields[0] = 42;
  auto s = SharedSegment::Open(name).status();
  EXPECT_CODE(s, kFailedPrecondition);
  EXPECT_TRUE(HasText(s, "version 42")) << s;
  EXPECT_TRUE(HasText(s, "version " + std::to_string(SharedSegment::kVersion))) << s;
  fields[0] = SharedSegment::kVersion;
  fields[1] = 105500;
  s = SharedSegment::Open(name).status();
  EXPECT_CODE(s, kFailedPrecondition);
  EXPECT_TRUE(HasText(s, "Boost 105500")) << s;
  fields[1] = BOOST_VERSION;
  ASSERT_OK(SharedSegment::Open(name).status());
}

// ---- Across processes ----

TEST(SharedSegmentTest, ChildFindsAndUpdatesParentsObjects) {
  Watchdog dog("segment child", absl::Seconds(60));
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto seg = SharedSegment::Create(name, 1 << 20);
  ASSERT_OK(seg.status());
  auto counter = seg->Construct<int64_t>("counter", int64_t{41});
  ASSERT_OK(counter.status());
  auto ids = seg->Construct<IntVec>("ids", seg->allocator<int32_t>());
  ASSERT_OK(ids.status());
  auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                 {"shared_segment_increment", name, "500"});
  ASSERT_OK(child.status());
  const pid_t child_pid = child->pid();
  auto code = child->Wait(absl::Seconds(30));
  ASSERT_OK(code.status());
  ASSERT_EQ(*code, 0);
  EXPECT_EQ(**counter, 41 + 500);
  ASSERT_EQ((*ids)->size(), 500u);
  for (int i = 0; i < 500; ++i) ASSERT_EQ((**ids)[i], i);
  auto from_child = seg->Find<int64_t>("from_child");
  ASSERT_OK(from_child.status());
  EXPECT_EQ(**from_child, child_pid);
}

// Runs last (tests run in file order): every test above removed its names.
TEST(SharedSegmentTest, ZzNoShmEntriesLeftBehind) {
  for (const std::string& n : testing::ShmLeftovers()) {
    ADD_FAILURE() << "left behind: /dev/shm/" << n;
  }
}

}  // namespace
}  // namespace wharf
