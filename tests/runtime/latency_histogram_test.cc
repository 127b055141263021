#include "wharf/runtime/latency_histogram.h"

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/watchdog.h"

namespace wharf {
namespace {

using ::wharf::testing::Watchdog;

TEST(LatencyHistogramTest, EveryValueLiesInItsBucketWithinAnEighth) {
  std::mt19937_64 rng(1);
  std::vector<uint64_t> values;
  for (uint64_t v = 0; v < 5000; ++v) values.push_back(v);
  for (int i = 0; i < 100000; ++i) values.push_back(rng() >> (rng() % 64));
  values.push_back(std::numeric_limits<uint64_t>::max());
  for (uint64_t v : values) {
    const int b = LatencyHistogram::BucketOf(v);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, LatencyHistogram::kBuckets);
    const uint64_t upper = LatencyHistogram::UpperEdge(b);
    ASSERT_GE(upper, v) << v;
    if (b > 0) ASSERT_LT(LatencyHistogram::UpperEdge(b - 1), v) << v;  // buckets tile the line
    // Width at most an eighth of the value (exact below 8 ns).
    ASSERT_LE(static_cast<double>(upper - v), static_cast<double>(v) / 8.0 + 1e-9) << v;
  }
  EXPECT_EQ(LatencyHistogram::UpperEdge(LatencyHistogram::kBuckets - 1),
            std::numeric_limits<uint64_t>::max());
}

TEST(LatencyHistogramTest, CountSumMaxExactQuantilesWithinAnEighth) {
  LatencyHistogram h;
  EXPECT_EQ(h.Read().count, 0u);
  EXPECT_EQ(h.Read().Quantile(0.5), absl::ZeroDuration());
  for (int us = 1; us <= 1000; ++us) h.Record(absl::Microseconds(us));
  const LatencyHistogram::Snapshot s = h.Read();
  EXPECT_EQ(s.count, 1000u);
  EXPECT_EQ(s.sum, absl::Microseconds(500500));
  EXPECT_EQ(s.max, absl::Microseconds(1000));
  for (double q : {0.5, 0.9, 0.99}) {
    const absl::Duration want = absl::Microseconds(q * 1000);
    const absl::Duration got = s.Quantile(q);
    EXPECT_GE(got, want) << q;
    EXPECT_LE(got, want * 1.125) << q;
  }
  EXPECT_EQ(s.Quantile(1.0), absl::Microseconds(1000));  // clamped to the max
  EXPECT_EQ(s.Quantile(2.0), absl::Microseconds(1000));
  EXPECT_LE(s.Quantile(0.0), absl::Microseconds(1) * 1.125);
  EXPECT_LE(s.Quantile(std::nan("")), absl::Microseconds(1) * 1.125);
}

TEST(LatencyHistogramTest, OddDurations) {
  LatencyHistogram h;
  h.Record(-absl::Seconds(1));  // counts as 0
  h.Record(absl::ZeroDuration());
  h.Record(absl::InfiniteDuration());
  const LatencyHistogram::Snapshot s = h.Read();
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.buckets[0], 2u);
  EXPECT_EQ(s.max, absl::InfiniteDuration());
  EXPECT_EQ(s.Quantile(0.5), absl::ZeroDuration());
  EXPECT_EQ(s.Quantile(1.0), absl::InfiniteDuration());
}

// Four threads recording while a fifth reads: every snapshot's count equals
// its buckets' sum and never decreases; the final one has every record.
TEST(LatencyHistogramTest, ConcurrentRecordsAndReads) {
  Watchdog dog("LatencyHistogram concurrency", absl::Seconds(120));
  LatencyHistogram h;
  constexpr int kThreads = 4, kEach = 100000;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    uint64_t last = 0;
    while (!done.load()) {
      const LatencyHistogram::Snapshot s = h.Read();
      uint64_t sum = 0;
      for (uint64_t n : s.buckets) sum += n;
      EXPECT_EQ(sum, s.count);
      EXPECT_GE(s.count, last);
      last = s.count;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) h.Record(absl::Nanoseconds(1 + (i % 1000) + t));
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  reader.join();
  const LatencyHistogram::Snapshot s = h.Read();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kEach);
  int64_t want_ns = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) want_ns += 1 + (i % 1000) + t;
  }
  EXPECT_EQ(s.sum, absl::Nanoseconds(want_ns));
  EXPECT_EQ(s.max, absl::Nanoseconds(1000 + kThreads - 1));
}

TEST(LatencyHistogramTest, PrometheusTextExposition) {
  LatencyHistogram h;
  h.Record(absl::Microseconds(100));
  h.Record(absl::Milliseconds(2));
  h.Record(absl::Seconds(3));
  const double le[] = {0.001, 0.01, 1};
  std::string out;
  AppendPrometheusHistogram("wharf_pool_task_run_seconds", "Time inside tasks.",
                            "pool=\"" + PrometheusLabelValue("a\"b") + "\"", h.Read(), le, 3, &out);
  EXPECT_EQ(out,
            "# HELP wharf_pool_task_run_seconds Time inside tasks.\n"
            "# TYPE wharf_pool_task_run_seconds histogram\n"
            "wharf_pool_task_run_seconds_bucket{pool=\"a\\\"b\",le=\"0.001\"} 1\n"
            "wharf_pool_task_run_seconds_bucket{pool=\"a\\\"b\",le=\"0.01\"} 2\n"
            "wharf_pool_task_run_seconds_bucket{pool=\"a\\\"b\",le=\"1\"} 2\n"
            "wharf_pool_task_run_seconds_bucket{pool=\"a\\\"b\",le=\"+Inf\"} 3\n"
            "wharf_pool_task_run_seconds_sum{pool=\"a\\\"b\"} 3.0021\n"
            "wharf_pool_task_run_seconds_count{pool=\"a\\\"b\"} 3\n");
  std::string bare;
  AppendPrometheusHistogram("x", "h", "", LatencyHistogram().Read(), le, 1, &bare);
  EXPECT_EQ(bare,
            "# HELP x h\n# TYPE x histogram\nx_bucket{le=\"0.001\"} 0\n"
            "x_bucket{le=\"+Inf\"} 0\nx_sum 0\nx_count 0\n");
  EXPECT_EQ(PrometheusLabelValue("a\\b\nc"), "a\\\\b\\nc");
}

}  // namespace
}  // namespace wharf
