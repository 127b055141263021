#include "wharf/runtime/message_port.h"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/runtime/port_transports.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/interrupt.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int64_t kStressPerProducer = 100000;
#else
constexpr int64_t kStressPerProducer = 1000000;
#endif

template <class Transport>
class MessagePortTest : public ::testing::Test {};
TYPED_TEST_SUITE(MessagePortTest, testing::PortTransports, testing::TransportName);

TYPED_TEST(MessagePortTest, MovePostArrivesInOrder) {
  auto [a, b] = TypeParam::Create();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(a.PostMessage(Value(i)).ok());
  for (int i = 0; i < 100; ++i) {
    auto v = b.TryReceive();
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->AsInt().value(), i);
  }
  EXPECT_FALSE(b.TryReceive().has_value());
  ASSERT_TRUE(b.PostMessage(Value("back")).ok());
  EXPECT_EQ(*a.TryReceive()->GetString(), "back");
}

TYPED_TEST(MessagePortTest, MoveKeepsBufferPointer) {
  if (!TypeParam::kZeroCopyMove) GTEST_SKIP() << "the ends do not share an address space";
  auto [a, b] = TypeParam::Create();
  Buffer buf = Buffer::Allocate(64).value();
  const std::byte* p = buf.data();
  ASSERT_TRUE(a.PostMessage(Value(std::move(buf))).ok());
  auto v = b.TryReceive();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->GetBuffer()->data(), p);
}

TYPED_TEST(MessagePortTest, TransferMovesCloneCopies) {
  auto [a, b] = TypeParam::Create();
  Value msg = Value::Map();
  msg.GetMap()->Set("moved", Buffer::Allocate(16).value());
  msg.GetMap()->Set("copied", Buffer::Allocate(16).value());
  msg.GetMap()->Set("n", 7);
  msg["copied"]->GetBuffer()->data()[0] = std::byte{9};
  Buffer* moved = msg["moved"]->GetBuffer();
  Buffer* copied = msg["copied"]->GetBuffer();
  const std::byte* moved_ptr = moved->data();
  const std::byte* copied_ptr = copied->data();
  Transferable list[] = {moved};
  ASSERT_TRUE(a.PostMessage(msg, list).ok());
  EXPECT_TRUE(moved->detached());
  EXPECT_FALSE(copied->detached());
  auto v = b.TryReceive();
  ASSERT_TRUE(v.has_value());
  if (TypeParam::kZeroCopyMove) {
    EXPECT_EQ((*v)["moved"]->GetBuffer()->data(), moved_ptr);
    EXPECT_NE((*v)["copied"]->GetBuffer()->data(), copied_ptr);
  }
  EXPECT_EQ((*v)["copied"]->GetBuffer()->data()[0], std::byte{9});
  EXPECT_EQ((*v)["n"]->AsInt().value(), 7);
  EXPECT_EQ((*v)["moved"]->GetBuffer()->size(), 16u);
}

TYPED_TEST(MessagePortTest, TransferRootBufferAndArray) {
  auto [a, b] = TypeParam::Create();
  Value root(Buffer::Allocate(8).value());
  const std::byte* p = root.GetBuffer()->data();
  Transferable list[] = {root.GetBuffer()};
  ASSERT_TRUE(a.PostMessage(root, list).ok());
  EXPECT_TRUE(root.GetBuffer()->detached());
  if (TypeParam::kZeroCopyMove) {
    EXPECT_EQ(b.TryReceive()->GetBuffer()->data(), p);
  } else {
    EXPECT_EQ(b.TryReceive()->GetBuffer()->size(), 8u);
  }

  Value arr = Value::Array(1, Buffer::Allocate(4).value(), Value::Array(Buffer::Allocate(4).value()));
  Buffer* inner = (*arr.GetArray())[2].GetArray()->at(0).GetBuffer();
  const std::byte* ip = inner->data();
  Transferable l2[] = {inner};
  ASSERT_TRUE(a.PostMessage(arr, l2).ok());
  auto v = b.TryReceive();
  ASSERT_TRUE(v.has_value());
  if (TypeParam::kZeroCopyMove) {
    EXPECT_EQ((*v->GetArray())[2].GetArray()->at(0).GetBuffer()->data(), ip);
  }
  EXPECT_EQ((*v->GetArray())[2].GetArray()->at(0).GetBuffer()->size(), 4u);
  EXPECT_TRUE(inner->detached());
  EXPECT_NE((*v->GetArray())[1].GetBuffer()->data(), (*arr.GetArray())[1].GetBuffer()->data());
}

