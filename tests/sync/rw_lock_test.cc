#include "wharf/sync/rw_lock.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <new>
#include <random>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/sync/lock_shared_state.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/unique_name.h"
#include "tests/testing/watchdog.h"
#include "wharf/sync/atomics.h"
#include "wharf/sync/notification.h"
#include "wharf/sync/shared_buffer.h"

namespace wharf {
namespace {

using testing::HelperPath;
using testing::Subprocess;
using testing::UniqueName;
using testing::Watchdog;

bool WriterBitSet(const RwLock& lock) { return (lock.RawStateForTesting() & RwLock::kWriter) != 0; }

// Waits until `pred` holds (a hang is caught by the test's watchdog).
template <class Pred>
void AwaitTrue(Pred pred) {
  while (!pred()) std::this_thread::sleep_for(std::chrono::microseconds(100));
}

// A thread that takes the write lock and exits holding it: its TID leaves
// /proc, which is how the lock learns that the owner died.
void LockInDyingThread(RwLock& lock) {
  std::thread([&] { ASSERT_EQ(lock.Lock(), LockResult::kOk); }).join();
}

TEST(RwLockTest, ReadersShareWritersExclude) {
  RwLock lock;
  ASSERT_EQ(lock.LockShared(), LockResult::kOk);
  ASSERT_EQ(lock.LockShared(), LockResult::kOk);
  ASSERT_EQ(lock.TryLockShared(), LockResult::kOk);
  EXPECT_EQ(lock.RawStateForTesting(), 3u);
  EXPECT_EQ(lock.TryLock(), LockResult::kBusy);
  lock.UnlockShared();
  lock.UnlockShared();
  lock.UnlockShared();
  ASSERT_EQ(lock.Lock(), LockResult::kOk);
  EXPECT_EQ(lock.TryLockShared(), LockResult::kBusy);
  EXPECT_EQ(lock.TryLock(), LockResult::kBusy);
  lock.Unlock();
  ASSERT_EQ(lock.TryLock(), LockResult::kOk);
  lock.Unlock();
  EXPECT_EQ(lock.RawStateForTesting(), 0u);
  EXPECT_FALSE(lock.IsNotRecoverable());
}

TEST(RwLockTest, StandardLockTypes) {
  RwLock lock;
  {
    std::shared_lock<RwLock> r1(lock);
    std::shared_lock<RwLock> r2(lock, std::try_to_lock);
    EXPECT_TRUE(r2.owns_lock());
    std::unique_lock<RwLock> w(lock, std::try_to_lock);
    EXPECT_FALSE(w.owns_lock());
    EXPECT_FALSE(lock.try_lock_for(std::chrono::milliseconds(2)));
    EXPECT_FALSE(lock.try_lock_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(2)));
  }
  {
    std::scoped_lock w(lock);
    EXPECT_FALSE(lock.try_lock_shared());
    EXPECT_FALSE(lock.try_lock_shared_for(std::chrono::milliseconds(2)));
    EXPECT_FALSE(lock.try_lock_shared_until(std::chrono::system_clock::now() +
                                            std::chrono::milliseconds(2)));
  }
  std::shared_lock<RwLock> r(lock, std::chrono::milliseconds(10));
  EXPECT_TRUE(r.owns_lock());
}

TEST(RwLockTest, LockUntilTimesOutBehindAReaderAndLetsReadersBackIn) {
  Watchdog dog("LockUntilTimesOutBehindAReader", absl::Seconds(30));
  RwLock lock;
  ASSERT_EQ(lock.LockShared(), LockResult::kOk);
  std::thread writer([&] {
    const absl::Time start = absl::Now();
    EXPECT_EQ(lock.LockFor(absl::Milliseconds(20)), LockResult::kTimedOut);
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
  });
  writer.join();
  // The writer gave up: readers are admitted again.
  EXPECT_FALSE(WriterBitSet(lock));
  ASSERT_EQ(lock.TryLockShared(), LockResult::kOk);
  lock.UnlockShared();
  lock.UnlockShared();
  EXPECT_EQ(lock.RawStateForTesting(), 0u);
}

TEST(RwLockTest, LockSharedUntilTimesOutBehindAWriter) {
  Watchdog dog("LockSharedUntilTimesOutBehindAWriter", absl::Seconds(30));
  RwLock lock;
  ASSERT_EQ(lock.Lock(), LockResult::kOk);
  std::thread reader([&] {
    EXPECT_EQ(lock.LockSharedFor(absl::Milliseconds(20)), LockResult::kTimedOut);
    EXPECT_EQ(lock.LockSharedUntil(absl::InfinitePast()), LockResult::kTimedOut);
  });
  reader.join();
  lock.Unlock();
  EXPECT_EQ(lock.RawStateForTesting(), 0u);  // the unlock cleared kReadersWaiting
}

// Once a writer waits, new readers wait too (writer preference).
TEST(RwLockTest, WaitingWriterShutsOutNewReaders) {
  Watchdog dog("WaitingWriterShutsOutNewReaders", absl::Seconds(30));
  RwLock lock;
  ASSERT_EQ(lock.LockShared(), LockResult::kOk);
  std::atomic<bool> writer_in{false};
  std::thread writer([&] {
    ASSERT_EQ(lock.Lock(), LockResult::kOk);
    writer_in = true;
    lock.Unlock();
  });
  AwaitTrue([&] { return WriterBitSet(lock); });
  EXPECT_EQ(lock.TryLockShared(), LockResult::kBusy);
  std::thread late_reader([&] {
    EXPECT_EQ(lock.LockSharedFor(absl::Milliseconds(10)), LockResult::kTimedOut);
  });
  late_reader.join();
  EXPECT_FALSE(writer_in.load());
  lock.UnlockShared();  // the last reader leaves: the writer gets in
  writer.join();
  EXPECT_TRUE(writer_in.load());
}

TEST(RwLockTest, WriterUnlockWakesAllWaitingReaders) {
  Watchdog dog("WriterUnlockWakesAllWaitingReaders", absl::Seconds(30));
  constexpr int kReaders = 4;
  RwLock lock;
  ASSERT_EQ(lock.Lock(), LockResult::kOk);
  std::barrier inside(kReaders + 1);  // all readers hold a share at once
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.emplace_back([&] {
      ASSERT_EQ(lock.LockShared(), LockResult::kOk);
      inside.arrive_and_wait();
      lock.UnlockShared();
    });
  }
  AwaitTrue([&] { return (lock.RawStateForTesting() & RwLock::kReadersWaiting) != 0; });
  lock.Unlock();
  inside.arrive_and_wait();
  for (auto& t : readers) t.join();
  EXPECT_EQ(lock.RawStateForTesting(), 0u);
}

