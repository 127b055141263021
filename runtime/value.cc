#include "wharf/runtime/value.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace wharf {

// --- ValueMap -------------------------------------------------------------------

absl::Status ValueMap::Insert(std::string key, Value value) {
  if (Find(key) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("map already has key \"", key, "\"; use Set() to replace its value"));
  }
  entries_.emplace_back(std::move(key), std::move(value));
  return absl::OkStatus();
}

void ValueMap::Set(std::string key, Value value) {
  if (Value* existing = Find(key)) {
    *existing = std::move(value);
    return;
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

const Value* ValueMap::Find(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.first == key) return &entry.second;
  }
  return nullptr;
}

Value* ValueMap::Find(std::string_view key) {
  return const_cast<Value*>(std::as_const(*this).Find(key));
}

bool ValueMap::Erase(std::string_view key) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->first == key) {
      entries_.erase(it);
      return true;
    }
  }
  return false;
}

bool operator==(const ValueMap& a, const ValueMap& b) { return a.entries_ == b.entries_; }

// --- Value ----------------------------------------------------------------------

std::string_view Value::KindName(Kind kind) {
  switch (kind) {
    case Kind::kNull: return "null";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kDouble: return "double";
    case Kind::kString: return "string";
    case Kind::kBytes: return "bytes";
    case Kind::kArray: return "array";
    case Kind::kMap: return "map";
    case Kind::kBuffer: return "Buffer";
    case Kind::kSharedBuffer: return "SharedBuffer";
    case Kind::kPort: return "MessagePort";
  }
  return "unknown";
}

absl::Status Value::KindError(Kind expected, Kind got) {
  return absl::InvalidArgumentError(absl::StrCat("expected ", std::string(KindName(expected)),
                                                 ", got ", std::string(KindName(got))));
}

absl::StatusOr<bool> Value::AsBool() const {
  if (const bool* b = std::get_if<bool>(&rep_)) return *b;
  return KindError(Kind::kBool, kind());
}

absl::StatusOr<int64_t> Value::AsInt() const {
  if (const int64_t* i = std::get_if<int64_t>(&rep_)) return *i;
  return KindError(Kind::kInt, kind());
}

absl::StatusOr<double> Value::AsDouble() const {
  if (const double* d = std::get_if<double>(&rep_)) return *d;
  if (const int64_t* i = std::get_if<int64_t>(&rep_)) return static_cast<double>(*i);
  return KindError(Kind::kDouble, kind());
}

absl::StatusOr<std::string_view> Value::AsString() const {
  if (const std::string* s = std::get_if<std::string>(&rep_)) return std::string_view(*s);
  return KindError(Kind::kString, kind());
}

const Value* Value::operator[](std::string_view key) const {
  const ValueMap* map = GetMap();
  return map == nullptr ? nullptr : map->Find(key);
}

Value* Value::operator[](std::string_view key) {
  ValueMap* map = GetMap();
  return map == nullptr ? nullptr : map->Find(key);
}

absl::StatusOr<const Value*> Value::Get(std::string_view key) const {
  const ValueMap* map = GetMap();
  if (map == nullptr) return KindError(Kind::kMap, kind());
  const Value* v = map->Find(key);
  if (v == nullptr) {
    return absl::NotFoundError(absl::StrCat("map has no key \"", std::string(key), "\""));
  }
  return v;
}

absl::StatusOr<const Value*> Value::At(size_t i) const {
  const ValueArray* array = GetArray();
  if (array == nullptr) return KindError(Kind::kArray, kind());
  if (i >= array->size()) {
    return absl::OutOfRangeError(
        absl::StrCat("array index ", i, " out of range (size ", array->size(), ")"));
  }
  return &(*array)[i];
}

absl::StatusOr<Value> Value::Clone() const {
  switch (kind()) {
    case Kind::kNull: return Value();
    case Kind::kBool: return Value(std::get<bool>(rep_));
    case Kind::kInt: return Value(std::get<int64_t>(rep_));
    case Kind::kDouble: return Value(std::get<double>(rep_));
    case Kind::kString: return Value(std::get<std::string>(rep_));
    case Kind::kBytes: return Value(std::get<ValueBytes>(rep_));
    case Kind::kArray: {
      const ValueArray& array = std::get<ValueArray>(rep_);
      ValueArray copy;
      copy.reserve(array.size());
      for (const Value& element : array) {
        absl::StatusOr<Value> c = element.Clone();
        if (!c.ok()) return c.status();
        copy.push_back(*std::move(c));
      }
      return Value(std::move(copy));
    }
    case Kind::kMap: {
      const ValueMap& map = std::get<ValueMap>(rep_);
      ValueMap copy;
      copy.reserve(map.size());
      for (const auto& [key, element] : map) {
        absl::StatusOr<Value> c = element.Clone();
        if (!c.ok()) return c.status();
        copy.entries_.emplace_back(key, *std::move(c));
      }
      return Value(std::move(copy));
    }
    case Kind::kBuffer: {
      absl::StatusOr<Buffer> copy = std::get<Buffer>(rep_).Clone();
      if (!copy.ok()) return copy.status();
      return Value(*std::move(copy));
    }
    case Kind::kSharedBuffer: return Value(std::get<SharedBuffer>(rep_));
    case Kind::kPort:
      return absl::FailedPreconditionError(
          "a MessagePort cannot be cloned: move it, or list it in the transfer list");
  }
  return absl::InternalError("Value::Clone: unknown kind");
}

