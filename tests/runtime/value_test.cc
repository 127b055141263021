#include "wharf/runtime/value.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "wharf/runtime/buffer.h"
#include "wharf/sync/shared_buffer.h"

// Counts heap allocations, to check that small Values need none.
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace wharf {

namespace {

struct Pod {
  int64_t a;
  double b;
  char c[5];
};
struct OtherPod {
  int64_t a;
  double b;
  char c[5];
};

void ExpectError(const absl::Status& status, absl::StatusCode code, std::string_view needle) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_NE(std::string(status.message()).find(needle), std::string::npos)
      << "\"" << status.message() << "\" lacks \"" << needle << "\"";
}

static_assert(std::is_nothrow_move_constructible_v<Value>);
static_assert(std::is_nothrow_move_assignable_v<Value>);
static_assert(!std::is_copy_constructible_v<Value>);  // Clone() is explicit
static_assert(!std::is_constructible_v<Value, int*>);  // not silently a bool
static_assert(!std::is_constructible_v<Value, uint64_t>);  // may not fit int64
static_assert(std::is_constructible_v<Value, char*>);

TEST(ValueTest, KindsAndConstructors) {
  EXPECT_TRUE(Value().IsNull());
  EXPECT_TRUE(Value(nullptr).IsNull());
  EXPECT_TRUE(Value(true).IsBool());
  EXPECT_TRUE(Value(7).IsInt());
  EXPECT_TRUE(Value(int64_t{-7}).IsInt());
  EXPECT_TRUE(Value(uint32_t{7}).IsInt());
  EXPECT_TRUE(Value(1.5).IsDouble());
  EXPECT_TRUE(Value(1.5f).IsDouble());
  EXPECT_TRUE(Value("abc").IsString());  // not bool
  char text[] = "abc";
  EXPECT_EQ(Value(text), Value("abc"));
  EXPECT_TRUE(Value(std::string("abc")).IsString());
  EXPECT_TRUE(Value(std::string_view("abc")).IsString());
  EXPECT_TRUE(Value(ValueBytes{std::byte{1}}).IsBytes());
  EXPECT_TRUE(Value::Array().IsArray());
  EXPECT_TRUE(Value::Map().IsMap());
  EXPECT_TRUE(Value(Buffer()).IsBuffer());
  EXPECT_TRUE(Value(SharedBuffer::Create(64).value()).IsSharedBuffer());
  EXPECT_EQ(Value(3).kind(), Value::Kind::kInt);
  EXPECT_EQ(Value::KindName(Value::Kind::kSharedBuffer), "SharedBuffer");
}

TEST(ValueTest, SmallValuesDoNotAllocate) {
  const long before = g_allocations.load();
  {
    Value a;
    Value b(true);
    Value c(int64_t{1} << 40);
    Value d(2.5);
    Value e("short string");  // within std::string's SSO
    Value f = std::move(e);
    a = std::move(d);
  }
  EXPECT_EQ(g_allocations.load(), before);
}

TEST(ValueTest, MoveIsCheapAndLeavesTreeIntact) {
  Value v = Value::Array(1, "two", Buffer::Allocate(1024).value());
  const std::byte* bytes = (*v.GetArray())[2].GetBuffer()->data();
  Value w = std::move(v);
  EXPECT_EQ((*w.GetArray())[2].GetBuffer()->data(), bytes);
}

TEST(ValueTest, TypedAccessors) {
  EXPECT_EQ(Value(true).AsBool().value(), true);
  EXPECT_EQ(Value(-5).AsInt().value(), -5);
  EXPECT_EQ(Value(2.5).AsDouble().value(), 2.5);
  EXPECT_EQ(Value(3).AsDouble().value(), 3.0);  // ints read as numbers
  EXPECT_EQ(Value("hi").AsString().value(), "hi");
  ExpectError(Value("x").AsInt().status(), absl::StatusCode::kInvalidArgument,
              "expected int, got string");
  ExpectError(Value(1).AsBool().status(), absl::StatusCode::kInvalidArgument,
              "expected bool, got int");
  ExpectError(Value().AsDouble().status(), absl::StatusCode::kInvalidArgument,
              "expected double, got null");
  ExpectError(Value(1.0).AsString().status(), absl::StatusCode::kInvalidArgument,
              "expected string, got double");
  EXPECT_EQ(Value(1).GetString(), nullptr);
  EXPECT_EQ(Value(1).GetArray(), nullptr);
  EXPECT_EQ(Value(1).GetMap(), nullptr);
  EXPECT_EQ(Value(1).GetBytes(), nullptr);
  EXPECT_EQ(Value(1).GetBuffer(), nullptr);
  EXPECT_EQ(Value(1).GetSharedBuffer(), nullptr);
  EXPECT_EQ(*Value(-5).GetInt(), -5);
  EXPECT_EQ(*Value(2.5).GetDouble(), 2.5);
  EXPECT_EQ(*Value(true).GetBool(), true);
  EXPECT_EQ(Value(3).GetDouble(), nullptr);  // unlike AsDouble: the kind, not a conversion
  EXPECT_EQ(Value(2.5).GetInt(), nullptr);
  EXPECT_EQ(Value().GetBool(), nullptr);
}

TEST(ValueTest, MapKeepsInsertionOrderAndRejectsDuplicates) {
  Value v = Value::Map();
  ValueMap& m = *v.GetMap();
  ASSERT_TRUE(m.Insert("z", 1).ok());
  ASSERT_TRUE(m.Insert("a", 2).ok());
  m.Set("m", 3);
  ExpectError(m.Insert("a", 9), absl::StatusCode::kAlreadyExists, "already has key \"a\"");
  EXPECT_EQ(v["a"]->AsInt().value(), 2);  // unchanged by the refused insert
  m.Set("z", "replaced");                 // last wins, position kept
  std::vector<std::string> keys;
  for (const auto& [key, value] : m) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"z", "a", "m"}));
  EXPECT_EQ(v["z"]->AsString().value(), "replaced");
  EXPECT_TRUE(m.Erase("a"));
  EXPECT_FALSE(m.Erase("a"));
  EXPECT_EQ(m.size(), 2u);
}

