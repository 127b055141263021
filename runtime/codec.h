// The Value codec: Wharf's compact, versioned binary encoding of a Value —
// the wire format of cross-process messages — and its validating decoder;
// and Codec<T>, how a user type becomes a Value and back (below).
//
//   wharf::TransferTable table;
//   std::string wire = wharf::EncodeValue(msg, &table).value();  // Buffers -> table
//   ...                                      // bytes + table cross to the peer
//   wharf::Value copy = wharf::DecodeValue(wire, &table).value();
//
// Format (version 1; all integers little-endian, varints are unsigned LEB128,
// minimal length, at most 10 bytes):
//
//   message := 'W' 'V' version:u8 value            (nothing may follow)
//   value   := 0x00                                 null
//            | 0x01 | 0x02                          false | true
//            | 0x03 zigzag:varint                   int64
//            | 0x04 bits:u64                        double (IEEE-754 bits)
//            | 0x05 len:varint utf8[len]            string
//            | 0x06 len:varint byte[len]            bytes
//            | 0x07 count:varint value[count]       array
//            | 0x08 count:varint (len:varint utf8[len] value)[count]   map
//            | 0x09 len:varint byte[len]            Buffer, copied inline
//            | 0x0a index:varint                    Buffer #index of the TransferTable
//            | 0x0b index:varint                    SharedBuffer #index of the TransferTable
//            | 0x0c index:varint                    MessagePort #index of the TransferTable
//
// The encoding is canonical: one Value has one encoding (given the table).
//
// Out-of-band items: with a TransferTable, every Buffer is *moved* into
// table->buffers (the Value's Buffer is left detached, as a transferred
// ArrayBuffer is) and the message carries its index; every SharedBuffer
// handle is copied into table->shared_buffers (one entry per mapping). The
// transport carries the table beside the bytes (in-process: as is; across
// processes: the Buffers in a shared segment, the SharedBuffers as fds), so
// big payloads are never copied into the message. Every MessagePort is moved
// into table->ports (the Value's slot is left holding an empty, invalid port);
// the codec only moves the port object: detaching a started port from its
// loop is the transport's job (MessagePort::PostMessage does it). Without a
// table, Buffers are copied inline and a SharedBuffer or a MessagePort cannot
// be encoded (they need a table).
//
// Decoding validates everything and returns a status, never crashes or reads
// out of bounds: InvalidArgument for malformed content (bad magic, unknown
// tag, invalid UTF-8, non-canonical varint, duplicate map key, trailing
// bytes, a transfer index used twice or without a table), DataLoss for
// truncated input (a length or count larger than the bytes left — checked
// before anything is allocated), FailedPrecondition for another format
// version, ResourceExhausted for nesting deeper than kMaxDepth, OutOfRange
// for a transfer index past the table's end. Messages name the byte offset.
// Memory use is bounded by a small multiple of the input size (at most one
// Value, 48 bytes, per input byte, plus the decoded strings and bytes).
//
// Thread-safety: the functions are reentrant; a TransferTable is a plain
// value used by one thread at a time.

