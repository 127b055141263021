#include "wharf/runtime/internal/shm_channel.h"

#include "wharf/runtime/internal/peer_watch.h"
#include "wharf/sync/internal/thread_identity.h"

#include <algorithm>
#include <mutex>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/internal/deferred_release.h"
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
  uint16_t nports;
  uint16_t nbufmem;  // Buffers in shared memory (crossing as their memfd)
  uint32_t nfds;
  uint32_t zero1;
  uint64_t seq;
  uint64_t body_bytes;
};
static_assert(sizeof(FrameHeader) == 32);

struct BodyHeader {
  uint64_t value_bytes;
  uint32_t nbuffers;
  uint32_t zero;
};
static_assert(sizeof(BodyHeader) == 16);

struct PortEntry {
  uint32_t end;
  uint32_t on_full;
  uint64_t capacity;
  int64_t block_timeout_ns;
};
static_assert(sizeof(PortEntry) == 24);

constexpr char kErrorMagic = 'E';
// In a body's Buffer size: the Buffer is in shared memory and crosses as a
// descriptor (no bytes in the body).
constexpr uint64_t kSharedBufferBit = uint64_t{1} << 63;

std::atomic<const PortHooks*> port_hooks{nullptr};

// Closes both directions of ports that left in a message that was then not
// sent: their peers see a closed port (as with a message dropped at close).
void CloseExported(std::vector<ExportedPort>& ports) {
  for (ExportedPort& p : ports) {
    absl::StatusOr<ShmChannelEnd> e = ShmChannelEnd::Open(p.link, p.end);
    if (!e.ok()) continue;
    e->send.CloseWriter();
    e->receive.CloseReader();
  }
  ports.clear();
}