void ExpectUntouched(const Value& msg, const std::byte* p0, const std::byte* p1) {
  EXPECT_EQ(msg["x"]->GetBuffer()->data(), p0);
  EXPECT_EQ(msg["y"]->GetBuffer()->data(), p1);
  EXPECT_FALSE(msg["x"]->GetBuffer()->detached());
  EXPECT_FALSE(msg["y"]->GetBuffer()->detached());
}

// Open descriptors of this process (each shared Buffer or SharedBuffer that
// crosses the shared-memory transport holds one).
int OpenFds() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

// A shared-memory Buffer handed back and forth, as a pool's chunk or the
// 64 MiB hand-over benchmark does, keeps no descriptor (or mapping) behind
// on either side: each hop's Buffer is the only owner of its memory.
TYPED_TEST(MessagePortTest, SharedBufferHandedBackAndForthLeavesNothingOpen) {
  Watchdog dog("shared Buffer back and forth", absl::Seconds(60));
  auto [a, b] = TypeParam::Create();
  Buffer mine = Buffer::AllocateShared(1 << 16).value();
  mine.data()[0] = std::byte{1};
  const int before = OpenFds();
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(a.PostMessage(Value(std::move(mine))).ok());
    absl::StatusOr<Value> there = b.Receive(absl::Seconds(10));
    ASSERT_TRUE(there.ok()) << there.status();
    // Forwarded as received (the Value moved on whole), as an echo does.
    ASSERT_TRUE(b.PostMessage(*std::move(there)).ok());
    absl::StatusOr<Value> back = a.Receive(absl::Seconds(10));
    ASSERT_TRUE(back.ok()) << back.status();
    Buffer* got = back->GetBuffer();
    ASSERT_NE(got, nullptr);
    ASSERT_TRUE(got->shared());
    ASSERT_EQ(got->data()[0], std::byte{1});
    mine = std::move(*got);
  }
  EXPECT_LE(OpenFds(), before + 1) << "descriptors left open by 2000 hand-overs";
}

TYPED_TEST(MessagePortTest, TransferErrorsAreAllOrNothing) {
  auto [a, b] = TypeParam::Create();
  Value msg = Value::Map();
  msg.GetMap()->Set("x", Buffer::Allocate(8).value());
  msg.GetMap()->Set("y", Buffer::Allocate(8).value());
  Buffer* x = msg["x"]->GetBuffer();
  Buffer* y = msg["y"]->GetBuffer();
  const std::byte* p0 = x->data();
  const std::byte* p1 = y->data();

  {  // the same Buffer twice
    Transferable list[] = {x, y, x};
    absl::Status s = a.PostMessage(msg, list);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_NE(std::string(s.message()).find("DataCloneError"), std::string::npos) << s;
    ExpectUntouched(msg, p0, p1);
  }
  {  // a SharedBuffer
    SharedBuffer shared = SharedBuffer::Create(4096).value();
    Transferable list[] = {x, &shared};
    absl::Status s = a.PostMessage(msg, list);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_NE(std::string(s.message()).find("DataCloneError"), std::string::npos) << s;
    ExpectUntouched(msg, p0, p1);
  }
  {  // a Buffer not inside the message
    Buffer outside = Buffer::Allocate(8).value();
    Transferable list[] = {x, &outside};
    absl::Status s = a.PostMessage(msg, list);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_FALSE(outside.detached());
    ExpectUntouched(msg, p0, p1);
  }
  {  // a detached Buffer in the list
    Buffer gone = Buffer::Allocate(8).value();
    Buffer taker = std::move(gone);
    Transferable list[] = {x, &gone};
    absl::Status s = a.PostMessage(msg, list);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_NE(std::string(s.message()).find("DataCloneError"), std::string::npos) << s;
    ExpectUntouched(msg, p0, p1);
  }
  {  // the posting port and its peer
    Transferable l1[] = {x, &a};
    EXPECT_TRUE(absl::IsInvalidArgument(a.PostMessage(msg, l1)));
    Transferable l2[] = {x, &b};
    EXPECT_TRUE(absl::IsInvalidArgument(a.PostMessage(msg, l2)));
    ExpectUntouched(msg, p0, p1);
  }
  {  // a detached Buffer inside the message, not listed
    Value bad = Value::Map();
    bad.GetMap()->Set("ok", Buffer::Allocate(8).value());
    bad.GetMap()->Set("gone", Buffer::Allocate(8).value());
    Buffer sink = std::move(*bad["gone"]->GetBuffer());
    Transferable list[] = {bad["ok"]->GetBuffer()};
    absl::Status s = a.PostMessage(bad, list);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_FALSE(bad["ok"]->GetBuffer()->detached());
  }
  {  // a closed port: nothing moved either
    a.Close();
    Transferable list[] = {x};
    absl::Status s = a.PostMessage(msg, list);
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    ExpectUntouched(msg, p0, p1);
  }
  EXPECT_FALSE(b.TryReceive().has_value());
}