// Readers and writers started on a barrier: a writer is never beside a reader
// or another writer; readers see consistent data (TSan checks the plain
// fields).
TEST(RwLockTest, StressMutualExclusion) {
  Watchdog dog("StressMutualExclusion", absl::Seconds(60));
  constexpr int kThreads = 6;
  constexpr int kIterations = 20000;
  RwLock lock;
  int64_t a = 0, b = 0;  // a == b outside write sections
  std::atomic<int> readers_in{0}, writers_in{0};
  std::atomic<int> violations{0};
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kIterations; ++i) {
        if ((i + t) % 8 == 0) {
          LockResult r = (i % 3 == 0) ? lock.LockFor(absl::Seconds(30)) : lock.Lock();
          if (i % 5 == 0 && lock.TryLock() != LockResult::kBusy) violations.fetch_add(1);
          if (r != LockResult::kOk) violations.fetch_add(1);
          if (writers_in.fetch_add(1) != 0 || readers_in.load() != 0) violations.fetch_add(1);
          ++a;
          for (int k = 0; k < 50; ++k) asm volatile("" ::: "memory");  // widen the window
          ++b;
          writers_in.fetch_sub(1);
          lock.Unlock();
        } else {
          LockResult r = (i % 3 == 0) ? lock.LockSharedFor(absl::Seconds(30)) : lock.LockShared();
          if (r != LockResult::kOk) violations.fetch_add(1);
          readers_in.fetch_add(1);
          if (writers_in.load() != 0 || a != b) violations.fetch_add(1);
          for (int k = 0; k < 50; ++k) asm volatile("" ::: "memory");
          if (writers_in.load() != 0) violations.fetch_add(1);
          readers_in.fetch_sub(1);
          lock.UnlockShared();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(a, b);
  EXPECT_EQ(lock.RawStateForTesting(), 0u);
}

// The reader-stream stress below runs against RwLock and, to show that it
// catches a writer-starving lock, against glibc's reader-preferring rwlock.
// Both adapters: LockFor/Unlock for the writer, LockShared/TryLockShared/
// UnlockShared for the readers (true = acquired).
class WharfRwLockForStream {
 public:
  bool LockFor(absl::Duration timeout) { return lock_.LockFor(timeout) == LockResult::kOk; }
  void Unlock() { lock_.Unlock(); }
  bool LockShared() { return lock_.LockShared() == LockResult::kOk; }
  bool TryLockShared() { return lock_.TryLockShared() == LockResult::kOk; }
  void UnlockShared() { lock_.UnlockShared(); }

 private:
  RwLock lock_;
};

class ReaderPreferringRwLock {
 public:
  ReaderPreferringRwLock() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_READER_NP);
    pthread_rwlock_init(&rw_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  ~ReaderPreferringRwLock() { pthread_rwlock_destroy(&rw_); }
  bool LockFor(absl::Duration timeout) {
    const timespec deadline = absl::ToTimespec(absl::Now() + timeout);  // CLOCK_REALTIME
    return pthread_rwlock_timedwrlock(&rw_, &deadline) == 0;
  }
  void Unlock() { pthread_rwlock_unlock(&rw_); }
  bool LockShared() { return pthread_rwlock_rdlock(&rw_) == 0; }
  bool TryLockShared() { return pthread_rwlock_tryrdlock(&rw_) == 0; }
  void UnlockShared() { pthread_rwlock_unlock(&rw_); }

 private:
  pthread_rwlock_t rw_;
};

struct ReaderStreamResult {
  int writes_in = 0;              // writes that got the lock within the timeout
  int64_t most_after_close = 0;   // most reads counted after a reader saw the door shut
  bool close_unseen = false;      // a writer got in while no reader saw the door shut
  int64_t reads = 0;
  int64_t handoffs = 0;           // read sections that overlapped the next one
};

// Readers pass the lock along as a relay: a reader leaves its read section
// only once another reader is inside, so the lock is never free of readers
// by chance (scheduling decides only how often the baton changes hands) --
// unless no new reader can get in (TryLockShared() fails: a writer has shut
// the door) or the run is over. The writer calls LockFor() only after a
// hand-off since its last write, so it always arrives while read sections
// overlap. A lock that admits readers while a writer waits never lets the
// writer in (the relay goes on), so LockFor() times out. With a writer-
// preferring lock, once a reader inside has seen the door shut, each other
// reader can still count at most the one read it was admitted to before the
// door shut: so at most readers - 1 reads are counted after that.
template <class Lock>
ReaderStreamResult RunReaderStream(Lock& lock, int readers_n, int writes,
                                   absl::Duration write_timeout) {
  std::atomic<int64_t> reads{0};
  std::atomic<int64_t> handoffs{0};
  std::atomic<int64_t> reads_at_close{-1};  // reads when a reader saw the door shut
  std::atomic<int> inside{0};               // readers in their read section
  std::atomic<bool> done{false};
  std::barrier start(readers_n + 1);
  std::vector<std::thread> readers;
  for (int i = 0; i < readers_n; ++i) {
    readers.emplace_back([&] {
      start.arrive_and_wait();
      while (!done.load()) {
        if (!lock.LockShared()) continue;
        reads.fetch_add(1);
        inside.fetch_add(1);
        for (;;) {
          int n = inside.load();
          if (n >= 2 && inside.compare_exchange_weak(n, n - 1)) {  // a successor holds on
            handoffs.fetch_add(1);
            break;
          }
          if (done.load()) {
            inside.fetch_sub(1);
            break;
          }
          if (!lock.TryLockShared()) {  // the door is shut: a writer waits
            reads_at_close.store(reads.load());
            inside.fetch_sub(1);
            break;
          }
          lock.UnlockShared();
          std::this_thread::yield();
        }
        lock.UnlockShared();
      }
    });
  }
  ReaderStreamResult result;
  start.arrive_and_wait();
  for (int w = 0; w < writes; ++w) {
    // Readers hand off freely while no writer waits (a hang: the watchdog).
    const int64_t h = handoffs.load();
    while (handoffs.load() == h) std::this_thread::sleep_for(std::chrono::microseconds(50));
    reads_at_close.store(-1);
    if (!lock.LockFor(write_timeout)) break;
    ++result.writes_in;
    const int64_t at_close = reads_at_close.load();
    if (at_close < 0) {
      result.close_unseen = true;
    } else {
      result.most_after_close = std::max(result.most_after_close, reads.load() - at_close);
    }
    lock.Unlock();
  }
  done = true;
  for (auto& t : readers) t.join();
  result.reads = reads.load();
  result.handoffs = handoffs.load();
  return result;
}

// Readers keep the lock continuously held (the relay above), so a
// reader-preferring lock would never admit the writer. RwLock admits every
// write, and no reader gets in once the door is shut.
TEST(RwLockTest, StressWriterNotStarvedByReaderStream) {
  Watchdog dog("StressWriterNotStarvedByReaderStream", absl::Seconds(60));
  constexpr int kReaders = 3;
  constexpr int kWrites = 100;
  WharfRwLockForStream lock;
  const ReaderStreamResult r = RunReaderStream(lock, kReaders, kWrites, absl::Seconds(20));
  EXPECT_EQ(r.writes_in, kWrites) << "a writer waited 20 s behind the reader stream";
  EXPECT_FALSE(r.close_unseen) << "a writer got in while a reader held a share";
  EXPECT_LE(r.most_after_close, kReaders - 1) << "readers got in after the door shut";
  std::fprintf(stderr, "reader stream: %d writes, %lld reads, %lld hand-offs\n", r.writes_in,
               static_cast<long long>(r.reads), static_cast<long long>(r.handoffs));
}

// The stress above can fail: against a reader-preferring lock the first
// writer is starved, deterministically (the relay never lets go).
TEST(RwLockTest, ReaderStreamStarvesAReaderPreferringLock) {
  Watchdog dog("ReaderStreamStarvesAReaderPreferringLock", absl::Seconds(60));
  ReaderPreferringRwLock lock;
  const ReaderStreamResult r = RunReaderStream(lock, 3, 1, absl::Milliseconds(50));
  EXPECT_EQ(r.writes_in, 0);
}

// ---- Owner death (threads) ----

TEST(RwLockTest, NextWriterAfterDeadWriterGetsOwnerDied) {
  Watchdog dog("NextWriterAfterDeadWriterGetsOwnerDied", absl::Seconds(30));
  RwLock lock;
  LockInDyingThread(lock);
  ASSERT_EQ(lock.Lock(), LockResult::kOwnerDied);
  EXPECT_EQ(lock.TryLockShared(), LockResult::kBusy);
  EXPECT_TRUE(lock.MarkConsistent().ok());
  EXPECT_EQ(lock.MarkConsistent().code(), absl::StatusCode::kFailedPrecondition);
  lock.Unlock();
  ASSERT_EQ(lock.Lock(), LockResult::kOk);
  lock.Unlock();
  ASSERT_EQ(lock.LockShared(), LockResult::kOk);
  lock.UnlockShared();
  EXPECT_EQ(lock.RawStateForTesting(), 0u);
}

TEST(RwLockTest, ReaderAfterDeadWriterRecoversExclusively) {
  Watchdog dog("ReaderAfterDeadWriterRecoversExclusively", absl::Seconds(30));
  RwLock lock;
  LockInDyingThread(lock);
  ASSERT_EQ(lock.LockShared(), LockResult::kOwnerDied);
  // The reader holds the lock exclusively now.
  std::thread other([&] {
    EXPECT_EQ(lock.TryLockShared(), LockResult::kBusy);
    EXPECT_EQ(lock.TryLock(), LockResult::kBusy);
    EXPECT_EQ(lock.MarkConsistent().code(), absl::StatusCode::kFailedPrecondition);
  });
  other.join();
  EXPECT_TRUE(lock.MarkConsistent().ok());
  lock.UnlockShared();  // releases the exclusive hold
  ASSERT_EQ(lock.LockShared(), LockResult::kOk);
  lock.UnlockShared();
  EXPECT_EQ(lock.RawStateForTesting(), 0u);
}

// A reader and a writer already blocked when the writer dies: exactly one of
// them recovers (kOwnerDied), the other gets in normally afterwards.
TEST(RwLockTest, WaitersBehindAWriterThatDies) {
  Watchdog dog("WaitersBehindAWriterThatDies", absl::Seconds(30));
  RwLock lock;
  Notification die;
  std::thread holder([&] {
    ASSERT_EQ(lock.Lock(), LockResult::kOk);
    die.WaitForNotification();
    // exits holding the write lock
  });
  AwaitTrue([&] { return WriterBitSet(lock); });
  std::atomic<int> owner_died{0}, ok{0};
  auto handle = [&](LockResult r, bool shared) {
    if (r == LockResult::kOwnerDied) {
      owner_died.fetch_add(1);
      EXPECT_TRUE(lock.MarkConsistent().ok());
      lock.Unlock();
    } else if (r == LockResult::kOk) {
      ok.fetch_add(1);
      shared ? lock.UnlockShared() : lock.Unlock();
    }
  };
  std::thread reader([&] { handle(lock.LockShared(), true); });
  std::thread writer([&] { handle(lock.Lock(), false); });
  AwaitTrue([&] { return (lock.RawStateForTesting() & RwLock::kReadersWaiting) != 0; });
  die.Notify();
  holder.join();
  reader.join();
  writer.join();
  EXPECT_EQ(owner_died.load(), 1);
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(lock.RawStateForTesting(), 0u);
}

void ExpectNotRecoverable(RwLock& lock) {
  EXPECT_TRUE(lock.IsNotRecoverable());
  EXPECT_EQ(lock.Lock(), LockResult::kNotRecoverable);
  EXPECT_EQ(lock.LockFor(absl::Milliseconds(1)), LockResult::kNotRecoverable);
  EXPECT_EQ(lock.TryLock(), LockResult::kNotRecoverable);
  EXPECT_EQ(lock.LockShared(), LockResult::kNotRecoverable);
  EXPECT_EQ(lock.TryLockShared(), LockResult::kNotRecoverable);
  EXPECT_EQ(lock.MarkConsistent().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THROW(lock.lock(), std::system_error);
  EXPECT_THROW(lock.lock_shared(), std::system_error);
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock_shared());
}

TEST(RwLockTest, WriterUnlockWithoutMarkConsistentIsNotRecoverable) {
  Watchdog dog("WriterUnlockWithoutMarkConsistent", absl::Seconds(30));
  RwLock lock;
  LockInDyingThread(lock);
  ASSERT_EQ(lock.Lock(), LockResult::kOwnerDied);
  lock.Unlock();  // no MarkConsistent
  ExpectNotRecoverable(lock);
}

TEST(RwLockTest, ReaderUnlockWithoutMarkConsistentIsNotRecoverable) {
  Watchdog dog("ReaderUnlockWithoutMarkConsistent", absl::Seconds(30));
  RwLock lock;
  LockInDyingThread(lock);
  ASSERT_EQ(lock.LockShared(), LockResult::kOwnerDied);
  lock.UnlockShared();  // no MarkConsistent
  ExpectNotRecoverable(lock);
}

TEST(RwLockTest, SleepersWokenWithNotRecoverable) {
  Watchdog dog("SleepersWokenWithNotRecoverable", absl::Seconds(30));
  RwLock lock;
  LockInDyingThread(lock);
  ASSERT_EQ(lock.Lock(), LockResult::kOwnerDied);
  std::atomic<int> not_recoverable{0};
  std::thread reader([&] {
    if (lock.LockShared() == LockResult::kNotRecoverable) not_recoverable.fetch_add(1);
  });
  std::thread writer([&] {
    if (lock.Lock() == LockResult::kNotRecoverable) not_recoverable.fetch_add(1);
  });
  AwaitTrue([&] { return (lock.RawStateForTesting() & RwLock::kReadersWaiting) != 0; });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let the writer queue too
  lock.Unlock();
  reader.join();
  writer.join();
  EXPECT_EQ(not_recoverable.load(), 2);
}

TEST(RwLockTest, StdLockAfterOwnerDeathHoldsInconsistent) {
  Watchdog dog("StdLockAfterOwnerDeathHoldsInconsistent", absl::Seconds(30));
  RwLock lock;
  LockInDyingThread(lock);
  lock.lock_shared();  // acquires exclusively, in the owner-died state
  EXPECT_TRUE(lock.RawStateForTesting() & RwLock::kInconsistent);
  EXPECT_TRUE(lock.MarkConsistent().ok());
  lock.unlock_shared();
  EXPECT_EQ(lock.RawStateForTesting(), 0u);
}

TEST(RwLockTest, SharedMemoryLayout) {
  static_assert(sizeof(RwLock) == 16 && alignof(RwLock) == 8);
  static_assert(std::is_trivially_destructible_v<RwLock>);
  alignas(RwLock) unsigned char raw[sizeof(RwLock)] = {};
  auto* lock = new (raw) RwLock;  // all-zero bytes are an unlocked RwLock
  ASSERT_EQ(lock->TryLock(), LockResult::kOk);
  lock->Unlock();
}

TEST(RwLockDeathTest, Misuse) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  RwLock lock;
  EXPECT_DEATH(lock.UnlockShared(), "no read share held");
  EXPECT_DEATH(lock.Unlock(), "does not hold the lock exclusively");
  ASSERT_EQ(lock.LockShared(), LockResult::kOk);
  EXPECT_DEATH(lock.Unlock(), "does not hold the lock exclusively");
  lock.UnlockShared();
}

