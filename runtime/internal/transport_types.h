// Internal: what a port transport's TrySend reports (port_transport.h).

#ifndef WHARF_RUNTIME_INTERNAL_TRANSPORT_TYPES_H_
#define WHARF_RUNTIME_INTERNAL_TRANSPORT_TYPES_H_

#include <cstdint>

namespace wharf::runtime_internal {

enum class SendResult : uint8_t {
  kOk,        // queued; the message was moved from
  kClosed,    // the channel is closed
  kFull,      // a bounded direction holds `capacity` messages
  kNoMemory,  // the queue could not grow
  kInvalid,   // the message cannot travel on this transport (the status says why)
  kBusy,      // no room in the transport now, though the port is under its
              // capacity (a shared-memory ring is full): WaitWritable, retry
  kMoved,     // the channel moved to another transport (one end went to another
              // process): send again on the port's current transport
};

}  // namespace wharf::runtime_internal

#endif  // WHARF_RUNTIME_INTERNAL_TRANSPORT_TYPES_H_
