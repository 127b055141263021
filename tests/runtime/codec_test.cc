#include "wharf/runtime/codec.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/runtime/random_value.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {

struct Point {
  int32_t x = 0;
  int32_t y = 0;
  bool operator==(const Point&) const = default;
};

template <>
struct Codec<Point> {
  static Value Encode(const Point& p) { return Value::Array(p.x, p.y); }
  static absl::StatusOr<Point> Decode(const Value& v) {
    const ValueArray* a = v.GetArray();
    if (a == nullptr || a->size() != 2) {
      return absl::InvalidArgumentError("Point: expected an array of two ints");
    }
    absl::StatusOr<int32_t> x = (*a)[0].To<int32_t>();
    if (!x.ok()) return x.status();
    absl::StatusOr<int32_t> y = (*a)[1].To<int32_t>();
    if (!y.ok()) return y.status();
    return Point{*x, *y};
  }
};

namespace {

// A message: the version-1 header followed by `body`.
std::string Msg(std::string_view body) { return std::string("WV\x01", 3) + std::string(body); }
std::string B(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

void ExpectError(const absl::Status& status, absl::StatusCode code, std::string_view needle) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_NE(std::string(status.message()).find(needle), std::string::npos)
      << "\"" << status.message() << "\" lacks \"" << needle << "\"";
}

void ExpectDecodeError(std::string_view bytes, absl::StatusCode code, std::string_view needle,
                       TransferTable* table = nullptr) {
  absl::StatusOr<Value> v = DecodeValue(bytes, table);
  ASSERT_FALSE(v.ok()) << "decoded to " << v->ToString();
  ExpectError(v.status(), code, needle);
}

Value RoundTrip(const Value& v) {
  absl::StatusOr<std::string> wire = EncodeValue(v);
  EXPECT_TRUE(wire.ok()) << wire.status();
  absl::StatusOr<Value> back = DecodeValue(*wire);
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *std::move(back) : Value();
}

// --- Format -------------------------------------------------------------------

TEST(CodecTest, ExactEncodings) {
  EXPECT_EQ(EncodeValue(Value()).value(), Msg(B({0x00})));
  EXPECT_EQ(EncodeValue(Value(false)).value(), Msg(B({0x01})));
  EXPECT_EQ(EncodeValue(Value(true)).value(), Msg(B({0x02})));
  EXPECT_EQ(EncodeValue(Value(0)).value(), Msg(B({0x03, 0x00})));
  EXPECT_EQ(EncodeValue(Value(-1)).value(), Msg(B({0x03, 0x01})));
  EXPECT_EQ(EncodeValue(Value(1)).value(), Msg(B({0x03, 0x02})));
  EXPECT_EQ(EncodeValue(Value(64)).value(), Msg(B({0x03, 0x80, 0x01})));
  EXPECT_EQ(EncodeValue(Value(1.0)).value(),
            Msg(B({0x04, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f})));
  EXPECT_EQ(EncodeValue(Value("hi")).value(), Msg(B({0x05, 2, 'h', 'i'})));
  EXPECT_EQ(EncodeValue(Value(ValueBytes{std::byte{7}})).value(), Msg(B({0x06, 1, 7})));
  EXPECT_EQ(EncodeValue(Value::Array(true, Value())).value(), Msg(B({0x07, 2, 0x02, 0x00})));
  Value map = Value::Map();
  map.GetMap()->Set("k", 1);
  EXPECT_EQ(EncodeValue(map).value(), Msg(B({0x08, 1, 1, 'k', 0x03, 0x02})));
  EXPECT_EQ(EncodeValue(Value(Buffer::CopyFrom(ValueBytes{std::byte{5}}).value())).value(),
            Msg(B({0x09, 1, 5})));
}

TEST(CodecTest, RoundTripEdgeScalars) {
  for (int64_t i : {int64_t{0}, int64_t{-1}, int64_t{1} << 62, std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max()}) {
    EXPECT_EQ(RoundTrip(Value(i)), Value(i)) << i;
  }
  for (double d : {0.0, -0.0, std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity(), std::nan(""),
                   std::numeric_limits<double>::denorm_min()}) {
    EXPECT_EQ(RoundTrip(Value(d)), Value(d)) << d;
  }
  const std::string utf8 = "a\xc3\xa9\xe2\x82\xac\xef\xbf\xbf\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
  EXPECT_EQ(RoundTrip(Value(utf8)), Value(utf8));
  EXPECT_EQ(RoundTrip(Value(std::string(1000, 'x'))), Value(std::string(1000, 'x')));
  EXPECT_EQ(RoundTrip(Value(std::string("\0", 1))), Value(std::string("\0", 1)));
}

// EncodeValueTo's in-place scalar path gives EncodeValue's bytes, over a
// reused buffer that held a longer message.
TEST(CodecTest, EncodeValueToMatchesEncodeValue) {
  std::string out(100, 'x');
  std::vector<Value> values;
  for (int64_t i : {int64_t{0}, int64_t{-1}, int64_t{63}, int64_t{64}, int64_t{-64}, int64_t{-65},
                    std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}) {
    values.emplace_back(i);
  }
  for (double d : {0.0, -0.0, 1.5, std::nan(""), std::numeric_limits<double>::infinity()}) {
    values.emplace_back(d);
  }
  values.emplace_back();
  values.emplace_back(true);
  values.emplace_back(false);
  testing::RandomValues random(7);
  for (int i = 0; i < 200; ++i) values.push_back(random.Next());
  for (const Value& v : values) {
    ASSERT_TRUE(EncodeValueTo(v, &out).ok()) << v.ToString();
    EXPECT_EQ(out, EncodeValue(v).value()) << v.ToString();
  }
}

// DecodeValueInto's in-place scalar path against the Decoder: for every
// scalar encoding and every one-byte change, truncation and extension of it,
// both accept the same messages with the same Value, or fail with the same
// status — and a failed DecodeValueInto leaves its target alone.
TEST(CodecTest, DecodeValueIntoAgreesWithDecodeValue) {
  std::vector<std::string> seeds;
  for (const Value& v : {Value(), Value(false), Value(true), Value(0), Value(-1), Value(63),
                         Value(64), Value(-65), Value(int64_t{1} << 62),
                         Value(std::numeric_limits<int64_t>::min()),
                         Value(std::numeric_limits<int64_t>::max()), Value(0.5), Value(-0.0),
                         Value(std::nan("")), Value(std::string("ab"))}) {
    seeds.push_back(EncodeValue(v).value());
  }
  const auto check = [](const std::string& bytes) {
    absl::StatusOr<Value> want = DecodeValue(bytes);
    Value got("sentinel");
    const absl::Status status = DecodeValueInto(bytes, &got);
    ASSERT_EQ(status.ok(), want.ok()) << status;
    if (want.ok()) {
      EXPECT_EQ(got, *want);
    } else {
      EXPECT_EQ(status, want.status());
      EXPECT_EQ(got, Value("sentinel"));
    }
  };
  for (const std::string& seed : seeds) {
    for (size_t len = 0; len <= seed.size(); ++len) check(seed.substr(0, len));
    for (int extra = 0; extra < 256; ++extra) check(seed + static_cast<char>(extra));
    for (size_t i = 0; i < seed.size(); ++i) {
      for (int b = 0; b < 256; ++b) {
        std::string m = seed;
        m[i] = static_cast<char>(b);
        check(m);
      }
    }
  }
  testing::RandomValues random(99);
  for (int i = 0; i < 200; ++i) check(EncodeValue(random.Next()).value());
}

TEST(CodecTest, MaxDepthIsAccepted) {
  Value v;
  for (int i = 0; i < ValueCodec::kMaxDepth; ++i) v = Value::Array(std::move(v));
  EXPECT_EQ(RoundTrip(v), v);
}

TEST(CodecTest, RandomRoundTripsWithoutTable) {
  testing::RandomValues random(20261125);
  for (int i = 0; i < 2000; ++i) {
    Value v = random.Next();
    absl::StatusOr<std::string> wire = EncodeValue(v);
    ASSERT_TRUE(wire.ok()) << wire.status() << " for " << v.ToString();
    absl::StatusOr<Value> back = DecodeValue(*wire);
    ASSERT_TRUE(back.ok()) << back.status() << " for " << v.ToString();
    ASSERT_EQ(*back, v) << v.ToString() << " vs " << back->ToString();
    ASSERT_EQ(EncodeValue(*back).value(), *wire) << "not canonical: " << v.ToString();
  }
}

TEST(CodecTest, RandomRoundTripsWithTable) {
  SharedBuffer shared = SharedBuffer::Create(128).value();
  testing::RandomValues random(7, shared);
  for (int i = 0; i < 2000; ++i) {
    Value v = random.Next();
    Value expected = v.Clone().value();
    TransferTable table;
    absl::StatusOr<std::string> wire = EncodeValue(v, &table);
    ASSERT_TRUE(wire.ok()) << wire.status() << " for " << expected.ToString();
    EXPECT_LE(table.shared_buffers.size(), 1u);  // one entry per mapping
    absl::StatusOr<Value> back = DecodeValue(*wire, &table);
    ASSERT_TRUE(back.ok()) << back.status() << " for " << expected.ToString();
    ASSERT_EQ(*back, expected) << expected.ToString() << " vs " << back->ToString();
    for (const Buffer& b : table.buffers) ASSERT_TRUE(b.detached());
  }
}

// --- Transfer -----------------------------------------------------------------

TEST(CodecTest, TransferMovesBuffersWithoutCopy) {
  Buffer big = Buffer::Allocate(1 << 20).value();
  big.data()[12345] = std::byte{77};
  const std::byte* bytes = big.data();
  Value v = Value::Array(std::move(big), Buffer::Allocate(3).value());
  TransferTable table;
  absl::StatusOr<std::string> wire = EncodeValue(v, &table);
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_LT(wire->size(), 16u);  // the bytes went out of band
  EXPECT_EQ(*wire, Msg(B({0x07, 2, 0x0a, 0, 0x0a, 1})));
  ASSERT_EQ(table.buffers.size(), 2u);
  EXPECT_EQ(table.buffers[0].data(), bytes);
  // The sender's Buffers are detached, like transferred ArrayBuffers.
  EXPECT_TRUE((*v.GetArray())[0].GetBuffer()->detached());
  EXPECT_TRUE((*v.GetArray())[1].GetBuffer()->detached());
  ExpectError(EncodeValue(v, &table).status(), absl::StatusCode::kFailedPrecondition,
              "cannot encode the Buffer at $[0]: it was transferred (detached)");

  absl::StatusOr<Value> back = DecodeValue(*wire, &table);
  ASSERT_TRUE(back.ok()) << back.status();
  const Buffer& received = *(*back->GetArray())[0].GetBuffer();
  EXPECT_EQ(received.data(), bytes);  // same memory end to end
  EXPECT_EQ(received.data()[12345], std::byte{77});
  EXPECT_TRUE(table.buffers[0].detached());
}

TEST(CodecTest, TransferIndexesContinueAfterExistingEntries) {
  TransferTable table;
  Value first = Value(Buffer::Allocate(1).value());
  Value second = Value(Buffer::Allocate(2).value());
  std::string w1 = EncodeValue(first, &table).value();
  std::string w2 = EncodeValue(second, &table).value();
  EXPECT_EQ(w2, Msg(B({0x0a, 1})));
  EXPECT_EQ(DecodeValue(w2, &table).value().GetBuffer()->size(), 2u);
  EXPECT_EQ(DecodeValue(w1, &table).value().GetBuffer()->size(), 1u);
}

TEST(CodecTest, EncodeWithTableIsAllOrNothing) {
  Buffer detached_source = Buffer::Allocate(4).value();
  Buffer stolen = std::move(detached_source);
  Value v = Value::Array(Buffer::Allocate(8).value(), SharedBuffer::Create(64).value(),
                         std::move(detached_source));
  TransferTable table;
  ExpectError(EncodeValue(v, &table).status(), absl::StatusCode::kFailedPrecondition,
              "Buffer at $[2]");
  EXPECT_TRUE(table.buffers.empty());
  EXPECT_TRUE(table.shared_buffers.empty());
  EXPECT_FALSE((*v.GetArray())[0].GetBuffer()->detached());
}

TEST(CodecTest, SharedBuffersTravelByHandle) {
  SharedBuffer a = SharedBuffer::Create(64).value();
  SharedBuffer b = SharedBuffer::Create(64).value();
  Value v = Value::Array(a, b, a);
  ExpectError(EncodeValue(v).status(), absl::StatusCode::kInvalidArgument,
              "SharedBuffer at $[0] without a TransferTable");
  TransferTable table;
  std::string wire = EncodeValue(v, &table).value();
  EXPECT_EQ(wire, Msg(B({0x07, 3, 0x0b, 0, 0x0b, 1, 0x0b, 0})));
  ASSERT_EQ(table.shared_buffers.size(), 2u);
  EXPECT_EQ(Value(a), (*v.GetArray())[0]);  // the sender keeps its handles
  Value back = DecodeValue(wire, &table).value();
  EXPECT_EQ(back, v);
  EXPECT_EQ((*back.GetArray())[2].GetSharedBuffer()->data(), a.data());
}

TEST(CodecTest, EncodeWithNullTableCopiesInline) {
  Value v = Value(Buffer::Allocate(2).value());
  EXPECT_EQ(EncodeValue(v, nullptr).value(), Msg(B({0x09, 2, 0, 0})));
  EXPECT_FALSE(v.GetBuffer()->detached());
}

// --- Encode errors ----------------------------------------------------------------

TEST(CodecTest, EncodeRejectsInvalidUtf8WithPath) {
  Value v = Value::Map();
  v.GetMap()->Set("list", Value::Array(1, std::string("\xff")));
  ExpectError(EncodeValue(v).status(), absl::StatusCode::kInvalidArgument,
              "string at $.list[1]: not valid UTF-8");
  Value k = Value::Map();
  k.GetMap()->Set(std::string("\xc0\x80"), 1);
  ExpectError(EncodeValue(k).status(), absl::StatusCode::kInvalidArgument, "map key at $.");
}

TEST(CodecTest, EncodeRejectsDetachedBufferWithoutTable) {
  Value v = Value(Buffer::Allocate(2).value());
  Buffer taken = std::move(*v.GetBuffer());
  ExpectError(EncodeValue(v).status(), absl::StatusCode::kFailedPrecondition, "detached");
}

TEST(CodecTest, EncodeRejectsNestingTooDeep) {
  Value v;
  for (int i = 0; i <= ValueCodec::kMaxDepth; ++i) v = Value::Array(std::move(v));
  ExpectError(EncodeValue(v).status(), absl::StatusCode::kInvalidArgument, "nesting too deep");
}

// --- Decode errors ----------------------------------------------------------------

TEST(CodecTest, DecodeRejectsBadHeader) {
  ExpectDecodeError("", absl::StatusCode::kDataLoss, "shorter than the 3-byte header");
  ExpectDecodeError("W", absl::StatusCode::kDataLoss, "truncated");
  ExpectDecodeError("X", absl::StatusCode::kInvalidArgument, "bad magic");
  ExpectDecodeError("WX", absl::StatusCode::kInvalidArgument, "bad magic");
  ExpectDecodeError(B({'w', 'V', 1, 0}), absl::StatusCode::kInvalidArgument, "bad magic");
  ExpectDecodeError(B({'W', 'V', 2, 0}), absl::StatusCode::kFailedPrecondition,
                    "format version 2; this build reads version 1");
  ExpectDecodeError(Msg(""), absl::StatusCode::kDataLoss, "expected a value tag");
}

TEST(CodecTest, DecodeRejectsEveryTruncation) {
  Value v = Value::Map();
  v.GetMap()->Set("name", "h\xc3\xa9llo");
  v.GetMap()->Set("n", -123456789);
  v.GetMap()->Set("d", 2.5);
  v.GetMap()->Set("list", Value::Array(true, ValueBytes(3), Buffer::Allocate(2).value()));
  const std::string wire = EncodeValue(v).value();
  for (size_t n = 3; n < wire.size(); ++n) {
    absl::StatusOr<Value> d = DecodeValue(std::string_view(wire).substr(0, n));
    ASSERT_FALSE(d.ok()) << n;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kDataLoss) << n << ": " << d.status();
    EXPECT_NE(d.status().message().find("truncated"), std::string_view::npos) << d.status();
  }
}

