#include "wharf/sync/shared_buffer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"

namespace wharf {
namespace {

using sync_internal::SharedBufferHeader;
using testing::HelperPath;
using testing::Subprocess;
using testing::UniqueName;
using testing::Watchdog;

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

// Bazel runs each test in its own PID namespace, so concurrently running
// tests often share a small pid: a random tag per process keeps our names (and
// the leftover scan below) apart from theirs. "wharf_test_<tag>_<pid>_<n>".
const std::string& Tag() {
  static const std::string* const tag = [] {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%s%08x", "buf", std::random_device()());
    return new std::string(buf);
  }();
  return *tag;
}
std::string NewName() { return UniqueName(Tag()); }

std::string ShmFile(const std::string& name) { return "/dev/shm/" + name; }

bool ShmExists(const std::string& name) {
  struct stat st;
  return ::stat(ShmFile(name).c_str(), &st) == 0;
}

// Removes a /dev/shm name at scope exit, whatever the test did.
struct ShmCleanup {
  std::string name;
  ~ShmCleanup() { ::shm_unlink(("/" + name).c_str()); }
};

// Writes `bytes` as a new shm object, as a foreign or broken creator would.
void WriteShm(const std::string& name, const void* bytes, size_t size) {
  const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, static_cast<const char*>(bytes) + done, size - done);
    ASSERT_GT(n, 0) << std::strerror(errno);
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

// A header as a valid creator writes it, for files the tests corrupt.
std::vector<unsigned char> ValidFile(size_t size, size_t file_data_bytes) {
  std::vector<unsigned char> file(SharedBuffer::kHeaderSize + file_data_bytes, 0);
  auto* h = new (file.data()) SharedBufferHeader{};
  h->version = SharedBuffer::kVersion;
  h->size.store(size);
  h->max_size = size;
  h->creator_pid = static_cast<uint32_t>(::getpid());
  h->header_size = SharedBuffer::kHeaderSize;
  h->magic.store(SharedBuffer::kMagic);
  return file;
}

// Whether /proc/self/maps has a mapping starting at `p`.
bool MappedAt(const void* p) {
  std::ifstream maps("/proc/self/maps");
  char prefix[32];
  std::snprintf(prefix, sizeof(prefix), "%lx-", reinterpret_cast<unsigned long>(p));
  for (std::string line; std::getline(maps, line);) {
    if (line.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

bool AllZero(std::span<const std::byte> bytes) {
  for (std::byte b : bytes) {
    if (b != std::byte{0}) return false;
  }
  return true;
}

uint8_t PatternByte(size_t i, unsigned seed) { return static_cast<uint8_t>(i * 31 + seed); }

// ---- Sizes and layout ----

TEST(SharedBufferTest, CreateRejectsAbsurdSizes) {
  EXPECT_CODE(SharedBuffer::Create(SharedBuffer::kMaxSize + 1).status(), kInvalidArgument);
  EXPECT_CODE(SharedBuffer::Create(SIZE_MAX).status(), kInvalidArgument);
  EXPECT_CODE(SharedBuffer::Create(SIZE_MAX - 10).status(), kInvalidArgument);
  EXPECT_CODE(SharedBuffer::CreateGrowable(10, 5).status(), kInvalidArgument);
  EXPECT_CODE(SharedBuffer::CreateGrowable(0, 0).status(), kInvalidArgument);
  EXPECT_CODE(SharedBuffer::CreateGrowable(1, SharedBuffer::kMaxSize + 1).status(),
              kInvalidArgument);
  EXPECT_CODE(SharedBuffer::CreateGrowable(SIZE_MAX, SIZE_MAX).status(), kInvalidArgument);
  auto s = SharedBuffer::Create(SharedBuffer::kMaxSize + 1).status();
  EXPECT_NE(s.message().find("exceeds the limit"), std::string_view::npos) << s;
}

// JS allows new SharedArrayBuffer(0): a buffer of no bytes, with views of no
// elements, that a growable one grows from.
TEST(SharedBufferTest, ZeroLengthBuffersAreValid) {
  auto buffer = SharedBuffer::Create(0);
  ASSERT_OK(buffer.status());
  EXPECT_TRUE(static_cast<bool>(*buffer));
  EXPECT_EQ(buffer->size(), 0u);
  EXPECT_EQ(buffer->max_size(), 0u);
  EXPECT_FALSE(buffer->growable());
  ASSERT_NE(buffer->data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer->data()) % 64, 0u);
  EXPECT_TRUE(buffer->bytes().empty());
  auto ints = buffer->View<int32_t>();
  ASSERT_OK(ints.status());
  EXPECT_TRUE(ints->empty());
  ASSERT_OK(buffer->View<uint8_t>(0, 0).status());
  EXPECT_CODE(buffer->View<uint8_t>(0, 1).status(), kOutOfRange);
  EXPECT_CODE(buffer->View<uint8_t>(1).status(), kOutOfRange);
  EXPECT_CODE(buffer->Grow(1), kFailedPrecondition);
  struct stat st;
  ASSERT_EQ(::fstat(buffer->fd(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(SharedBuffer::kHeaderSize));  // just the header
  auto attached = SharedBuffer::FromFd(buffer->fd());
  ASSERT_OK(attached.status());
  EXPECT_EQ(attached->size(), 0u);
  EXPECT_TRUE(attached->View<uint64_t>()->empty());

  // Named, fixed and growable.
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto named = SharedBuffer::CreateNamed(name, 0);
  ASSERT_OK(named.status());
  EXPECT_EQ(named->size(), 0u);
  auto opened = SharedBuffer::OpenNamed(name);
  ASSERT_OK(opened.status());
  EXPECT_EQ(opened->size(), 0u);
  EXPECT_TRUE(opened->View<int32_t>()->empty());
  opened = SharedBuffer();
  named = SharedBuffer();
  EXPECT_FALSE(ShmExists(name));

  const std::string grow_name = NewName();
  ShmCleanup cleanup2{grow_name};
  auto growable = SharedBuffer::CreateNamed(grow_name, 0, {.max_size = 8192});
  ASSERT_OK(growable.status());
  EXPECT_EQ(growable->size(), 0u);
  auto peer = SharedBuffer::OpenNamed(grow_name);
  ASSERT_OK(peer.status());
  EXPECT_EQ(peer->size(), 0u);
  ASSERT_OK(growable->Grow(100));
  EXPECT_EQ(peer->size(), 100u);
  EXPECT_EQ(peer->View<uint32_t>()->size(), 25u);
  EXPECT_TRUE(AllZero(peer->bytes()));
}

TEST(SharedBufferTest, CreateIsZeroFilledAlignedAndDescribed) {
  auto buffer = SharedBuffer::Create(100);
  ASSERT_OK(buffer.status());
  EXPECT_EQ(buffer->size(), 100u);
  EXPECT_EQ(buffer->max_size(), 100u);
  EXPECT_FALSE(buffer->growable());
  EXPECT_TRUE(static_cast<bool>(*buffer));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer->data()) % 64, 0u);
  EXPECT_EQ(buffer->bytes().size(), 100u);
  EXPECT_TRUE(AllZero(buffer->bytes()));
  EXPECT_GE(buffer->fd(), 0);
  EXPECT_TRUE(buffer->name().empty());
  EXPECT_EQ(buffer->creator_pid(), static_cast<uint32_t>(::getpid()));
  bool alive = false;
  EXPECT_EQ(buffer->creator_start_tag(),
            sync_internal::ReadStartTag(static_cast<uint32_t>(::getpid()), &alive));
  // The header, as another process reads it.
  const auto* h = reinterpret_cast<const SharedBufferHeader*>(buffer->data() - 64);
  EXPECT_EQ(h->magic.load(), SharedBuffer::kMagic);
  EXPECT_EQ(h->version, SharedBuffer::kVersion);
  EXPECT_EQ(h->header_size, 64u);
  EXPECT_EQ(h->flags, 0u);
  // The memfd holds exactly header + size bytes.
  struct stat st;
  ASSERT_EQ(::fstat(buffer->fd(), &st), 0);
  EXPECT_EQ(st.st_size, 164);
}

TEST(SharedBufferTest, LargeBufferIsSparse) {
  auto buffer = SharedBuffer::Create(size_t{1} << 30);  // 1 GiB, untouched
  ASSERT_OK(buffer.status());
  buffer->data()[(size_t{1} << 30) - 1] = std::byte{1};
  EXPECT_EQ(buffer->bytes().back(), std::byte{1});
}

TEST(SharedBufferTest, MemfdIsSealedAgainstResizing) {
  auto fixed = SharedBuffer::Create(4096);
  ASSERT_OK(fixed.status());
  EXPECT_NE(::ftruncate(fixed->fd(), 10), 0);       // F_SEAL_SHRINK
  EXPECT_NE(::ftruncate(fixed->fd(), 1 << 20), 0);  // F_SEAL_GROW
  auto growable = SharedBuffer::CreateGrowable(4096, 1 << 20);
  ASSERT_OK(growable.status());
  EXPECT_NE(::ftruncate(growable->fd(), 10), 0);  // F_SEAL_SHRINK only
}

// ---- Views ----

TEST(SharedBufferTest, ViewsCoverTheBuffer) {
  auto buffer = SharedBuffer::Create(64);
  ASSERT_OK(buffer.status());
  auto ints = buffer->View<int32_t>();
  ASSERT_OK(ints.status());
  EXPECT_EQ(ints->size(), 16u);
  EXPECT_EQ(static_cast<void*>(ints->data()), static_cast<void*>(buffer->data()));
  (*ints)[3] = 0x01020304;
  auto longs = buffer->View<uint64_t>(8, 3);
  ASSERT_OK(longs.status());
  EXPECT_EQ(longs->size(), 3u);
  EXPECT_EQ((*longs)[0] & 0xffffffffu, 0u);
  EXPECT_EQ((*longs)[0] >> 32, 0x01020304u);
  auto consts = buffer->View<const uint8_t>(12, 4);
  ASSERT_OK(consts.status());
  EXPECT_EQ((*consts)[0], 0x04);  // little-endian
}

TEST(SharedBufferTest, ViewNposTakesWholeElementsThatFit) {
  auto buffer = SharedBuffer::Create(10);
  ASSERT_OK(buffer.status());
  auto v = buffer->View<uint32_t>();
  ASSERT_OK(v.status());
  EXPECT_EQ(v->size(), 2u);
  auto tail = buffer->View<uint32_t>(8);
  ASSERT_OK(tail.status());
  EXPECT_EQ(tail->size(), 0u);
  auto at_end = buffer->View<uint8_t>(10);
  ASSERT_OK(at_end.status());
  EXPECT_TRUE(at_end->empty());
  auto exact = buffer->View<uint16_t>(0, 5);
  ASSERT_OK(exact.status());
  EXPECT_EQ(exact->size(), 5u);
}

TEST(SharedBufferTest, ViewRejectsMisalignedOffsets) {
  auto buffer = SharedBuffer::Create(64);
  ASSERT_OK(buffer.status());
  auto v = buffer->View<int32_t>(2);
  EXPECT_CODE(v.status(), kInvalidArgument);
  const std::string msg(v.status().message());
  EXPECT_NE(msg.find("byte_offset 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("alignment 4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("size 64"), std::string::npos) << msg;
  EXPECT_CODE(buffer->View<uint64_t>(4, 1).status(), kInvalidArgument);
  EXPECT_CODE(buffer->View<uint16_t>(1, 1).status(), kInvalidArgument);
  struct alignas(32) Wide {
    char c[32];
  };
  EXPECT_CODE(buffer->View<Wide>(16, 1).status(), kInvalidArgument);
  ASSERT_OK(buffer->View<Wide>(32, 1).status());
}

TEST(SharedBufferTest, ViewRejectsOutOfRangeAndOverflow) {
  auto buffer = SharedBuffer::Create(64);
  ASSERT_OK(buffer.status());
  auto past = buffer->View<uint8_t>(65);
  EXPECT_CODE(past.status(), kOutOfRange);
  const std::string msg(past.status().message());
  EXPECT_NE(msg.find("byte_offset 65"), std::string::npos) << msg;
  EXPECT_NE(msg.find("size 64"), std::string::npos) << msg;
  EXPECT_CODE(buffer->View<uint32_t>(0, 17).status(), kOutOfRange);
  EXPECT_CODE(buffer->View<uint32_t>(60, 2).status(), kOutOfRange);
  // count * sizeof(T) and offset + bytes overflow size_t: still OutOfRange.
  EXPECT_CODE(buffer->View<uint64_t>(0, SIZE_MAX / 8 + 2).status(), kOutOfRange);
  EXPECT_CODE(buffer->View<uint64_t>(8, SIZE_MAX - 1).status(), kOutOfRange);
  EXPECT_CODE(buffer->View<uint64_t>(SIZE_MAX - 7, 1).status(), kOutOfRange);
  EXPECT_CODE(buffer->View<uint8_t>(SIZE_MAX, 0).status(), kOutOfRange);
}

TEST(SharedBufferTest, EmptyHandleFailsCleanly) {
  SharedBuffer empty;
  EXPECT_FALSE(static_cast<bool>(empty));
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.max_size(), 0u);
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_TRUE(empty.bytes().empty());
  EXPECT_EQ(empty.fd(), -1);
  EXPECT_EQ(empty.use_count(), 0);
  EXPECT_TRUE(empty.name().empty());
  EXPECT_CODE(empty.View<int>().status(), kFailedPrecondition);
  EXPECT_CODE(empty.Grow(10), kFailedPrecondition);
}

// ---- Ref counting ----

TEST(SharedBufferTest, CopiesShareOneMappingUntilTheLastGoes) {
  auto created = SharedBuffer::Create(4096);
  ASSERT_OK(created.status());
  const void* base = created->data() - SharedBuffer::kHeaderSize;
  EXPECT_TRUE(MappedAt(base));
  std::byte* data = created->data();
  {
    SharedBuffer copy = *created;
    EXPECT_EQ(copy.use_count(), 2);
    EXPECT_EQ(copy.data(), data);
    copy.data()[7] = std::byte{42};
    *created = SharedBuffer();  // drop the original
    EXPECT_EQ(copy.use_count(), 1);
    EXPECT_TRUE(MappedAt(base));
    EXPECT_EQ(data[7], std::byte{42});  // still mapped through the copy
    SharedBuffer moved = std::move(copy);
    EXPECT_FALSE(static_cast<bool>(copy));  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(moved.use_count(), 1);
    EXPECT_EQ(moved.data()[7], std::byte{42});
  }
  EXPECT_FALSE(MappedAt(base));  // the last handle unmapped it
}

TEST(SharedBufferTest, HandleCopiesAreThreadSafe) {
  Watchdog dog("SharedBuffer handle copies", absl::Seconds(30));
  auto buffer = SharedBuffer::Create(64);
  ASSERT_OK(buffer.status());
  auto cells = buffer->View<uint32_t>();
  ASSERT_OK(cells.status());
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  SharedBuffer shared = *buffer;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < kRounds; ++i) {
        SharedBuffer copy = shared;  // concurrent copies of one handle
        SharedBuffer again = copy;
        std::atomic_ref<uint32_t>(copy.View<uint32_t>().value()[0]).fetch_add(1);
        again = SharedBuffer();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::atomic_ref<uint32_t>((*cells)[0]).load(), uint32_t{kThreads * kRounds});
  EXPECT_EQ(buffer->use_count(), 2);
}

// ---- FromFd ----

TEST(SharedBufferTest, FromFdAttachesToTheSameMemory) {
  auto buffer = SharedBuffer::CreateGrowable(128, 8192);
  ASSERT_OK(buffer.status());
  auto attached = SharedBuffer::FromFd(buffer->fd());
  ASSERT_OK(attached.status());
  EXPECT_NE(attached->fd(), buffer->fd());      // a dup: the caller keeps its fd
  EXPECT_NE(attached->data(), buffer->data());  // another mapping
  EXPECT_EQ(attached->size(), 128u);
  EXPECT_EQ(attached->max_size(), 8192u);
  EXPECT_TRUE(attached->growable());
  buffer->data()[5] = std::byte{9};
  EXPECT_EQ(attached->data()[5], std::byte{9});
  ASSERT_OK(attached->Grow(4096));
  EXPECT_EQ(buffer->size(), 4096u);
  buffer->data()[4000] = std::byte{3};
  EXPECT_EQ(attached->data()[4000], std::byte{3});
}

TEST(SharedBufferTest, FromFdRejectsBadFds) {
  EXPECT_CODE(SharedBuffer::FromFd(-1).status(), kInvalidArgument);
  const int unused = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(unused, 0);
  ::close(unused);
  EXPECT_CODE(SharedBuffer::FromFd(unused).status(), kInvalidArgument);  // EBADF
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  auto from_pipe = SharedBuffer::FromFd(pipe_fds[0]);
  EXPECT_CODE(from_pipe.status(), kInvalidArgument);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  // A memfd of garbage, one of zeros (never initialised), one too short.
  const int junk = ::memfd_create("junk", MFD_CLOEXEC);
  ASSERT_GE(junk, 0);
  std::vector<unsigned char> ff(4096, 0xff);
  ASSERT_EQ(::write(junk, ff.data(), ff.size()), 4096);
  auto garbage = SharedBuffer::FromFd(junk);
  EXPECT_CODE(garbage.status(), kInvalidArgument);
  EXPECT_NE(garbage.status().message().find("not a Wharf SharedBuffer"), std::string_view::npos);
  ASSERT_EQ(::ftruncate(junk, 0), 0);
  ASSERT_EQ(::ftruncate(junk, 4096), 0);
  EXPECT_CODE(SharedBuffer::FromFd(junk).status(), kUnavailable);
  ASSERT_EQ(::ftruncate(junk, 0), 0);
  EXPECT_CODE(SharedBuffer::FromFd(junk).status(), kUnavailable);
  ASSERT_EQ(::ftruncate(junk, 20), 0);
  EXPECT_CODE(SharedBuffer::FromFd(junk).status(), kDataLoss);
  ::close(junk);
}

TEST(SharedBufferTest, ChildAttachesThroughAnInheritedFd) {
  Watchdog dog("FromFd child", absl::Seconds(60));
  auto buffer = SharedBuffer::Create(10000);
  ASSERT_OK(buffer.status());
  // Our fd is close-on-exec; hand the child a copy without the flag.
  const int inheritable = ::fcntl(buffer->fd(), F_DUPFD, 0);
  ASSERT_GE(inheritable, 0);
  auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                 {"shared_buffer_from_fd", std::to_string(inheritable), "7"});
  ::close(inheritable);
  ASSERT_OK(child.status());
  auto code = child->Wait(absl::Seconds(30));
  ASSERT_OK(code.status());
  ASSERT_EQ(*code, 0);
  for (size_t i = 0; i < buffer->size(); ++i) {
    ASSERT_EQ(buffer->data()[i], std::byte{PatternByte(i, 7)}) << "at byte " << i;
  }
}

// ---- Named buffers ----

TEST(SharedBufferTest, NamedCreateOpenUnlink) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto created = SharedBuffer::CreateNamed(name, 4096);
  ASSERT_OK(created.status());
  EXPECT_EQ(created->name(), name);
  EXPECT_TRUE(ShmExists(name));
  created->data()[100] = std::byte{77};
  auto opened = SharedBuffer::OpenNamed(name);
  ASSERT_OK(opened.status());
  EXPECT_EQ(opened->name(), name);
  EXPECT_EQ(opened->size(), 4096u);
  EXPECT_FALSE(opened->growable());
  EXPECT_NE(opened->data(), created->data());
  EXPECT_EQ(opened->data()[100], std::byte{77});
  EXPECT_EQ(opened->creator_pid(), static_cast<uint32_t>(::getpid()));
  ASSERT_OK(SharedBuffer::Unlink(name));
  EXPECT_FALSE(ShmExists(name));
  // Mappings survive the unlink.
  opened->data()[101] = std::byte{78};
  EXPECT_EQ(created->data()[101], std::byte{78});
  auto missing = SharedBuffer::OpenNamed(name);
  EXPECT_CODE(missing.status(), kNotFound);
  EXPECT_NE(missing.status().message().find(name), std::string_view::npos) << missing.status();
  auto again = SharedBuffer::Unlink(name);
  EXPECT_CODE(again, kNotFound);
  EXPECT_NE(again.message().find(name), std::string_view::npos);
}

TEST(SharedBufferTest, NamedIsMode0600WhateverTheUmask) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  const mode_t old_umask = ::umask(0);
  auto created = SharedBuffer::CreateNamed(name, 100);
  ::umask(old_umask);
  ASSERT_OK(created.status());
  struct stat st;
  ASSERT_EQ(::stat(ShmFile(name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, static_cast<off_t>(SharedBuffer::kHeaderSize + 100));

  const std::string shared_name = NewName();
  ShmCleanup cleanup2{shared_name};
  auto group = SharedBuffer::CreateNamed(shared_name, 100, {.mode = 0640});
  ASSERT_OK(group.status());
  ASSERT_EQ(::stat(ShmFile(shared_name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(SharedBufferTest, CreateNamedOnATakenNameIsAlreadyExists) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto first = SharedBuffer::CreateNamed(name, 128);
  ASSERT_OK(first.status());
  first->data()[0] = std::byte{5};
  auto second = SharedBuffer::CreateNamed(name, 4096);
  EXPECT_CODE(second.status(), kAlreadyExists);
  EXPECT_NE(second.status().message().find(name), std::string_view::npos);
  // The first is untouched.
  auto opened = SharedBuffer::OpenNamed(name);
  ASSERT_OK(opened.status());
  EXPECT_EQ(opened->size(), 128u);
  EXPECT_EQ(opened->data()[0], std::byte{5});
}

TEST(SharedBufferTest, NamesAreValidated) {
  const std::vector<std::string> bad = {"",
                                        "a/b",
                                        "/lead",
                                        ".",
                                        "..",
                                        std::string("a\0b", 3),
                                        std::string(SharedBuffer::kMaxNameLength + 1, 'x')};
  for (const std::string& name : bad) {
    EXPECT_CODE(SharedBuffer::CreateNamed(name, 64).status(), kInvalidArgument);
    EXPECT_CODE(SharedBuffer::OpenNamed(name).status(), kInvalidArgument);
    EXPECT_CODE(SharedBuffer::Unlink(name), kInvalidArgument);
  }
  // The longest valid name works.
  std::string longest = NewName();
  longest.append(SharedBuffer::kMaxNameLength - longest.size(), 'n');
  ShmCleanup cleanup{longest};
  auto created = SharedBuffer::CreateNamed(longest, 64);
  ASSERT_OK(created.status());
  ASSERT_OK(SharedBuffer::Unlink(longest));
}

TEST(SharedBufferTest, CreateNamedRejectsBadSizesWithoutLeavingAName) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  EXPECT_CODE(SharedBuffer::CreateNamed(name, SIZE_MAX).status(), kInvalidArgument);
  EXPECT_CODE(SharedBuffer::CreateNamed(name, 100, {.max_size = 50}).status(), kInvalidArgument);
  EXPECT_CODE(
      SharedBuffer::CreateNamed(name, 100, {.max_size = SharedBuffer::kMaxSize + 1}).status(),
      kInvalidArgument);
  // Modes that give other users access, or that are not permission bits.
  for (mode_t mode : {0666, 0606, 0604, 0601, 01600, 04600}) {
    auto s = SharedBuffer::CreateNamed(name, 100, {.mode = mode}).status();
    EXPECT_CODE(s, kInvalidArgument);
    EXPECT_NE(s.message().find(name), std::string_view::npos) << s;
  }
  EXPECT_FALSE(ShmExists(name));
}

TEST(SharedBufferTest, UnlinkOnCloseRemovesTheNameWithTheCreatorsLastHandle) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto created = SharedBuffer::CreateNamed(name, 64);  // default: unlink_on_close
  ASSERT_OK(created.status());
  auto opened = SharedBuffer::OpenNamed(name);
  ASSERT_OK(opened.status());
  created->data()[1] = std::byte{11};
  SharedBuffer creator_copy = *created;
  *created = SharedBuffer();
  EXPECT_TRUE(ShmExists(name));  // a copy of the creator's handle lives
  creator_copy = SharedBuffer();
  EXPECT_FALSE(ShmExists(name));
  EXPECT_EQ(opened->data()[1], std::byte{11});  // the opener keeps its mapping
  opened = SharedBuffer();                      // an opener never unlinks
  EXPECT_CODE(SharedBuffer::OpenNamed(name).status(), kNotFound);
}

TEST(SharedBufferTest, KeptNameOutlivesTheCreator) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  {
    auto created = SharedBuffer::CreateNamed(name, 64, {.unlink_on_close = false});
    ASSERT_OK(created.status());
    created->data()[0] = std::byte{1};
  }
  EXPECT_TRUE(ShmExists(name));
  auto opened = SharedBuffer::OpenNamed(name);
  ASSERT_OK(opened.status());
  EXPECT_EQ(opened->data()[0], std::byte{1});
  opened = SharedBuffer();
  ASSERT_OK(SharedBuffer::Unlink(name));
  EXPECT_FALSE(ShmExists(name));
}

TEST(SharedBufferTest, UnlinkOnCloseNeverRemovesANewerObjectOfTheSameName) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto old_one = SharedBuffer::CreateNamed(name, 64);
  ASSERT_OK(old_one.status());
  ASSERT_OK(SharedBuffer::Unlink(name));
  auto new_one = SharedBuffer::CreateNamed(name, 64, {.unlink_on_close = false});
  ASSERT_OK(new_one.status());
  *old_one = SharedBuffer();  // must not remove new_one's name
  EXPECT_TRUE(ShmExists(name));
  ASSERT_OK(SharedBuffer::Unlink(name));
}

// ---- Trust: who made the name, and who else may write it ----

// The fd of a fresh /dev/shm name, for tests that change its mode or owner.
int OpenShmFd(const std::string& name) {
  return ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0);
}

