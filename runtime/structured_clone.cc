#include "wharf/runtime/structured_clone.h"

#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "wharf/runtime/internal/port_access.h"
#include "wharf/runtime/message_port.h"
#include "wharf/sync/internal/str_cat.h"

namespace wharf {
namespace {

using runtime_internal::PortAccess;
using sync_internal::Cat;

absl::Status CloneError(std::string_view what) {
  return absl::InvalidArgumentError(Cat("DataCloneError: ", what));
}

// A port that is about to leave inside a message posted on `sender`.
absl::Status CheckTransferable(const MessagePort* sender, const MessagePort* p) {
  if (sender != nullptr && (p == sender || PortAccess::SameChannel(*sender, *p))) {
    return CloneError("the message holds or lists the posting port or its peer");
  }
  if (!p->valid()) {
    return CloneError("a MessagePort to transfer is detached (empty or transferred already)");
  }
  if (p->closed()) return CloneError("a MessagePort to transfer is closed");
  return absl::OkStatus();
}

}  // namespace

// Builds a clone in one pass over the message.
struct StructuredCloneBuilder {
  const std::unordered_set<const Buffer*>& listed_buffers;
  const std::unordered_set<const MessagePort*>& listed_ports;
  StructuredClone& out;
  size_t found_buffers = 0;
  size_t found_ports = 0;

