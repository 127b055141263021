// A downstream program: two threads count under a wharf::Mutex placed in a
// wharf::SharedBuffer and signal completion with wharf::atomics.
#include <cstdio>
#include <mutex>
#include <new>
#include <thread>

#include "wharf/sync/atomics.h"
#include "wharf/sync/mutex.h"
#include "wharf/sync/shared_buffer.h"

struct State {
  wharf::Mutex mu;
  int64_t count;
  int32_t done;
};

int main() {
  auto buffer = wharf::SharedBuffer::Create(4096);
  if (!buffer.ok()) {
    std::fprintf(stderr, "%s\n", buffer.status().ToString().c_str());
    return 1;
  }
  State* s = new (buffer->data()) State{};
  auto work = [s] {
    for (int i = 0; i < 10000; ++i) {
      std::lock_guard<wharf::Mutex> lock(s->mu);
      ++s->count;
    }
    wharf::atomics::Add(s->done, 1);
    wharf::atomics::Notify(s->done);
  };
  std::thread a(work), b(work);
  for (int32_t d; (d = wharf::atomics::Load(s->done)) < 2;) wharf::atomics::Wait(s->done, d);
  a.join();
  b.join();
  std::printf("consumer: count=%lld\n", static_cast<long long>(s->count));
  return s->count == 20000 ? 0 : 1;
}