bool HasText(const absl::Status& s, std::string_view text) {
  return std::string_view(s.message().data(), s.message().size()).find(text) !=
         std::string_view::npos;
}

// The attack: a local user creates the name first, with a valid header and
// mode 0666, and waits for the victim to open it. (Here the "other user" is
// this process; the owner check is in SharedBufferOwnerTest.)
TEST(SharedBufferTest, OpenNamedRefusesAWorldWritableName) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  std::vector<unsigned char> file = ValidFile(4096, 4096);
  WriteShm(name, file.data(), file.size());
  ASSERT_EQ(::chmod(ShmFile(name).c_str(), 0666), 0) << std::strerror(errno);
  auto opened = SharedBuffer::OpenNamed(name);
  EXPECT_CODE(opened.status(), kPermissionDenied);
  EXPECT_TRUE(HasText(opened.status(), name)) << opened.status();
  EXPECT_TRUE(HasText(opened.status(), "mode 0666")) << opened.status();
  EXPECT_TRUE(HasText(opened.status(), "owner uid " + std::to_string(::geteuid())))
      << opened.status();
  EXPECT_TRUE(HasText(opened.status(), "never accepted")) << opened.status();
  // No option accepts access for others.
  EXPECT_CODE(SharedBuffer::OpenNamed(name, {.allowed_owner = ::geteuid(),
                                             .allowed_group_bits = 060})
                  .status(),
              kPermissionDenied);
  // Once its owner makes it private, it opens.
  ASSERT_EQ(::chmod(ShmFile(name).c_str(), 0600), 0);
  ASSERT_OK(SharedBuffer::OpenNamed(name).status());
}

