#include "wharf/runtime/codec.h"

#include <cstring>
#include <string>
#include <unordered_set>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "wharf/runtime/internal/utf8.h"

namespace wharf {
namespace {

using Tag = ValueCodec::Tag;

// --- Encoding -------------------------------------------------------------------

class Encoder {
 public:
  // `table` nullptr: Buffers inline, SharedBuffers refused.
  explicit Encoder(const TransferTable* table) : table_(table) {}

  absl::Status Run(const Value& value, std::string* out) {
    out_ = out;
    const char magic[3] = {static_cast<char>(ValueCodec::kMagic0),
                           static_cast<char>(ValueCodec::kMagic1),
                           static_cast<char>(ValueCodec::kVersion)};
    out_->append(magic, sizeof magic);
    return Write(value, 0);
  }

  // Buffers to move into the table, in index order (pointers into the value).
  std::vector<Buffer*>& buffers() { return buffers_; }
  std::vector<SharedBuffer>& shared() { return shared_; }
  // Ports to move into the table, in index order (slots inside the value).
  std::vector<PortSlot*>& ports() { return ports_; }

 private:
  void Byte(uint8_t b) { out_->push_back(static_cast<char>(b)); }
  // The bytes of one varint built locally and appended once (a string's
  // push_back per byte is a measurable share of a small message's cost).
  void Varint(uint64_t v) {
    char bytes[10];
    size_t n = 0;
    while (v >= 0x80) {
      bytes[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    bytes[n++] = static_cast<char>(v);
    out_->append(bytes, n);
  }
  void TagAndVarint(uint8_t tag, uint64_t v) {
    char bytes[11];
    size_t n = 0;
    bytes[n++] = static_cast<char>(tag);
    while (v >= 0x80) {
      bytes[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    bytes[n++] = static_cast<char>(v);
    out_->append(bytes, n);
  }
  void Raw(const void* data, size_t n) {
    if (n > 0) out_->append(static_cast<const char*>(data), n);
  }

  std::string Path() const {
    std::string path = "$";
    for (const Segment& s : path_) {
      if (s.key != nullptr) {
        absl::StrAppend(&path, ".", *s.key);
      } else {
        absl::StrAppend(&path, "[", s.index, "]");
      }
    }
    return path;
  }

  absl::Status Utf8(std::string_view s, std::string_view what) {
    if (codec_internal::IsValidUtf8(s)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("cannot encode the ", std::string(what), " at ",
                                                   Path(), ": not valid UTF-8"));
  }

  absl::Status Write(const Value& v, int depth) {
    switch (v.kind()) {
      case Value::Kind::kNull: Byte(Tag::kNull); return absl::OkStatus();
      case Value::Kind::kBool: Byte(*v.GetBool() ? Tag::kTrue : Tag::kFalse); return absl::OkStatus();
      case Value::Kind::kInt: {
        const uint64_t u = static_cast<uint64_t>(*v.GetInt());
        TagAndVarint(Tag::kInt, (u << 1) ^ (0 - (u >> 63)));  // zigzag
        return absl::OkStatus();
      }
      case Value::Kind::kDouble: {
        const double d = *v.GetDouble();
        uint64_t bits;
        std::memcpy(&bits, &d, 8);
        Byte(Tag::kDouble);
        for (int i = 0; i < 8; ++i) Byte(static_cast<uint8_t>(bits >> (8 * i)));
        return absl::OkStatus();
      }
      case Value::Kind::kString: {
        const std::string& s = *v.GetString();
        if (absl::Status st = Utf8(s, "string"); !st.ok()) return st;
        TagAndVarint(Tag::kString, s.size());
        Raw(s.data(), s.size());
        return absl::OkStatus();
      }
      case Value::Kind::kBytes: {
        const ValueBytes& b = *v.GetBytes();
        TagAndVarint(Tag::kBytes, b.size());
        Raw(b.data(), b.size());
        return absl::OkStatus();
      }
      case Value::Kind::kArray: {
        if (depth >= ValueCodec::kMaxDepth) return TooDeep();
        const ValueArray& array = *v.GetArray();
        TagAndVarint(Tag::kArray, array.size());
        for (size_t i = 0; i < array.size(); ++i) {
          path_.push_back({nullptr, i});
          if (absl::Status st = Write(array[i], depth + 1); !st.ok()) return st;
          path_.pop_back();
        }
        return absl::OkStatus();
      }
      case Value::Kind::kMap: {
        if (depth >= ValueCodec::kMaxDepth) return TooDeep();
        const ValueMap& map = *v.GetMap();
        TagAndVarint(Tag::kMap, map.size());
        for (const auto& [key, element] : map) {
          path_.push_back({&key, 0});
          if (absl::Status st = Utf8(key, "map key"); !st.ok()) return st;
          Varint(key.size());
          Raw(key.data(), key.size());
          if (absl::Status st = Write(element, depth + 1); !st.ok()) return st;
          path_.pop_back();
        }
        return absl::OkStatus();
      }
      case Value::Kind::kBuffer: {
        const Buffer& buffer = *v.GetBuffer();
        if (buffer.detached()) {
          return absl::FailedPreconditionError(
              absl::StrCat("cannot encode the Buffer at ", Path(),
                           ": it was transferred (detached) already"));
        }
        if (table_ == nullptr) {
          TagAndVarint(Tag::kBufferInline, buffer.size());
          Raw(buffer.data(), buffer.size());
        } else {
          TagAndVarint(Tag::kBufferTransferred, table_->buffers.size() + buffers_.size());
          buffers_.push_back(const_cast<Buffer*>(&buffer));  // moved only on success
        }
        return absl::OkStatus();
      }
      case Value::Kind::kSharedBuffer: {
        const SharedBuffer& shared = *v.GetSharedBuffer();
        if (table_ == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(
              "cannot encode the SharedBuffer at ", Path(),
              " without a TransferTable: a SharedBuffer is passed by handle, never copied "
              "inline; call EncodeValue(value, &table)"));
        }
        size_t index = 0;
        while (index < shared_.size() && shared_[index].data() != shared.data()) ++index;
        if (index == shared_.size()) shared_.push_back(shared);
        TagAndVarint(Tag::kSharedBuffer, table_->shared_buffers.size() + index);
        return absl::OkStatus();
      }
      case Value::Kind::kPort: {
        const PortSlot& slot = *v.GetPortSlot();
        if (table_ == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(
              "cannot encode the MessagePort at ", Path(),
              " without a TransferTable: a port is transferred, never copied inline; call "
              "EncodeValue(value, &table)"));
        }
        if (!slot.valid()) {
          return absl::FailedPreconditionError(
              absl::StrCat("cannot encode the MessagePort at ", Path(),
                           ": it was transferred (detached) already"));
        }
        TagAndVarint(Tag::kPort, table_->ports.size() + ports_.size());
        ports_.push_back(const_cast<PortSlot*>(&slot));  // moved only on success
        return absl::OkStatus();
      }
    }
    return absl::InternalError("EncodeValue: unknown Value kind");
  }

  absl::Status TooDeep() const {
    return absl::InvalidArgumentError(absl::StrCat("cannot encode the value at ", Path(),
                                                   ": arrays/maps nesting too deep (more than ",
                                                   ValueCodec::kMaxDepth, " levels)"));
  }

  struct Segment {
    const std::string* key;  // nullptr: array index
    size_t index;
  };

  const TransferTable* table_;
  std::string* out_ = nullptr;
  std::vector<Segment> path_;
  std::vector<Buffer*> buffers_;
  std::vector<SharedBuffer> shared_;
  std::vector<PortSlot*> ports_;
};

// --- Decoding -------------------------------------------------------------------

class Decoder {
 public:
  Decoder(std::span<const std::byte> in, TransferTable* table)
      : in_(in), table_(table),
        used_(table == nullptr ? 0 : table->buffers.size(), false),
        used_ports_(table == nullptr ? 0 : table->ports.size(), false) {}

  absl::StatusOr<Value> Run() {
    if (in_.size() < 3) {
      if (in_.size() >= 1 && Peek(0) != ValueCodec::kMagic0) return BadMagic();
      if (in_.size() >= 2 && Peek(1) != ValueCodec::kMagic1) return BadMagic();
      return absl::DataLossError(absl::StrCat("Value message truncated: ", in_.size(),
                                              " bytes, shorter than the 3-byte header"));
    }
    if (Peek(0) != ValueCodec::kMagic0 || Peek(1) != ValueCodec::kMagic1) return BadMagic();
    if (Peek(2) != ValueCodec::kVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("Value message of format version ", Peek(2), "; this build reads version ",
                       ValueCodec::kVersion, " (are both processes built from the same Wharf?)"));
    }
    pos_ = 3;
    absl::StatusOr<Value> value = Read(0);
    if (!value.ok()) return value.status();
    if (pos_ != in_.size()) {
      return Error(absl::StatusCode::kInvalidArgument,
                   absl::StrCat(in_.size() - pos_, " trailing bytes after the value"));
    }
    return value;
  }

 private:
  uint8_t Peek(size_t i) const { return static_cast<uint8_t>(in_[i]); }
  size_t Left() const { return in_.size() - pos_; }

  absl::Status BadMagic() const {
    return absl::InvalidArgumentError(
        "not a Wharf Value message (bad magic: expected the bytes 'W' 'V')");
  }

  absl::Status Error(absl::StatusCode code, std::string_view what) const {
    return absl::Status(code, absl::StrCat("bad Value message at byte offset ", pos_, ": ",
                                           std::string(what)));
  }
  absl::Status Truncated(std::string_view what) const {
    return Error(absl::StatusCode::kDataLoss, absl::StrCat("truncated input: ", std::string(what)));
  }

  absl::StatusOr<uint64_t> Varint(std::string_view what) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (pos_ >= in_.size()) return Truncated(absl::StrCat(std::string(what), " cut short"));
      const uint8_t b = Peek(pos_);
      if (i == 9 && b > 1) {
        return Error(absl::StatusCode::kInvalidArgument,
                     absl::StrCat(std::string(what), " overflows 64 bits"));
      }
      if (i > 0 && b == 0) {
        return Error(absl::StatusCode::kInvalidArgument,
                     absl::StrCat(std::string(what), " is a non-canonical (overlong) varint"));
      }
      ++pos_;
      v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) return v;
    }
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat(std::string(what), " varint longer than 10 bytes"));
  }

  // A byte length that must fit in the remaining input.
  absl::StatusOr<size_t> Length(std::string_view what) {
    absl::StatusOr<uint64_t> n = Varint(what);
    if (!n.ok()) return n.status();
    if (*n > Left()) {
      return Truncated(absl::StrCat(std::string(what), " ", *n, " exceeds the ", Left(),
                                    " bytes left"));
    }
    return static_cast<size_t>(*n);
  }

  absl::StatusOr<std::string> Utf8String(std::string_view what) {
    absl::StatusOr<size_t> n = Length(absl::StrCat(std::string(what), " length"));
    if (!n.ok()) return n.status();
    std::string_view s(reinterpret_cast<const char*>(in_.data()) + pos_, *n);
    if (!codec_internal::IsValidUtf8(s)) {
      return Error(absl::StatusCode::kInvalidArgument,
                   absl::StrCat(std::string(what), " is not valid UTF-8"));
    }
    pos_ += *n;
    return std::string(s);
  }

  absl::StatusOr<Value> Read(int depth) {
    if (pos_ >= in_.size()) return Truncated("expected a value tag");
    const size_t tag_pos = pos_;
    const uint8_t tag = Peek(pos_++);
    switch (tag) {
      case Tag::kNull: return Value();
      case Tag::kFalse: return Value(false);
      case Tag::kTrue: return Value(true);
      case Tag::kInt: {
        absl::StatusOr<uint64_t> z = Varint("int");
        if (!z.ok()) return z.status();
        return Value(static_cast<int64_t>((*z >> 1) ^ (0 - (*z & 1))));
      }
      case Tag::kDouble: {
        if (Left() < 8) return Truncated("double needs 8 bytes");
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits |= static_cast<uint64_t>(Peek(pos_ + i)) << (8 * i);
        pos_ += 8;
        double d;
        std::memcpy(&d, &bits, 8);
        return Value(d);
      }
      case Tag::kString: {
        absl::StatusOr<std::string> s = Utf8String("string");
        if (!s.ok()) return s.status();
        return Value(*std::move(s));
      }
      case Tag::kBytes:
      case Tag::kBufferInline: {
        absl::StatusOr<size_t> n =
            Length(tag == Tag::kBytes ? "bytes length" : "Buffer length");
        if (!n.ok()) return n.status();
        std::span<const std::byte> bytes = in_.subspan(pos_, *n);
        pos_ += *n;
        if (tag == Tag::kBytes) return Value::Bytes(bytes);
        absl::StatusOr<Buffer> buffer = Buffer::CopyFrom(bytes);
        if (!buffer.ok()) return buffer.status();
        return Value(*std::move(buffer));
      }
      case Tag::kArray: {
        if (depth >= ValueCodec::kMaxDepth) return TooDeep();
        absl::StatusOr<uint64_t> count = Varint("array count");
        if (!count.ok()) return count.status();
        if (*count > Left()) {  // every element takes at least one byte
          return Truncated(absl::StrCat("array of ", *count, " elements cannot fit in the ",
                                        Left(), " bytes left"));
        }
        ValueArray array;
        array.reserve(*count);
        for (uint64_t i = 0; i < *count; ++i) {
          absl::StatusOr<Value> element = Read(depth + 1);
          if (!element.ok()) return element.status();
          array.push_back(*std::move(element));
        }
        return Value(std::move(array));
      }
      case Tag::kMap: {
        if (depth >= ValueCodec::kMaxDepth) return TooDeep();
        absl::StatusOr<uint64_t> count = Varint("map count");
        if (!count.ok()) return count.status();
        if (*count > Left() / 2) {  // every entry takes at least two bytes
          return Truncated(absl::StrCat("map of ", *count, " entries cannot fit in the ", Left(),
                                        " bytes left"));
        }
        ValueMap map;
        map.reserve(*count);
        // Keys are checked for duplicates as views of the input (stable), in O(1).
        std::unordered_set<std::string_view> seen;
        for (uint64_t i = 0; i < *count; ++i) {
          const size_t key_pos = pos_;
          absl::StatusOr<std::string> key = Utf8String("map key");
          if (!key.ok()) return key.status();
          const std::string_view key_view(reinterpret_cast<const char*>(in_.data()) + pos_ - key->size(),
                                          key->size());
          if (!seen.insert(key_view).second) {
            pos_ = key_pos;
            return Error(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("duplicate map key \"", *key, "\""));
          }
          absl::StatusOr<Value> element = Read(depth + 1);
          if (!element.ok()) return element.status();
          value_internal::MapAccess::Append(map, *std::move(key), *std::move(element));
        }
        return Value(std::move(map));
      }
      case Tag::kBufferTransferred: {
        absl::StatusOr<uint64_t> index = Varint("Buffer transfer index");
        if (!index.ok()) return index.status();
        if (table_ == nullptr) {
          return Error(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("the message refers to transferred Buffer #", *index,
                                    " but no TransferTable was given"));
        }
        if (*index >= table_->buffers.size()) {
          return Error(absl::StatusCode::kOutOfRange,
                       absl::StrCat("Buffer transfer index ", *index, " out of range (the table has ",
                                    table_->buffers.size(), " Buffers)"));
        }
        if (used_[*index]) {
          return Error(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("transferred Buffer #", *index, " is used twice"));
        }
        used_[*index] = true;
        absl::StatusOr<Buffer> buffer = table_->buffers[*index].Transfer();
        if (!buffer.ok()) {
          return Error(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("transferred Buffer #", *index, ": ",
                                    std::string(buffer.status().message())));
        }
        return Value(*std::move(buffer));
      }
      case Tag::kSharedBuffer: {
        absl::StatusOr<uint64_t> index = Varint("SharedBuffer transfer index");
        if (!index.ok()) return index.status();
        if (table_ == nullptr) {
          return Error(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("the message refers to SharedBuffer #", *index,
                                    " but no TransferTable was given"));
        }
        if (*index >= table_->shared_buffers.size()) {
          return Error(absl::StatusCode::kOutOfRange,
                       absl::StrCat("SharedBuffer transfer index ", *index,
                                    " out of range (the table has ", table_->shared_buffers.size(),
                                    " SharedBuffers)"));
        }
        return Value(table_->shared_buffers[*index]);
      }
      case Tag::kPort: {
        absl::StatusOr<uint64_t> index = Varint("MessagePort transfer index");
        if (!index.ok()) return index.status();
        if (table_ == nullptr) {
          return Error(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("the message refers to MessagePort #", *index,
                                    " but no TransferTable was given"));
        }
        if (*index >= table_->ports.size()) {
          return Error(absl::StatusCode::kOutOfRange,
                       absl::StrCat("MessagePort transfer index ", *index,
                                    " out of range (the table has ", table_->ports.size(),
                                    " ports)"));
        }
        if (used_ports_[*index]) {
          return Error(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("transferred MessagePort #", *index, " is used twice"));
        }
        used_ports_[*index] = true;
        PortSlot& slot = table_->ports[*index];
        if (!slot.valid()) {
          return Error(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("transferred MessagePort #", *index,
                                    " is empty (taken already or detached)"));
        }
        return Value(slot.Take());
      }
      default:
        pos_ = tag_pos;
        return Error(absl::StatusCode::kInvalidArgument,
                     absl::StrCat("unknown value tag 0x", absl::Hex(tag, absl::kZeroPad2)));
    }
  }

  absl::Status TooDeep() const {
    return Error(absl::StatusCode::kResourceExhausted,
                 absl::StrCat("arrays/maps nesting too deep (more than ", ValueCodec::kMaxDepth,
                              " levels)"));
  }

  std::span<const std::byte> in_;
  size_t pos_ = 0;
  TransferTable* table_;
  std::vector<bool> used_;
  std::vector<bool> used_ports_;
};

}  // namespace