TEST(CodecTest, DecodeRejectsUnknownTags) {
  ExpectDecodeError(Msg(B({0x0d})), absl::StatusCode::kInvalidArgument,
                    "byte offset 3: unknown value tag 0x0d");
  // 0x0c is a MessagePort: its index needs a table (port_transfer_test).
  ExpectDecodeError(Msg(B({0x0c, 0x00})), absl::StatusCode::kInvalidArgument,
                    "MessagePort #0 but no TransferTable");
  ExpectDecodeError(Msg(B({0x07, 1, 0xff})), absl::StatusCode::kInvalidArgument,
                    "unknown value tag 0xff");
}

TEST(CodecTest, DecodeRejectsTrailingBytes) {
  ExpectDecodeError(Msg(B({0x00, 0x00})), absl::StatusCode::kInvalidArgument,
                    "1 trailing bytes after the value");
}

TEST(CodecTest, DecodeRejectsBadVarints) {
  ExpectDecodeError(Msg(B({0x03, 0x80, 0x00})), absl::StatusCode::kInvalidArgument,
                    "non-canonical");
  ExpectDecodeError(Msg(B({0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})),
                    absl::StatusCode::kInvalidArgument, "overflows 64 bits");
  ExpectDecodeError(Msg(B({0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0})),
                    absl::StatusCode::kInvalidArgument, "overflows 64 bits");
  ExpectDecodeError(Msg(B({0x03, 0xff})), absl::StatusCode::kDataLoss, "int cut short");
  // The largest 10-byte varint is fine.
  EXPECT_TRUE(
      DecodeValue(Msg(B({0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})))
          .ok());
}