bool operator==(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kNull: return true;
    case Value::Kind::kBool: return std::get<bool>(a.rep_) == std::get<bool>(b.rep_);
    case Value::Kind::kInt: return std::get<int64_t>(a.rep_) == std::get<int64_t>(b.rep_);
    case Value::Kind::kDouble: {
      const double x = std::get<double>(a.rep_), y = std::get<double>(b.rep_);
      return std::memcmp(&x, &y, sizeof(double)) == 0;
    }
    case Value::Kind::kString:
      return std::get<std::string>(a.rep_) == std::get<std::string>(b.rep_);
    case Value::Kind::kBytes: return std::get<ValueBytes>(a.rep_) == std::get<ValueBytes>(b.rep_);
    case Value::Kind::kArray: return std::get<ValueArray>(a.rep_) == std::get<ValueArray>(b.rep_);
    case Value::Kind::kMap: return std::get<ValueMap>(a.rep_) == std::get<ValueMap>(b.rep_);
    case Value::Kind::kBuffer: return std::get<Buffer>(a.rep_) == std::get<Buffer>(b.rep_);
    case Value::Kind::kSharedBuffer:
      return std::get<SharedBuffer>(a.rep_).data() == std::get<SharedBuffer>(b.rep_).data();
    case Value::Kind::kPort: return std::get<PortSlot>(a.rep_) == std::get<PortSlot>(b.rep_);
  }
  return false;
}

namespace {

void AppendQuoted(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "\\x%02x", c);
          out += hex;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void AppendValue(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNull: out += "null"; break;
    case Value::Kind::kBool: out += *v.AsBool() ? "true" : "false"; break;
    case Value::Kind::kInt: absl::StrAppend(&out, *v.AsInt()); break;
    case Value::Kind::kDouble: {
      const double d = *v.AsDouble();
      char text[32];
      std::snprintf(text, sizeof(text), "%.17g", d);
      out += text;
      if (std::isfinite(d) && std::string_view(text).find_first_of(".eE") == std::string::npos) {
        out += ".0";
      }
      break;
    }
    case Value::Kind::kString: AppendQuoted(out, *v.GetString()); break;
    case Value::Kind::kBytes: absl::StrAppend(&out, "bytes[", v.GetBytes()->size(), "]"); break;
    case Value::Kind::kArray: {
      out.push_back('[');
      bool first = true;
      for (const Value& element : *v.GetArray()) {
        if (!first) out += ", ";
        first = false;
        AppendValue(out, element);
      }
      out.push_back(']');
      break;
    }
    case Value::Kind::kMap: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, element] : *v.GetMap()) {
        if (!first) out += ", ";
        first = false;
        AppendQuoted(out, key);
        out += ": ";
        AppendValue(out, element);
      }
      out.push_back('}');
      break;
    }
    case Value::Kind::kBuffer:
      if (v.GetBuffer()->detached()) {
        out += "Buffer(detached)";
      } else {
        absl::StrAppend(&out, "Buffer[", v.GetBuffer()->size(), "]");
      }
      break;
    case Value::Kind::kSharedBuffer:
      absl::StrAppend(&out, "SharedBuffer[", v.GetSharedBuffer()->size(), "]");
      break;
    case Value::Kind::kPort:
      out += v.GetPortSlot()->valid() ? "MessagePort" : "MessagePort(detached)";
      break;
  }
}

}  // namespace

std::string Value::ToString() const {
  std::string out;
  AppendValue(out, *this);
  return out;
}

uint64_t Value::PodTag(std::string_view type_name, size_t size, size_t align) {
  uint64_t h = 0xcbf29ce484222325u;  // FNV-1a 64
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3u;
  };
  for (char c : type_name) mix(static_cast<unsigned char>(c));
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(size >> (8 * i)));
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(align >> (8 * i)));
  return h;
}

absl::Status Value::CheckPod(const Value& v, uint64_t tag, size_t size) {
  const ValueBytes* bytes = v.GetBytes();
  if (bytes == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("ToPod: expected bytes made by FromPod, got ", std::string(KindName(v.kind()))));
  }
  uint32_t magic = 0, stored_size = 0;
  uint64_t stored_tag = 0;
  if (bytes->size() >= value_internal::kPodHeaderSize) {
    std::memcpy(&magic, bytes->data(), 4);
    std::memcpy(&stored_size, bytes->data() + 4, 4);
    std::memcpy(&stored_tag, bytes->data() + 8, 8);
  }
  if (magic != value_internal::kPodMagic ||
      bytes->size() != value_internal::kPodHeaderSize + stored_size) {
    return absl::InvalidArgumentError("ToPod: these bytes were not made by Value::FromPod");
  }
  if (stored_size != size || stored_tag != tag) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ToPod: the value holds another type (", stored_size, " bytes, type tag ", stored_tag,
        "; wanted ", size, " bytes, type tag ", tag, "): FromPod and ToPod types must match"));
  }
  return absl::OkStatus();
}

namespace value_internal {
absl::Status IntOutOfRange(int64_t value, int64_t min, uint64_t max) {
  return absl::OutOfRangeError(
      absl::StrCat("int ", value, " does not fit the target type [", min, ", ", max, "]"));
}
}  // namespace value_internal

}  // namespace wharf
