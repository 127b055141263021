#include "wharf/runtime/internal/shm_channel.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/internal/fd_passing.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf::runtime_internal {
namespace {

constexpr uint8_t kFrameMagic = 'F';
constexpr uint8_t kOutOfLine = 1;

struct FrameHeader {
  uint8_t magic;
  uint8_t flags;
  uint16_t nshared;
  uint32_t nfds;
  uint64_t seq;
  uint64_t body_bytes;
};
static_assert(sizeof(FrameHeader) == 24);

struct BodyHeader {
  uint64_t value_bytes;
  uint32_t nbuffers;
  uint32_t zero;
};
static_assert(sizeof(BodyHeader) == 16);

// Whether the message has something the codec can only put in a table.
bool NeedsTable(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kSharedBuffer:
    case Value::Kind::kPort:
      return true;
    case Value::Kind::kArray:
      for (const Value& e : *v.GetArray()) {
        if (NeedsTable(e)) return true;
      }
      return false;
    case Value::Kind::kMap:
      for (const auto& [k, e] : *v.GetMap()) {
        if (NeedsTable(e)) return true;
      }
      return false;
    default:
      return false;
  }
}

template <class T>
void Append(std::string& out, const T& t) {
  out.append(reinterpret_cast<const char*>(&t), sizeof t);
}

}  // namespace

absl::StatusOr<ShmChannelEnd> ShmChannelEnd::Open(std::shared_ptr<ShmLink> link, int end) {
  absl::StatusOr<ShmRing> send = ShmRing::Attach(link->ring(end), link->ring_bytes());
  if (!send.ok()) return send.status();
  absl::StatusOr<ShmRing> receive = ShmRing::Attach(link->ring(1 - end), link->ring_bytes());
  if (!receive.ok()) return receive.status();
  return ShmChannelEnd{std::move(link), end, *send, *receive};
}

ShmChannel::ShmChannel(ShmChannelEnd end, int local_side, size_t capacity)
    : end_(std::move(end)), local_side_(local_side), capacity_(capacity) {}