TEST(SharedBufferTest, OpenNamedRefusesGroupAccessUnlessAllowed) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto created = SharedBuffer::CreateNamed(name, 64);
  ASSERT_OK(created.status());
  created->data()[0] = std::byte{42};
  ASSERT_OK(SharedBuffer::OpenNamed(name).status());  // our own 0600 name
  for (mode_t mode : {0640, 0660, 0620, 0610, 0604, 0602, 0666, 0644}) {
    ASSERT_EQ(::fchmod(created->fd(), mode), 0);
    auto opened = SharedBuffer::OpenNamed(name);
    EXPECT_CODE(opened.status(), kPermissionDenied);
    char octal[8];
    std::snprintf(octal, sizeof(octal), "0%o", mode);
    EXPECT_TRUE(HasText(opened.status(), std::string("mode ") + octal)) << opened.status();
  }
  // The option: group bits the opener accepts.
  ASSERT_EQ(::fchmod(created->fd(), 0640), 0);
  EXPECT_TRUE(HasText(SharedBuffer::OpenNamed(name).status(), "allowed_group_bits = 040"));
  auto group_read = SharedBuffer::OpenNamed(name, {.allowed_group_bits = 040});
  ASSERT_OK(group_read.status());
  EXPECT_EQ(group_read->data()[0], std::byte{42});
  ASSERT_OK(SharedBuffer::OpenNamed(name, {.allowed_group_bits = 060}).status());
  ASSERT_EQ(::fchmod(created->fd(), 0660), 0);
  EXPECT_CODE(SharedBuffer::OpenNamed(name, {.allowed_group_bits = 040}).status(),
              kPermissionDenied);  // group write was not allowed
  ASSERT_OK(SharedBuffer::OpenNamed(name, {.allowed_group_bits = 060}).status());
  ASSERT_EQ(::fchmod(created->fd(), 0664), 0);
  EXPECT_CODE(SharedBuffer::OpenNamed(name, {.allowed_group_bits = 060}).status(),
              kPermissionDenied);  // others' bits: never
  // Bits for others in the option are a mistake, not a wider trust.
  auto bad = SharedBuffer::OpenNamed(name, {.allowed_group_bits = 0666});
  EXPECT_CODE(bad.status(), kInvalidArgument);
  EXPECT_TRUE(HasText(bad.status(), "allowed_group_bits")) << bad.status();
  // A creator may make a group-shared name on purpose.
  const std::string shared = NewName();
  ShmCleanup cleanup2{shared};
  auto group = SharedBuffer::CreateNamed(shared, 64, {.mode = 0660});
  ASSERT_OK(group.status());
  EXPECT_CODE(SharedBuffer::OpenNamed(shared).status(), kPermissionDenied);
  ASSERT_OK(SharedBuffer::OpenNamed(shared, {.allowed_group_bits = 060}).status());
}

