// MessagePorts inside Values: the Value kind, the codec's port tag, and
// transferring ports through other ports (value.h, codec.h, message_port.h).

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/runtime/port_transports.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/codec.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int64_t kStressHops = 1000;
#else
constexpr int64_t kStressHops = 10000;
#endif

bool IsCloneError(const absl::Status& s) {
  return absl::IsInvalidArgument(s) &&
         std::string(s.message()).find("DataCloneError") != std::string::npos;
}

// {"port": port, "n": n}
Value PortMessage(MessagePort port, int64_t n = 0) {
  Value msg = Value::Map();
  msg.GetMap()->Set("port", std::move(port));
  msg.GetMap()->Set("n", n);
  return msg;
}

TEST(PortValueTest, KindAccessorsEqualityAndPrinting) {
  static_assert(sizeof(Value) <= 48);
  auto [p1, p2] = MessageChannel::Create();
  Value v(std::move(p2));
  EXPECT_FALSE(p2.valid());
  EXPECT_TRUE(v.IsPort());
  EXPECT_EQ(v.kind(), Value::Kind::kPort);
  EXPECT_EQ(Value::KindName(v.kind()), "MessagePort");
  ASSERT_NE(v.GetPort(), nullptr);
  EXPECT_TRUE(v.GetPort()->valid());
  EXPECT_EQ(v.ToString(), "MessagePort");
  EXPECT_TRUE(v == v);
  Value other(std::move(p1));
  EXPECT_FALSE(v == other);  // the two ends of one channel differ
  EXPECT_EQ(Value(1).GetPort(), nullptr);
  // The boxed port works.
  ASSERT_TRUE(other.GetPort()->PostMessage(Value(5)).ok());
  EXPECT_EQ(v.GetPort()->TryReceive()->AsInt().value(), 5);
}

TEST(PortValueTest, CloneRefusesPorts) {
  auto [p1, p2] = MessageChannel::Create();
  Value msg = PortMessage(std::move(p2));
  absl::StatusOr<Value> copy = msg.Clone();
  ASSERT_FALSE(copy.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(copy.status())) << copy.status();
  EXPECT_NE(std::string(copy.status().message()).find("cannot be cloned"), std::string::npos);
  EXPECT_TRUE(msg["port"]->GetPort()->valid());  // untouched
}

TEST(PortValueTest, DestroyingTheValueClosesThePort) {
  auto [p1, p2] = MessageChannel::Create();
  { Value v(std::move(p2)); }
  EXPECT_TRUE(p1.closed());
}

TEST(PortCodecTest, RoundTripWithTable) {
  auto [p1, p2] = MessageChannel::Create();
  Value msg = PortMessage(std::move(p2), 7);
  TransferTable table;
  absl::StatusOr<std::string> wire = EncodeValue(msg, &table);
  ASSERT_TRUE(wire.ok()) << wire.status();
  ASSERT_EQ(table.ports.size(), 1u);
  EXPECT_TRUE(table.ports[0].valid());
  EXPECT_FALSE(msg["port"]->GetPort()->valid());  // moved into the table
  EXPECT_EQ(msg.ToString().find("MessagePort(detached)") != std::string::npos, true);
  // Encoding the detached port again fails and changes nothing.
  TransferTable other;
  absl::StatusOr<std::string> again = EncodeValue(msg, &other);
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status())) << again.status();
  EXPECT_TRUE(other.ports.empty());

  absl::StatusOr<Value> back = DecodeValue(*wire, &table);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)["n"]->AsInt().value(), 7);
  MessagePort* port = (*back)["port"]->GetPort();
  ASSERT_NE(port, nullptr);
  ASSERT_TRUE(port->valid());
  ASSERT_TRUE(p1.PostMessage(Value("through")).ok());
  EXPECT_EQ(*port->TryReceive()->GetString(), "through");
  // The table's port was taken: a second decode cannot use it.
  absl::StatusOr<Value> twice = DecodeValue(*wire, &table);
  EXPECT_FALSE(twice.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(twice.status())) << twice.status();
}