// ---- Cross-process: an RwLock in a named SharedBuffer ----

using ::wharf::testing::RwLockShared;  // tests/sync/lock_shared_state.h

class RwLockProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = UniqueName("rw_lock");
    auto buffer = SharedBuffer::CreateNamed(name_, 4096);
    ASSERT_TRUE(buffer.ok()) << buffer.status();
    buffer_ = *std::move(buffer);
    state_ = new (buffer_.data()) RwLockShared{};
  }
  void TearDown() override {
    buffer_ = SharedBuffer();  // the creator's last handle removes the name
    EXPECT_FALSE(SharedBuffer::OpenNamed(name_).ok()) << name_ << " left in /dev/shm";
  }
  absl::StatusOr<Subprocess> Spawn(std::vector<std::string> args) {
    return Subprocess::Spawn(HelperPath("tests/sync/sync_process_helper"), args);
  }
  void AwaitReady() {
    while (atomics::Load(state_->ready) == 0) {
      (void)atomics::Wait(state_->ready, 0u, absl::Milliseconds(100));
    }
    atomics::Store(state_->ready, 0u);
  }
  // SIGKILLs the child and reaps it (its TID then leaves /proc).
  static void KillAndReap(Subprocess& child) {
    child.Kill();
    auto code = child.Wait(absl::Seconds(30));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 128 + SIGKILL);
  }

  std::string name_;
  SharedBuffer buffer_;
  RwLockShared* state_ = nullptr;
};

