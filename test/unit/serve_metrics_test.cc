//===- serve_metrics_test.cc - Prometheus text exposition ------------------===//
#include "runtime/serve/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace kiln::serve {
namespace {

TEST(MetricsTest, RendersCountersAndGaugesWithHelpAndType) {
  MetricsRegistry registry;
  StatusOr<Counter*> counter = registry.AddCounter("kiln_tokens_total", "Tokens made.");
  ASSERT_TRUE(counter.ok()) << counter.status().message();
  StatusOr<Gauge*> gauge = registry.AddGauge("kiln_running", "Running now.");
  ASSERT_TRUE(gauge.ok());
  (*counter)->Increment(3);
  (*counter)->Increment();
  (*gauge)->Set(2.5);
  (*gauge)->Add(-1);
  EXPECT_EQ(registry.Render(),
            "# HELP kiln_tokens_total Tokens made.\n"
            "# TYPE kiln_tokens_total counter\n"
            "kiln_tokens_total 4\n"
            "# HELP kiln_running Running now.\n"
            "# TYPE kiln_running gauge\n"
            "kiln_running 1.5\n");
}

TEST(MetricsTest, CounterNeverFalls) {
  Counter c;
  c.Increment(2);
  c.Increment(-5);
  c.Increment(std::nan(""));
  EXPECT_EQ(c.value(), 2);
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeLabelValue("plain é"), "plain é");
  EXPECT_EQ(EscapeHelp("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");  // quotes stay in HELP

  MetricsRegistry registry;
  ASSERT_TRUE(registry.AddCounter("kiln_requests_total", "Requests\nby \\ reason.", {{"reason", "a\"b\\c\nd"}}).ok());
  ASSERT_TRUE(registry.AddCounter("kiln_requests_total", "Requests\nby \\ reason.", {{"reason", "plain"}}).ok());
  EXPECT_EQ(registry.Render(),
            "# HELP kiln_requests_total Requests\\nby \\\\ reason.\n"
            "# TYPE kiln_requests_total counter\n"
            "kiln_requests_total{reason=\"a\\\"b\\\\c\\nd\"} 0\n"
            "kiln_requests_total{reason=\"plain\"} 0\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry registry;
  StatusOr<Histogram*> h = registry.AddHistogram("kiln_latency_seconds", "Latency.", {0.125, 0.5, 1});
  ASSERT_TRUE(h.ok()) << h.status().message();
  for (double v : {0.0625, 0.125, 0.25, 0.75, 2.0, 3.0}) (*h)->Observe(v);
  (*h)->Observe(std::nan(""));  // ignored
  EXPECT_EQ(registry.Render(),
            "# HELP kiln_latency_seconds Latency.\n"
            "# TYPE kiln_latency_seconds histogram\n"
            "kiln_latency_seconds_bucket{le=\"0.125\"} 2\n"  // 0.125 falls in le="0.125"
            "kiln_latency_seconds_bucket{le=\"0.5\"} 3\n"
            "kiln_latency_seconds_bucket{le=\"1\"} 4\n"
            "kiln_latency_seconds_bucket{le=\"+Inf\"} 6\n"
            "kiln_latency_seconds_sum 6.1875\n"
            "kiln_latency_seconds_count 6\n");
}

TEST(MetricsTest, HistogramLabelsComeBeforeLe) {
  MetricsRegistry registry;
  StatusOr<Histogram*> h = registry.AddHistogram("kiln_h", "H.", {1}, {{"model", "m\"1"}});
  ASSERT_TRUE(h.ok());
  (*h)->Observe(0.5);
  EXPECT_EQ(registry.Render(),
            "# HELP kiln_h H.\n"
            "# TYPE kiln_h histogram\n"
            "kiln_h_bucket{model=\"m\\\"1\",le=\"1\"} 1\n"
            "kiln_h_bucket{model=\"m\\\"1\",le=\"+Inf\"} 1\n"
            "kiln_h_sum{model=\"m\\\"1\"} 0.5\n"
            "kiln_h_count{model=\"m\\\"1\"} 1\n");
}

TEST(MetricsTest, CallbackSeriesAreReadAtRenderTime) {
  MetricsRegistry registry;
  double value = 1;
  ASSERT_TRUE(registry.AddCallback(MetricType::kGauge, "kiln_g", "G.", [&] { return value; }).ok());
  EXPECT_NE(registry.Render().find("kiln_g 1\n"), std::string::npos);
  value = 0.25;
  EXPECT_NE(registry.Render().find("kiln_g 0.25\n"), std::string::npos);
  EXPECT_FALSE(registry.AddCallback(MetricType::kHistogram, "kiln_h", "H.", [] { return 0.0; }).ok());
  EXPECT_FALSE(registry.AddCallback(MetricType::kGauge, "kiln_x", "X.", nullptr).ok());
}

TEST(MetricsTest, FormatsSpecialValues) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(42), "42");
  EXPECT_EQ(FormatMetricValue(0.005), "0.005");
  EXPECT_EQ(FormatMetricValue(1e21), "1e+21");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
}