TEST(SharedBufferTest, OpenNamedNeverFollowsASymlink) {
  const std::string real = NewName(), link = NewName(), dangling = NewName();
  ShmCleanup c1{real}, c2{link}, c3{dangling};
  auto created = SharedBuffer::CreateNamed(real, 64);
  ASSERT_OK(created.status());
  ASSERT_EQ(::symlink(ShmFile(real).c_str(), ShmFile(link).c_str()), 0) << std::strerror(errno);
  auto opened = SharedBuffer::OpenNamed(link);
  EXPECT_CODE(opened.status(), kPermissionDenied);
  EXPECT_TRUE(HasText(opened.status(), "symbolic link")) << opened.status();
  EXPECT_TRUE(HasText(opened.status(), link)) << opened.status();
  // Creating over a symlink, dangling or not, never writes through it.
  ASSERT_EQ(::symlink(ShmFile(NewName()).c_str(), ShmFile(dangling).c_str()), 0);
  EXPECT_CODE(SharedBuffer::CreateNamed(link, 64).status(), kAlreadyExists);
  EXPECT_CODE(SharedBuffer::CreateNamed(dangling, 64).status(), kAlreadyExists);
  EXPECT_CODE(SharedBuffer::OpenNamed(dangling).status(), kPermissionDenied);
  ASSERT_OK(SharedBuffer::Unlink(link));  // removes the link, not the buffer
  ASSERT_OK(SharedBuffer::Unlink(dangling));
  ASSERT_OK(SharedBuffer::OpenNamed(real).status());
}