TYPED_TEST(MessagePortTest, FullPortGivesBuffersBack) {
  PortOptions opt;
  opt.capacity = 1;
  auto [a, b] = TypeParam::Create(opt);
  ASSERT_TRUE(a.PostMessage(Value(1)).ok());
  Value msg(Buffer::Allocate(8).value());
  const std::byte* p = msg.GetBuffer()->data();
  Transferable list[] = {msg.GetBuffer()};
  EXPECT_TRUE(absl::IsResourceExhausted(a.PostMessage(msg, list)));
  EXPECT_FALSE(msg.GetBuffer()->detached());
  EXPECT_EQ(msg.GetBuffer()->data(), p);
}

TYPED_TEST(MessagePortTest, PostAfterCloseFails) {
  auto [a, b] = TypeParam::Create();
  ASSERT_TRUE(a.PostMessage(Value(1)).ok());
  b.Close();
  EXPECT_TRUE(a.closed());
  absl::Status s = a.PostMessage(Value(2));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(absl::IsFailedPrecondition(b.PostMessage(Value(3))));
  // Queued before the close: still delivered, then Cancelled.
  auto v = b.Receive(absl::Seconds(5));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->AsInt().value(), 1);
  EXPECT_TRUE(absl::IsCancelled(b.Receive(absl::Seconds(5)).status()));
  b.Close();  // idempotent
  MessagePort empty;
  EXPECT_TRUE(absl::IsFailedPrecondition(empty.PostMessage(Value(1))));
  EXPECT_TRUE(absl::IsFailedPrecondition(empty.Receive(absl::Milliseconds(1)).status()));
}

TYPED_TEST(MessagePortTest, DestroyClosesPeer) {
  Watchdog dog("DestroyClosesPeer", absl::Seconds(30));
  auto [a, b] = TypeParam::Create();
  std::thread t([&b] { EXPECT_TRUE(absl::IsCancelled(b.Receive().status())); });
  absl::SleepFor(absl::Milliseconds(20));
  { MessagePort gone = std::move(a); }
  t.join();
}

TYPED_TEST(MessagePortTest, ReceiveTimesOut) {
  auto [a, b] = TypeParam::Create();
  absl::Time start = absl::Now();
  EXPECT_TRUE(absl::IsDeadlineExceeded(b.Receive(absl::Milliseconds(30)).status()));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(25));
}

TYPED_TEST(MessagePortTest, CapacityFail) {
  PortOptions opt;
  opt.capacity = 3;
  auto [a, b] = TypeParam::Create(opt);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.PostMessage(Value(i)).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(a.PostMessage(Value(3))));
  ASSERT_TRUE(b.TryReceive().has_value());
  EXPECT_TRUE(a.PostMessage(Value(3)).ok());
}