// A reader blocked behind a writer process that is SIGKILLed recovers the
// lock exclusively and repairs the data.
TEST_F(RwLockProcessTest, ReaderRecoversFromKilledWriter) {
  Watchdog dog("ReaderRecoversFromKilledWriter", absl::Seconds(60));
  auto child = Spawn({"rwlock_hold_write", name_});
  ASSERT_TRUE(child.ok()) << child.status();
  AwaitReady();  // the child holds the write lock and has broken a == b
  LockResult reader_result = LockResult::kBusy;
  std::thread reader([&] {
    reader_result = state_->lock.LockShared();
    if (reader_result == LockResult::kOwnerDied) {
      state_->b = state_->a;  // repair
      EXPECT_TRUE(state_->lock.MarkConsistent().ok());
    }
    if (Acquired(reader_result)) state_->lock.UnlockShared();
  });
  AwaitTrue([&] { return (state_->lock.RawStateForTesting() & RwLock::kReadersWaiting) != 0; });
  KillAndReap(*child);
  reader.join();
  EXPECT_EQ(reader_result, LockResult::kOwnerDied);
  ASSERT_EQ(state_->lock.LockShared(), LockResult::kOk);
  EXPECT_EQ(state_->a, state_->b);
  state_->lock.UnlockShared();
}

