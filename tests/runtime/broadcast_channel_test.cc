#include "wharf/runtime/broadcast_channel.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int64_t kPerPoster = 2000;
#else
constexpr int64_t kPerPoster = 20000;
#endif

struct Inbox {
  std::vector<std::string> got;
  std::function<void(Value)> Handler() {
    return [this](Value v) { got.push_back(std::string(*v.GetString())); };
  }
};

TEST(BroadcastChannelTest, ThreeChannelsTwoNamesSenderExcluded) {
  EventLoop loop;
  std::vector<BroadcastChannel> channels;
  std::vector<Inbox> inboxes(6);
  for (int i = 0; i < 6; ++i) {
    channels.emplace_back(i < 3 ? "bc-test-alpha" : "bc-test-beta", loop);
  }
  for (int i = 0; i < 6; ++i) {
    channels[i].OnMessage(inboxes[i].Handler());
    channels[i].Unref();  // let Run() return once the deliveries ran
  }
  EXPECT_EQ(channels[0].name(), "bc-test-alpha");
  ASSERT_TRUE(channels[0].PostMessage(Value("a0")).ok());
  ASSERT_TRUE(channels[4].PostMessage(Value("b4")).ok());
  ASSERT_TRUE(channels[2].PostMessage(Value("a2")).ok());
  loop.Run();
  EXPECT_EQ(inboxes[0].got, (std::vector<std::string>{"a2"}));
  EXPECT_EQ(inboxes[1].got, (std::vector<std::string>{"a0", "a2"}));
  EXPECT_EQ(inboxes[2].got, (std::vector<std::string>{"a0"}));
  EXPECT_EQ(inboxes[3].got, (std::vector<std::string>{"b4"}));
  EXPECT_EQ(inboxes[4].got, (std::vector<std::string>{}));
  EXPECT_EQ(inboxes[5].got, (std::vector<std::string>{"b4"}));
}

TEST(BroadcastChannelTest, ClonesPerReceiver) {
  EventLoop loop;
  BroadcastChannel sender("bc-test-clone", loop);
  BroadcastChannel r1("bc-test-clone", loop);
  BroadcastChannel r2("bc-test-clone", loop);
  std::vector<Value> got;
  r1.OnMessage([&](Value v) { got.push_back(std::move(v)); });
  r2.OnMessage([&](Value v) { got.push_back(std::move(v)); });
  r1.Unref();
  r2.Unref();
  SharedBuffer shared = SharedBuffer::Create(4096).value();
  Value msg = Value::Map();
  msg.GetMap()->Set("buf", Buffer::Allocate(16).value());
  msg.GetMap()->Set("shared", shared);
  msg["buf"]->GetBuffer()->data()[0] = std::byte{7};
  ASSERT_TRUE(sender.PostMessage(msg).ok());
  loop.Run();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(msg["buf"]->GetBuffer()->detached());
  for (const Value& v : got) {
    EXPECT_NE(v["buf"]->GetBuffer()->data(), msg["buf"]->GetBuffer()->data());  // copied
    EXPECT_EQ(v["buf"]->GetBuffer()->data()[0], std::byte{7});
    EXPECT_EQ(v["shared"]->GetSharedBuffer()->data(), shared.data());  // shared
  }
  EXPECT_NE(got[0]["buf"]->GetBuffer()->data(), got[1]["buf"]->GetBuffer()->data());

  // Ports and detached Buffers cannot be broadcast.
  auto [p1, p2] = MessageChannel::Create();
  Value with_port = Value::Array(std::move(p2));
  absl::Status s = sender.PostMessage(with_port);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(std::string(s.message()).find("DataCloneError"), std::string::npos);
  EXPECT_TRUE((*with_port.GetArray())[0].GetPort()->valid());
  Buffer gone = Buffer::Allocate(4).value();
  Buffer sink = std::move(gone);
  Value detached(std::move(gone));
  EXPECT_TRUE(absl::IsInvalidArgument(sender.PostMessage(detached)));
  loop.Run();
  EXPECT_EQ(got.size(), 2u);
}

TEST(BroadcastChannelTest, CloseStopsReceivingAndSending) {
  EventLoop loop;
  BroadcastChannel a("bc-test-close", loop);
  BroadcastChannel b("bc-test-close", loop);
  BroadcastChannel c("bc-test-close", loop);
  Inbox ib, ic;
  b.OnMessage(ib.Handler());
  c.OnMessage(ic.Handler());
  b.Unref();
  c.Unref();
  ASSERT_TRUE(a.PostMessage(Value("queued")).ok());
  b.Close();  // drops what was queued for b
  b.Close();  // idempotent
  EXPECT_TRUE(b.closed());
  EXPECT_TRUE(absl::IsFailedPrecondition(b.PostMessage(Value("x"))));
  EXPECT_TRUE(absl::IsFailedPrecondition(b.Start(loop)));
  ASSERT_TRUE(a.PostMessage(Value("after")).ok());
  {
    BroadcastChannel d("bc-test-close", loop);  // destroyed with a message queued
    ASSERT_TRUE(a.PostMessage(Value("to-d")).ok());
  }
  loop.Run();
  EXPECT_TRUE(ib.got.empty());
  EXPECT_EQ(ic.got, (std::vector<std::string>{"queued", "after", "to-d"}));
  BroadcastChannel moved = std::move(c);
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(c.name(), "");
  EXPECT_EQ(moved.name(), "bc-test-close");
  ASSERT_TRUE(a.PostMessage(Value("moved")).ok());
  loop.Run();
  EXPECT_EQ(ic.got.back(), "moved");
}

