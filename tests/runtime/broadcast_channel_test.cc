// BroadcastChannel within a process, and across a tree of process workers
// (the test binary's main is InitProcess's: the entries below run as
// process workers of it).
#include "wharf/runtime/broadcast_channel.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/buffer.h"
#include "wharf/runtime/event_loop.h"
#include "wharf/runtime/message_port.h"
#include "wharf/runtime/value.h"
#include "wharf/runtime/worker.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int64_t kPerPoster = 2000;
constexpr bool kSanitizedBroadcast = true;
#else
constexpr int64_t kPerPoster = 20000;
constexpr bool kSanitizedBroadcast = false;
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


// --- Bounded backlog ------------------------------------------------------------

// A channel that falls behind gets what fits in its backlog, then one
// DataLoss error in the gap's place, then what came after it was read.
TEST(BroadcastChannelTest, FullBacklogDropsAndSaysHowMany) {
  BroadcastChannel poster("bc-test-backlog");
  BroadcastChannel slow("bc-test-backlog", BroadcastOptions{.max_backlog = 10});
  BroadcastChannel fast("bc-test-backlog");
  for (int64_t i = 0; i < 25; ++i) ASSERT_TRUE(poster.PostMessage(Value(i)).ok());
  for (int64_t i = 0; i < 10; ++i) {
    absl::StatusOr<Value> v = slow.Receive(absl::Seconds(5));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(*v->AsInt(), i);
  }
  absl::StatusOr<Value> gap = slow.Receive(absl::Seconds(5));
  ASSERT_EQ(gap.status().code(), absl::StatusCode::kDataLoss) << gap.status();
  EXPECT_NE(gap.status().message().find("15 message(s) dropped"), std::string::npos)
      << gap.status();
  EXPECT_NE(gap.status().message().find("max_backlog = 10"), std::string::npos) << gap.status();
  ASSERT_TRUE(poster.PostMessage(Value(int64_t{99})).ok());
  EXPECT_EQ(*slow.Receive(absl::Seconds(5))->AsInt(), 99);
  // The other receiver lost nothing.
  for (int64_t i = 0; i < 25; ++i) EXPECT_EQ(*fast.TryReceive()->AsInt(), i);
  EXPECT_EQ(*fast.TryReceive()->AsInt(), 99);
  EXPECT_FALSE(fast.TryReceive().has_value());
}

// On a loop the gap is OnMessageError, in order; TryReceive skips it.
TEST(BroadcastChannelTest, GapIsAMessageErrorInItsPlace) {
  EventLoop loop;
  BroadcastChannel poster("bc-test-gap-loop", loop);
  BroadcastChannel slow("bc-test-gap-loop", loop, BroadcastOptions{.max_backlog = 3});
  std::vector<std::string> seen;
  slow.OnMessage([&](Value v) { seen.push_back(std::to_string(*v.AsInt())); });
  slow.OnMessageError([&](absl::Status s) {
    seen.push_back(absl::IsDataLoss(s) ? "gap" : std::string(s.message()));
  });
  slow.Unref();
  for (int64_t i = 0; i < 5; ++i) ASSERT_TRUE(poster.PostMessage(Value(i)).ok());
  loop.Run();
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "1", "2", "gap"}));

  BroadcastChannel unlooped("bc-test-gap-try", BroadcastOptions{.max_backlog = 2});
  BroadcastChannel p2("bc-test-gap-try");
  for (int64_t i = 0; i < 4; ++i) ASSERT_TRUE(p2.PostMessage(Value(i)).ok());
  ASSERT_TRUE(p2.PostMessage(Value(int64_t{7})).ok());  // joins the gap: still full
  EXPECT_EQ(*unlooped.TryReceive()->AsInt(), 0);
  EXPECT_EQ(*unlooped.TryReceive()->AsInt(), 1);
  EXPECT_FALSE(unlooped.TryReceive().has_value());  // the gap, skipped
}

// --- Across processes ------------------------------------------------------------

