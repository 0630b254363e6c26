//===- metrics.h - Prometheus text exposition (format 0.0.4) ---------------===//
//
// A small, thread-safe metrics registry for kiln-serve's GET /metrics:
// counters, gauges, histograms, and series read from a callback when the page
// is rendered (figures another component owns, such as Backend::Stats()).
// prometheus-cpp is not packaged for Debian 12; this is the part of it a
// server needs.
//
//   MetricsRegistry registry;
//   KILN_ASSIGN_OR_RETURN(Counter* tokens, registry.AddCounter("kiln_prompt_tokens_total", "Prompt tokens."));
//   tokens->Increment(12);
//   std::string page = registry.Render();   // served as kMetricsContentType
//
// Metrics are registered once (names are checked) and then updated from any
// thread without touching the registry: Counter and Gauge are atomics, a
// Histogram takes its own short lock so that a scrape sees buckets, sum and
// count of the same moment.
#ifndef KILN_RUNTIME_SERVE_METRICS_H_
#define KILN_RUNTIME_SERVE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/base/status.h"

namespace kiln::serve {

/// Content-Type of a rendered page.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

/// Label name/value pairs of one series, rendered in the order given.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge, kHistogram };

/// A value that only goes up.
class Counter {
 public:
  /// Adds `delta`; negative or NaN deltas are ignored (a counter never falls).
  void Increment(double delta = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted into buckets with fixed upper bounds (plus +Inf).
class Histogram {
 public:
  /// `upper_bounds` must be finite and strictly increasing (checked by
  /// MetricsRegistry::AddHistogram).
  explicit Histogram(std::vector<double> upper_bounds);

  /// Counts `value` in the first bucket whose bound is >= value (NaN is ignored).
  void Observe(double value);

  struct Snapshot {
    /// Cumulative: cumulative[i] = observations <= upper_bounds[i]; one more
    /// entry at the end for +Inf, equal to count.
    std::vector<uint64_t> cumulative;
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& upper_bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> buckets_;  // per bucket, not cumulative; last = +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

/// Owns the metrics and renders them. Add* may be called at any time from any
/// thread; pointers it returns live as long as the registry.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  /// A series of family `name` (one HELP/TYPE block per name; several label
  /// sets may share it). Errors: a bad metric or label name, `name` already
  /// registered with another type or help text, or the same label set twice.
  StatusOr<Counter*> AddCounter(std::string_view name, std::string_view help, Labels labels = {});
  StatusOr<Gauge*> AddGauge(std::string_view name, std::string_view help, Labels labels = {});
  StatusOr<Histogram*> AddHistogram(std::string_view name, std::string_view help, std::vector<double> upper_bounds,
                                    Labels labels = {});
  /// A counter or gauge whose value `read` returns at render time. `read` is
  /// called under the registry's lock: it must not call back into it.
  Status AddCallback(MetricType type, std::string_view name, std::string_view help, std::function<double()> read,
                     Labels labels = {});

  /// The page, in the Prometheus text exposition format 0.0.4: families in
  /// the order they were first registered, series in the order added.
  std::string Render() const;

 private:
  struct Series;
  struct Family;
  /// Checks the names and publishes `series` (already holding its metric).
  Status AddSeries(MetricType type, std::string_view name, std::string_view help, std::unique_ptr<Series> series);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
};

/// Sample value as the format writes it: shortest round-trip decimal, or
/// "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double value);
/// Label value with `\`, `"` and newline escaped (`\\`, `\"`, `\n`).
std::string EscapeLabelValue(std::string_view value);
/// HELP text with `\` and newline escaped.
std::string EscapeHelp(std::string_view help);
/// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(std::string_view name);
/// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved).
bool IsValidLabelName(std::string_view name);

}  // namespace kiln::serve

#endif  // KILN_RUNTIME_SERVE_METRICS_H_