TEST(ValueTest, MapLookup) {
  Value v = Value::Map();
  v.GetMap()->Set("n", 1);
  EXPECT_NE(v["n"], nullptr);
  EXPECT_EQ(v["missing"], nullptr);
  EXPECT_EQ(Value(1)["n"], nullptr);
  *v["n"] = Value(2);
  EXPECT_EQ(v.Get("n").value()->AsInt().value(), 2);
  ExpectError(v.Get("missing").status(), absl::StatusCode::kNotFound, "no key \"missing\"");
  ExpectError(Value(1).Get("n").status(), absl::StatusCode::kInvalidArgument,
              "expected map, got int");
}

TEST(ValueTest, ArrayAt) {
  Value v = Value::Array(10, 20);
  EXPECT_EQ(v.At(1).value()->AsInt().value(), 20);
  ExpectError(v.At(2).status(), absl::StatusCode::kOutOfRange, "index 2 out of range (size 2)");
  ExpectError(Value().At(0).status(), absl::StatusCode::kInvalidArgument, "expected array");
}

TEST(ValueTest, CloneIsDeep) {
  SharedBuffer shared = SharedBuffer::Create(64).value();
  Value v = Value::Map();
  v.GetMap()->Set("buf", Buffer::CopyFrom(ValueBytes{std::byte{1}, std::byte{2}}).value());
  v.GetMap()->Set("shared", shared);
  v.GetMap()->Set("list", Value::Array(1, 2.5, "s", ValueBytes{std::byte{3}}, nullptr, true));
  absl::StatusOr<Value> c = v.Clone();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, v);
  // Buffers are copied, SharedBuffers shared.
  EXPECT_NE((*c)["buf"]->GetBuffer()->data(), v["buf"]->GetBuffer()->data());
  EXPECT_EQ((*c)["shared"]->GetSharedBuffer()->data(), shared.data());
  (*c)["buf"]->GetBuffer()->data()[0] = std::byte{9};
  EXPECT_NE(*c, v);
}