absl::StatusOr<std::string> EncodeValue(const Value& value) {
  std::string out;
  if (absl::Status st = EncodeValueTo(value, &out); !st.ok()) return st;
  return out;
}

absl::Status EncodeValueTo(const Value& value, std::string* out) {
  // A scalar — what most small messages are — built in place: the header,
  // the tag, at most 10 varint bytes (or a double's 8), one assign.
  char bytes[3 + 1 + 10];
  bytes[0] = static_cast<char>(ValueCodec::kMagic0);
  bytes[1] = static_cast<char>(ValueCodec::kMagic1);
  bytes[2] = static_cast<char>(ValueCodec::kVersion);
  size_t n = 4;
  if (const int64_t* i = value.GetInt()) {
    bytes[3] = static_cast<char>(Tag::kInt);
    const uint64_t u = static_cast<uint64_t>(*i);
    uint64_t z = (u << 1) ^ (0 - (u >> 63));  // zigzag, as Encoder::Write
    while (z >= 0x80) {
      bytes[n++] = static_cast<char>(z | 0x80);
      z >>= 7;
    }
    bytes[n++] = static_cast<char>(z);
  } else if (const double* d = value.GetDouble()) {
    bytes[3] = static_cast<char>(Tag::kDouble);
    uint64_t b;
    std::memcpy(&b, d, 8);
    for (int k = 0; k < 8; ++k) bytes[n++] = static_cast<char>(b >> (8 * k));
  } else if (const bool* b = value.GetBool()) {
    bytes[3] = static_cast<char>(*b ? Tag::kTrue : Tag::kFalse);
  } else if (value.IsNull()) {
    bytes[3] = static_cast<char>(Tag::kNull);
  } else {
    out->clear();
    Encoder encoder(nullptr);
    return encoder.Run(value, out);
  }
  out->assign(bytes, n);
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeValue(Value& value, TransferTable* table) {
  if (table == nullptr) return EncodeValue(std::as_const(value));
  Encoder encoder(table);
  std::string out;
  if (absl::Status st = encoder.Run(value, &out); !st.ok()) return st;
  // Commit: nothing below can fail.
  table->buffers.reserve(table->buffers.size() + encoder.buffers().size());
  for (Buffer* buffer : encoder.buffers()) table->buffers.push_back(std::move(*buffer));
  for (SharedBuffer& shared : encoder.shared()) table->shared_buffers.push_back(std::move(shared));
  table->ports.reserve(table->ports.size() + encoder.ports().size());
  for (PortSlot* slot : encoder.ports()) table->ports.push_back(slot->Take());
  return out;
}

namespace {

// The Encoder's walk (depth-first, array and map order), putting back what
// it moved out: every Buffer and every port, in index order.
void Undo(Value& v, TransferTable& t, size_t& buffer, size_t& port) {
  switch (v.kind()) {
    case Value::Kind::kBuffer:
      if (buffer < t.buffers.size()) *v.GetBuffer() = std::move(t.buffers[buffer++]);
      return;
    case Value::Kind::kPort:
      if (port < t.ports.size()) *v.GetPortSlot() = std::move(t.ports[port++]);
      return;
    case Value::Kind::kArray:
      for (Value& e : *v.GetArray()) Undo(e, t, buffer, port);
      return;
    case Value::Kind::kMap:
      for (auto& [k, e] : *v.GetMap()) Undo(e, t, buffer, port);
      return;
    default:
      return;
  }
}

}  // namespace

void UndoEncode(Value& value, TransferTable& table) {
  size_t buffer = 0, port = 0;
  Undo(value, table, buffer, port);
  table.buffers.clear();
  table.ports.clear();
  table.shared_buffers.clear();
}

absl::StatusOr<Value> DecodeValue(std::span<const std::byte> bytes, TransferTable* table) {
  return Decoder(bytes, table).Run();
}

absl::StatusOr<Value> DecodeValue(std::string_view bytes, TransferTable* table) {
  return DecodeValue(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), table);
}