TEST(SharedBufferTest, OpenNamedRefusesFifosAndDirectoriesWithoutBlocking) {
  Watchdog dog("open of a FIFO", absl::Seconds(30));
  const std::string fifo = NewName(), dir = NewName();
  ShmCleanup c1{fifo};
  ASSERT_EQ(::mkfifo(ShmFile(fifo).c_str(), 0600), 0) << std::strerror(errno);
  EXPECT_CODE(SharedBuffer::OpenNamed(fifo).status(), kInvalidArgument);
  ASSERT_EQ(::mkdir(ShmFile(dir).c_str(), 0700), 0) << std::strerror(errno);
  EXPECT_CODE(SharedBuffer::OpenNamed(dir).status(), kInvalidArgument);
  EXPECT_EQ(::rmdir(ShmFile(dir).c_str()), 0);
}

// ---- Files that are not (yet) valid SharedBuffers ----

TEST(SharedBufferTest, WrongMagicIsNotASharedBuffer) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  std::vector<unsigned char> junk(4096, 0x5a);
  WriteShm(name, junk.data(), junk.size());
  auto opened = SharedBuffer::OpenNamed(name);
  EXPECT_CODE(opened.status(), kInvalidArgument);
  EXPECT_NE(opened.status().message().find("not a Wharf SharedBuffer"), std::string_view::npos)
      << opened.status();
  EXPECT_NE(opened.status().message().find(name), std::string_view::npos);
}

TEST(SharedBufferTest, OtherVersionIsFailedPreconditionNamingBoth) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  std::vector<unsigned char> file = ValidFile(4096, 4096);
  reinterpret_cast<SharedBufferHeader*>(file.data())->version = 77;
  WriteShm(name, file.data(), file.size());
  auto opened = SharedBuffer::OpenNamed(name);
  EXPECT_CODE(opened.status(), kFailedPrecondition);
  const std::string msg(opened.status().message());
  EXPECT_NE(msg.find("version 77"), std::string::npos) << msg;
  EXPECT_NE(msg.find("version " + std::to_string(SharedBuffer::kVersion)), std::string::npos)
      << msg;
}

