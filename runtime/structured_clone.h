// StructuredClone: JavaScript's structured clone with a transfer list, the
// one implementation behind MessagePort::PostMessage, Worker::Start's
// worker_data and every other hand-over of a Value to another actor.
//
//   absl::StatusOr<wharf::StructuredClone> clone =
//       wharf::StructuredClone::Copy(message, transfer);   // nothing moved yet
//   if (!clone.ok()) return clone.status();                 // DataCloneError...
//   wharf::Value& out = clone->Commit();                    // transferred items move
//   if (!Send(std::move(out)).ok()) clone->Rollback();      // ...or come back
//
// Copy(message, transfer): one pass over `message` builds a deep copy in
// which the Buffers and MessagePorts named in `transfer` are not copied but
// are to be moved (zero copy; the sender's are left detached after Commit);
// other Buffers are copied, SharedBuffers shared. Ports are never copied: a
// port in the message must be in the list. Move(message): the whole message
// changes hands (nothing is copied); the ports inside it are checked and
// detached just as listed ones are.
//
// Errors (nothing moved, `message` unchanged): InvalidArgument
// "DataCloneError: ..." for a detached Buffer (in the list, or in the message
// and not listed), an item listed twice, a SharedBuffer in the list, a port
// that is detached, closed, not listed, or the sending port or its peer,
// nesting deeper than kMaxDepth; InvalidArgument for a null pointer or a
// listed item that is not inside the message.
//
// Commit() cannot fail: it moves the listed Buffers and ports into the copy
// and detaches each port from its loop (its handlers are dropped; the new
// owner attaches its own). Rollback(), after a failed hand-over, gives them
// back to the sender's message (ports stay stopped).
//
// Thread-safety: the calling thread must own `message` and the ports in it
// (a started port: its loop's thread).

#ifndef WHARF_RUNTIME_STRUCTURED_CLONE_H_
#define WHARF_RUNTIME_STRUCTURED_CLONE_H_

#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {

class MessagePort;

// An item of a transfer list: a Buffer or a MessagePort inside the message
// (moved), or — always refused, as in JS — a SharedBuffer.
using Transferable = std::variant<Buffer*, SharedBuffer*, MessagePort*>;

class StructuredClone {
 public:
  // Arrays and maps nested deeper than this are refused.
  static constexpr int kMaxDepth = 128;

  // `sender`: the port the message goes out on (it and its peer may not
  // travel in it), or null.
  static absl::StatusOr<StructuredClone> Copy(Value& message,
                                              std::span<const Transferable> transfer,
                                              const MessagePort* sender = nullptr);
  static absl::StatusOr<StructuredClone> Move(Value&& message,
                                              const MessagePort* sender = nullptr);

  StructuredClone(StructuredClone&&) noexcept = default;
  StructuredClone& operator=(StructuredClone&&) noexcept = default;

  // Moves the transferred items into the clone and returns it (once).
  Value& Commit();
  // Gives the transferred items back (after Commit, before the clone is sent).
  void Rollback();
  // The clone (complete after Commit).
  Value& value() { return *value_; }

 private:
  struct BufferMove {
    Value* dst;
    Buffer* src;
  };
  struct PortMove {
    Value* dst;
    PortSlot* src;
  };
  StructuredClone() = default;
  friend struct StructuredCloneBuilder;

  // Boxed: the moves point into it, also at its root.
  std::unique_ptr<Value> value_ = std::make_unique<Value>();
  std::vector<BufferMove> buffers_;
  std::vector<PortMove> ports_;
  std::vector<PortSlot*> moved_ports_;  // Move(): ports travelling in value_
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_STRUCTURED_CLONE_H_