TYPED_TEST(MessagePortTest, CapacityBlock) {
  Watchdog dog("CapacityBlock", absl::Seconds(60));
  PortOptions opt;
  opt.capacity = 2;
  opt.on_full = PortOptions::OnFull::kBlock;
  opt.block_timeout = absl::Milliseconds(30);
  {
    auto [a, b] = TypeParam::Create(opt);
    ASSERT_TRUE(a.PostMessage(Value(0)).ok());
    ASSERT_TRUE(a.PostMessage(Value(1)).ok());
    EXPECT_TRUE(absl::IsDeadlineExceeded(a.PostMessage(Value(2))));
  }
  opt.block_timeout = absl::InfiniteDuration();
  auto [a, b] = TypeParam::Create(opt);
  constexpr int kN = 2000;
  std::thread producer([&a] {
    for (int i = 0; i < kN; ++i) ASSERT_TRUE(a.PostMessage(Value(i)).ok());
  });
  for (int i = 0; i < kN; ++i) {
    auto v = b.Receive(absl::Seconds(30));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->AsInt().value(), i);
  }
  producer.join();
  // A blocked sender is woken by Close.
  ASSERT_TRUE(a.PostMessage(Value(0)).ok());
  ASSERT_TRUE(a.PostMessage(Value(1)).ok());
  std::thread blocked([&a] { EXPECT_TRUE(absl::IsFailedPrecondition(a.PostMessage(Value(2)))); });
  absl::SleepFor(absl::Milliseconds(20));
  b.Close();
  blocked.join();
}

TYPED_TEST(MessagePortTest, QueuedBeforeHandlerDeliveredOnce) {
  Watchdog dog("QueuedBeforeHandler", absl::Seconds(30));
  EventLoop loop;
  auto [a, b] = TypeParam::Create();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.PostMessage(Value(i)).ok());
  std::vector<int64_t> got;
  b.OnMessage([&](Value v) {
    got.push_back(v.AsInt().value());
    if (got.size() == 10) b.Close();
  });  // no current loop: not started yet
  for (int i = 5; i < 8; ++i) ASSERT_TRUE(a.PostMessage(Value(i)).ok());
  ASSERT_TRUE(b.Start(loop).ok());
  EXPECT_TRUE(b.Start(loop).ok());
  EventLoop other;
  EXPECT_TRUE(absl::IsFailedPrecondition(b.Start(other)));
  for (int i = 8; i < 10; ++i) ASSERT_TRUE(a.PostMessage(Value(i)).ok());
  loop.Run();  // returns once b closed
  ASSERT_EQ(got.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(got[i], i);
}

TYPED_TEST(MessagePortTest, CloseDeliversQueuedThenOnCloseOnBothEnds) {
  Watchdog dog("CloseOnBothEnds", absl::Seconds(30));
  EventLoop loop_a, loop_b;
  auto [a, b] = TypeParam::Create();
  std::vector<int> got;
  bool a_closed = false, b_closed = false;
  bool b_closed_after_all = false;
  ASSERT_TRUE(a.Start(loop_a).ok());
  a.OnMessage([](Value) {});
  a.OnClose([&] { a_closed = true; });
  b.OnMessage([&](Value v) { got.push_back(static_cast<int>(v.AsInt().value())); });
  b.OnClose([&] {
    b_closed = true;
    b_closed_after_all = got.size() == 100;
  });
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(a.PostMessage(Value(i)).ok());
  a.Close();
  a.Close();
  ASSERT_TRUE(b.Start(loop_b).ok());
  std::thread ta([&] { loop_a.Run(); });
  loop_b.Run();
  ta.join();
  EXPECT_TRUE(a_closed);
  EXPECT_TRUE(b_closed);
  EXPECT_TRUE(b_closed_after_all);
  EXPECT_EQ(got.size(), 100u);
}

TYPED_TEST(MessagePortTest, RefUnref) {
  Watchdog dog("RefUnref", absl::Seconds(30));
  EventLoop loop;
  auto [a, b] = TypeParam::Create();
  ASSERT_TRUE(b.Start(loop).ok());
  b.OnMessage([](Value) {});
  EXPECT_GT(loop.RefCountForTesting(), 0);
  b.Unref();
  EXPECT_EQ(loop.RefCountForTesting(), 0);
  loop.Run();  // nothing ref'd: returns
  b.Ref();
  EXPECT_GT(loop.RefCountForTesting(), 0);
  int n = 0;
  b.OnMessage([&](Value) {
    if (++n == 3) b.Unref();
  });
  std::thread t([&a] {
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.PostMessage(Value(i)).ok());
  });
  loop.Run();  // returns after the Unref in the handler
  t.join();
  EXPECT_EQ(n, 3);
}