TEST(SharedBufferTest, ValidHandMadeFileOpens) {
  // The control for the corruption tests below.
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  std::vector<unsigned char> file = ValidFile(256, 256);
  file[SharedBuffer::kHeaderSize + 3] = 0x42;
  WriteShm(name, file.data(), file.size());
  auto opened = SharedBuffer::OpenNamed(name);
  ASSERT_OK(opened.status());
  EXPECT_EQ(opened->size(), 256u);
  EXPECT_EQ(opened->data()[3], std::byte{0x42});
}

TEST(SharedBufferTest, TruncatedFilesAreDataLoss) {
  {
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    std::vector<unsigned char> file = ValidFile(4096, 0);
    WriteShm(name, file.data(), 10);  // shorter than the header
    auto opened = SharedBuffer::OpenNamed(name);
    EXPECT_CODE(opened.status(), kDataLoss);
    EXPECT_NE(opened.status().message().find("truncated"), std::string_view::npos);
  }
  {
    const std::string name = NewName();
    ShmCleanup cleanup{name};
    std::vector<unsigned char> file = ValidFile(4096, 100);  // header says 4096
    WriteShm(name, file.data(), file.size());
    auto opened = SharedBuffer::OpenNamed(name);
    EXPECT_CODE(opened.status(), kDataLoss);
    const std::string msg(opened.status().message());
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    EXPECT_NE(msg.find("164 bytes"), std::string::npos) << msg;
  }
}

TEST(SharedBufferTest, CorruptHeaderIsDataLoss) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  std::vector<unsigned char> file = ValidFile(256, 256);
  reinterpret_cast<SharedBufferHeader*>(file.data())->max_size = 100;  // < size
  WriteShm(name, file.data(), file.size());
  EXPECT_CODE(SharedBuffer::OpenNamed(name).status(), kDataLoss);

  const std::string name2 = NewName();
  ShmCleanup cleanup2{name2};
  file = ValidFile(256, 256);
  reinterpret_cast<SharedBufferHeader*>(file.data())->max_size = uint64_t{1} << 60;  // absurd
  reinterpret_cast<SharedBufferHeader*>(file.data())->flags = sync_internal::kSharedBufferGrowable;
  WriteShm(name2, file.data(), file.size());
  EXPECT_CODE(SharedBuffer::OpenNamed(name2).status(), kDataLoss);
}

TEST(SharedBufferTest, UninitialisedBufferIsUnavailableAfterABoundedWait) {
  Watchdog dog("uninitialised open", absl::Seconds(30));
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  std::vector<unsigned char> zeros(SharedBuffer::kHeaderSize + 4096, 0);  // magic 0
  WriteShm(name, zeros.data(), zeros.size());
  // The default bound (~1 s).
  absl::Time start = absl::Now();
  auto opened = SharedBuffer::OpenNamed(name);
  absl::Duration waited = absl::Now() - start;
  EXPECT_CODE(opened.status(), kUnavailable);
  EXPECT_NE(opened.status().message().find("not initialised"), std::string_view::npos);
  EXPECT_GE(waited, absl::Seconds(1));
  EXPECT_LT(waited, absl::Seconds(10));
  // A shorter one.
  start = absl::Now();
  opened = SharedBuffer::OpenNamed(name, {.init_timeout = absl::Milliseconds(50)});
  waited = absl::Now() - start;
  EXPECT_CODE(opened.status(), kUnavailable);
  EXPECT_GE(waited, absl::Milliseconds(50));
  // An empty file: created, not yet sized.
  const std::string empty = NewName();
  ShmCleanup cleanup2{empty};
  WriteShm(empty, nullptr, 0);
  auto empty_open = SharedBuffer::OpenNamed(empty, {.init_timeout = absl::Milliseconds(20)});
  EXPECT_CODE(empty_open.status(), kUnavailable);
  EXPECT_NE(empty_open.status().message().find("empty"), std::string_view::npos);
}

TEST(SharedBufferTest, OpenerWaitsForACreatorThatFinishesInTime) {
  Watchdog dog("open during init", absl::Seconds(30));
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  std::vector<unsigned char> file = ValidFile(512, 512);
  reinterpret_cast<SharedBufferHeader*>(file.data())->magic.store(0);  // in progress
  WriteShm(name, file.data(), file.size());
  std::thread creator([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0);
    void* p = ::mmap(nullptr, 64, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    static_cast<SharedBufferHeader*>(p)->magic.store(SharedBuffer::kMagic,
                                                     std::memory_order_release);
    ::munmap(p, 64);
  });
  auto opened = SharedBuffer::OpenNamed(name, {.init_timeout = absl::Seconds(10)});
  creator.join();
  ASSERT_OK(opened.status());
  EXPECT_EQ(opened->size(), 512u);
}

// ---- Growable buffers ----