SendResult ShmChannel::TrySend(int to, Value& message, absl::Status& why) {
  (void)to;  // always the peer's side
  // No closed() check here: every way the channel closes sets the send
  // ring's closed bits (Close, the peer's Close, PeerGone), which TryWrite
  // checks — one place, after its S fence.
  // Encode. Without a table nothing in `message` changes (Buffers are copied
  // inline), so a send that fails later needs nothing given back; with one,
  // the Buffers and ports move into the table and a failed send decodes
  // them back into `message`.
  TransferTable table;
  const bool with_table = NeedsTable(message);
  absl::StatusOr<std::string> encoded =
      with_table ? EncodeValue(message, &table) : EncodeValue(std::as_const(message));
  if (!encoded.ok()) {
    why = absl::InvalidArgumentError(
        absl::StrCat("DataCloneError: cannot send to another process: ", encoded.status().message()));
    return SendResult::kInvalid;
  }
  const auto give_back = [&] {
    if (with_table) message = DecodeValue(*encoded, &table).value();  // our own bytes: valid
  };
  if (!table.ports.empty()) {
    give_back();
    why = absl::InvalidArgumentError(
        "DataCloneError: a MessagePort cannot be sent to another process yet (post it to a "
        "thread worker, or create the channel inside the process that uses it)");
    return SendResult::kInvalid;
  }
  // The record: the plain encoding, or a frame.
  std::string framed;
  std::vector<int> fds;
  std::optional<SharedBuffer> out_of_line;
  const std::string* record = &*encoded;
  if (with_table || encoded->size() > end_.send.max_record()) {
    std::string body;
    const size_t buffer_bytes = [&] {
      size_t n = 0;
      for (const Buffer& b : table.buffers) n += b.size();
      return n;
    }();
    body.reserve(sizeof(BodyHeader) + 8 * table.buffers.size() + encoded->size() + buffer_bytes);
    Append(body, BodyHeader{encoded->size(), static_cast<uint32_t>(table.buffers.size()), 0});
    for (const Buffer& b : table.buffers) Append(body, static_cast<uint64_t>(b.size()));
    body += *encoded;
    for (const Buffer& b : table.buffers) {
      body.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    for (const SharedBuffer& sb : table.shared_buffers) fds.push_back(sb.fd());
    FrameHeader h{kFrameMagic, 0, static_cast<uint16_t>(table.shared_buffers.size()), 0, 0,
                  body.size()};
    if (table.shared_buffers.size() + 1 > static_cast<size_t>(kMaxFds)) {
      give_back();
      why = absl::InvalidArgumentError(absl::StrCat(
          "DataCloneError: a message to another process may hold at most ", kMaxFds - 1,
          " SharedBuffers (this one holds ", table.shared_buffers.size(), ")"));
      return SendResult::kInvalid;
    }
    if (sizeof(FrameHeader) + body.size() > end_.send.max_record()) {
      absl::StatusOr<SharedBuffer> mem = SharedBuffer::Create(body.size());
      if (!mem.ok()) {
        give_back();
        return SendResult::kNoMemory;
      }
      std::memcpy(mem->data(), body.data(), body.size());
      fds.push_back(mem->fd());
      out_of_line = *std::move(mem);
      h.flags = kOutOfLine;
      body.clear();
    }
    h.nfds = static_cast<uint32_t>(fds.size());
    framed.reserve(sizeof h + body.size());
    Append(framed, h);  // seq filled in under the lock
    framed += body;
    record = &framed;
  }
  MutexLock lock(send_mu_);
  if (capacity_ != 0 && end_.send.Unread() >= capacity_) {
    last_full_bytes_.store(0, std::memory_order_relaxed);
    give_back();
    // Full, or closed (a closed port stays "full": its reader reads no more).
    return end_.send.reader_closed() || end_.send.writer_closed() ? SendResult::kClosed
                                                                  : SendResult::kFull;
  }
  // Room is checked before descriptors are sent (a batch no record names is
  // wasted); a plain record lets TryWrite check it (from its cached view of
  // the reader's cursor: no load of the reader's line per message).
  if (!fds.empty() && !end_.send.Fits(record->size())) {
    last_full_bytes_.store(record->size(), std::memory_order_relaxed);
    give_back();
    return end_.send.reader_closed() || end_.send.writer_closed() ? SendResult::kClosed
                                                                  : SendResult::kBusy;
  }
  if (!fds.empty()) {
    const uint64_t seq = ++fd_seq_;
    std::memcpy(framed.data() + offsetof(FrameHeader, seq), &seq, sizeof seq);
    if (absl::Status s = SendFds(end_.link->socket(end_.end), seq, fds); !s.ok()) {
      give_back();
      if (s.code() == absl::StatusCode::kFailedPrecondition) return SendResult::kClosed;
      why = absl::ResourceExhaustedError(absl::StrCat("cannot hand descriptors to the peer: ",
                                                      s.message()));
      return SendResult::kInvalid;
    }
  }
  switch (end_.send.TryWrite(*record)) {
    case RingWrite::kOk:
      message = Value();  // sent: moved from
      return SendResult::kOk;
    case RingWrite::kFull:  // a plain record (a framed one was checked under the lock)
      last_full_bytes_.store(record->size(), std::memory_order_relaxed);
      give_back();
      return SendResult::kBusy;
    case RingWrite::kTooLarge:  // ruled out above
    case RingWrite::kClosed:
      give_back();
      return SendResult::kClosed;
    case RingWrite::kCorrupt:
      give_back();
      why = absl::DataLossError(
          "the shared-memory ring to the peer process is corrupt (its cursors were overwritten)");
      return SendResult::kInvalid;
  }
  return SendResult::kClosed;
}

absl::StatusOr<Value> ShmChannel::DecodeRecord(const std::string& record) {
  if (record.empty()) return absl::InvalidArgumentError("messageerror: an empty record");
  if (static_cast<uint8_t>(record[0]) != kFrameMagic) return DecodeValue(record);
  FrameHeader h;
  if (record.size() < sizeof h) {
    return absl::DataLossError("messageerror: a frame shorter than its header");
  }
  std::memcpy(&h, record.data(), sizeof h);
  const bool oob = (h.flags & kOutOfLine) != 0;
  if ((h.flags & ~kOutOfLine) != 0 || h.nfds != h.nshared + (oob ? 1u : 0u) ||
      h.nfds > static_cast<uint32_t>(kMaxFds)) {
    return absl::InvalidArgumentError(absl::StrCat("messageerror: a frame with flags ", h.flags,
                                                   ", ", h.nshared, " SharedBuffers and ", h.nfds,
                                                   " descriptors"));
  }
  std::vector<sync_internal::FdGuard> fds;
  if (h.nfds != 0) {
    absl::StatusOr<std::vector<sync_internal::FdGuard>> got =
        ReceiveFds(end_.link->socket(end_.end), h.seq, static_cast<int>(h.nfds));
    if (!got.ok()) return absl::DataLossError(absl::StrCat("messageerror: ", got.status().message()));
    fds = *std::move(got);
  }
  TransferTable table;
  for (uint32_t i = 0; i < h.nshared; ++i) {
    absl::StatusOr<SharedBuffer> sb = SharedBuffer::FromFd(fds[i].get());
    if (!sb.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("messageerror: SharedBuffer #", i, " of the message: ", sb.status().message()));
    }
    table.shared_buffers.push_back(*std::move(sb));
  }
  // The body: after the header, or copied out of its memfd (the sender may
  // still map it: nothing is parsed in memory the peer can change).
  std::string oob_body;
  std::string_view body;
  if (oob) {
    absl::StatusOr<SharedBuffer> mem = SharedBuffer::FromFd(fds[h.nshared].get());
    if (!mem.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("messageerror: the out-of-line body: ", mem.status().message()));
    }
    if (h.body_bytes != mem->size() || record.size() != sizeof h) {
      return absl::InvalidArgumentError(absl::StrCat("messageerror: an out-of-line body of ",
                                                     mem->size(), " bytes where the frame says ",
                                                     h.body_bytes));
    }
    oob_body.assign(reinterpret_cast<const char*>(mem->data()), mem->size());
    body = oob_body;
  } else {
    if (h.body_bytes != record.size() - sizeof h) {
      return absl::DataLossError("messageerror: a frame whose body length does not match");
    }
    body = std::string_view(record).substr(sizeof h);
  }
  BodyHeader b;
  if (body.size() < sizeof b) return absl::DataLossError("messageerror: a truncated body");
  std::memcpy(&b, body.data(), sizeof b);
  const size_t sizes_end = sizeof b + 8 * static_cast<size_t>(b.nbuffers);
  if (b.zero != 0 || b.nbuffers > body.size() / 8 || sizes_end > body.size() ||
      b.value_bytes > body.size() - sizes_end) {
    return absl::DataLossError("messageerror: a body whose sizes do not fit it");
  }
  size_t pos = sizes_end + b.value_bytes;
  for (uint32_t i = 0; i < b.nbuffers; ++i) {
    uint64_t n;
    std::memcpy(&n, body.data() + sizeof b + 8 * i, sizeof n);
    if (n > body.size() - pos) return absl::DataLossError("messageerror: a Buffer past the body");
    absl::StatusOr<Buffer> buf = Buffer::CopyFrom(
        std::as_bytes(std::span<const char>(body.data() + pos, static_cast<size_t>(n))));
    if (!buf.ok()) return buf.status();
    table.buffers.push_back(*std::move(buf));
    pos += n;
  }
  if (pos != body.size()) return absl::DataLossError("messageerror: bytes after the last Buffer");
  return DecodeValue(body.substr(sizeof b + 8 * static_cast<size_t>(b.nbuffers), b.value_bytes),
                     &table);
}