TEST_F(RwLockProcessTest, WriterRecoversFromKilledWriter) {
  Watchdog dog("WriterRecoversFromKilledWriter", absl::Seconds(60));
  auto child = Spawn({"rwlock_hold_write", name_});
  ASSERT_TRUE(child.ok()) << child.status();
  AwaitReady();
  EXPECT_EQ(state_->lock.LockFor(absl::Milliseconds(5)), LockResult::kTimedOut);
  KillAndReap(*child);
  ASSERT_EQ(state_->lock.Lock(), LockResult::kOwnerDied);
  EXPECT_NE(state_->a, state_->b);
  state_->b = state_->a;
  ASSERT_TRUE(state_->lock.MarkConsistent().ok());
  state_->lock.Unlock();
  ASSERT_EQ(state_->lock.Lock(), LockResult::kOk);
  state_->lock.Unlock();
}

// A writer process killed while it waits for a reader to drain (it holds the
// writer side, readers are shut out). The next writer recovers but times out
// on the reader; the recovery stays pending (readers are still shut out),
// and once the reader leaves, a reader takes the recovery over.
TEST_F(RwLockProcessTest, WriterKilledWhileDrainingLeavesRecoveryPending) {
  Watchdog dog("WriterKilledWhileDraining", absl::Seconds(60));
  auto reader = Spawn({"rwlock_hold_read", name_});
  ASSERT_TRUE(reader.ok()) << reader.status();
  AwaitReady();  // the reader child holds a share
  auto writer = Spawn({"rwlock_block_write", name_});
  ASSERT_TRUE(writer.ok()) << writer.status();
  AwaitTrue([&] { return WriterBitSet(state_->lock); });
  KillAndReap(*writer);
  EXPECT_EQ(state_->lock.LockFor(absl::Milliseconds(300)), LockResult::kTimedOut);
  const uint32_t state = state_->lock.RawStateForTesting();
  EXPECT_TRUE(state & RwLock::kInconsistent) << state;
  EXPECT_FALSE(state & RwLock::kWriter) << state;
  EXPECT_EQ(state_->lock.TryLockShared(), LockResult::kBusy);  // still shut out
  atomics::Store(state_->release, 1u);
  atomics::Notify(state_->release);
  auto code = reader->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  ASSERT_EQ(state_->lock.LockShared(), LockResult::kOwnerDied);  // exclusive
  ASSERT_TRUE(state_->lock.MarkConsistent().ok());
  state_->lock.UnlockShared();
  EXPECT_EQ(state_->lock.RawStateForTesting(), 0u);
}