TEST(MetricsTest, RejectsBadNamesAndClashes) {
  MetricsRegistry registry;
  EXPECT_FALSE(registry.AddCounter("1abc", "x").ok());
  EXPECT_FALSE(registry.AddCounter("a-b", "x").ok());
  EXPECT_FALSE(registry.AddCounter("", "x").ok());
  EXPECT_TRUE(registry.AddCounter("ns:sub_total", "x").ok());
  EXPECT_FALSE(registry.AddCounter("kiln_c", "x", {{"1bad", "v"}}).ok());
  EXPECT_FALSE(registry.AddCounter("kiln_c", "x", {{"__reserved", "v"}}).ok());
  EXPECT_FALSE(registry.AddCounter("kiln_c", "x", {{"a", "1"}, {"a", "2"}}).ok());
  EXPECT_FALSE(registry.AddHistogram("kiln_h", "x", {1}, {{"le", "1"}}).ok());
  EXPECT_FALSE(registry.AddHistogram("kiln_h", "x", {1, 1}).ok());
  EXPECT_FALSE(registry.AddHistogram("kiln_h", "x", {2, 1}).ok());
  EXPECT_FALSE(registry.AddHistogram("kiln_h", "x", {1, std::numeric_limits<double>::infinity()}).ok());

  ASSERT_TRUE(registry.AddCounter("kiln_c", "x", {{"a", "1"}}).ok());
  EXPECT_EQ(registry.AddCounter("kiln_c", "x", {{"a", "1"}}).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddGauge("kiln_c", "x", {{"a", "2"}}).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddCounter("kiln_c", "other help", {{"a", "2"}}).status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(registry.AddCounter("kiln_c", "x", {{"a", "2"}}).ok());
}

TEST(MetricsTest, UpdatesFromManyThreadsAddUp) {
  MetricsRegistry registry;
  Counter* counter = *registry.AddCounter("kiln_c_total", "C.");
  Gauge* gauge = *registry.AddGauge("kiln_g", "G.");
  Histogram* histogram = *registry.AddHistogram("kiln_h", "H.", {0.5});
  constexpr int kThreads = 8, kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        counter->Increment();
        gauge->Add(1);
        histogram->Observe(t % 2 == 0 ? 0.25 : 1.0);
        if (i % 1000 == 0) (void)registry.Render();  // scrapes during updates
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter->value(), kThreads * kEach);
  EXPECT_EQ(gauge->value(), kThreads * kEach);
  Histogram::Snapshot s = histogram->snapshot();
  EXPECT_EQ(s.count, static_cast<uint64_t>(kThreads * kEach));
  ASSERT_EQ(s.cumulative.size(), 2u);
  EXPECT_EQ(s.cumulative[0], static_cast<uint64_t>(kThreads / 2 * kEach));
  EXPECT_EQ(s.cumulative[1], s.count);
  EXPECT_DOUBLE_EQ(s.sum, kThreads / 2 * kEach * 0.25 + kThreads / 2 * kEach * 1.0);
}

}  // namespace
}  // namespace kiln::serve
