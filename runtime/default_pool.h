// DefaultPool() and RunInThread(fn): Python's asyncio.to_thread — run a
// blocking call (file or network I/O, a C library that blocks) off an
// actor's event loop, and get a Future to await there.
//
//   wharf::RunInThread([path] { return ReadWholeFile(path); })   // Future<std::string>
//       .Then(loop, [](absl::StatusOr<std::string> text) { ... });  // back on the loop
//
// DefaultPool() is one process-wide thread pool, made on first use and never
// destroyed (it is usable during static destruction; idle threads leave
// after PoolOptions::idle_timeout). Its size is Python's default executor's:
// min(32, AvailableParallelism() + 4) threads, as blocking calls mostly
// wait rather than compute; its queue holds 65536 tasks (then
// ResourceExhausted). For CPU-bound work make a pool of your own.
//
// Thread-safety: from any thread. RunInThread never blocks. Errors: as
// WorkerPool::Run(fn): an exception thrown by `fn` fails its future only.

#ifndef WHARF_RUNTIME_DEFAULT_POOL_H_
#define WHARF_RUNTIME_DEFAULT_POOL_H_

#include <utility>

#include "wharf/runtime/worker_pool.h"

namespace wharf {

WorkerPool& DefaultPool();

// `fn()` (or `fn(TaskContext&)`) on DefaultPool(): a Future of its result.
template <class F>
auto RunInThread(F fn, RunOptions options = {}) {
  return DefaultPool().Run(std::move(fn), std::move(options));
}

}  // namespace wharf

#endif  // WHARF_RUNTIME_DEFAULT_POOL_H_
