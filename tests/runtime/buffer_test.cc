#include "wharf/runtime/buffer.h"
#include "wharf/sync/shared_buffer.h"

#include <cstddef>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace wharf {
namespace {

std::vector<std::byte> Bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

TEST(BufferTest, DefaultIsEmptyNotDetached) {
  Buffer b;
  EXPECT_EQ(b.size(), 0u);
  EXPECT_FALSE(b.detached());
  ASSERT_TRUE(b.Bytes().ok());
  EXPECT_TRUE(b.Bytes()->empty());
}

TEST(BufferTest, AllocateIsZeroFilled) {
  absl::StatusOr<Buffer> b = Buffer::Allocate(4096);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->size(), 4096u);
  for (std::byte x : b->span()) ASSERT_EQ(x, std::byte{0});
}

TEST(BufferTest, AllocateZeroAndTooLarge) {
  absl::StatusOr<Buffer> empty = Buffer::Allocate(0);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size(), 0u);
  absl::StatusOr<Buffer> huge = Buffer::Allocate(Buffer::kMaxSize + 1);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(huge.status().message().find("kMaxSize"), std::string_view::npos);
}

TEST(BufferTest, CopyFromCopies) {
  std::vector<std::byte> src = Bytes({1, 2, 3});
  Buffer b = Buffer::CopyFrom(src).value();
  src[0] = std::byte{9};
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b.data()[0], std::byte{1});
  EXPECT_EQ(b.data()[2], std::byte{3});
}

TEST(BufferTest, MoveTransfersWithoutCopyAndDetachesSource) {
  Buffer a = Buffer::CopyFrom(Bytes({1, 2, 3})).value();
  const std::byte* bytes = a.data();
  Buffer b = std::move(a);
  EXPECT_EQ(b.data(), bytes);  // same memory: no copy
  EXPECT_EQ(b.size(), 3u);
  EXPECT_FALSE(b.detached());
  EXPECT_TRUE(a.detached());  // NOLINT(bugprone-use-after-move): the point of the test
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_TRUE(a.span().empty());
}

TEST(BufferTest, MoveAssignDetachesSource) {
  Buffer a = Buffer::CopyFrom(Bytes({7})).value();
  Buffer b = Buffer::CopyFrom(Bytes({1, 2})).value();
  b = std::move(a);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_TRUE(a.detached());  // NOLINT(bugprone-use-after-move)
}

TEST(BufferTest, DetachedAccessIsAClearError) {
  Buffer a = Buffer::CopyFrom(Bytes({1})).value();
  Buffer b = std::move(a);
  for (absl::Status status : {a.Bytes().status(), std::as_const(a).Bytes().status(),
                              a.Clone().status(), a.Transfer().status()}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(status.message().find("buffer was transferred (detached)"), std::string_view::npos)
        << status;
  }
}

TEST(BufferTest, TransferIsCheckedMove) {
  Buffer a = Buffer::CopyFrom(Bytes({4, 5})).value();
  absl::StatusOr<Buffer> b = a.Transfer();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size(), 2u);
  EXPECT_TRUE(a.detached());
  EXPECT_FALSE(a.Transfer().ok());
}

TEST(BufferTest, CloneIsDeepAndEqual) {
  Buffer a = Buffer::CopyFrom(Bytes({1, 2, 3})).value();
  Buffer c = a.Clone().value();
  EXPECT_NE(c.data(), a.data());
  EXPECT_TRUE(a == c);
  c.data()[0] = std::byte{42};
  EXPECT_FALSE(a == c);
  EXPECT_EQ(a.data()[0], std::byte{1});
}

TEST(BufferTest, EqualityConsidersDetachedState) {
  Buffer a;
  Buffer b;
  EXPECT_TRUE(a == b);
  Buffer c = std::move(a);
  EXPECT_FALSE(a == b);  // NOLINT(bugprone-use-after-move): detached vs empty
  Buffer d = std::move(b);
  EXPECT_TRUE(a == b);  // NOLINT(bugprone-use-after-move): both detached
}

}  // namespace
TEST(SharedBufferBackedTest, AllocateSharedMovesAndClones) {
  Buffer b = Buffer::AllocateShared(4096).value();
  EXPECT_TRUE(b.shared());
  ASSERT_NE(b.shared_memory(), nullptr);
  EXPECT_EQ(b.size(), 4096u);
  EXPECT_EQ(b.data(), b.shared_memory()->data());
  for (std::byte x : b.span()) ASSERT_EQ(x, std::byte{0});
  b.data()[7] = std::byte{7};
  std::byte* p = b.data();
  Buffer moved = std::move(b);
  EXPECT_TRUE(b.detached());
  EXPECT_FALSE(b.shared());
  EXPECT_EQ(moved.data(), p);  // a move is a transfer: same memory
  EXPECT_TRUE(moved.shared());
  Buffer copy = moved.Clone().value();
  EXPECT_FALSE(copy.shared());  // a clone is a plain heap copy
  EXPECT_EQ(copy.data()[7], std::byte{7});
  EXPECT_EQ(copy, moved);
  EXPECT_EQ(Buffer::AllocateShared(Buffer::kMaxSize + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  SharedBuffer small = SharedBuffer::Create(8).value();
  EXPECT_EQ(Buffer::OverSharedMemory(small, 9).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace wharf
