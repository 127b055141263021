// Internal: PortSlot, the owning, move-only box in which a Value keeps a
// MessagePort.
//
// Why a box: message_port.h needs Value (ports send Values) and a Value can
// hold a MessagePort, but Bazel forbids the cycle :value <-> :message_port.
// Value keeps the port boxed: a pointer to a heap MessagePort plus a table of
// the operations Value needs on it (destroy, move into a new box, compare,
// validity). The table and the constructor Value(MessagePort&&) are defined
// in message_port.cc, so :value links alone (a binary that never links
// :message_port can never hold a port) and the port costs a Value 16 bytes.

#ifndef WHARF_RUNTIME_INTERNAL_PORT_SLOT_H_
#define WHARF_RUNTIME_INTERNAL_PORT_SLOT_H_

#include <utility>

namespace wharf {

class MessagePort;

// Made by Value(MessagePort&&) (message_port.cc) and Take().
// A moved-from slot holds nothing (get() == nullptr).
class PortSlot {
 public:
  struct Ops {
    void (*destroy)(MessagePort* port);
    MessagePort* (*take)(MessagePort* port);  // a new box moved from *port (left empty)
    bool (*same)(const MessagePort& a, const MessagePort& b);  // same end of a channel
    bool (*valid)(const MessagePort& port);
  };

  PortSlot() = default;
  PortSlot(MessagePort* port, const Ops* ops) : port_(port), ops_(ops) {}
  PortSlot(PortSlot&& other) noexcept
      : port_(std::exchange(other.port_, nullptr)), ops_(other.ops_) {}
  PortSlot& operator=(PortSlot&& other) noexcept {
    if (this != &other) {
      Reset();
      port_ = std::exchange(other.port_, nullptr);
      ops_ = other.ops_;
    }
    return *this;
  }
  PortSlot(const PortSlot&) = delete;
  PortSlot& operator=(const PortSlot&) = delete;
  ~PortSlot() { Reset(); }

  MessagePort* get() const { return port_; }
  // True when the box holds a usable (not moved-from / transferred) port.
  bool valid() const { return port_ != nullptr && ops_->valid(*port_); }
  // Moves the port into a new slot; this one keeps an empty, invalid port
  // (what a transferred port leaves behind). Needs get() != nullptr.
  PortSlot Take() { return PortSlot(ops_->take(port_), ops_); }

  // Both empty, or boxes of the same end of the same channel.
  friend bool operator==(const PortSlot& a, const PortSlot& b) {
    if (a.port_ == nullptr || b.port_ == nullptr) return a.port_ == b.port_;
    return a.ops_->same(*a.port_, *b.port_);
  }

 private:
  void Reset() {
    if (port_ != nullptr) ops_->destroy(std::exchange(port_, nullptr));
  }
  MessagePort* port_ = nullptr;
  const Ops* ops_ = nullptr;
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_INTERNAL_PORT_SLOT_H_