TEST(SharedBufferTest, GrowAddsZeroedBytesWithoutMoving) {
  auto buffer = SharedBuffer::CreateGrowable(100, 1 << 20);
  ASSERT_OK(buffer.status());
  EXPECT_TRUE(buffer->growable());
  EXPECT_EQ(buffer->size(), 100u);
  EXPECT_EQ(buffer->max_size(), size_t{1} << 20);
  auto before = buffer->View<uint8_t>();
  ASSERT_OK(before.status());
  std::memset(before->data(), 0x7f, before->size());
  std::byte* data = buffer->data();
  ASSERT_OK(buffer->Grow(50000));
  EXPECT_EQ(buffer->size(), 50000u);
  EXPECT_EQ(buffer->data(), data);
  EXPECT_TRUE(AllZero(buffer->bytes().subspan(100)));
  EXPECT_EQ(buffer->bytes()[99], std::byte{0x7f});
  (*before)[0] = 1;  // spans from before the Grow stay valid
  EXPECT_EQ(buffer->data()[0], std::byte{1});
  auto after = buffer->View<uint32_t>();
  ASSERT_OK(after.status());
  EXPECT_EQ(after->size(), 12500u);
  struct stat st;
  ASSERT_EQ(::fstat(buffer->fd(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(SharedBuffer::kHeaderSize + 50000));
}

TEST(SharedBufferTest, GrowOnlyGrowsUpToMaxSize) {
  auto buffer = SharedBuffer::CreateGrowable(100, 8192);
  ASSERT_OK(buffer.status());
  auto shrink = buffer->Grow(50);
  EXPECT_CODE(shrink, kInvalidArgument);
  EXPECT_NE(shrink.message().find("shrink"), std::string_view::npos);
  ASSERT_OK(buffer->Grow(100));  // same size: no-op
  auto too_big = buffer->Grow(8193);
  EXPECT_CODE(too_big, kOutOfRange);
  EXPECT_NE(too_big.message().find("8192"), std::string_view::npos);
  EXPECT_CODE(buffer->Grow(SIZE_MAX), kOutOfRange);
  ASSERT_OK(buffer->Grow(8192));
  EXPECT_EQ(buffer->size(), 8192u);
  EXPECT_CODE(buffer->Grow(8192 + 1), kOutOfRange);
}

TEST(SharedBufferTest, GrowOnAFixedBufferIsFailedPrecondition) {
  auto buffer = SharedBuffer::Create(100);
  ASSERT_OK(buffer.status());
  auto s = buffer->Grow(200);
  EXPECT_CODE(s, kFailedPrecondition);
  EXPECT_NE(s.message().find("not growable"), std::string_view::npos);
  EXPECT_EQ(buffer->size(), 100u);
}

TEST(SharedBufferTest, GrowableMayStartEmpty) {
  auto buffer = SharedBuffer::CreateGrowable(0, 4096);
  ASSERT_OK(buffer.status());
  EXPECT_EQ(buffer->size(), 0u);
  auto none = buffer->View<int32_t>();
  ASSERT_OK(none.status());
  EXPECT_TRUE(none->empty());
  ASSERT_OK(buffer->Grow(4096));
  EXPECT_EQ(buffer->View<int32_t>()->size(), 1024u);
}

TEST(SharedBufferTest, GrowIsSeenByCopiesAndByOpenersInThisProcess) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto created = SharedBuffer::CreateNamed(name, 64, {.max_size = 1 << 20});
  ASSERT_OK(created.status());
  EXPECT_TRUE(created->growable());
  SharedBuffer copy = *created;
  auto opened = SharedBuffer::OpenNamed(name);
  ASSERT_OK(opened.status());
  EXPECT_TRUE(opened->growable());
  EXPECT_EQ(opened->max_size(), size_t{1} << 20);
  ASSERT_OK(created->Grow(100000));
  EXPECT_EQ(copy.size(), 100000u);
  EXPECT_EQ(opened->size(), 100000u);
  opened->data()[99999] = std::byte{5};  // another mapping touches the new end
  EXPECT_EQ(created->data()[99999], std::byte{5});
  ASSERT_OK(opened->Grow(200000));  // and grows it from its side
  EXPECT_EQ(created->size(), 200000u);
  // An opener after the grows sees the current size.
  auto late = SharedBuffer::OpenNamed(name);
  ASSERT_OK(late.status());
  EXPECT_EQ(late->size(), 200000u);
  EXPECT_EQ(late->data()[99999], std::byte{5});
}

TEST(SharedBufferTest, ConcurrentGrowsSerialise) {
  Watchdog dog("concurrent Grow", absl::Seconds(60));
  constexpr size_t kMax = 1 << 20;
  auto buffer = SharedBuffer::CreateGrowable(0, kMax);
  ASSERT_OK(buffer.status());
  constexpr int kThreads = 4;
  constexpr int kSteps = 64;
  std::barrier start(kThreads);
  std::atomic<int> grown{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SharedBuffer mine = *buffer;
      start.arrive_and_wait();
      for (int i = 1; i <= kSteps; ++i) {
        // Interleaved targets: each thread's are increasing, others' overlap.
        const size_t target = (static_cast<size_t>(i) * kThreads + t) * 4096 / kThreads;
        const absl::Status s = mine.Grow(target);
        if (s.ok()) {
          grown.fetch_add(1);
          // Everything below size() is ours to touch, in any thread.
          const size_t now = mine.size();
          ASSERT_GE(now, target);
          if (target > 0) {
            std::atomic_ref<std::byte>(mine.data()[target - 1]).store(std::byte{1});
          }
        } else {
          ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;  // someone got further
          refused.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const size_t final_size =
      (static_cast<size_t>(kSteps) * kThreads + kThreads - 1) * 4096 / kThreads;
  EXPECT_EQ(buffer->size(), final_size);
  EXPECT_EQ(grown.load() + refused.load(), kThreads * kSteps);
  struct stat st;
  ASSERT_EQ(::fstat(buffer->fd(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(SharedBuffer::kHeaderSize + final_size));
}

// ---- Across processes ----

TEST(SharedBufferTest, ChildWritesANamedBuffer) {
  Watchdog dog("named child", absl::Seconds(60));
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto buffer = SharedBuffer::CreateNamed(name, 12345);
  ASSERT_OK(buffer.status());
  auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                 {"shared_buffer_write_pattern", name, "3"});
  ASSERT_OK(child.status());
  auto code = child->Wait(absl::Seconds(30));
  ASSERT_OK(code.status());
  ASSERT_EQ(*code, 0);
  for (size_t i = 0; i < buffer->size(); ++i) {
    ASSERT_EQ(buffer->data()[i], std::byte{PatternByte(i, 3)}) << "at byte " << i;
  }
}

TEST(SharedBufferTest, GrowIsSeenAcrossProcesses) {
  Watchdog dog("grow across processes", absl::Seconds(60));
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto buffer = SharedBuffer::CreateNamed(name, 100, {.max_size = 1 << 20});
  ASSERT_OK(buffer.status());
  buffer->data()[0] = std::byte{0xAB};
  ASSERT_OK(buffer->Grow(30000));
  auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                 {"shared_buffer_grow_check", name, "30000", "70000"});
  ASSERT_OK(child.status());
  auto code = child->Wait(absl::Seconds(30));
  ASSERT_OK(code.status());
  ASSERT_EQ(*code, 0);
  EXPECT_EQ(buffer->data()[29999], std::byte{0xCD});  // the child's write
  EXPECT_EQ(buffer->size(), 70000u);                  // the child's Grow
  EXPECT_TRUE(AllZero(buffer->bytes().subspan(30000)));
}

TEST(SharedBufferTest, GrowRecoversFromAGrowerKilledMidway) {
  Watchdog dog("grow after a dead grower", absl::Seconds(60));
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto buffer = SharedBuffer::CreateNamed(name, 4096, {.max_size = 1 << 20});
  ASSERT_OK(buffer.status());
  auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                 {"shared_buffer_die_in_grow", name});
  ASSERT_OK(child.status());
  auto code = child->Wait(absl::Seconds(30));
  ASSERT_OK(code.status());
  ASSERT_EQ(*code, 128 + SIGKILL);
  EXPECT_EQ(buffer->size(), 4096u);   // the dead grower never published
  ASSERT_OK(buffer->Grow(3 * 4096));  // takes over the dead owner's lock
  EXPECT_EQ(buffer->size(), 3u * 4096);
  EXPECT_TRUE(AllZero(buffer->bytes().subspan(4096)));  // its 0xEE bytes are gone
  ASSERT_OK(buffer->Grow(4 * 4096));                    // and the lock works normally afterwards
}

// ---- Names owned by another user (needs root outside Bazel's sandbox) ----
//
// These chown a name to another uid. That needs root, and it fails inside
// Bazel's linux-sandbox, whose user namespace maps no uid but ours: they run
// in //tests/sync:shared_buffer_owner_test (tagged to run outside the
// sandbox) and skip, saying why, anywhere else.

constexpr uid_t kOtherUid = 65534;  // "nobody"

// Empty if `fd` was chowned to kOtherUid, else why not (for GTEST_SKIP).
std::string ChownToOtherUser(int fd) {
  if (::geteuid() != 0) {
    return "needs root to chown a /dev/shm name to another uid (running as uid " +
           std::to_string(::geteuid()) + ")";
  }
  if (::fchown(fd, kOtherUid, kOtherUid) != 0) {
    return std::string("fchown to uid 65534 failed (") + std::strerror(errno) +
           "): a user namespace that maps no other uid, such as Bazel's linux-sandbox; run "
           "//tests/sync:shared_buffer_owner_test, which runs outside the sandbox";
  }
  return "";
}

TEST(SharedBufferOwnerTest, OpenNamedRefusesANameOwnedByAnotherUser) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  // The attack: "nobody" made the name first, a valid buffer, private to it.
  std::vector<unsigned char> file = ValidFile(4096, 4096);
  WriteShm(name, file.data(), file.size());
  const int fd = OpenShmFd(name);
  ASSERT_GE(fd, 0);
  const std::string why = ChownToOtherUser(fd);
  ::close(fd);
  if (!why.empty()) GTEST_SKIP() << why;
  auto opened = SharedBuffer::OpenNamed(name);
  EXPECT_CODE(opened.status(), kPermissionDenied);
  EXPECT_TRUE(HasText(opened.status(), name)) << opened.status();
  EXPECT_TRUE(HasText(opened.status(), "owned by uid 65534")) << opened.status();
  EXPECT_TRUE(HasText(opened.status(), "expected uid " + std::to_string(::geteuid())))
      << opened.status();
  EXPECT_TRUE(HasText(opened.status(), "mode 0600")) << opened.status();
  EXPECT_TRUE(HasText(opened.status(), "allowed_owner = 65534")) << opened.status();
  // Another allowed owner does not help.
  EXPECT_CODE(SharedBuffer::OpenNamed(name, {.allowed_owner = 12345}).status(),
              kPermissionDenied);
  // Deliberate sharing with that user.
  auto shared = SharedBuffer::OpenNamed(name, {.allowed_owner = kOtherUid});
  ASSERT_OK(shared.status());
  EXPECT_EQ(shared->size(), 4096u);
  // Trusting the owner does not trust the mode.
  ASSERT_EQ(::chmod(ShmFile(name).c_str(), 0666), 0);
  EXPECT_CODE(SharedBuffer::OpenNamed(name, {.allowed_owner = kOtherUid}).status(),
              kPermissionDenied);
  ASSERT_EQ(::chmod(ShmFile(name).c_str(), 0660), 0);
  ASSERT_OK(
      SharedBuffer::OpenNamed(name, {.allowed_owner = kOtherUid, .allowed_group_bits = 060})
          .status());
}

TEST(SharedBufferOwnerTest, CreatorsOwnNameChownedAwayIsRefused) {
  const std::string name = NewName();
  ShmCleanup cleanup{name};
  auto created = SharedBuffer::CreateNamed(name, 64);
  ASSERT_OK(created.status());
  ASSERT_OK(SharedBuffer::OpenNamed(name).status());
  const std::string why = ChownToOtherUser(created->fd());
  if (!why.empty()) GTEST_SKIP() << why;
  EXPECT_CODE(SharedBuffer::OpenNamed(name).status(), kPermissionDenied);
  ASSERT_OK(SharedBuffer::OpenNamed(name, {.allowed_owner = kOtherUid}).status());
}

TEST(SharedBufferOwnerTest, ZzNoShmEntriesLeftBehind) {
  for (const std::string& n : testing::ShmLeftovers()) {
    ADD_FAILURE() << "left behind: /dev/shm/" << n;
  }
}

// Runs last (tests run in file order): every test above removed its names.
// A creator SIGKILLed before its last handle went away leaves its name; the
// reaper removes it, and nothing else: not a live creator's buffer, not a
// name created with unlink_on_close = false, not a foreign file.
TEST(SharedBufferTest, ReapOrphansRemovesOnlyDeadCreatorsOwnedNames) {
  Watchdog dog("ReapOrphans", absl::Seconds(60));
  const std::string prefix = NewName() + "_reap_";
  const std::string orphan = prefix + "orphan", kept = prefix + "kept",
                    live = prefix + "live", foreign = prefix + "foreign";
  ShmCleanup c1{orphan}, c2{kept}, c3{live}, c4{foreign};
  auto spawn_creator = [&](const std::string& name, const char* owns) {
    auto child = Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"),
                                   {"shared_buffer_create_and_hang", name, owns});
    EXPECT_TRUE(child.ok()) << child.status();
    // The buffer is ready once it opens.
    while (!SharedBuffer::OpenNamed(name).ok()) std::this_thread::yield();
    child->Kill();
    auto code = child->Wait(absl::Seconds(10));
    EXPECT_TRUE(code.ok());
  };
  spawn_creator(orphan, "1");
  spawn_creator(kept, "0");
  auto mine = SharedBuffer::CreateNamed(live, 64);
  ASSERT_OK(mine.status());
  {
    const int fd = ::shm_open(("/" + foreign).c_str(), O_CREAT | O_RDWR, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 4096), 0);
    ::close(fd);
  }
  ASSERT_TRUE(ShmExists(orphan));

  auto reaped = SharedBuffer::ReapOrphans(prefix);
  ASSERT_OK(reaped.status());
  EXPECT_EQ(*reaped, 1);
  EXPECT_FALSE(ShmExists(orphan));
  EXPECT_TRUE(ShmExists(kept));
  EXPECT_TRUE(ShmExists(live));
  EXPECT_TRUE(ShmExists(foreign));
  EXPECT_EQ(SharedBuffer::OpenNamed(orphan).status().code(), absl::StatusCode::kNotFound);
  // Nothing left to reap; the prefix must be usable.
  EXPECT_EQ(SharedBuffer::ReapOrphans(prefix).value_or(-1), 0);
  EXPECT_CODE(SharedBuffer::ReapOrphans("").status(), kInvalidArgument);
  EXPECT_CODE(SharedBuffer::ReapOrphans("a/b").status(), kInvalidArgument);
  ASSERT_OK(SharedBuffer::Unlink(kept));
}

TEST(SharedBufferTest, ZzNoShmEntriesLeftBehind) {
  for (const std::string& n : testing::ShmLeftovers()) {
    ADD_FAILURE() << "left behind: /dev/shm/" << n;
  }
}

}  // namespace
}  // namespace wharf
