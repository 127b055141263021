// Value: what actors send each other — an owning tree of JS-like values, the
// C++ counterpart of what structured clone accepts in Node's postMessage.
//
//   wharf::Value msg = wharf::Value::Map();
//   msg.GetMap()->Set("id", 7);
//   msg.GetMap()->Set("name", "resize");
//   msg.GetMap()->Set("pixels", wharf::Buffer::Allocate(1 << 20).value());
//   int64_t id = msg["id"]->AsInt().value();
//
// Kinds (Value::Kind): null, bool, int (int64), double, string (UTF-8),
// bytes (plain copied bytes), array, map (string keys, insertion order kept),
// Buffer (move-only ArrayBuffer, see buffer.h) and SharedBuffer (a shared
// handle to a mapping, see wharf/sync/shared_buffer.h) and MessagePort (an
// entangled port, see message_port.h: it can only be moved or transferred,
// never cloned).
//
// Ownership: a Value owns its whole tree. Because a Buffer is move-only, so is
// Value: moving is cheap (no allocation, O(1)) and is what an in-process send
// does. Copies are explicit, Clone(), which fails only on a detached Buffer.
// Small values (null, bool, int, double, strings up to std::string's SSO
// capacity of 15 bytes) live inside the Value without heap allocation.
//
// Maps: keys are unique. ValueMap::Insert refuses a duplicate key (AlreadyExists);
// ValueMap::Set replaces the value of an existing key in place (last wins, keeping
// the key's original position). Lookup is a linear scan: maps are for
// messages (tens of keys), not for large dictionaries.
//
// Strings are not validated when built (that would cost on every message);
// the codec validates UTF-8 on encode and on decode.
//
// User types: specialise wharf::Codec<T> (codec.h) and use Value::From(t) /
// value.To<T>(). Trivially copyable structs can skip the codec: FromPod/ToPod
// store their bytes with a type tag checked on the way out.
//
// Thread-safety: a plain value type. Distinct Values may be used from any
// threads; one Value from one thread at a time (const methods concurrently).

