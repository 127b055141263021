#include "wharf/runtime/default_pool.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "wharf/runtime/available_parallelism.h"

namespace wharf {

WorkerPool& DefaultPool() {
  // Leaked on purpose: never destroyed, so usable at exit; no thread of it
  // outlives a running task (idle ones leave after idle_timeout).
  static WorkerPool* const pool = [] {
    absl::StatusOr<std::unique_ptr<WorkerPool>> p = WorkerPool::Create(PoolOptions{
        .max_workers = std::min(32, AvailableParallelism() + 4),
        .min_workers = 0,
        .max_queue = 1 << 16,
        .name = "wharf-default",
    });
    if (!p.ok()) {
      std::fprintf(stderr, "wharf: cannot make the default thread pool: %s\n",
                   p.status().ToString().c_str());
      std::abort();
    }
    return p->release();
  }();
  return *pool;
}

}  // namespace wharf