TEST(PortCodecTest, Errors) {
  auto [p1, p2] = MessageChannel::Create();
  Value msg = PortMessage(std::move(p2));
  absl::StatusOr<std::string> no_table = EncodeValue(msg);
  EXPECT_TRUE(absl::IsInvalidArgument(no_table.status())) << no_table.status();
  EXPECT_NE(std::string(no_table.status().message()).find("TransferTable"), std::string::npos);
  EXPECT_TRUE(msg["port"]->GetPort()->valid());
  // Encoding is all or nothing: a later failure leaves the port in place.
  msg.GetMap()->Set("bad", std::string("\xff"));
  TransferTable table;
  EXPECT_FALSE(EncodeValue(msg, &table).ok());
  EXPECT_TRUE(table.ports.empty());
  EXPECT_TRUE(msg["port"]->GetPort()->valid());

  const std::string wire("WV\x01\x0c\x00", 5);
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeValue(wire).status()));
  TransferTable empty;
  EXPECT_TRUE(absl::IsOutOfRange(DecodeValue(wire, &empty).status()));
  const std::string twice("WV\x01\x07\x02\x0c\x00\x0c\x00", 9);
  TransferTable one;
  one.ports.push_back(std::move(*Value(std::move(p1)).GetPortSlot()));
  absl::StatusOr<Value> dup = DecodeValue(twice, &one);
  EXPECT_TRUE(absl::IsInvalidArgument(dup.status())) << dup.status();
  EXPECT_NE(std::string(dup.status().message()).find("used twice"), std::string::npos);
  const std::string truncated("WV\x01\x0c", 4);
  EXPECT_FALSE(DecodeValue(truncated, &one).ok());
}

template <class Transport>
class PortTransferTest : public ::testing::Test {};
TYPED_TEST_SUITE(PortTransferTest, testing::PortCarryingTransports, testing::TransportName);

TYPED_TEST(PortTransferTest, TransferAndTalkFromTheReceivingThread) {
  Watchdog dog("TransferAndTalk", absl::Seconds(60));
  auto [a, b] = TypeParam::Create();    // the carrier
  auto [p1, p2] = TypeParam::Create();  // p2 travels
  // Queued at p2 before it is sent.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(p1.PostMessage(Value(i)).ok());

  std::thread receiver([b = std::move(b)]() mutable {
    EventLoop loop;
    MessagePort got;
    int64_t next = 0;
    b.OnMessage([&](Value v) {
      ASSERT_TRUE(v.IsMap());
      EXPECT_EQ(v["n"]->AsInt().value(), 42);
      got = std::move(*v["port"]->GetPort());
      got.OnMessage([&](Value m) {
        EXPECT_EQ(m.AsInt().value(), next) << "lost, duplicated or reordered";
        ++next;
        ASSERT_TRUE(got.PostMessage(Value(m.AsInt().value() * 10)).ok());
      });
    });
    ASSERT_TRUE(b.Start(loop).ok());
    loop.Run();  // until both channels are closed
    EXPECT_EQ(next, 15);
  });

  Value msg = PortMessage(std::move(p2), 42);
  Transferable list[] = {msg["port"]->GetPort()};
  ASSERT_TRUE(a.PostMessage(msg, list).ok());
  EXPECT_FALSE(msg["port"]->GetPort()->valid());  // the sender's slot: detached
  // Posted while the port is in flight, then after it arrived.
  for (int i = 5; i < 15; ++i) ASSERT_TRUE(p1.PostMessage(Value(i)).ok());
  for (int i = 0; i < 15; ++i) {
    absl::StatusOr<Value> reply = p1.Receive(absl::Seconds(30));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->AsInt().value(), i * 10);
  }
  p1.Close();
  a.Close();
  receiver.join();
}