bool ShmChannel::ReadOne(Value& out) {
  if (broken_) return false;
  absl::StatusOr<bool> got = end_.receive.TryRead(record_);
  if (!got.ok()) {
    broken_ = true;  // the framing is lost: this error, then the close
    errors_.push_back(absl::DataLossError(absl::StrCat("messageerror: ", got.status().message())));
    Close();
    return false;
  }
  if (!*got) return false;
  absl::StatusOr<Value> v = DecodeRecord(record_);
  if (record_.capacity() > (size_t{64} << 10)) std::string().swap(record_);  // keep no big buffer
  if (!v.ok()) {
    errors_.push_back(v.status());
    return false;
  }
  out = *std::move(v);
  return true;
}

bool ShmChannel::TryTake(int side, Value& out) {
  if (!errors_.empty()) return false;  // in order: the error first
  return ReadOne(out);
}

bool ShmChannel::TakeError(int side, absl::Status& out) {
  if (errors_.empty()) return false;
  out = std::move(errors_.front());
  errors_.pop_front();
  return true;
}

bool ShmChannel::Readable(int side) {
  return !errors_.empty() || (!broken_ && end_.receive.Readable()) || PeerGoneNow() ||
         local_closed_.load(std::memory_order_relaxed);
}

bool ShmChannel::Drained(int side) {
  if (!errors_.empty()) return false;
  if (broken_) return true;
  if (PeerGoneNow()) return end_.receive.Empty();
  return end_.receive.Drained();
}

