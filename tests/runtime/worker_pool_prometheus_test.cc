// PoolCollector: a scrape over loopback (prometheus::Exposer) agrees with
// Stats() and, line for line, with StatsText(); Add/Remove errors; one
// family per metric for several pools; Remove while others scrape.
#include "wharf/runtime/worker_pool_prometheus.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "prometheus/exposer.h"
#include "tests/testing/watchdog.h"
#include "wharf/runtime/worker_pool.h"

namespace {

WHARF_TASK(prometheus_test_double) { return wharf::Value(arg.AsInt().value() * 2); }
WHARF_TASK(prometheus_test_throw) { throw std::runtime_error("boom"); }

using ::wharf::testing::Watchdog;
namespace w = ::wharf;

constexpr int kFamilies = 9;  // the families of StatsText()

// GET http://127.0.0.1:<port><path> (HTTP/1.0, so the server closes the
// connection after the response); the body of a 200 response.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  timeval tv{.tv_sec = 20, .tv_usec = 0};  // hang detection only
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return absl::UnavailableError(absl::StrCat("connect to port ", port, ": ", std::strerror(errno)));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("recv: ", std::strerror(errno)));
    }
    response.append(buf, static_cast<size_t>(n));
  }
  const size_t end_of_headers = response.find("\r\n\r\n");
  if (end_of_headers == std::string::npos) {
    return absl::DataLossError(absl::StrCat("no end of headers in: ", response));
  }
  const std::string headers = response.substr(0, end_of_headers);
  if (headers.rfind("HTTP/1.1 200", 0) != 0 && headers.rfind("HTTP/1.0 200", 0) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("not a 200 response: ", headers));
  }
  if (headers.find("chunked") != std::string::npos) {
    return absl::UnimplementedError(absl::StrCat("chunked response: ", headers));
  }
  return response.substr(end_of_headers + 4);
}

// The wharf_ families of an exposition text (the exposer adds its own),
// normalised for comparison: "# HELP"/"# TYPE" lines in order, and samples
// "name{label="value",...}" -> value with `le` re-printed as %g (renderers
// format boundaries differently: 0.1 may be "0.1" or "0.10000000000000001").
struct Exposition {
  std::vector<std::string> meta;
  std::map<std::string, double> samples;
};

Exposition Parse(std::string_view text) {
  Exposition e;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty()) continue;
    if (line[0] == '#') {
      // "# HELP name ..." / "# TYPE name ..."
      if (line.substr(0, 13) != "# HELP wharf_" && line.substr(0, 13) != "# TYPE wharf_") continue;
      e.meta.emplace_back(line);
      continue;
    }
    if (line.substr(0, 6) != "wharf_") continue;
    // name[{labels}] value
    size_t i = line.find_first_of("{ ");
    std::string key(line.substr(0, i));
    if (i != std::string_view::npos && line[i] == '{') {
      key += '{';
      ++i;
      bool first = true;
      while (i < line.size() && line[i] != '}') {
        if (line[i] == ',') ++i;
        const size_t eq = line.find('=', i);
        const std::string name(line.substr(i, eq - i));
        i = eq + 2;  // past ="
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') value += line[i++];
          value += line[i++];
        }
        ++i;  // past the closing quote
        if (name == "le") value = absl::StrFormat("%g", std::strtod(value.c_str(), nullptr));
        absl::StrAppend(&key, first ? "" : ",", name, "=\"", value, "\"");
        first = false;
      }
      key += '}';
      ++i;  // past }
    }
    const std::string value(line.substr(i + 1));
    EXPECT_TRUE(e.samples.emplace(key, std::strtod(value.c_str(), nullptr)).second)
        << "sample twice: " << key;
  }
  return e;
}