namespace {

// A whole message that is one scalar, read the way Decoder reads it (a
// canonical varint ending exactly at the end, a double of 8 bytes). False for
// anything else, well-formed or not: the Decoder then decides (and names the
// error).
bool DecodeScalar(std::string_view bytes, Value* out) {
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n < 4 || b[0] != ValueCodec::kMagic0 || b[1] != ValueCodec::kMagic1 ||
      b[2] != ValueCodec::kVersion) {
    return false;
  }
  switch (b[3]) {
    case Tag::kNull:
      if (n != 4) return false;
      *out = Value();
      return true;
    case Tag::kFalse:
    case Tag::kTrue:
      if (n != 4) return false;
      *out = Value(b[3] == Tag::kTrue);
      return true;
    case Tag::kInt: {
      // At most 10 varint bytes, the last one ≤ 1 when it is the tenth, no
      // zero byte after the first (overlong), the last ends the message.
      if (n < 5 || n > 14) return false;
      uint64_t z = 0;
      for (size_t i = 4; i < n; ++i) {
        const uint8_t v = b[i];
        const size_t k = i - 4;
        if ((k > 0 && v == 0) || (k == 9 && v > 1)) return false;
        z |= static_cast<uint64_t>(v & 0x7f) << (7 * k);
        if ((v & 0x80) == 0) {
          if (i + 1 != n) return false;  // trailing bytes: the Decoder says so
          *out = Value(static_cast<int64_t>((z >> 1) ^ (0 - (z & 1))));
          return true;
        }
      }
      return false;  // cut short
    }
    case Tag::kDouble: {
      if (n != 12) return false;
      uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits |= static_cast<uint64_t>(b[4 + i]) << (8 * i);
      double d;
      std::memcpy(&d, &bits, 8);
      *out = Value(d);
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

absl::Status DecodeValueInto(std::string_view bytes, Value* out, TransferTable* table) {
  if (DecodeScalar(bytes, out)) return absl::OkStatus();
  absl::StatusOr<Value> v = DecodeValue(bytes, table);
  if (!v.ok()) return v.status();
  *out = *std::move(v);
  return absl::OkStatus();
}

}  // namespace wharf