#ifndef WHARF_RUNTIME_CODEC_H_
#define WHARF_RUNTIME_CODEC_H_

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {

// Codec<T>: how a user type T becomes a Value and back. Specialise it:
//
//   template <> struct wharf::Codec<Point> {
//     static Value Encode(const Point& p) { return Value::Array(p.x, p.y); }
//     static absl::StatusOr<Point> Decode(const Value& v) { ... }
//   };
//
// Decode must return a status (never crash) for a Value of the wrong shape:
// it may come from another process. Specialisations for bool, integers,
// double, std::string and std::vector<T> are provided below.
template <class T>
struct Codec;

// --- Built-in codecs ----------------------------------------------------------

template <>
struct Codec<bool> {
  static Value Encode(bool b) { return Value(b); }
  static absl::StatusOr<bool> Decode(const Value& v) { return v.AsBool(); }
};

template <>
struct Codec<double> {
  static Value Encode(double d) { return Value(d); }
  static absl::StatusOr<double> Decode(const Value& v) { return v.AsDouble(); }
};

template <>
struct Codec<std::string> {
  static Value Encode(const std::string& s) { return Value(s); }
  static absl::StatusOr<std::string> Decode(const Value& v) {
    absl::StatusOr<std::string_view> s = v.AsString();
    if (!s.ok()) return s.status();
    return std::string(*s);
  }
};

namespace value_internal {
absl::Status IntOutOfRange(int64_t value, int64_t min, uint64_t max);
}  // namespace value_internal

// Integers: range-checked on decode (OutOfRange if the int does not fit T).
template <class T>
  requires(std::integral<T> && !std::same_as<T, bool>)
struct Codec<T> {
  static Value Encode(T t) {
    static_assert(std::is_signed_v<T> || sizeof(T) < sizeof(int64_t),
                  "unsigned 64-bit integers do not fit Value's int64; encode them explicitly");
    return Value(t);
  }
  static absl::StatusOr<T> Decode(const Value& v) {
    absl::StatusOr<int64_t> i = v.AsInt();
    if (!i.ok()) return i.status();
    if (!std::in_range<T>(*i)) {
      return value_internal::IntOutOfRange(*i, std::numeric_limits<T>::min(),
                                           std::numeric_limits<T>::max());
    }
    return static_cast<T>(*i);
  }
};

// std::vector<T> <-> array of Codec<T> values.
template <class T>
struct Codec<std::vector<T>> {
  static Value Encode(const std::vector<T>& items) {
    ValueArray array;
    array.reserve(items.size());
    for (const T& item : items) array.push_back(Codec<T>::Encode(item));
    return Value(std::move(array));
  }
  static absl::StatusOr<std::vector<T>> Decode(const Value& v) {
    const ValueArray* array = v.GetArray();
    if (array == nullptr) {
      return absl::InvalidArgumentError(
          sync_internal::Cat("expected array, got ", Value::KindName(v.kind())));
    }
    std::vector<T> items;
    items.reserve(array->size());
    for (const Value& element : *array) {
      absl::StatusOr<T> item = Codec<T>::Decode(element);
      if (!item.ok()) return item.status();
      items.push_back(*std::move(item));
    }
    return items;
  }
};


// Out-of-band items of one encoded message: EncodeValue appends to it,
// DecodeValue takes from it by index.
struct TransferTable {
  std::vector<Buffer> buffers;
  std::vector<SharedBuffer> shared_buffers;
  std::vector<PortSlot> ports;  // boxed MessagePorts (see value.h)
};

struct ValueCodec {
  static constexpr uint8_t kMagic0 = 'W';
  static constexpr uint8_t kMagic1 = 'V';
  static constexpr uint8_t kVersion = 1;
  // Arrays and maps nested deeper than this are refused (encode and decode).
  static constexpr int kMaxDepth = 128;

  enum Tag : uint8_t {
    kNull = 0x00,
    kFalse = 0x01,
    kTrue = 0x02,
    kInt = 0x03,
    kDouble = 0x04,
    kString = 0x05,
    kBytes = 0x06,
    kArray = 0x07,
    kMap = 0x08,
    kBufferInline = 0x09,
    kBufferTransferred = 0x0a,
    kSharedBuffer = 0x0b,
    kPort = 0x0c,
  };
};

// Encodes `value` without a table: Buffers are copied inline, `value` is not
// changed. InvalidArgument for a string or key that is not valid UTF-8, a
// SharedBuffer or MessagePort (they need a TransferTable), or nesting deeper than kMaxDepth;
// FailedPrecondition for a detached Buffer or port. Never blocks.
absl::StatusOr<std::string> EncodeValue(const Value& value);

// EncodeValue(value) into `*out` (replaced), reusing its capacity: for a
// caller that encodes message after message (a transport's send path).
absl::Status EncodeValueTo(const Value& value, std::string* out);

// Encodes `value`, moving its Buffers and MessagePorts into `table` (indexes continue after
// the table's existing entries) and copying its SharedBuffer handles there.
// All or nothing: on any error (as above) neither `value` nor `table`
// changes. With table == nullptr, the same as EncodeValue(value).
absl::StatusOr<std::string> EncodeValue(Value& value, TransferTable* table);

// Undoes a successful EncodeValue(value, table) whose message was then not
// sent: moves table->buffers and table->ports (all of them: the table held
// nothing before) back into the very nodes of `value` they came from, so
// that pointers into `value` (a structured clone's) stay valid.
void UndoEncode(Value& value, TransferTable& table);

// Decodes a message made by EncodeValue. Transferred items are taken from
// `table` (Buffers moved out, left detached; ports moved out, each usable
// once; SharedBuffer handles copied);
// table may be nullptr when the message has none. Errors as in the header
// comment. On failure the table's Buffers that were already taken are lost
// with the partial value: the transport drops such a message (messageerror).
absl::StatusOr<Value> DecodeValue(std::span<const std::byte> bytes, TransferTable* table = nullptr);
absl::StatusOr<Value> DecodeValue(std::string_view bytes, TransferTable* table = nullptr);

// DecodeValue into `*out` (replaced; unchanged on error), for a caller that
// decodes message after message (a transport's receive path): a scalar
// message — null, a bool, an int, a double — is read in place, with no
// decoder state and no Value moved through a StatusOr. Same errors as
// DecodeValue.
absl::Status DecodeValueInto(std::string_view bytes, Value* out, TransferTable* table = nullptr);

}  // namespace wharf

#endif  // WHARF_RUNTIME_CODEC_H_