void ShmChannel::Close() {
  if (local_closed_.exchange(true, std::memory_order_acq_rel)) return;
  end_.send.CloseWriter();
  end_.receive.CloseReader();
}

bool ShmChannel::closed() const {
  return local_closed_.load(std::memory_order_acquire) || PeerGoneNow() ||
         end_.receive.writer_closed() || end_.send.reader_closed();
}

absl::Status ShmChannel::CloseCause(int side) const {
  if (PeerGoneNow()) {
    MutexLock lock(cause_mu_);
    return gone_cause_;
  }
  return absl::CancelledError("port closed");
}

bool ShmChannel::WaitReadable(int side, absl::Time deadline) {
  return end_.receive.WaitReadableUntil(
      [&] { return Readable(side) || Drained(side); }, deadline);
}

bool ShmChannel::WaitWritable(int to, absl::Time deadline) {
  return end_.send.WaitWritableUntil(
      [&] {
        if (closed()) return true;
        if (capacity_ != 0 && end_.send.Unread() >= capacity_) return false;
        return end_.send.Fits(last_full_bytes_.load(std::memory_order_relaxed));
      },
      deadline);
}

int ShmChannel::ArmSleep(int side, std::span<FutexWaitEntry> out) {
  if (out.empty()) return 0;
  sync_internal::EventCount& ev = end_.receive.readable_event();
  out[0] = FutexWaitEntry{ev.word(), ev.PrepareWait(), ev.scope()};
  armed_ = true;
  return 1;
}

void ShmChannel::DisarmSleep(int side, int woken) {
  if (!armed_) return;
  armed_ = false;
  end_.receive.readable_event().CancelWait();
}

void ShmChannel::PeerGone(absl::Status cause) {
  {
    MutexLock lock(cause_mu_);
    if (peer_gone_.load(std::memory_order_relaxed)) return;
    gone_cause_ = std::move(cause);
    peer_gone_.store(true, std::memory_order_release);
  }
  // Nobody reads our ring any more: sends fail from now on (the bit is the
  // dead reader's to set; setting it for it is harmless).
  end_.send.CloseReader();
  // Wake this process's sleepers on either ring: they re-check and see it.
  end_.receive.readable_event().NotifyAll();
  end_.send.writable_event().NotifyAll();
}

}  // namespace wharf::runtime_internal