TYPED_TEST(MessagePortTest, OnMessageStartsOnCurrentLoop) {
  Watchdog dog("OnMessageStarts", absl::Seconds(30));
  EventLoop loop;
  auto [a, b] = TypeParam::Create();
  ASSERT_TRUE(a.PostMessage(Value(42)).ok());
  int64_t got = 0;
  loop.Post([&] {
    b.OnMessage([&](Value v) {
      got = v.AsInt().value();
      b.Close();
    });
  });
  loop.Run();
  EXPECT_EQ(got, 42);
}

TYPED_TEST(MessagePortTest, CloseRacesWithPostsAndPeerClose) {
  Watchdog dog("CloseRaces", absl::Seconds(60));
  for (int round = 0; round < 50; ++round) {
    EventLoop loop;
    auto [a, b] = TypeParam::Create();
    std::atomic<int> accepted{0};
    int delivered = 0;
    bool closed = false;
    b.OnMessage([&](Value) { ++delivered; });
    b.OnClose([&] { closed = true; });
    ASSERT_TRUE(b.Start(loop).ok());
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&a, &accepted] {
        for (int i = 0; i < 200; ++i) {
          if (a.PostMessage(Value(i)).ok()) accepted.fetch_add(1);
        }
      });
    }
    threads.emplace_back([&a] { a.Close(); });
    threads.emplace_back([&b] { b.Close(); });  // races the loop's own use: Close is any-thread
    loop.Run();
    for (auto& t : threads) t.join();
    EXPECT_TRUE(closed);
    EXPECT_EQ(delivered, accepted.load());
  }
}

// The same race without a loop: a receiver blocked in Receive() gets every
// accepted message, then Cancelled — never a hang, never a lost message
// (the senders' in-flight marks against Close's kClosing/HeavyFence/kClosed).
TYPED_TEST(MessagePortTest, CloseRacesWithPostsIntoBlockingReceive) {
  Watchdog dog("CloseRacesReceive", absl::Seconds(60));
  for (int round = 0; round < 200; ++round) {
    auto [a, b] = TypeParam::Create();
    std::atomic<int> accepted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&a, &accepted, round] {
        for (int i = 0; i < 20 + round; ++i) {
          if (a.PostMessage(Value(i)).ok()) accepted.fetch_add(1);
        }
      });
    }
    threads.emplace_back([&a, round] {
      for (int i = 0; i < round * 7; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
      a.Close();
    });
    int delivered = 0;
    for (;;) {
      auto v = b.Receive(absl::Seconds(30));
      if (!v.ok()) {
        ASSERT_TRUE(absl::IsCancelled(v.status())) << v.status();
        break;
      }
      ++delivered;
    }
    for (auto& t : threads) t.join();
    ASSERT_EQ(delivered, accepted.load()) << "round " << round;
  }
}

// Receive() asleep in a thread under an InterruptibleScope throws
// Interrupted when its Interrupter is requested; the port is left as a
// timeout leaves it (later posts are received normally).
TYPED_TEST(MessagePortTest, SleepingReceiveIsAnInterruptionPoint) {
  Watchdog dog("ReceiveInterrupted", absl::Seconds(60));
  auto [a, b] = TypeParam::Create();
  Interrupter interrupter;
  std::atomic<int> outcome{0};  // 1 = Interrupted, 2 = returned
  std::thread t([&, &b = b] {
    InterruptibleScope scope(interrupter);
    try {
      auto v = b.Receive();
      outcome = 2;
    } catch (const Interrupted&) {
      outcome = 1;
    }
  });
  absl::SleepFor(absl::Milliseconds(50));  // past the 20 µs spin: asleep
  EXPECT_EQ(outcome.load(), 0);
  interrupter.Request();
  t.join();
  EXPECT_EQ(outcome.load(), 1);
  ASSERT_TRUE(a.PostMessage(Value(7)).ok());
  auto v = b.Receive(absl::Seconds(5));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->AsInt().value(), 7);
  // A thread outside any scope is never interrupted.
  auto r = b.Receive(absl::Milliseconds(20));
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status()));
}