  absl::Status CloneInto(Value& src, Value& dst, int depth) {
    if (depth > StructuredClone::kMaxDepth) return CloneError("message nested too deeply");
    switch (src.kind()) {
      case Value::Kind::kBuffer: {
        Buffer* b = src.GetBuffer();
        if (listed_buffers.count(b) != 0) {
          out.buffers_.push_back({&dst, b});  // dst stays null until Commit
          ++found_buffers;
          return absl::OkStatus();
        }
        if (b->detached()) {
          return CloneError("the message holds a detached Buffer (already transferred)");
        }
        absl::StatusOr<Buffer> copy = b->Clone();
        if (!copy.ok()) return copy.status();
        dst = Value(*std::move(copy));
        return absl::OkStatus();
      }
      case Value::Kind::kPort: {
        const MessagePort* p = src.GetPort();
        if (p != nullptr && listed_ports.count(p) != 0) {
          out.ports_.push_back({&dst, src.GetPortSlot()});
          ++found_ports;
          return absl::OkStatus();
        }
        if (p == nullptr || !p->valid()) {
          return CloneError("the message holds a detached MessagePort (already transferred)");
        }
        return CloneError(
            "a MessagePort in the message is not in the transfer list (ports cannot be "
            "cloned: list it, as value.GetPort())");
      }
      case Value::Kind::kArray: {
        ValueArray& a = *src.GetArray();
        dst = Value(ValueArray(a.size()));  // element addresses now fixed
        ValueArray& copy = *dst.GetArray();
        for (size_t i = 0; i < a.size(); ++i) {
          if (absl::Status s = CloneInto(a[i], copy[i], depth + 1); !s.ok()) return s;
        }
        return absl::OkStatus();
      }
      case Value::Kind::kMap: {
        ValueMap& m = *src.GetMap();
        dst = Value::Map();
        ValueMap& copy = *dst.GetMap();
        copy.reserve(m.size());  // entry addresses now fixed
        // The source's keys are unique already: append without the O(n) check.
        for (auto& [key, e] : m) value_internal::MapAccess::Append(copy, key, Value());
        size_t i = 0;
        for (auto& [key, e] : m) {
          if (absl::Status s = CloneInto(e, (copy.begin() + i)->second, depth + 1); !s.ok()) {
            return s;
          }
          ++i;
        }
        return absl::OkStatus();
      }
      default: {
        absl::StatusOr<Value> copy = src.Clone();  // a leaf: no Buffer or port inside
        if (!copy.ok()) return copy.status();
        dst = *std::move(copy);
        return absl::OkStatus();
      }
    }
  }
};

absl::StatusOr<StructuredClone> StructuredClone::Copy(Value& message,
                                                      std::span<const Transferable> transfer,
                                                      const MessagePort* sender) {
  // The list first (O(list)), then one pass over the message.
  std::unordered_set<const Buffer*> buffers;
  std::unordered_set<const MessagePort*> ports;
  for (const Transferable& t : transfer) {
    if (const auto* b = std::get_if<Buffer*>(&t)) {
      if (*b == nullptr) return absl::InvalidArgumentError("null Buffer* in the transfer list");
      if ((*b)->detached()) return CloneError("a Buffer in the transfer list is detached");
      if (!buffers.insert(*b).second) {
        return CloneError("the same Buffer is twice in the transfer list");
      }
    } else if (std::holds_alternative<SharedBuffer*>(t)) {
      return CloneError("a SharedBuffer cannot be transferred (it is shared)");
    } else {
      const MessagePort* p = std::get<MessagePort*>(t);
      if (p == nullptr) return absl::InvalidArgumentError("null MessagePort* in the transfer list");
      if (absl::Status s = CheckTransferable(sender, p); !s.ok()) return s;
      if (!ports.insert(p).second) {
        return CloneError("the same MessagePort is twice in the transfer list");
      }
    }
  }
  StructuredClone clone;
  StructuredCloneBuilder builder{buffers, ports, clone};
  if (absl::Status s = builder.CloneInto(message, *clone.value_, 0); !s.ok()) {
    if (absl::IsFailedPrecondition(s)) return CloneError(std::string(s.message()));
    return s;
  }
  if (builder.found_buffers != buffers.size()) {
    return absl::InvalidArgumentError(
        "a Buffer in the transfer list is not inside the message (list pointers to the "
        "message's own Buffers)");
  }
  if (builder.found_ports != ports.size()) {
    return CloneError(
        "a MessagePort in the transfer list is not inside the message (list the boxed port: "
        "value.GetPort())");
  }
  return clone;
}

namespace {
// The ports inside `v`. No depth limit: the move path accepts any depth, and
// the recursion is no deeper than the Value's own destructor's.
void CollectPorts(Value& v, std::vector<PortSlot*>& out) {
  switch (v.kind()) {
    case Value::Kind::kPort: out.push_back(v.GetPortSlot()); return;
    case Value::Kind::kArray:
      for (Value& e : *v.GetArray()) CollectPorts(e, out);
      return;
    case Value::Kind::kMap:
      for (auto& [key, e] : *v.GetMap()) CollectPorts(e, out);
      return;
    default: return;
  }
}
}  // namespace

absl::StatusOr<StructuredClone> StructuredClone::Move(Value&& message, const MessagePort* sender) {
  StructuredClone clone;
  const Value::Kind kind = message.kind();
  if (kind == Value::Kind::kArray || kind == Value::Kind::kMap || kind == Value::Kind::kPort) {
    CollectPorts(message, clone.moved_ports_);
    for (PortSlot* slot : clone.moved_ports_) {
      if (slot->get() == nullptr) {
        return CloneError("the message holds a moved-from MessagePort value");
      }
      if (absl::Status s = CheckTransferable(sender, slot->get()); !s.ok()) return s;
    }
  }
  *clone.value_ = std::move(message);
  // Nested slots kept their addresses (they live in the arrays' and maps'
  // heap storage, which moved with the value); a port at the root moved
  // into value_.
  if (kind == Value::Kind::kPort) clone.moved_ports_[0] = clone.value_->GetPortSlot();
  return clone;
}

Value& StructuredClone::Commit() {
  for (const BufferMove& m : buffers_) *m.dst = Value(std::move(*m.src));
  for (const PortMove& m : ports_) {
    PortAccess::DetachForTransfer(*m.src->get());
    *m.dst = Value(m.src->Take());  // the sender's slot keeps an empty port
  }
  for (PortSlot* slot : moved_ports_) PortAccess::DetachForTransfer(*slot->get());
  return *value_;
}

void StructuredClone::Rollback() {
  for (const BufferMove& m : buffers_) *m.src = std::move(*m.dst->GetBuffer());
  for (const PortMove& m : ports_) *m.src = std::move(*m.dst->GetPortSlot());
  buffers_.clear();
  ports_.clear();
}

}  // namespace wharf