TEST(ValueTest, CloneFailsOnDetachedBuffer) {
  Value v = Value::Array(Buffer::Allocate(8).value());
  Buffer taken = std::move(*(*v.GetArray())[0].GetBuffer());
  ExpectError(v.Clone().status(), absl::StatusCode::kFailedPrecondition, "detached");
}

TEST(ValueTest, EqualityIsDeepAndBitwiseForDoubles) {
  EXPECT_EQ(Value(1), Value(1));
  EXPECT_NE(Value(1), Value(1.0));
  EXPECT_NE(Value(1), Value(2));
  EXPECT_EQ(Value(std::nan("")), Value(std::nan("")));
  EXPECT_NE(Value(0.0), Value(-0.0));
  EXPECT_EQ(Value::Array(1, "a"), Value::Array(1, "a"));
  EXPECT_NE(Value::Array(1, "a"), Value::Array(1, "b"));
  EXPECT_NE(Value::Array(1), Value::Array(1, 1));
  Value a = Value::Map(), b = Value::Map();
  a.GetMap()->Set("x", 1);
  a.GetMap()->Set("y", 2);
  b.GetMap()->Set("y", 2);
  b.GetMap()->Set("x", 1);
  EXPECT_NE(a, b);  // order matters
  SharedBuffer s1 = SharedBuffer::Create(64).value();
  SharedBuffer s2 = SharedBuffer::Create(64).value();
  EXPECT_EQ(Value(s1), Value(s1));
  EXPECT_NE(Value(s1), Value(s2));
}

TEST(ValueTest, ToString) {
  Value v = Value::Map();
  v.GetMap()->Set("a", Value::Array(1, 2.0, "q\"\n\x01", true, nullptr));
  v.GetMap()->Set("b", ValueBytes(3));
  v.GetMap()->Set("c", Buffer::Allocate(5).value());
  EXPECT_EQ(v.ToString(),
            "{\"a\": [1, 2.0, \"q\\\"\\n\\x01\", true, null], \"b\": bytes[3], \"c\": Buffer[5]}");
  Buffer taken = std::move(*v["c"]->GetBuffer());
  EXPECT_NE(v.ToString().find("Buffer(detached)"), std::string::npos);
  EXPECT_EQ(Value(SharedBuffer::Create(64).value()).ToString(), "SharedBuffer[64]");
}

TEST(ValueTest, PodRoundTrip) {
  Pod pod{-3, 0.25, {'a', 'b', 'c', 'd', 'e'}};
  Value v = Value::FromPod(pod);
  EXPECT_TRUE(v.IsBytes());
  absl::StatusOr<Pod> back = v.ToPod<Pod>();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->a, -3);
  EXPECT_EQ(back->b, 0.25);
  EXPECT_EQ(std::string(back->c, 5), "abcde");
  Value clone = v.Clone().value();
  EXPECT_TRUE(clone.ToPod<Pod>().ok());
}

TEST(ValueTest, PodTypeChecks) {
  Value v = Value::FromPod(Pod{});
  // Same size and layout, another type: refused by the type tag.
  ExpectError(v.ToPod<OtherPod>().status(), absl::StatusCode::kInvalidArgument,
              "holds another type");
  ExpectError(v.ToPod<int32_t>().status(), absl::StatusCode::kInvalidArgument,
              "holds another type");
  ExpectError(Value(1).ToPod<Pod>().status(), absl::StatusCode::kInvalidArgument,
              "expected bytes made by FromPod, got int");
  ExpectError(Value(ValueBytes(40)).ToPod<Pod>().status(), absl::StatusCode::kInvalidArgument,
              "not made by Value::FromPod");
  ValueBytes truncated = *v.GetBytes();
  truncated.pop_back();
  ExpectError(Value(truncated).ToPod<Pod>().status(), absl::StatusCode::kInvalidArgument,
              "not made by Value::FromPod");
}

}  // namespace
}  // namespace wharf