TYPED_TEST(MessagePortTest, BlockedSenderIsAnInterruptionPoint) {
  Watchdog dog("BlockedSenderInterrupted", absl::Seconds(60));
  PortOptions options;
  options.capacity = 1;
  options.on_full = PortOptions::OnFull::kBlock;
  auto [a, b] = TypeParam::Create(options);
  ASSERT_TRUE(a.PostMessage(Value(1)).ok());
  Interrupter interrupter;
  std::atomic<int> outcome{0};
  // The blocked post transfers a Buffer: interrupted, the sender keeps it.
  Value msg = Value::Map();
  msg.GetMap()->Set("data", Buffer::Allocate(1024).value());
  Buffer* data = msg["data"]->GetBuffer();
  std::thread t([&, &a = a] {
    InterruptibleScope scope(interrupter);
    try {
      Transferable list[] = {data};
      (void)a.PostMessage(msg, list);
      outcome = 2;
    } catch (const Interrupted&) {
      outcome = 1;
    }
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(outcome.load(), 0);
  interrupter.Request();
  t.join();
  EXPECT_EQ(outcome.load(), 1);
  EXPECT_FALSE(data->detached());
  EXPECT_EQ(data->size(), 1024u);
  // The interrupted post sent nothing; the queue holds exactly the first.
  EXPECT_EQ(b.TryReceive()->AsInt().value(), 1);
  EXPECT_FALSE(b.TryReceive().has_value());
  EXPECT_TRUE(a.PostMessage(Value(3)).ok());
  EXPECT_EQ(b.TryReceive()->AsInt().value(), 3);
}

TYPED_TEST(MessagePortTest, StressFourProducers) {
  Watchdog dog("StressFourProducers", absl::Seconds(120));
  constexpr int kProducers = 4;
  auto [a, b] = TypeParam::Create();
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&a, p] {
      for (int64_t i = 0; i < kStressPerProducer; ++i) {
        if (!a.PostMessage(Value((int64_t{p} << 40) | i)).ok()) {
          ADD_FAILURE() << "post failed";
          return;
        }
      }
    });
  }
  std::vector<int64_t> next(kProducers, 0);
  for (int64_t n = 0; n < kProducers * kStressPerProducer; ++n) {
    auto v = b.Receive(absl::Seconds(60));
    ASSERT_TRUE(v.ok()) << v.status();
    const int64_t x = v->AsInt().value();
    const int p = static_cast<int>(x >> 40);
    ASSERT_GE(p, 0);
    ASSERT_LT(p, kProducers);
    ASSERT_EQ(x & ((int64_t{1} << 40) - 1), next[p]) << "producer " << p;
    ++next[p];
  }
  for (auto& t : producers) t.join();
  EXPECT_FALSE(b.TryReceive().has_value());
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(next[p], kStressPerProducer);
}

TYPED_TEST(MessagePortTest, PingPongBlockingReceive) {
  Watchdog dog("PingPong", absl::Seconds(60));
  constexpr int kRounds = 20000;
  auto [a, b] = TypeParam::Create();
  std::thread pong([&b] {
    for (int i = 0; i < kRounds; ++i) {
      auto v = b.Receive(absl::Seconds(30));
      ASSERT_TRUE(v.ok()) << v.status();
      ASSERT_TRUE(b.PostMessage(Value(v->AsInt().value() + 1)).ok());
    }
  });
  int64_t x = 0;
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(a.PostMessage(Value(x)).ok());
    auto v = a.Receive(absl::Seconds(30));
    ASSERT_TRUE(v.ok()) << v.status();
    x = v->AsInt().value();
    ASSERT_EQ(x, 2 * i + 1 - i);  // x grows by one per round trip
  }
  pong.join();
  EXPECT_EQ(x, kRounds);
}

TYPED_TEST(MessagePortTest, HasRefFollowsNodesRule) {
  EventLoop loop;
  auto [a, b] = TypeParam::Create();
  EXPECT_FALSE(b.HasRef());  // not started
  b.OnMessage([](Value) {});
  EXPECT_FALSE(b.HasRef());  // no loop ran here: still not started
  ASSERT_TRUE(b.Start(loop).ok());
  EXPECT_TRUE(b.HasRef());
  b.Unref();
  EXPECT_FALSE(b.HasRef());
  b.Ref();
  EXPECT_TRUE(b.HasRef());
  a.Close();
  loop.Run();  // the close is delivered, and the ref with it
  EXPECT_FALSE(b.HasRef());
  EXPECT_FALSE(MessagePort().HasRef());
}