// A writer child is SIGKILLed at a random point of its write loop, many
// times; after each kill the parent gets the lock (recovering if the child
// died inside) and the invariant holds after the repair.
TEST_F(RwLockProcessTest, KillLoopWritersAtRandomPoints) {
  Watchdog dog("KillLoopWritersAtRandomPoints", absl::Seconds(120));
  // >= 100 kills; fewer under a sanitizer, where each spawn costs ~100 ms.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr int kRounds = 30;
#else
  constexpr int kRounds = 100;
#endif
  std::mt19937 rng(12345);
  int recoveries = 0;
  for (int round = 0; round < kRounds; ++round) {
    auto child = Spawn({"rwlock_churn_write", name_});
    ASSERT_TRUE(child.ok()) << child.status();
    AwaitReady();
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    KillAndReap(*child);
    const LockResult r = (round % 2 == 0) ? state_->lock.Lock() : state_->lock.LockShared();
    ASSERT_TRUE(Acquired(r)) << LockResultName(r);
    if (r == LockResult::kOwnerDied) {
      ++recoveries;
      state_->b = state_->a;
      ASSERT_TRUE(state_->lock.MarkConsistent().ok());
    }
    EXPECT_EQ(state_->a, state_->b) << "round " << round;
    if (round % 2 == 0 || r == LockResult::kOwnerDied) {
      state_->lock.Unlock();
    } else {
      state_->lock.UnlockShared();
    }
  }
  EXPECT_EQ(state_->lock.RawStateForTesting(), 0u);
  // Most kills land inside the write section (it is most of the loop).
  EXPECT_GT(recoveries, 0);
  std::fprintf(stderr, "kill loop: %d recoveries in %d kills\n", recoveries, kRounds);
}

TEST_F(RwLockProcessTest, ContentionAcrossProcesses) {
  Watchdog dog("ContentionAcrossProcesses", absl::Seconds(60));
  constexpr int kChildren = 2;
  constexpr int kIterations = 5000;
  std::vector<Subprocess> children;
  for (int i = 0; i < kChildren; ++i) {
    auto child = Spawn({"rwlock_contend", name_, std::to_string(kIterations)});
    ASSERT_TRUE(child.ok()) << child.status();
    children.push_back(*std::move(child));
  }
  for (int i = 0; i < kIterations; ++i) {
    ASSERT_EQ(state_->lock.LockShared(), LockResult::kOk);
    const bool torn = state_->a != state_->b;
    state_->lock.UnlockShared();
    ASSERT_FALSE(torn) << "iteration " << i;
  }
  for (auto& child : children) {
    auto code = child.Wait(absl::Seconds(60));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }
  EXPECT_EQ(state_->a, int64_t{kChildren} * kIterations / 4);
  EXPECT_EQ(state_->a, state_->b);
}

}  // namespace
}  // namespace wharf