TYPED_TEST(PortTransferTest, StartedPortTransferredFromItsOwnHandler) {
  Watchdog dog("TransferFromHandler", absl::Seconds(60));
  EventLoop loop;
  auto [a, b] = TypeParam::Create();
  auto [p1, p2] = TypeParam::Create();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(p1.PostMessage(Value(i)).ok());
  std::vector<int64_t> seen_here;
  Value holder = PortMessage(std::move(p2));
  MessagePort* port = holder["port"]->GetPort();
  port->OnClose([] { ADD_FAILURE() << "a transferred port's OnClose must be dropped"; });
  port->OnMessage([&](Value v) {
    seen_here.push_back(v.AsInt().value());
    if (seen_here.size() == 2) {
      Transferable list[] = {port};
      ASSERT_TRUE(a.PostMessage(holder, list).ok());
    }
  });
  ASSERT_TRUE(port->Start(loop).ok());
  loop.Run();  // returns: the transferred port no longer refs the loop
  EXPECT_EQ(seen_here, (std::vector<int64_t>{0, 1}));
  EXPECT_FALSE(port->valid());
  for (int i = 6; i < 9; ++i) ASSERT_TRUE(p1.PostMessage(Value(i)).ok());

  // The new owner, on another thread and loop, gets 2..8 exactly once.
  std::thread owner([&b = b] {
    EventLoop loop2;
    absl::StatusOr<Value> m = b.Receive(absl::Seconds(30));
    ASSERT_TRUE(m.ok()) << m.status();
    MessagePort mine = std::move(*(*m)["port"]->GetPort());
    int64_t next = 2;
    mine.OnMessage([&](Value v) {
      EXPECT_EQ(v.AsInt().value(), next);
      if (++next == 9) mine.Close();
    });
    ASSERT_TRUE(mine.Start(loop2).ok());
    loop2.Run();
    EXPECT_EQ(next, 9);
  });
  owner.join();
  loop.Run();  // nothing left for the old loop (its stale drain, if any, is inert)
  EXPECT_EQ(seen_here.size(), 2u);
}