#ifndef WHARF_RUNTIME_VALUE_H_
#define WHARF_RUNTIME_VALUE_H_

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/internal/port_slot.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {

class Value;
class MessagePort;

// How a user type becomes a Value and back: specialise wharf::Codec<T>
// (wharf/runtime/codec.h, which also has the built-in ones).
template <class T>
struct Codec;

namespace value_internal {
struct MapAccess;  // the decoder's unchecked append (it checks keys itself)
}  // namespace value_internal

using ValueArray = std::vector<Value>;
using ValueBytes = std::vector<std::byte>;

// The map kind: (key, value) pairs in insertion order, keys unique.
class ValueMap {
 public:
  using Entry = std::pair<std::string, Value>;

  ValueMap() = default;
  ValueMap(ValueMap&&) noexcept;
  ValueMap& operator=(ValueMap&&) noexcept;
  ~ValueMap();

  // Appends (key, value). AlreadyExists if the key is present (nothing changes).
  absl::Status Insert(std::string key, Value value);
  // Replaces the value of `key` where it is, or appends (key, value).
  void Set(std::string key, Value value);
  // The value of `key`, or nullptr.
  const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  // Removes `key`; false if it was absent.
  bool Erase(std::string_view key);

  // (Defined below Value: Value is incomplete here, and some compilers
  // instantiate std::vector members eagerly.)
  size_t size() const;
  bool empty() const;
  std::vector<Entry>::const_iterator begin() const;
  std::vector<Entry>::const_iterator end() const;
  std::vector<Entry>::iterator begin();
  std::vector<Entry>::iterator end();
  const std::vector<Entry>& entries() const { return entries_; }
  void reserve(size_t n);

  // Same keys in the same order with equal values.
  friend bool operator==(const ValueMap& a, const ValueMap& b);

 private:
  friend class Value;
  friend struct value_internal::MapAccess;
  std::vector<Entry> entries_;
};

class Value {
 public:
  // The alternatives, in variant order (index() == Kind).
  enum class Kind : uint8_t {
    kNull = 0,
    kBool,
    kInt,
    kDouble,
    kString,
    kBytes,
    kArray,
    kMap,
    kBuffer,
    kSharedBuffer,
    kPort,
  };
  // "null", "bool", "int", ... for messages.
  static std::string_view KindName(Kind kind);

  // --- Construction ----------------------------------------------------------

  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : rep_(b) {}
  // Any integer type except bool whose values all fit in int64.
  template <class T>
    requires(std::integral<T> && !std::same_as<T, bool> &&
             (std::is_signed_v<T> || sizeof(T) < sizeof(int64_t)))
  Value(T i) : rep_(static_cast<int64_t>(i)) {}
  Value(double d) : rep_(d) {}
  Value(float f) : rep_(static_cast<double>(f)) {}
  Value(std::string s) : rep_(std::move(s)) {}
  Value(std::string_view s) : rep_(std::string(s)) {}
  Value(const char* s) : rep_(std::string(s)) {}
  Value(char* s) : rep_(std::string(s)) {}
  // Other pointers would silently become bools: refused at compile time.
  template <class T>
    requires(!std::same_as<std::remove_cv_t<T>, char>)
  Value(T*) = delete;
  Value(ValueBytes bytes) : rep_(std::move(bytes)) {}
  Value(ValueArray array) : rep_(std::move(array)) {}
  Value(ValueMap map) : rep_(std::move(map)) {}
  Value(Buffer buffer) : rep_(std::move(buffer)) {}
  Value(SharedBuffer shared) : rep_(std::move(shared)) {}
  // Moves `port` into the value (boxed). Defined in message_port.cc: link
  // //runtime:message_port to use it.
  Value(MessagePort&& port);
  explicit Value(PortSlot slot) : rep_(std::move(slot)) {}

  Value(Value&&) noexcept = default;
  Value& operator=(Value&&) noexcept = default;
  Value(const Value&) = delete;  // Clone()
  Value& operator=(const Value&) = delete;
  ~Value() = default;

  // An empty array / map, or an array of the given elements.
  template <class... Ts>
  static Value Array(Ts&&... elements) {
    ValueArray array;
    array.reserve(sizeof...(Ts));
    (array.emplace_back(std::forward<Ts>(elements)), ...);
    return Value(std::move(array));
  }
  static Value Map() { return Value(ValueMap()); }
  // A bytes value holding a copy of `bytes`.
  static Value Bytes(std::span<const std::byte> bytes) {
    return Value(ValueBytes(bytes.begin(), bytes.end()));
  }

  // A user type through its Codec<T>.
  template <class T>
  static Value From(const T& t) {
    return Codec<T>::Encode(t);
  }
  // A trivially copyable T, stored as bytes: a 16-byte header (magic, size,
  // type tag) then T's bytes. Only the same T (same build) reads it back.
  template <class T>
  static Value FromPod(const T& t);

  // --- Inspection ------------------------------------------------------------

  Kind kind() const { return static_cast<Kind>(rep_.index()); }
  bool IsNull() const { return kind() == Kind::kNull; }
  bool IsBool() const { return kind() == Kind::kBool; }
  bool IsInt() const { return kind() == Kind::kInt; }
  bool IsDouble() const { return kind() == Kind::kDouble; }
  bool IsString() const { return kind() == Kind::kString; }
  bool IsBytes() const { return kind() == Kind::kBytes; }
  bool IsArray() const { return kind() == Kind::kArray; }
  bool IsMap() const { return kind() == Kind::kMap; }
  bool IsBuffer() const { return kind() == Kind::kBuffer; }
  bool IsSharedBuffer() const { return kind() == Kind::kSharedBuffer; }
  bool IsPort() const { return kind() == Kind::kPort; }

  // Checked reads: InvalidArgument "expected int, got string" on a mismatch.
  // AsDouble also accepts an int (converted, like a JS number).
  absl::StatusOr<bool> AsBool() const;
  absl::StatusOr<int64_t> AsInt() const;
  absl::StatusOr<double> AsDouble() const;
  absl::StatusOr<std::string_view> AsString() const;

  // Pointer access: nullptr when the kind differs.
  const bool* GetBool() const { return std::get_if<bool>(&rep_); }
  const int64_t* GetInt() const { return std::get_if<int64_t>(&rep_); }
  const double* GetDouble() const { return std::get_if<double>(&rep_); }
  const std::string* GetString() const { return std::get_if<std::string>(&rep_); }
  std::string* GetString() { return std::get_if<std::string>(&rep_); }
  const ValueBytes* GetBytes() const { return std::get_if<ValueBytes>(&rep_); }
  ValueBytes* GetBytes() { return std::get_if<ValueBytes>(&rep_); }
  const ValueArray* GetArray() const { return std::get_if<ValueArray>(&rep_); }
  ValueArray* GetArray() { return std::get_if<ValueArray>(&rep_); }
  const ValueMap* GetMap() const { return std::get_if<ValueMap>(&rep_); }
  ValueMap* GetMap() { return std::get_if<ValueMap>(&rep_); }
  const Buffer* GetBuffer() const { return std::get_if<Buffer>(&rep_); }
  Buffer* GetBuffer() { return std::get_if<Buffer>(&rep_); }
  const SharedBuffer* GetSharedBuffer() const { return std::get_if<SharedBuffer>(&rep_); }
  SharedBuffer* GetSharedBuffer() { return std::get_if<SharedBuffer>(&rep_); }
  // The boxed port (nullptr if another kind, or a moved-from value). After a
  // transfer the box holds an empty port (valid() false).
  MessagePort* GetPort() const {
    const PortSlot* slot = std::get_if<PortSlot>(&rep_);
    return slot == nullptr ? nullptr : slot->get();
  }
  const PortSlot* GetPortSlot() const { return std::get_if<PortSlot>(&rep_); }
  PortSlot* GetPortSlot() { return std::get_if<PortSlot>(&rep_); }

  // Map member `key`: nullptr if this is not a map or has no such key.
  const Value* operator[](std::string_view key) const;
  Value* operator[](std::string_view key);
  // Map member `key` with a reason on failure: InvalidArgument if not a map,
  // NotFound naming the key if absent.
  absl::StatusOr<const Value*> Get(std::string_view key) const;
  // Array element `i`: InvalidArgument if not an array, OutOfRange if i >= size.
  absl::StatusOr<const Value*> At(size_t i) const;

  // A user type through its Codec<T>; the codec's status on a wrong shape.
  template <class T>
  absl::StatusOr<T> To() const {
    return Codec<T>::Decode(*this);
  }
  // The T stored by FromPod<T>. InvalidArgument if this is not such a value
  // or holds another type (size or type tag differ).
  template <class T>
  absl::StatusOr<T> ToPod() const;

  // --- Copy, compare, print --------------------------------------------------

  // A deep copy. Buffers are copied, SharedBuffers share their mapping.
  // FailedPrecondition if the tree holds a detached Buffer or a MessagePort
  // (ports are never cloned: transfer them).
  absl::StatusOr<Value> Clone() const;

  // Deep equality. Doubles compare by bit pattern (so NaN == NaN with the
  // same bits, and 0.0 != -0.0: what a round trip preserves); Buffers by
  // detached state and bytes; SharedBuffers by identity of the mapping;
  // MessagePorts by identity of the channel end (PortSlot's ==).
  friend bool operator==(const Value& a, const Value& b);

  // A JSON-like rendering for logs and test failures (not a wire format):
  // bytes and Buffers print their size, not their contents.
  std::string ToString() const;

 private:
  using Rep = std::variant<std::monostate, bool, int64_t, double, std::string, ValueBytes,
                           ValueArray, ValueMap, Buffer, SharedBuffer, PortSlot>;
  static absl::Status KindError(Kind expected, Kind got);
  static uint64_t PodTag(std::string_view type_name, size_t size, size_t align);
  static absl::Status CheckPod(const Value& v, uint64_t tag, size_t size);
  template <class T>
  static uint64_t PodTagOf();

  Rep rep_;
};

static_assert(sizeof(Value) <= 48, "Value should stay small: keep large alternatives boxed");

// --- FromPod / ToPod --------------------------------------------------------

namespace value_internal {
inline constexpr size_t kPodHeaderSize = 16;  // u32 magic, u32 size, u64 tag
inline constexpr uint32_t kPodMagic = 0x444f5057;  // "WPOD"
template <class T>
std::string_view TypeName() {
  return __PRETTY_FUNCTION__;  // names T; identical in every process of one build
}
}  // namespace value_internal

template <class T>
uint64_t Value::PodTagOf() {
  static const uint64_t tag = PodTag(value_internal::TypeName<T>(), sizeof(T), alignof(T));
  return tag;
}

template <class T>
Value Value::FromPod(const T& t) {
  static_assert(std::is_trivially_copyable_v<T>,
                "FromPod needs a trivially copyable T; specialise wharf::Codec<T> instead");
  static_assert(sizeof(T) <= std::numeric_limits<uint32_t>::max());
  ValueBytes bytes(value_internal::kPodHeaderSize + sizeof(T));
  const uint32_t magic = value_internal::kPodMagic;
  const uint32_t size = sizeof(T);
  const uint64_t tag = PodTagOf<T>();
  std::memcpy(bytes.data(), &magic, 4);
  std::memcpy(bytes.data() + 4, &size, 4);
  std::memcpy(bytes.data() + 8, &tag, 8);
  std::memcpy(bytes.data() + value_internal::kPodHeaderSize, &t, sizeof(T));
  return Value(std::move(bytes));
}

template <class T>
absl::StatusOr<T> Value::ToPod() const {
  static_assert(std::is_trivially_copyable_v<T>, "ToPod needs a trivially copyable T");
  static_assert(std::is_default_constructible_v<T>, "ToPod needs a default-constructible T");
  absl::Status status = CheckPod(*this, PodTagOf<T>(), sizeof(T));
  if (!status.ok()) return status;
  T t;
  std::memcpy(&t, GetBytes()->data() + value_internal::kPodHeaderSize, sizeof(T));
  return t;
}

inline ValueMap::ValueMap(ValueMap&&) noexcept = default;
inline ValueMap& ValueMap::operator=(ValueMap&&) noexcept = default;
inline ValueMap::~ValueMap() = default;
inline size_t ValueMap::size() const { return entries_.size(); }
inline bool ValueMap::empty() const { return entries_.empty(); }
inline std::vector<ValueMap::Entry>::const_iterator ValueMap::begin() const {
  return entries_.begin();
}
inline std::vector<ValueMap::Entry>::const_iterator ValueMap::end() const { return entries_.end(); }
inline std::vector<ValueMap::Entry>::iterator ValueMap::begin() { return entries_.begin(); }
inline std::vector<ValueMap::Entry>::iterator ValueMap::end() { return entries_.end(); }
inline void ValueMap::reserve(size_t n) { entries_.reserve(n); }

namespace value_internal {
// For the codec's decoder only, which has already rejected duplicate keys.
struct MapAccess {
  static void Append(ValueMap& map, std::string key, Value value) {
    map.entries_.emplace_back(std::move(key), std::move(value));
  }
};
}  // namespace value_internal

}  // namespace wharf

#endif  // WHARF_RUNTIME_VALUE_H_