// A member of the tree. worker_data {"id", "count", "members", "child"}:
// joins "bc-tree", then (after its own process child when "child" > 0 is
// ready) posts "ready" on its parent port; on "go" it broadcasts [id, 0..
// count-1]; it checks that it gets, from each of the other `members - 1`
// members, [k, 0..count-1] in order, and posts ["done", id, ok] (its
// child's messages are passed up, and it is ready once its child is).
// Ends when its parent port closes.
struct TreeMember {
  int64_t id = 0;
  int64_t count = 0;
  int64_t expected = 0;
  int64_t got = 0;
  bool ok = true;
  std::map<int64_t, int64_t> next;
  std::optional<BroadcastChannel> channel;
  std::optional<Worker> child;
};

WHARF_WORKER_ENTRY(bc_tree_member) {
  auto m = std::make_shared<TreeMember>();
  m->id = *ctx.worker_data()["id"]->AsInt();
  m->count = *ctx.worker_data()["count"]->AsInt();
  m->expected = (*ctx.worker_data()["members"]->AsInt() - 1) * m->count;
  const int64_t child_id = *ctx.worker_data()["child"]->AsInt();
  m->channel.emplace("bc-tree");
  m->channel->OnMessage([m, &ctx](Value v) {
    const int64_t from = *(*v.At(0))->AsInt();
    const int64_t i = *(*v.At(1))->AsInt();
    m->ok = m->ok && from != m->id && m->next[from] == i;
    m->next[from] = i + 1;
    if (++m->got == m->expected) {
      (void)ctx.parent_port().PostMessage(Value::Array("done", m->id, m->ok));
    }
  });
  m->channel->OnMessageError([m](absl::Status) { m->ok = false; });
  ctx.parent_port().OnMessage([m](Value v) {
    if (*v.AsString() != "go") return;
    for (int64_t i = 0; i < m->count; ++i) {
      if (!m->channel->PostMessage(Value::Array(m->id, i)).ok()) m->ok = false;
    }
    if (m->child.has_value()) (void)m->child->PostMessage(Value("go"));
  });
  ctx.parent_port().OnClose([m] {
    m->channel.reset();
    m->child.reset();
  });
  if (child_id == 0) {
    (void)ctx.parent_port().PostMessage(Value("ready"));
    return;
  }
  Value data = Value::Map();
  data.GetMap()->Set("id", child_id);
  data.GetMap()->Set("count", m->count);
  data.GetMap()->Set("members", *ctx.worker_data()["members"]->AsInt());
  data.GetMap()->Set("child", int64_t{0});
  auto w = Worker::Start("bc_tree_member", WorkerOptions{.worker_data = std::move(data),
                                                         .isolation = Isolation::kProcess});
  if (!w.ok()) throw std::runtime_error(std::string(w.status().message()));
  m->child.emplace(*std::move(w));
  m->child->OnMessage([&ctx](Value v) {
    // "ready" and "done" from the child go up as they are; once the child
    // is ready, so is this member.
    const bool ready = v.IsString();
    (void)ctx.parent_port().PostMessage(std::move(v));
    if (ready) (void)ctx.parent_port().PostMessage(Value("ready"));
  });
}

// Posts its pid, then counts the [0, i] it gets on "bc-stall" (checking they
// come in order) and the DataLoss errors; on "final" it posts [got (-1 if
// out of order), the first error's message ("" if none)], once per run of
// finals.
WHARF_WORKER_ENTRY(bc_stall_member) {
  struct State {
    int64_t got = 0;
    bool in_order = true;
    int64_t reported = -1;  // `got` at the last report
    std::string error;
    std::optional<BroadcastChannel> channel;
  };
  auto st = std::make_shared<State>();
  st->channel.emplace("bc-stall");
  st->channel->OnMessage([st, &ctx](Value v) {
    if (v.IsString()) {  // "final"
      if (st->reported != st->got) {  // once per "final" burst
        st->reported = st->got;
        (void)ctx.parent_port().PostMessage(
            Value::Array(st->in_order ? st->got : int64_t{-1}, st->error));
      }
      return;
    }
    st->in_order = st->in_order && st->error.empty() && *v.AsInt() == st->got;
    ++st->got;
  });
  st->channel->OnMessageError([st](absl::Status s) {
    if (st->error.empty()) st->error = std::string(s.message());
  });
  ctx.parent_port().OnClose([st] { st->channel.reset(); });
  (void)ctx.parent_port().PostMessage(Value(static_cast<int64_t>(::getpid())));
}

// /dev/shm apart from other tests' names (they run beside this one).
std::vector<std::string> ShmNames() { return ::wharf::testing::ShmEntriesExceptTestNames(); }