TYPED_TEST(PortTransferTest, DataCloneErrorsAreAllOrNothing) {
  auto [a, b] = TypeParam::Create();
  auto [p1, p2] = TypeParam::Create();
  Value msg = PortMessage(std::move(p2));
  MessagePort* port = msg["port"]->GetPort();
  auto untouched = [&] {
    EXPECT_TRUE(port->valid());
    EXPECT_FALSE(b.TryReceive().has_value());
  };
  {  // a port in the message but not in the transfer list
    absl::Status s = a.PostMessage(msg);
    EXPECT_TRUE(IsCloneError(s)) << s;
    EXPECT_NE(std::string(s.message()).find("not in the transfer list"), std::string::npos) << s;
    untouched();
  }
  {  // the same port twice
    Transferable list[] = {port, port};
    EXPECT_TRUE(IsCloneError(a.PostMessage(msg, list)));
    untouched();
  }
  {  // a listed port that is not inside the message
    auto [q1, q2] = TypeParam::Create();
    Transferable list[] = {port, &q2};
    EXPECT_TRUE(IsCloneError(a.PostMessage(msg, list)));
    EXPECT_TRUE(q2.valid());
    untouched();
  }
  {  // the posting port or its peer, listed
    Transferable l1[] = {port, &a};
    EXPECT_TRUE(IsCloneError(a.PostMessage(msg, l1)));
    Transferable l2[] = {port, &b};
    EXPECT_TRUE(IsCloneError(a.PostMessage(msg, l2)));
    untouched();
  }
  {  // the peer inside the message (and listed), posted through its partner
    Value carrier = PortMessage(std::move(b));
    Transferable list[] = {carrier["port"]->GetPort()};
    EXPECT_TRUE(IsCloneError(a.PostMessage(carrier, list)));
    EXPECT_TRUE(IsCloneError(a.PostMessage(std::move(carrier))));
    b = std::move(*carrier["port"]->GetPort());
    ASSERT_TRUE(b.valid());
    untouched();
  }
  {  // a closed port
    auto [q1, q2] = TypeParam::Create();
    q1.Close();
    Value m2 = PortMessage(std::move(q2));
    Transferable list[] = {m2["port"]->GetPort()};
    EXPECT_TRUE(IsCloneError(a.PostMessage(m2, list)));
    EXPECT_TRUE(IsCloneError(a.PostMessage(std::move(m2))));
    untouched();
  }
  {  // one good port and one bad item: nothing moves
    auto [q1, q2] = TypeParam::Create();
    Value pair = Value::Array(std::move(q2), Buffer::Allocate(8).value());
    Buffer gone = Buffer::Allocate(8).value();
    Buffer sink = std::move(gone);
    Transferable list[] = {(*pair.GetArray())[0].GetPort(), &gone};
    EXPECT_TRUE(IsCloneError(a.PostMessage(pair, list)));
    EXPECT_TRUE((*pair.GetArray())[0].GetPort()->valid());
    untouched();
  }
  {  // a null port pointer
    Transferable list[] = {static_cast<MessagePort*>(nullptr)};
    EXPECT_TRUE(absl::IsInvalidArgument(a.PostMessage(msg, list)));
    untouched();
  }
  // It still works after all that; then the slot is detached.
  Transferable list[] = {port};
  ASSERT_TRUE(a.PostMessage(msg, list).ok());
  EXPECT_FALSE(port->valid());
  {  // the detached port, listed again or just left in the message
    absl::Status s = a.PostMessage(msg, list);
    EXPECT_TRUE(IsCloneError(s)) << s;
    EXPECT_TRUE(IsCloneError(a.PostMessage(msg)));
  }
  absl::StatusOr<Value> got = b.Receive(absl::Seconds(10));
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(p1.PostMessage(Value(1)).ok());
  EXPECT_EQ((*got)["port"]->GetPort()->TryReceive()->AsInt().value(), 1);
  EXPECT_FALSE(b.TryReceive().has_value());
}

TYPED_TEST(PortTransferTest, MovePathCarriesPorts) {
  auto [a, b] = TypeParam::Create();
  auto [p1, p2] = TypeParam::Create();
  ASSERT_TRUE(p1.PostMessage(Value(3)).ok());
  ASSERT_TRUE(a.PostMessage(Value(std::move(p2))).ok());
  absl::StatusOr<Value> got = b.Receive(absl::Seconds(10));
  ASSERT_TRUE(got.ok());
  MessagePort p = std::move(*got->GetPort());
  EXPECT_EQ(p.TryReceive()->AsInt().value(), 3);
  ASSERT_TRUE(p.PostMessage(Value(4)).ok());
  EXPECT_EQ(p1.TryReceive()->AsInt().value(), 4);
}

TYPED_TEST(PortTransferTest, FullCarrierGivesThePortBack) {
  PortOptions opt;
  opt.capacity = 1;
  auto [a, b] = TypeParam::Create(opt);
  ASSERT_TRUE(a.PostMessage(Value(0)).ok());
  auto [p1, p2] = TypeParam::Create();
  Value msg = PortMessage(std::move(p2));
  Transferable list[] = {msg["port"]->GetPort()};
  EXPECT_TRUE(absl::IsResourceExhausted(a.PostMessage(msg, list)));
  MessagePort* back = msg["port"]->GetPort();
  ASSERT_TRUE(back->valid());
  ASSERT_TRUE(p1.PostMessage(Value(9)).ok());
  EXPECT_EQ(back->TryReceive()->AsInt().value(), 9);
}

