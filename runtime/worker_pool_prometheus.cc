#include "wharf/runtime/worker_pool_prometheus.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"
#include "wharf/runtime/latency_histogram.h"
#include "wharf/runtime/worker_pool.h"
#include "wharf/sync/internal/str_cat.h"
#include "wharf/sync/mutex.h"

namespace wharf {
namespace {

using sync_internal::Cat;

// The histogram boundaries of WorkerPool::StatsText() (worker_pool.cc, kLe),
// repeated here because worker_pool.h does not export them; the test checks
// that a scrape and StatsText() agree line for line, so a change on one
// side and not the other fails there.
constexpr double kLeSeconds[] = {1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10};

prometheus::ClientMetric::Label PoolLabel(const std::string& name) { return {"pool", name}; }

// Cumulative counts at each boundary, counted as AppendPrometheusHistogram
// counts them: a bucket is below a boundary only if its upper edge is.
prometheus::ClientMetric::Histogram ToHistogram(const LatencyHistogram::Snapshot& s) {
  prometheus::ClientMetric::Histogram h;
  h.sample_count = s.count;
  h.sample_sum = absl::ToDoubleSeconds(s.sum);
  int b = 0;
  uint64_t cumulative = 0;
  for (const double le : kLeSeconds) {
    while (b < LatencyHistogram::kBuckets &&
           static_cast<double>(LatencyHistogram::UpperEdge(b)) <= le * 1e9) {
      cumulative += s.buckets[b++];
    }
    h.bucket.push_back({cumulative, le});
  }
  // prometheus-cpp's serializer writes the buckets it is given: +Inf too.
  h.bucket.push_back({s.count, std::numeric_limits<double>::infinity()});
  return h;
}

}  // namespace

absl::Status PoolCollector::Add(const WorkerPool& pool, std::string name) {
  if (name.empty()) return absl::InvalidArgumentError("PoolCollector::Add: empty pool name");
  MutexLock lock(mu_);
  for (const auto& [p, n] : pools_) {
    if (p == &pool) {
      return absl::AlreadyExistsError(Cat("PoolCollector::Add: this pool is reported already, as '",
                                          n, "'"));
    }
    if (n == name) {
      return absl::AlreadyExistsError(
          Cat("PoolCollector::Add: another pool is reported as '", name,
              "' already; give each pool its own PoolOptions::name"));
    }
  }
  pools_.emplace_back(&pool, std::move(name));
  return absl::OkStatus();
}

absl::Status PoolCollector::Remove(const WorkerPool& pool) {
  // Taking mu_ waits out a Collect that is reading the pool (it holds mu_
  // while it calls Stats()): after this, nothing here touches `pool`.
  MutexLock lock(mu_);
  const auto it = std::find_if(pools_.begin(), pools_.end(),
                               [&](const auto& entry) { return entry.first == &pool; });
  if (it == pools_.end()) {
    return absl::NotFoundError("PoolCollector::Remove: this pool is not reported (never added, or "
                               "removed already)");
  }
  pools_.erase(it);
  return absl::OkStatus();
}

std::vector<prometheus::MetricFamily> PoolCollector::Collect() const {
  // Read every pool under the lock (Remove's guarantee); build outside it.
  std::vector<std::pair<std::string, PoolStats>> stats;
  {
    MutexLock lock(mu_);
    stats.reserve(pools_.size());
    for (const auto& [pool, name] : pools_) stats.emplace_back(name, pool->Stats());
  }
  if (stats.empty()) return {};

  std::vector<prometheus::MetricFamily> families;
  // One family, one sample per pool; `set` fills the sample's value.
  const auto family = [&](const char* name, const char* help, prometheus::MetricType type,
                          auto set) {
    prometheus::MetricFamily f{name, help, type, {}};
    for (const auto& [pool, s] : stats) {
      prometheus::ClientMetric m;
      m.label.push_back(PoolLabel(pool));
      set(m, s);
      f.metric.push_back(std::move(m));
    }
    families.push_back(std::move(f));
  };
  const auto gauge = [&](const char* name, const char* help, auto value) {
    family(name, help, prometheus::MetricType::Gauge,
           [&](prometheus::ClientMetric& m, const PoolStats& s) {
             m.gauge.value = static_cast<double>(value(s));
           });
  };
  const auto counter = [&](const char* name, const char* help, auto value) {
    family(name, help, prometheus::MetricType::Counter,
           [&](prometheus::ClientMetric& m, const PoolStats& s) {
             m.counter.value = static_cast<double>(value(s));
           });
  };
  const auto histogram = [&](const char* name, const char* help, auto snapshot) {
    family(name, help, prometheus::MetricType::Histogram,
           [&](prometheus::ClientMetric& m, const PoolStats& s) {
             m.histogram = ToHistogram(snapshot(s));
           });
  };

  // Names, help and order as in WorkerPool::StatsText().
  gauge("wharf_pool_workers", "Live workers.", [](const PoolStats& s) { return s.workers; });
  gauge("wharf_pool_busy_workers", "Workers running a task.",
        [](const PoolStats& s) { return s.busy_workers; });
  gauge("wharf_pool_queued_tasks", "Tasks waiting for a worker.",
        [](const PoolStats& s) { return s.queued; });
  counter("wharf_pool_tasks_completed_total", "Tasks that returned a value.",
          [](const PoolStats& s) { return s.completed; });
  counter("wharf_pool_tasks_failed_total", "Tasks that threw or returned an error.",
          [](const PoolStats& s) { return s.failed; });
  counter("wharf_pool_tasks_cancelled_total", "Tasks cancelled or timed out.",
          [](const PoolStats& s) { return s.cancelled; });
  counter("wharf_pool_workers_abandoned_total", "Workers replaced past cancel_grace.",
          [](const PoolStats& s) { return s.abandoned; });
  histogram("wharf_pool_task_run_seconds", "Time inside tasks.",
            [](const PoolStats& s) -> const LatencyHistogram::Snapshot& { return s.run_time; });
  histogram("wharf_pool_task_wait_seconds", "Time tasks waited in the queue.",
            [](const PoolStats& s) -> const LatencyHistogram::Snapshot& { return s.wait_time; });
  return families;
}

}  // namespace wharf