Value MemberData(int64_t id, int64_t count, int64_t members, int64_t child) {
  Value data = Value::Map();
  data.GetMap()->Set("id", id);
  data.GetMap()->Set("count", count);
  data.GetMap()->Set("members", members);
  data.GetMap()->Set("child", child);
  return data;
}

// The parent (1), two process workers (2, 3) and a grandchild (4, under 2):
// every member gets every other member's messages exactly once, in order —
// 2 and 3 talk through the parent, 4 and 3 through 2 and the parent.
TEST(BroadcastChannelProcessTest, TreeOfProcessesSeesEveryMessageOnce) {
  Watchdog dog("broadcast tree", absl::Seconds(120));
  const std::vector<std::string> shm_before = ShmNames();
  constexpr int64_t kCount = 300;
  constexpr int64_t kMembers = 4;
  EventLoop loop;
  TreeMember me;
  me.id = 1;
  me.expected = (kMembers - 1) * kCount;
  BroadcastChannel channel("bc-tree", loop);
  std::function<void()> maybe_finish;
  channel.OnMessage([&](Value v) {
    const int64_t from = *(*v.At(0))->AsInt();
    const int64_t i = *(*v.At(1))->AsInt();
    me.ok = me.ok && from != 1 && me.next[from] == i;
    me.next[from] = i + 1;
    ++me.got;
    maybe_finish();
  });
  channel.OnMessageError([&](absl::Status s) {
    ADD_FAILURE() << s;
    me.ok = false;
  });
  std::vector<Worker> workers;
  int ready = 0;
  std::map<int64_t, bool> done;
  bool finished = false;
  maybe_finish = [&] {
    if (!finished && done.size() == kMembers - 1 && me.got == me.expected) {
      finished = true;
      channel.Close();
      for (Worker& w : workers) w.Terminate();
    }
  };
  for (int64_t id : {2, 3}) {
    auto w = Worker::Start("bc_tree_member",
                           WorkerOptions{.worker_data = MemberData(id, kCount, kMembers,
                                                                   id == 2 ? 4 : 0),
                                         .loop = &loop,
                                         .isolation = Isolation::kProcess});
    ASSERT_TRUE(w.ok()) << w.status();
    workers.push_back(*std::move(w));
  }
  for (Worker& w : workers) {
    w.OnMessage([&](Value v) {
      if (v.IsString()) {  // "ready"
        if (++ready < kMembers - 1) return;
        // Everyone has joined: a message that cannot leave the process is
        // refused before anyone gets it...
        absl::Status bad = channel.PostMessage(Value(std::string("\xc3\x28")));
        EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
        EXPECT_NE(bad.message().find("DataCloneError"), std::string::npos) << bad;
        for (Worker& each : workers) ASSERT_TRUE(each.PostMessage(Value("go")).ok());
        for (int64_t i = 0; i < kCount; ++i) {
          ASSERT_TRUE(channel.PostMessage(Value::Array(int64_t{1}, i)).ok());
        }
        return;
      }
      done[*(*v.At(1))->AsInt()] = *(*v.At(2))->AsBool();
      maybe_finish();
    });
  }
  loop.Run();
  EXPECT_TRUE(me.ok);
  EXPECT_EQ(me.got, me.expected);
  EXPECT_EQ(done, (std::map<int64_t, bool>{{2, true}, {3, true}, {4, true}}));
  workers.clear();
  EXPECT_EQ(ShmNames(), shm_before);
}

