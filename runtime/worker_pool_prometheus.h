// PoolCollector: worker pools' statistics as a prometheus-cpp Collectable —
// serve them with prometheus::Exposer (or any prometheus-cpp pull/push path).
// A separate target (//runtime:worker_pool_prometheus), so the pool itself
// does not depend on prometheus-cpp.
//
//   auto collector = std::make_shared<wharf::PoolCollector>();
//   (void)collector->Add(*pool, "hash");              // pool="hash"
//   prometheus::Exposer exposer("127.0.0.1:9464");
//   exposer.RegisterCollectable(collector);          // GET /metrics
//
// Each Collect() reads every added pool's Stats() at that moment and returns
// the families of WorkerPool::StatsText() — the same names, help, types and
// buckets — with one sample per pool, labelled pool="<name>": nothing is
// counted twice, and a scrape agrees with Stats(). Use one collector for all
// the pools served on one URI (two collectables emitting the same family
// there would repeat it, which the exposition format forbids).
//
// Thread-safety: Add, Remove and Collect may be called concurrently from any
// thread (a scrape runs on the exposer's threads).
//
// Lifetime: the collector does not own the pools. A pool must stay alive
// until it is removed, or until nothing can call Collect any more (the
// exposer is destroyed, or the collector is). Remove blocks while a Collect
// is reading the pools, so once it returns the pool may be destroyed. The
// exposer holds the collector through a weak_ptr: keep a shared_ptr to it.

#ifndef WHARF_RUNTIME_WORKER_POOL_PROMETHEUS_H_
#define WHARF_RUNTIME_WORKER_POOL_PROMETHEUS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "wharf/runtime/worker_pool.h"
#include "wharf/sync/mutex.h"

namespace wharf {

class PoolCollector final : public prometheus::Collectable {
 public:
  PoolCollector() = default;
  PoolCollector(const PoolCollector&) = delete;
  PoolCollector& operator=(const PoolCollector&) = delete;

  // Reports `pool` labelled pool="<name>" — pass the pool's PoolOptions::name
  // to match its StatsText(). InvalidArgument for an empty name;
  // AlreadyExists if the pool or the name is reported already. Never blocks
  // longer than a Collect under way.
  absl::Status Add(const WorkerPool& pool, std::string name);

  // Stops reporting `pool`; returns once no Collect reads it (blocks while
  // one does). NotFound if it is not reported.
  absl::Status Remove(const WorkerPool& pool);

  // The families of StatsText(), one sample per reported pool (in the order
  // added); no families while no pool is. Blocks Add/Remove while it runs.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable Mutex mu_;
  std::vector<std::pair<const WorkerPool*, std::string>> pools_;  // guarded by mu_
};

}  // namespace wharf

#endif  // WHARF_RUNTIME_WORKER_POOL_PROMETHEUS_H_