TEST(CodecTest, DecodeRejectsAbsurdLengthsBeforeAllocating) {
  // 2^62-byte string / bytes / Buffer, 2^62-element array and map: refused
  // by comparing with the bytes left, so nothing is allocated.
  const std::string huge = B({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40});
  ExpectDecodeError(Msg(B({0x05}) + huge), absl::StatusCode::kDataLoss,
                    "string length 4611686018427387904 exceeds the 0 bytes left");
  ExpectDecodeError(Msg(B({0x06}) + huge), absl::StatusCode::kDataLoss, "bytes length");
  ExpectDecodeError(Msg(B({0x09}) + huge), absl::StatusCode::kDataLoss, "Buffer length");
  ExpectDecodeError(Msg(B({0x07}) + huge), absl::StatusCode::kDataLoss,
                    "array of 4611686018427387904 elements cannot fit");
  ExpectDecodeError(Msg(B({0x08}) + huge), absl::StatusCode::kDataLoss,
                    "map of 4611686018427387904 entries cannot fit");
  ExpectDecodeError(Msg(B({0x07, 3, 0, 0})), absl::StatusCode::kDataLoss, "array of 3");
  ExpectDecodeError(Msg(B({0x08, 2, 1, 'a', 0})), absl::StatusCode::kDataLoss, "map of 2");
  ExpectDecodeError(Msg(B({0x08, 1, 5, 'a', 0})), absl::StatusCode::kDataLoss,
                    "map key length 5 exceeds");
  ExpectDecodeError(Msg(B({0x04, 1, 2, 3})), absl::StatusCode::kDataLoss,
                    "double needs 8 bytes");
}