std::unique_ptr<w::WorkerPool> MakePool(w::PoolOptions o) {
  o.max_queue = 64;  // RunTasks queues all its tasks at once
  auto p = w::WorkerPool::Create(std::move(o));
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

// Runs `ok` succeeding and `bad` throwing tasks; returns once all are done
// and no worker is busy (so Stats() stays put while the test reads it).
void RunTasks(w::WorkerPool& pool, int ok, int bad) {
  std::vector<w::Future<w::Value>> good, failing;
  for (int i = 0; i < ok; ++i) good.push_back(pool.Run("prometheus_test_double", w::Value(i)));
  for (int i = 0; i < bad; ++i) failing.push_back(pool.Run("prometheus_test_throw", w::Value()));
  for (int i = 0; i < ok; ++i) {
    const auto& v = good[i].Get();
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(*v, w::Value(2 * i));
  }
  for (auto& f : failing) EXPECT_EQ(f.Get().status().code(), absl::StatusCode::kUnknown);
  while (pool.Stats().busy_workers != 0) absl::SleepFor(absl::Milliseconds(1));
}

TEST(PoolCollectorTest, ScrapeOverLoopbackMatchesStatsAndStatsText) {
  Watchdog dog("scrape a pool over loopback", absl::Seconds(120));
  // A quote in the name: both renderers must escape it the same way.
  const std::string name = "prometheus \"test\"";
  // min_workers = max_workers: no worker stops while we compare.
  auto pool = MakePool({.max_workers = 2, .min_workers = 2, .name = name});
  ASSERT_NE(pool, nullptr);
  RunTasks(*pool, 20, 7);

  auto collector = std::make_shared<w::PoolCollector>();
  ASSERT_TRUE(collector->Add(*pool, name).ok());
  prometheus::Exposer exposer("127.0.0.1:0");  // port 0: any free port
  exposer.RegisterCollectable(collector);
  ASSERT_EQ(exposer.GetListeningPorts().size(), 1u);
  const int port = exposer.GetListeningPorts()[0];

  absl::StatusOr<std::string> body = HttpGet(port, "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  const w::PoolStats stats = pool->Stats();
  const std::string text = pool->StatsText();
  const Exposition scraped = Parse(*body);
  const Exposition expected = Parse(text);

  // Every family: the same HELP and TYPE, in the same order.
  EXPECT_EQ(scraped.meta, expected.meta) << "scraped:\n" << *body << "\nStatsText:\n" << text;
  EXPECT_EQ(scraped.meta.size(), 2u * kFamilies);
  // Every sample: the same series and value (sums are rendered with
  // different precision).
  ASSERT_EQ(scraped.samples.size(), expected.samples.size()) << *body << "\n---\n" << text;
  for (const auto& [key, value] : expected.samples) {
    const auto it = scraped.samples.find(key);
    ASSERT_NE(it, scraped.samples.end()) << "missing in the scrape: " << key << "\n" << *body;
    EXPECT_NEAR(it->second, value, 1e-6 * std::max(1.0, std::abs(value))) << key;
  }

  // And the values are Stats().
  const std::string l = "{pool=\"prometheus \\\"test\\\"\"}";
  const std::string l_inf = "{pool=\"prometheus \\\"test\\\"\",le=\"inf\"}";
  const auto at = [&](const std::string& key) {
    const auto it = scraped.samples.find(key);
    EXPECT_NE(it, scraped.samples.end()) << key << " not in\n" << *body;
    return it == scraped.samples.end() ? -1.0 : it->second;
  };
  EXPECT_EQ(stats.completed, 20u);
  EXPECT_EQ(stats.failed, 7u);
  EXPECT_EQ(at("wharf_pool_tasks_completed_total" + l), 20);
  EXPECT_EQ(at("wharf_pool_tasks_failed_total" + l), 7);
  EXPECT_EQ(at("wharf_pool_tasks_cancelled_total" + l), 0);
  EXPECT_EQ(at("wharf_pool_workers_abandoned_total" + l), 0);
  EXPECT_EQ(at("wharf_pool_workers" + l), stats.workers);
  EXPECT_EQ(at("wharf_pool_busy_workers" + l), 0);
  EXPECT_EQ(at("wharf_pool_queued_tasks" + l), 0);
  EXPECT_EQ(stats.run_time.count, 27u);
  EXPECT_EQ(stats.wait_time.count, 27u);
  EXPECT_EQ(at("wharf_pool_task_run_seconds_count" + l), 27);
  EXPECT_EQ(at("wharf_pool_task_run_seconds_bucket" + l_inf), 27);
  EXPECT_EQ(at("wharf_pool_task_wait_seconds_count" + l), 27);
  EXPECT_EQ(at("wharf_pool_task_wait_seconds_bucket" + l_inf), 27);
  EXPECT_NEAR(at("wharf_pool_task_run_seconds_sum" + l), absl::ToDoubleSeconds(stats.run_time.sum),
              1e-6);

  // Another path is not served.
  EXPECT_FALSE(HttpGet(port, "/elsewhere").ok());
  EXPECT_TRUE(collector->Remove(*pool).ok());  // before the pool goes
}

TEST(PoolCollectorTest, AddAndRemoveErrors) {
  Watchdog dog("collector errors", absl::Seconds(60));
  auto a = MakePool({.max_workers = 1, .name = "a"});
  auto b = MakePool({.max_workers = 1, .name = "b"});
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  w::PoolCollector collector;
  EXPECT_EQ(collector.Add(*a, "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(collector.Remove(*a).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(collector.Add(*a, "a").ok());
  EXPECT_EQ(collector.Add(*a, "a2").code(), absl::StatusCode::kAlreadyExists);
  const absl::Status same_name = collector.Add(*b, "a");
  EXPECT_EQ(same_name.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(same_name.message().find("PoolOptions::name"), absl::string_view::npos) << same_name;
  EXPECT_TRUE(collector.Remove(*a).ok());
  EXPECT_EQ(collector.Remove(*a).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(collector.Add(*b, "a").ok());  // the name is free again
  EXPECT_TRUE(collector.Remove(*b).ok());
  EXPECT_TRUE(collector.Collect().empty());
}

TEST(PoolCollectorTest, SeveralPoolsShareEachFamily) {
  Watchdog dog("two pools", absl::Seconds(60));
  auto a = MakePool({.max_workers = 1, .name = "a"});
  auto b = MakePool({.max_workers = 1, .name = "b"});
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  RunTasks(*a, 3, 0);
  RunTasks(*b, 0, 2);
  w::PoolCollector collector;
  ASSERT_TRUE(collector.Add(*a, "a").ok());
  ASSERT_TRUE(collector.Add(*b, "b").ok());
  std::vector<prometheus::MetricFamily> families = collector.Collect();
  ASSERT_EQ(families.size(), static_cast<size_t>(kFamilies));
  for (const auto& f : families) {
    ASSERT_EQ(f.metric.size(), 2u) << f.name;
    ASSERT_EQ(f.metric[0].label.size(), 1u);
    EXPECT_EQ(f.metric[0].label[0].name, "pool");
    EXPECT_EQ(f.metric[0].label[0].value, "a");
    EXPECT_EQ(f.metric[1].label[0].value, "b");
  }
  EXPECT_EQ(families[3].name, "wharf_pool_tasks_completed_total");
  EXPECT_EQ(families[3].metric[0].counter.value, 3);
  EXPECT_EQ(families[3].metric[1].counter.value, 0);
  EXPECT_EQ(families[4].name, "wharf_pool_tasks_failed_total");
  EXPECT_EQ(families[4].metric[1].counter.value, 2);
  EXPECT_EQ(families[7].name, "wharf_pool_task_run_seconds");
  EXPECT_EQ(families[7].metric[0].histogram.sample_count, 3u);
  EXPECT_EQ(families[7].metric[1].histogram.sample_count, 2u);

  ASSERT_TRUE(collector.Remove(*a).ok());
  families = collector.Collect();
  ASSERT_EQ(families.size(), static_cast<size_t>(kFamilies));
  for (const auto& f : families) {
    ASSERT_EQ(f.metric.size(), 1u);
    EXPECT_EQ(f.metric[0].label[0].value, "b");
  }
  ASSERT_TRUE(collector.Remove(*b).ok());
}

// Pools are added, used, removed and destroyed while other threads scrape
// without pause: a scrape never reads a destroyed pool (ASan would say so),
// and every scrape is whole — no families, or all of them, each histogram's
// +Inf bucket equal to its count.
TEST(PoolCollectorTest, RemoveThenDestroyWhileScraping) {
  Watchdog dog("remove while scraping", absl::Seconds(120));
  w::PoolCollector collector;
  std::atomic<bool> start{false}, stop{false};
  std::atomic<int> scrapes{0}, broken{0};
  std::vector<std::thread> scrapers;
  for (int t = 0; t < 2; ++t) {
    scrapers.emplace_back([&] {
      while (!start.load(std::memory_order_acquire)) std::this_thread::yield();
      while (!stop.load(std::memory_order_acquire)) {
        const std::vector<prometheus::MetricFamily> families = collector.Collect();
        if (!families.empty() && families.size() != static_cast<size_t>(kFamilies)) ++broken;
        for (const auto& f : families) {
          for (const auto& m : f.metric) {
            if (f.type == prometheus::MetricType::Histogram &&
                (m.histogram.bucket.empty() ||
                 m.histogram.bucket.back().cumulative_count != m.histogram.sample_count)) {
              ++broken;
            }
          }
        }
        ++scrapes;
      }
    });
  }
  start.store(true, std::memory_order_release);
  for (int round = 0; round < 20; ++round) {
    auto pool = MakePool({.max_workers = 2, .name = absl::StrCat("round", round)});
    ASSERT_NE(pool, nullptr);
    ASSERT_TRUE(collector.Add(*pool, absl::StrCat("round", round)).ok());
    RunTasks(*pool, 5, 1);
    ASSERT_TRUE(collector.Remove(*pool).ok());
    pool.reset();  // right after Remove: no scrape may still read it
  }
  stop.store(true, std::memory_order_release);
  for (auto& t : scrapers) t.join();
  EXPECT_EQ(broken.load(), 0);
  EXPECT_GT(scrapes.load(), 0);
}

}  // namespace