// A subscriber process that stops reading (SIGSTOP) never blocks the poster
// or another subscriber; once it runs again it gets what its link held, one
// DataLoss error naming the count of the rest, and what came after. Then it
// is SIGKILLed, and the others carry on.
TEST(BroadcastChannelProcessTest, StalledOrDeadSubscriberNeverBlocksTheOthers) {
  Watchdog dog("broadcast stall", absl::Seconds(120));
  const std::vector<std::string> shm_before = ShmNames();
  EventLoop loop;
  BroadcastChannel channel("bc-stall", loop);
  channel.Unref();
  auto start = [&] {
    auto w = Worker::Start("bc_stall_member",
                           WorkerOptions{.loop = &loop, .isolation = Isolation::kProcess});
    EXPECT_TRUE(w.ok()) << w.status();
    return *std::move(w);
  };
  std::optional<Worker> stalled(start());
  std::optional<Worker> reader(start());
  std::optional<ErrorRecord> stalled_end;
  stalled->OnError([&](const ErrorRecord& e) { stalled_end = e; });
  pid_t stalled_pid = 0;
  pid_t reader_pid = 0;
  std::optional<Value> stalled_report;
  std::optional<Value> reader_report;
  stalled->OnMessage([&](Value v) {
    if (v.IsInt()) {
      stalled_pid = static_cast<pid_t>(*v.AsInt());
    } else {
      stalled_report = std::move(v);
    }
  });
  reader->OnMessage([&](Value v) {
    if (v.IsInt()) {
      reader_pid = static_cast<pid_t>(*v.AsInt());
    } else {
      reader_report = std::move(v);
    }
  });
  const auto run_until = [&](auto pred) {
    while (!pred()) loop.RunUntil(absl::Now() + absl::Milliseconds(5));
  };
  run_until([&] { return stalled_pid != 0 && reader_pid != 0; });
  ASSERT_EQ(::kill(stalled_pid, SIGSTOP), 0);
  // Far more than the stalled link holds; in bursts the reader keeps up with.
  constexpr int64_t kMessages = 20000;
  for (int64_t i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(channel.PostMessage(Value(i)).ok());  // never waits
    if (i % 200 == 199) absl::SleepFor(absl::Milliseconds(kSanitizedBroadcast ? 20 : 2));
  }
  ASSERT_EQ(::kill(stalled_pid, SIGCONT), 0);
  int finals = 0;
  run_until([&] {
    if (stalled_report.has_value() && reader_report.has_value()) return true;
    ++finals;
    EXPECT_TRUE(channel.PostMessage(Value("final")).ok());
    absl::SleepFor(absl::Milliseconds(10));
    return false;
  });
  // The reader got all of it, in order, and no error.
  EXPECT_EQ(*(*reader_report->At(0))->AsInt(), kMessages);
  EXPECT_EQ(*(*reader_report->At(1))->AsString(), "");
  // The stalled one: a prefix in order, then the gap.
  const int64_t got = *(*stalled_report->At(0))->AsInt();
  const std::string error(*(*stalled_report->At(1))->AsString());
  EXPECT_GT(got, 0);
  EXPECT_LT(got, kMessages);
  std::printf("stalled subscriber: %lld delivered, then \"%s\" (%d finals)\n",
              static_cast<long long>(got), error.c_str(), finals);
  unsigned long long dropped = 0;
  ASSERT_EQ(std::sscanf(error.c_str(), "BroadcastChannel \"bc-stall\": %llu message(s) dropped",
                        &dropped), 1) << error;
  EXPECT_NE(error.find("this process fell behind"), std::string::npos) << error;
  // Every message is accounted for; finals that found the link still full
  // joined the gap.
  EXPECT_GE(static_cast<int64_t>(dropped) + got, kMessages);
  EXPECT_LE(static_cast<int64_t>(dropped) + got, kMessages + finals);

  // Now dead: the reader still gets everything.
  ASSERT_EQ(::kill(stalled_pid, SIGKILL), 0);
  reader_report.reset();
  for (int64_t i = 0; i < 2000; ++i) {
    ASSERT_TRUE(channel.PostMessage(Value(kMessages + i)).ok());
    if (i % 200 == 199) absl::SleepFor(absl::Milliseconds(kSanitizedBroadcast ? 20 : 2));
  }
  stalled_report.reset();
  run_until([&] {
    if (reader_report.has_value()) return true;
    EXPECT_TRUE(channel.PostMessage(Value("final")).ok());
    absl::SleepFor(absl::Milliseconds(10));
    return false;
  });
  EXPECT_EQ(*(*reader_report->At(0))->AsInt(), kMessages + 2000);
  EXPECT_EQ(*(*reader_report->At(1))->AsString(), "");
  run_until([&] { return stalled->id() == -1; });
  ASSERT_TRUE(stalled_end.has_value());
  EXPECT_EQ(stalled_end->message, "worker killed by signal 9 (SIGKILL)");
  stalled.reset();
  reader.reset();
  EXPECT_EQ(ShmNames(), shm_before);
}

}  // namespace
}  // namespace wharf