TEST(CodecTest, DecodeRejectsNestingBombs) {
  std::string arrays;
  for (int i = 0; i < 100000; ++i) arrays += B({0x07, 0x01});
  ExpectDecodeError(Msg(arrays + B({0x00})), absl::StatusCode::kResourceExhausted,
                    "nesting too deep (more than 128 levels)");
  std::string maps;
  for (int i = 0; i < 200; ++i) maps += B({0x08, 0x01, 0x01, 'k'});
  ExpectDecodeError(Msg(maps + B({0x00})), absl::StatusCode::kResourceExhausted,
                    "nesting too deep");
  std::string ok;
  for (int i = 0; i < ValueCodec::kMaxDepth; ++i) ok += B({0x07, 0x01});
  EXPECT_TRUE(DecodeValue(Msg(ok + B({0x00}))).ok());
  EXPECT_FALSE(DecodeValue(Msg(B({0x07, 0x01}) + ok + B({0x00}))).ok());
}

TEST(CodecTest, DecodeRejectsInvalidUtf8) {
  const std::string bad[] = {
      B({0x80}),                    // stray continuation
      B({0xc0, 0x80}),              // overlong NUL
      B({0xc1, 0xbf}),              // overlong
      B({0xe0, 0x80, 0x80}),        // overlong 3-byte
      B({0xf0, 0x80, 0x80, 0x80}),  // overlong 4-byte
      B({0xed, 0xa0, 0x80}),        // surrogate U+D800
      B({0xed, 0xbf, 0xbf}),        // surrogate U+DFFF
      B({0xf4, 0x90, 0x80, 0x80}),  // U+110000
      B({0xf5, 0x80, 0x80, 0x80}),  // invalid lead
      B({0xff}),                    // invalid byte
      B({0xe2, 0x82}),              // truncated sequence
      B({'a', 0xc3}),               // truncated at the end
      B({0xe2, 0x28, 0xa1}),        // bad continuation
  };
  for (const std::string& s : bad) {
    const std::string len = B({static_cast<int>(s.size())});
    ExpectDecodeError(Msg(B({0x05}) + len + s), absl::StatusCode::kInvalidArgument,
                      "string is not valid UTF-8");
    ExpectDecodeError(Msg(B({0x08, 1}) + len + s + B({0x00})),
                      absl::StatusCode::kInvalidArgument, "map key is not valid UTF-8");
  }
  // Bytes are not text: anything goes.
  EXPECT_TRUE(DecodeValue(Msg(B({0x06, 2, 0xc0, 0x80}))).ok());
}