TEST(BroadcastChannelTest, NoLoopUntilStartedKeepsMessages) {
  BroadcastChannel a("bc-test-start");
  BroadcastChannel b("bc-test-start");  // no loop runs here
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.PostMessage(Value(std::to_string(i))).ok());
  EventLoop loop;
  Inbox ib;
  b.OnMessage(ib.Handler());  // no current loop: still not started
  ASSERT_TRUE(b.Start(loop).ok());
  EXPECT_TRUE(b.Start(loop).ok());
  EventLoop other;
  EXPECT_TRUE(absl::IsFailedPrecondition(b.Start(other)));
  ASSERT_TRUE(a.PostMessage(Value("3")).ok());
  b.Unref();
  loop.Run();
  EXPECT_EQ(ib.got, (std::vector<std::string>{"0", "1", "2", "3"}));
}

TEST(BroadcastChannelTest, HandlerRefsTheLoopUntilClosed) {
  Watchdog dog("BroadcastRef", absl::Seconds(30));
  EventLoop loop;
  BroadcastChannel a("bc-test-ref", loop);
  BroadcastChannel b("bc-test-ref", loop);
  int n = 0;
  b.OnMessage([&](Value) {
    if (++n == 3) b.Close();
  });
  std::thread poster([&a] {
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(a.PostMessage(Value(i)).ok());
  });
  loop.Run();  // returns only after b closed itself
  poster.join();
  EXPECT_EQ(n, 3);
}

// Four posting threads, a receiver on its own loop checking per-sender FIFO
// and zero loss, while other threads keep joining, closing and destroying
// channels of the same name.
TEST(BroadcastChannelTest, ConcurrentPostsCloseAndDestroy) {
  Watchdog dog("BroadcastConcurrency", absl::Seconds(120));
  constexpr int kPosters = 4;
  const std::string name = "bc-test-concurrent";
  std::atomic<bool> ready{false};
  std::vector<int64_t> next(kPosters, 0);
  std::atomic<bool> ok{true};
  std::thread receiver([&] {
    EventLoop loop;
    BroadcastChannel rx(name, loop);
    int64_t total = 0;
    rx.OnMessage([&](Value v) {
      const int64_t who = (*v.GetArray())[0].AsInt().value();
      const int64_t seq = (*v.GetArray())[1].AsInt().value();
      if (seq != next[who]) ok = false;
      next[who] = seq + 1;
      if (++total == kPosters * kPerPoster) rx.Close();
    });
    ready = true;
    loop.Run();
  });
  while (!ready) std::this_thread::yield();
  std::atomic<bool> stop{false};
  std::vector<std::thread> churn;
  for (int t = 0; t < 2; ++t) {
    churn.emplace_back([&] {
      EventLoop loop;
      while (!stop.load()) {
        BroadcastChannel c(name);  // no loop: queues until destroyed
        BroadcastChannel d(name, loop);
        d.OnMessage([](Value) {});
        std::this_thread::yield();
        d.Close();
        loop.Run();  // runs (and discards) what was queued for d
      }
    });
  }
  std::vector<std::thread> posters;
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      BroadcastChannel tx(name);
      for (int64_t i = 0; i < kPerPoster; ++i) {
        EXPECT_TRUE(tx.PostMessage(Value::Array(p, i)).ok());
      }
    });
  }
  for (auto& t : posters) t.join();
  receiver.join();
  stop = true;
  for (auto& t : churn) t.join();
  EXPECT_TRUE(ok.load());
  for (int p = 0; p < kPosters; ++p) EXPECT_EQ(next[p], kPerPoster);
}

// Code without a loop takes the kept messages itself.
TEST(BroadcastChannelTest, TryReceiveAndReceiveWithoutALoop) {
  Watchdog dog("BroadcastReceive", absl::Seconds(30));
  BroadcastChannel a("bc-test-receive");
  BroadcastChannel b("bc-test-receive");
  EXPECT_FALSE(b.TryReceive().has_value());
  ASSERT_TRUE(a.PostMessage(Value("one")).ok());
  std::optional<Value> one = b.TryReceive();
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(*one->GetString(), "one");
  EXPECT_TRUE(absl::IsDeadlineExceeded(b.Receive(absl::Milliseconds(5)).status()));
  std::thread poster([&] {
    absl::SleepFor(absl::Milliseconds(20));  // b is asleep in Receive by then
    ASSERT_TRUE(a.PostMessage(Value("two")).ok());
  });
  absl::StatusOr<Value> two = b.Receive(absl::Seconds(10));
  poster.join();
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(*two->GetString(), "two");
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    b.Close();  // wakes the Receive below
  });
  EXPECT_TRUE(absl::IsCancelled(b.Receive().status()));
  closer.join();
}

// A handler that destroys its own channel: the channel survives until the
// handler returns (ASan checks), and the loop then has nothing left.
TEST(BroadcastChannelTest, HandlerDestroysItsOwnChannel) {
  Watchdog dog("BroadcastSelfDestroy", absl::Seconds(30));
  EventLoop loop;
  BroadcastChannel a("bc-test-self-destroy", loop);
  auto b = std::make_unique<BroadcastChannel>("bc-test-self-destroy", loop);
  int got = 0;
  b->OnMessage([&](Value) {
    ++got;
    b.reset();
  });
  ASSERT_TRUE(a.PostMessage(Value(1)).ok());
  ASSERT_TRUE(a.PostMessage(Value(2)).ok());  // dropped with the channel
  loop.Run();
  EXPECT_EQ(got, 1);
  EXPECT_EQ(b, nullptr);
}

}  // namespace
}  // namespace wharf