// Whether the message has something the codec can only put in a table.
bool NeedsTable(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kSharedBuffer:
    case Value::Kind::kPort:
      return true;
    case Value::Kind::kBuffer:
      return v.GetBuffer()->shared();  // crosses as its memory, through the table
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

void SetPortHooks(const PortHooks* hooks) { port_hooks.store(hooks, std::memory_order_release); }

absl::StatusOr<ShmChannelEnd> ShmChannelEnd::Open(std::shared_ptr<ShmLink> link, int end) {
  absl::StatusOr<ShmRing> send = ShmRing::Attach(link->ring(end), link->ring_bytes());
  if (!send.ok()) return send.status();
  absl::StatusOr<ShmRing> receive = ShmRing::Attach(link->ring(1 - end), link->ring_bytes());
  if (!receive.ok()) return receive.status();
  return ShmChannelEnd{std::move(link), end, *send, *receive};
}

ShmChannel::ShmChannel(ShmChannelEnd end, int local_side, size_t capacity)
    : end_(std::move(end)), local_side_(local_side), capacity_(capacity) {
  end_.link->header().holder[end_.end].store(ShmLink::ThisProcess(), std::memory_order_release);
  if (end_.watch_peer) {
    watched_.store(true, std::memory_order_relaxed);
    PeerWatch::Add(this);
  }
}

ShmChannel::~ShmChannel() { StopWatchingPeer(); }

void ShmChannel::StopWatchingPeer() {
  if (watched_.exchange(false, std::memory_order_acq_rel)) PeerWatch::Remove(this);
}

void ShmChannel::Leaving() {
  StopWatchingPeer();
  // Before the record that carries the end is written: a watcher that finds
  // this process dead later must not take it for the holder.
  uint64_t mine = ShmLink::ThisProcess();
  end_.link->header().holder[end_.end].compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
}

void ShmChannel::CheckPeer() {
  if (PeerGoneNow() || local_closed_.load(std::memory_order_relaxed)) return;
  std::atomic<uint64_t>& slot = end_.link->header().holder[1 - end_.end];
  const uint64_t holder = slot.load(std::memory_order_acquire);
  if (holder == 0 || holder == ShmLink::ThisProcess()) return;  // in transit, or us
  if (sync_internal::CheckOwner(holder) != sync_internal::OwnerState::kDead) return;
  // Still the holder after it was found dead: not an end handed on meanwhile.
  if (slot.load(std::memory_order_acquire) != holder) return;
  PeerGone(absl::AbortedError(absl::StrCat("port closed: the process holding the other end (pid ",
                                           sync_internal::OwnerTid(holder), ") died")));
}

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
  // The plain encoding goes into this thread's reused buffer (no allocation
  // per message once it has grown). Re-entry (a port leaving in a message
  // moves its channel, which sends its queue) happens only for messages with
  // a table, whose bytes are not in the buffer.
  thread_local std::string scratch;
  std::string* encoded = &scratch;
  std::string with_table_bytes;
  absl::Status encoding;
  if (with_table) {
    absl::StatusOr<std::string> e = EncodeValue(message, &table);
    encoding = e.status();
    if (e.ok()) with_table_bytes = *std::move(e);
    encoded = &with_table_bytes;
  } else {
    encoding = EncodeValueTo(message, &scratch);
  }
  if (!encoding.ok()) {
    why = absl::InvalidArgumentError(
        absl::StrCat("DataCloneError: cannot send to another process: ", encoding.message()));
    return SendResult::kInvalid;
  }
  if (scratch.capacity() > (size_t{64} << 10)) {
    // Keep no large buffer per thread: a big message's bytes are copied below.
    with_table_bytes.swap(scratch);
    encoded = &with_table_bytes;
  }
  const auto give_back = [&] {
    if (with_table) UndoEncode(message, table);  // in place: a clone points into `message`
  };
  const PortHooks* hooks = port_hooks.load(std::memory_order_acquire);
  if (!table.ports.empty()) {
    absl::Status bad = hooks == nullptr ? absl::InvalidArgumentError(
                                              "DataCloneError: MessagePorts cannot cross processes "
                                              "in this program")
                                        : absl::OkStatus();
    for (const PortSlot& p : table.ports) {
      if (bad.ok()) bad = hooks->check(p);
    }
    if (!bad.ok()) {
      give_back();
      why = std::move(bad);
      return SendResult::kInvalid;
    }
  }
  const size_t nshared = table.shared_buffers.size();
  const size_t nports = table.ports.size();
  size_t nbufmem = 0;
  for (const Buffer& b : table.buffers) nbufmem += b.shared() ? 1 : 0;
  if (nshared + 2 * nports + nbufmem + 1 > static_cast<size_t>(kMaxFds) || nports > 0xffff) {
    give_back();
    why = absl::InvalidArgumentError(absl::StrCat(
        "DataCloneError: a message to another process may hold at most ", kMaxFds - 1,
        " descriptors' worth of SharedBuffers and shared Buffers (1 each) and MessagePorts (2 "
        "each); this one has ",
        nshared + nbufmem, " and ", nports));
    return SendResult::kInvalid;
  }
  // The record: the plain encoding, or a frame (its port entries are filled
  // in once the ports have left, under the lock).
  std::string framed;
  std::string body;
  bool out_of_line = false;
  size_t ports_at = 0;  // offset of the port entries in `body`
  const std::string* record = encoded;
  const bool frame = with_table || encoded->size() > end_.send.max_record();
  if (frame) {
    size_t buffer_bytes = 0;
    for (const Buffer& b : table.buffers) buffer_bytes += b.shared() ? 0 : b.size();
    body.reserve(sizeof(BodyHeader) + 8 * table.buffers.size() + sizeof(PortEntry) * nports +
                 encoded->size() + buffer_bytes);
    Append(body, BodyHeader{encoded->size(), static_cast<uint32_t>(table.buffers.size()), 0});
    for (const Buffer& b : table.buffers) {
      Append(body, static_cast<uint64_t>(b.size()) | (b.shared() ? kSharedBufferBit : 0));
    }
    ports_at = body.size();
    body.append(sizeof(PortEntry) * nports, '\0');
    body += *encoded;
    for (const Buffer& b : table.buffers) {
      if (!b.shared()) body.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    out_of_line = sizeof(FrameHeader) + body.size() > end_.send.max_record();
    const size_t nfds = nshared + 2 * nports + nbufmem + (out_of_line ? 1 : 0);
    const FrameHeader h{kFrameMagic, static_cast<uint8_t>(out_of_line ? kOutOfLine : 0),
                        static_cast<uint16_t>(nshared), static_cast<uint16_t>(nports),
                        static_cast<uint16_t>(nbufmem), static_cast<uint32_t>(nfds), 0, 0,
                        body.size()};
    Append(framed, h);  // seq filled in under the lock
    if (!out_of_line) framed += body;
    record = &framed;
  }
  std::lock_guard<sync_internal::SpinLock> lock(send_mu_);
  if (capacity_ != 0 && end_.send.Unread() >= capacity_) {
    last_full_bytes_.store(0, std::memory_order_relaxed);
    give_back();
    // Full, or closed (a closed port stays "full": its reader reads no more).
    return end_.send.reader_closed() || end_.send.writer_closed() ? SendResult::kClosed
                                                                  : SendResult::kFull;
  }
  // Room is checked before anything leaves (ports, descriptors); a plain
  // record lets TryWrite check it (from its cached view of the reader's
  // cursor: no load of the reader's line per message).
  if (frame && !end_.send.Fits(record->size())) {
    last_full_bytes_.store(record->size(), std::memory_order_relaxed);
    give_back();
    return end_.send.reader_closed() || end_.send.writer_closed() ? SendResult::kClosed
                                                                  : SendResult::kBusy;
  }
  std::vector<ExportedPort> exported;
  std::optional<SharedBuffer> out_of_line_body;
  if (frame) {
    std::vector<int> fds;
    for (const SharedBuffer& sb : table.shared_buffers) fds.push_back(sb.fd());
    for (size_t i = 0; i < nports; ++i) {
      absl::StatusOr<ExportedPort> e = hooks->export_port(table.ports[i]);
      if (!e.ok()) {
        CloseExported(exported);
        give_back();
        why = e.status();
        return SendResult::kInvalid;
      }
      const PortEntry entry{static_cast<uint32_t>(e->end), e->on_full, e->capacity,
                            e->block_timeout_ns};
      std::memcpy(body.data() + ports_at + i * sizeof(PortEntry), &entry, sizeof entry);
      exported.push_back(*std::move(e));
    }
    for (const ExportedPort& e : exported) {
      fds.push_back(e.link->memfd());
      fds.push_back(e.link->socket(e.end));
    }
    for (const Buffer& b : table.buffers) {
      if (b.shared()) fds.push_back(b.shared_memory()->fd());
    }
    if (out_of_line) {
      absl::StatusOr<SharedBuffer> mem = SharedBuffer::Create(body.size());
      if (!mem.ok()) {
        CloseExported(exported);
        give_back();
        return SendResult::kNoMemory;
      }
      std::memcpy(mem->data(), body.data(), body.size());
      fds.push_back(mem->fd());
      out_of_line_body = *std::move(mem);
    } else {
      std::memcpy(framed.data() + sizeof(FrameHeader) + ports_at, body.data() + ports_at,
                  sizeof(PortEntry) * nports);
    }
    if (!fds.empty()) {
      const uint64_t seq = end_.send.NextFdBatch();
      std::memcpy(framed.data() + offsetof(FrameHeader, seq), &seq, sizeof seq);
      if (absl::Status st = SendFds(end_.link->socket(end_.end), seq, fds); !st.ok()) {
        CloseExported(exported);
        give_back();
        if (st.code() == absl::StatusCode::kFailedPrecondition) return SendResult::kClosed;
        why = absl::ResourceExhaustedError(
            absl::StrCat("cannot hand descriptors to the peer: ", st.message()));
        return SendResult::kInvalid;
      }
    }
  }
  const auto failed = [&] {
    CloseExported(exported);
    give_back();
  };
  switch (end_.send.TryWrite(*record)) {
    case RingWrite::kOk:
      message = Value();  // sent: moved from
      // The sender's mappings of transferred shared Buffers go off this
      // thread's path (their unmap costs in proportion to their size).
      for (Buffer& b : table.buffers) {
        if (b.shared()) DeferRelease(std::move(b));
      }
      return SendResult::kOk;
    case RingWrite::kFull:  // a plain record (a framed one was checked under the lock)
      last_full_bytes_.store(record->size(), std::memory_order_relaxed);
      failed();
      return SendResult::kBusy;
    case RingWrite::kTooLarge:  // ruled out above
    case RingWrite::kClosed:
      failed();
      return SendResult::kClosed;
    case RingWrite::kCorrupt:
      failed();
      why = absl::DataLossError(
          "the shared-memory ring to the peer process is corrupt (its cursors were overwritten)");
      return SendResult::kInvalid;
  }
  return SendResult::kClosed;
}

void ShmChannel::WriteErrorRecord(std::string_view why) {
  std::string record(1, kErrorMagic);
  record.append(why.substr(0, std::min<size_t>(why.size(), 4096)));
  std::lock_guard<sync_internal::SpinLock> lock(send_mu_);
  (void)end_.send.TryWrite(record);
}

absl::StatusOr<Value> ShmChannel::DecodeRecord(const std::string& record) {
  if (record.empty()) return absl::InvalidArgumentError("messageerror: an empty record");
  if (record[0] == kErrorMagic) {
    return absl::InvalidArgumentError(absl::StrCat(
        "messageerror: a message queued before this port moved here could not cross: ",
        record.substr(1)));
  }
  if (static_cast<uint8_t>(record[0]) != kFrameMagic) return DecodeValue(record);
  FrameHeader h;
  if (record.size() < sizeof h) {
    return absl::DataLossError("messageerror: a frame shorter than its header");
  }
  std::memcpy(&h, record.data(), sizeof h);
  const bool oob = (h.flags & kOutOfLine) != 0;
  if ((h.flags & ~kOutOfLine) != 0 || h.zero1 != 0 ||
      h.nfds != uint32_t{h.nshared} + 2u * h.nports + h.nbufmem + (oob ? 1u : 0u) ||
      h.nfds > static_cast<uint32_t>(kMaxFds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("messageerror: a frame with flags ", h.flags, ", ", h.nshared,
                     " SharedBuffers, ", h.nports, " ports and ", h.nfds, " descriptors"));
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
    absl::StatusOr<SharedBuffer> mem = SharedBuffer::FromFd(fds[h.nfds - 1].get());
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
  const size_t ports_end = sizes_end + sizeof(PortEntry) * h.nports;
  if (b.zero != 0 || b.nbuffers > body.size() / 8 || ports_end > body.size() ||
      b.value_bytes > body.size() - ports_end) {
    return absl::DataLossError("messageerror: a body whose sizes do not fit it");
  }
  // Ports: each becomes a port of this process on the link end it names
  // (the descriptors are taken over even if a later check fails).
  const PortHooks* hooks = port_hooks.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < h.nports; ++i) {
    PortEntry e;
    std::memcpy(&e, body.data() + sizes_end + i * sizeof e, sizeof e);
    sync_internal::FdGuard& memfd = fds[h.nshared + 2 * i];
    sync_internal::FdGuard& socket = fds[h.nshared + 2 * i + 1];
    if (e.end > 1 || e.on_full > 1 || hooks == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("messageerror: port #", i, " names end ",
                                                     e.end, " and policy ", e.on_full));
    }
    absl::StatusOr<std::shared_ptr<ShmLink>> link = ShmLink::Attach(memfd.release(), socket.release());
    if (!link.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("messageerror: port #", i, ": ", link.status().message()));
    }
    table.ports.push_back(hooks->import_port(ExportedPort{*std::move(link), static_cast<int>(e.end),
                                                          e.capacity, e.on_full,
                                                          e.block_timeout_ns}));
  }
  size_t pos = ports_end + b.value_bytes;
  uint32_t next_bufmem = 0;
  for (uint32_t i = 0; i < b.nbuffers; ++i) {
    uint64_t n;
    std::memcpy(&n, body.data() + sizeof b + 8 * i, sizeof n);
    if ((n & kSharedBufferBit) != 0) {
      // In shared memory: its descriptor, after the ports'.
      n &= ~kSharedBufferBit;
      if (next_bufmem >= h.nbufmem) {
        return absl::DataLossError("messageerror: more shared Buffers than descriptors");
      }
      absl::StatusOr<SharedBuffer> mem =
          SharedBuffer::FromFd(fds[h.nshared + 2 * h.nports + next_bufmem++].get());
      absl::StatusOr<Buffer> buf = mem.ok() ? Buffer::OverSharedMemory(*std::move(mem), n)
                                            : absl::StatusOr<Buffer>(mem.status());
      if (!buf.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("messageerror: shared Buffer #", i, ": ", buf.status().message()));
      }
      table.buffers.push_back(*std::move(buf));
      continue;
    }
    if (n > body.size() - pos) return absl::DataLossError("messageerror: a Buffer past the body");
    absl::StatusOr<Buffer> buf = Buffer::CopyFrom(
        std::as_bytes(std::span<const char>(body.data() + pos, static_cast<size_t>(n))));
    if (!buf.ok()) return buf.status();
    table.buffers.push_back(*std::move(buf));
    pos += n;
  }
  if (next_bufmem != h.nbufmem) {
    return absl::DataLossError("messageerror: more descriptors than shared Buffers");
  }
  if (pos != body.size()) return absl::DataLossError("messageerror: bytes after the last Buffer");
  return DecodeValue(body.substr(ports_end, b.value_bytes), &table);
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
  absl::Status decoded;
  if (!record_.empty() && record_[0] != kErrorMagic &&
      static_cast<uint8_t>(record_[0]) != kFrameMagic) {
    // A plain Value, the common record: decoded straight into `out` (a
    // scalar without the decoder: the streaming reader's per-record cost).
    decoded = DecodeValueInto(record_, &out);
  } else {
    absl::StatusOr<Value> v = DecodeRecord(record_);
    decoded = v.status();
    if (v.ok()) out = *std::move(v);
  }
  if (record_.capacity() > (size_t{64} << 10)) std::string().swap(record_);  // keep no big buffer
  if (!decoded.ok()) {
    errors_.push_back(std::move(decoded));
    return false;
  }
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
  {
    // The ring's writer close must not run beside one of our sends (a
    // TryWrite publishes with a plain store: ShmRing's Close).
    std::lock_guard<sync_internal::SpinLock> lock(send_mu_);
    end_.send.CloseWriter();
  }
  end_.receive.CloseReader();
}

bool ShmChannel::closed() const {
  return local_closed_.load(std::memory_order_acquire) || PeerGoneNow() ||
         end_.receive.writer_closed() || end_.send.reader_closed();
}

absl::Status ShmChannel::CloseCause(int side) const {
  if (PeerGoneNow()) {
    MutexLock lock(cause_mu_);
    return absl::Status(gone_code_, gone_message_);
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
    gone_code_ = cause.code();
    gone_message_ = std::string(cause.message());
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