TEST(CodecTest, DecodeRejectsDuplicateMapKeys) {
  ExpectDecodeError(Msg(B({0x08, 2, 1, 'a', 0x00, 1, 'a', 0x01})),
                    absl::StatusCode::kInvalidArgument,
                    "byte offset 8: duplicate map key \"a\"");
  // Many keys: the check is a hash set, and still catches the last one.
  std::string body = B({0x08, 0xe9, 0x07});  // 1001 entries
  for (int i = 0; i < 1000; ++i) {
    const std::string key = std::to_string(i);
    body += B({static_cast<int>(key.size())}) + key + B({0x00});
  }
  body += B({3}) + "999" + B({0x00});
  ExpectDecodeError(Msg(body), absl::StatusCode::kInvalidArgument, "duplicate map key \"999\"");
}

TEST(CodecTest, DecodeRejectsBadTransferIndexes) {
  ExpectDecodeError(Msg(B({0x0a, 0})), absl::StatusCode::kInvalidArgument,
                    "transferred Buffer #0 but no TransferTable was given");
  ExpectDecodeError(Msg(B({0x0b, 0})), absl::StatusCode::kInvalidArgument,
                    "SharedBuffer #0 but no TransferTable was given");
  TransferTable table;
  table.buffers.push_back(Buffer::Allocate(1).value());
  table.buffers.push_back(Buffer::Allocate(1).value());
  table.shared_buffers.push_back(SharedBuffer::Create(64).value());
  ExpectDecodeError(Msg(B({0x0a, 2})), absl::StatusCode::kOutOfRange,
                    "Buffer transfer index 2 out of range (the table has 2 Buffers)", &table);
  ExpectDecodeError(Msg(B({0x0b, 1})), absl::StatusCode::kOutOfRange,
                    "SharedBuffer transfer index 1 out of range", &table);
  ExpectDecodeError(Msg(B({0x07, 2, 0x0a, 1, 0x0a, 1})), absl::StatusCode::kInvalidArgument,
                    "transferred Buffer #1 is used twice", &table);
  // Buffer #1 was consumed by the failed decode above; #0 is still there.
  ExpectDecodeError(Msg(B({0x0a, 1})), absl::StatusCode::kFailedPrecondition,
                    "transferred Buffer #1: buffer was transferred (detached)", &table);
  // A SharedBuffer may be referenced many times.
  absl::StatusOr<Value> shared = DecodeValue(Msg(B({0x07, 2, 0x0b, 0, 0x0b, 0})), &table);
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_EQ(DecodeValue(Msg(B({0x0a, 0})), &table).value().GetBuffer()->size(), 1u);
}