// receiveMessageOnPort on a started port: a blocking Receive on the loop's
// own thread is woken by senders that ring the loop's doorbell.
TYPED_TEST(MessagePortTest, BlockingReceiveOnAStartedPort) {
  Watchdog dog("Receive on started port", absl::Seconds(30));
  EventLoop loop;
  auto [a, b] = TypeParam::Create();
  ASSERT_TRUE(b.Start(loop).ok());  // no OnMessage: nothing delivers meanwhile
  std::string got;
  loop.Post([&, &b = b] {
    absl::StatusOr<Value> v = b.Receive(absl::Seconds(10));
    ASSERT_TRUE(v.ok()) << v.status();
    got = *v->GetString();
  });
  std::thread poster([&, &a = a] {
    absl::SleepFor(absl::Milliseconds(30));  // past Receive's spin: it sleeps
    ASSERT_TRUE(a.PostMessage(Value("woken")).ok());
  });
  loop.Run();
  poster.join();
  EXPECT_EQ(got, "woken");
}

// A handler that destroys its own port, and with it (through what it held)
// another started port: both survive until the handler has returned, and
// nothing is touched afterwards (ASan checks).
TYPED_TEST(MessagePortTest, HandlerDestroysItsOwnPortAndAnotherOne) {
  Watchdog dog("self destruction", absl::Seconds(30));
  EventLoop loop;
  struct Session {
    MessagePort in, other;
  };
  auto [a, b] = TypeParam::Create();
  auto [c, d] = TypeParam::Create();
  auto session = std::make_shared<Session>(Session{std::move(b), std::move(d)});
  std::weak_ptr<Session> weak = session;
  int got = 0;
  session->other.OnMessage([](Value) {});
  ASSERT_TRUE(session->other.Start(loop).ok());
  session->in.OnMessage([&got, session](Value) mutable {
    ++got;
    session.reset();  // the last reference to both ports: destroyed inside
  });
  ASSERT_TRUE(session->in.Start(loop).ok());
  session.reset();  // now only the handler holds it
  ASSERT_TRUE(a.PostMessage(Value(1)).ok());
  loop.Run();  // nothing is left to keep it alive once the ports are gone
  EXPECT_EQ(got, 1);
  EXPECT_TRUE(weak.expired());
  EXPECT_TRUE(a.closed());
  EXPECT_TRUE(c.closed());
}

// A handler replaces itself and then runs a nested pass of its loop: the
// replaced handler (still running) stays alive until it returns.
TYPED_TEST(MessagePortTest, HandlerReplacesItselfThenRunsANestedPass) {
  EventLoop loop;
  auto [a, b] = TypeParam::Create();
  std::vector<std::string> log;
  auto big = std::make_shared<std::string>("captured state of the first handler");
  b.OnMessage([&, big, &b = b](Value v) {
    b.OnMessage([&log](Value w) { log.push_back("second:" + std::to_string(*w.AsInt())); });
    (void)loop.RunOnce();  // delivers the next message to the new handler
    log.push_back("first:" + std::to_string(*v.AsInt()) + " " + *big);  // still alive
    b.Close();
  });
  ASSERT_TRUE(b.Start(loop).ok());
  ASSERT_TRUE(a.PostMessage(Value(1)).ok());
  ASSERT_TRUE(a.PostMessage(Value(2)).ok());
  loop.Run();
  EXPECT_EQ(log, (std::vector<std::string>{"second:2", "first:1 " + *big}));
}

// A started port that outlives its loop (a broken contract) forgets it: a
// later post, close and destruction touch no freed memory (ASan checks).
TYPED_TEST(MessagePortTest, PortOutlivingItsLoopIsSafe) {
  auto [a, b] = TypeParam::Create();
  {
    EventLoop loop;
    b.OnMessage([](Value) {});
    ASSERT_TRUE(b.Start(loop).ok());
    ASSERT_TRUE(a.PostMessage(Value(1)).ok());
  }
  EXPECT_FALSE(b.HasRef());
  ASSERT_TRUE(a.PostMessage(Value(2)).ok());  // rings the port's own doorbell
  EXPECT_TRUE(b.TryReceive().has_value());
  a.Close();
  absl::StatusOr<Value> v = b.Receive(absl::Seconds(5));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(absl::IsCancelled(b.Receive(absl::Seconds(5)).status()));
}

}  // namespace
}  // namespace wharf