TYPED_TEST(PortTransferTest, UnreceivedPortsCloseWithTheirCarrier) {
  auto [p1, p2] = TypeParam::Create();
  {
    auto [a, b] = TypeParam::Create();
    ASSERT_TRUE(a.PostMessage(Value::Array(std::move(p2))).ok());
    EXPECT_FALSE(p1.closed());
  }  // b dropped its queue: p2 went with it
  EXPECT_TRUE(p1.closed());
}

// Ports passed back and forth between two threads while a third posts to
// their peer: every message reaches the port's current owner exactly once, in
// order.
TYPED_TEST(PortTransferTest, StressTransferBackAndForthWhileMessagesFlow) {
  Watchdog dog("PortTransferStress", absl::Seconds(240));
  auto [x1, x2] = TypeParam::Create();  // between the two owners
  PortOptions opt;
  opt.capacity = 256;
  opt.on_full = PortOptions::OnFull::kBlock;
  opt.block_timeout = absl::Milliseconds(5);
  auto [p1, p2] = TypeParam::Create(opt);

  std::atomic<bool> stop{false};
  std::atomic<bool> flowing{false};  // the poster got its first message in
  int64_t posted = 0;
  std::thread poster([&, &p1 = p1] {
    while (!stop.load(std::memory_order_acquire)) {
      absl::Status s = p1.PostMessage(Value(posted));
      if (s.ok()) {
        ++posted;
        flowing.store(true, std::memory_order_release);
      } else if (!absl::IsDeadlineExceeded(s)) {
        ADD_FAILURE() << s;
        return;
      }
    }
  });

  MessagePort final_port;
  int64_t final_next = -1;
  auto owner = [&](MessagePort& carrier) {
    for (;;) {
      absl::StatusOr<Value> m = carrier.Receive(absl::Seconds(60));
      if (!m.ok()) {
        ADD_FAILURE() << m.status();
        return;
      }
      if (m->IsNull()) return;  // the other owner finished
      MessagePort port = std::move(*(*m)["port"]->GetPort());
      int64_t next = (*m)["n"]->AsInt().value();
      const int64_t hops = (*m)["hops"]->AsInt().value();
      while (std::optional<Value> v = port.TryReceive()) {
        if (v->AsInt().value() != next) {
          ADD_FAILURE() << "expected " << next << ", got " << v->AsInt().value();
          return;
        }
        ++next;
      }
      if (hops == kStressHops) {
        final_port = std::move(port);
        final_next = next;
        (void)carrier.PostMessage(Value());
        return;
      }
      Value out = PortMessage(std::move(port), next);
      out.GetMap()->Set("hops", hops + 1);
      absl::Status s;
      if (hops % 2 == 0) {
        Transferable list[] = {out["port"]->GetPort()};
        s = carrier.PostMessage(out, list);
      } else {
        s = carrier.PostMessage(std::move(out));
      }
      if (!s.ok()) {
        ADD_FAILURE() << s;
        return;
      }
    }
  };
  Value first = PortMessage(std::move(p2), 0);
  first.GetMap()->Set("hops", int64_t{0});
  ASSERT_TRUE(x2.PostMessage(std::move(first)).ok());  // x1's owner starts
  // The hops start once messages flow: on a loaded machine the poster might
  // otherwise not run before all the hops are done (posted == 0 below).
  while (!flowing.load(std::memory_order_acquire)) std::this_thread::yield();
  std::thread t1([&, &x1 = x1] { owner(x1); });
  std::thread t2([&, &x2 = x2] { owner(x2); });
  t1.join();
  t2.join();
  stop.store(true, std::memory_order_release);
  poster.join();
  ASSERT_TRUE(final_port.valid());
  int64_t next = final_next;
  while (next < posted) {
    absl::StatusOr<Value> v = final_port.Receive(absl::Seconds(30));
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(v->AsInt().value(), next);
    ++next;
  }
  EXPECT_FALSE(final_port.TryReceive().has_value());  // nothing duplicated
  EXPECT_GT(posted, 0);
}

}  // namespace
}  // namespace wharf