TEST(CodecTest, UserCodec) {
  Value v = Value::From(Point{3, -4});
  EXPECT_EQ(v, Value::Array(3, -4));
  EXPECT_EQ(v.To<Point>().value(), (Point{3, -4}));
  ExpectError(Value("no").To<Point>().status(), absl::StatusCode::kInvalidArgument,
              "Point: expected an array");
  // Nested through the vector codec.
  std::vector<Point> points = {{1, 2}, {3, 4}};
  EXPECT_EQ(Value::From(points).To<std::vector<Point>>().value(), points);
  ExpectError(Value(1).To<std::vector<Point>>().status(), absl::StatusCode::kInvalidArgument,
              "expected array, got int");
}

TEST(CodecTest, BuiltinCodecs) {
  EXPECT_EQ(Value::From(true).To<bool>().value(), true);
  EXPECT_EQ(Value::From(2.5).To<double>().value(), 2.5);
  EXPECT_EQ(Value::From(std::string("s")).To<std::string>().value(), "s");
  EXPECT_EQ(Value::From(uint16_t{65535}).To<uint16_t>().value(), 65535);
  EXPECT_EQ(Value::From(int64_t{-1}).To<int64_t>().value(), -1);
  ExpectError(Value(70000).To<int16_t>().status(), absl::StatusCode::kOutOfRange,
              "does not fit the target type");
  ExpectError(Value(-1).To<uint32_t>().status(), absl::StatusCode::kOutOfRange,
              "does not fit");
  EXPECT_EQ(Value(-1).To<uint64_t>().status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Value(std::numeric_limits<int64_t>::max()).To<uint64_t>().value(),
            uint64_t{std::numeric_limits<int64_t>::max()});
  ExpectError(Value(1).To<std::string>().status(), absl::StatusCode::kInvalidArgument,
              "expected string");
}

}  // namespace
}  // namespace wharf
