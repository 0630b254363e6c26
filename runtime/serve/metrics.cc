//===- metrics.cc - Prometheus text exposition (format 0.0.4) --------------===//
#include "runtime/serve/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

namespace kiln::serve {
namespace {

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

/// `{a="x",b="y"}` with `extra` (already escaped) appended, or "" when empty.
std::string LabelText(const Labels& labels, std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    out += EscapeLabelValue(value);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace

struct MetricsRegistry::Series {
  Labels labels;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  std::function<double()> read;
};

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  MetricType type;
  std::vector<std::unique_ptr<Series>> series;
};

void Counter::Increment(double delta) {
  if (!(delta > 0)) return;  // also drops NaN
  value_.fetch_add(delta, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // First bound >= value: the bucket `le` that value falls in.
  size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  std::lock_guard<std::mutex> lock(mu_);
  ++buckets_[bucket];
  ++count_;
  sum_ += value;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  std::lock_guard<std::mutex> lock(mu_);
  s.cumulative.reserve(buckets_.size());
  uint64_t running = 0;
  for (uint64_t b : buckets_) {
    running += b;
    s.cumulative.push_back(running);
  }
  s.count = count_;
  s.sum = sum_;
  return s;
}

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

Status MetricsRegistry::AddSeries(MetricType type, std::string_view name, std::string_view help,
                                  std::unique_ptr<Series> series) {
  if (!IsValidMetricName(name)) return InvalidArgumentError(StrCat("metrics: bad metric name '", name, "'"));
  std::set<std::string_view> seen;
  for (const auto& [label, value] : series->labels) {
    if (!IsValidLabelName(label))
      return InvalidArgumentError(StrCat("metrics: ", name, ": bad label name '", label, "'"));
    if (type == MetricType::kHistogram && label == "le")
      return InvalidArgumentError(StrCat("metrics: ", name, ": 'le' is reserved for histogram buckets"));
    if (!seen.insert(label).second)
      return InvalidArgumentError(StrCat("metrics: ", name, ": label '", label, "' given twice"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = nullptr;
  for (const auto& f : families_)
    if (f->name == name) family = f.get();
  if (family) {
    if (family->type != type || family->help != help)
      return AlreadyExistsError(StrCat("metrics: '", name, "' is registered with another type or help text"));
    for (const auto& s : family->series)
      if (s->labels == series->labels)
        return AlreadyExistsError(StrCat("metrics: '", name, LabelText(series->labels), "' is registered twice"));
  } else {
    families_.push_back(std::make_unique<Family>(Family{std::string(name), std::string(help), type, {}}));
    family = families_.back().get();
  }
  family->series.push_back(std::move(series));
  return OkStatus();
}

StatusOr<Counter*> MetricsRegistry::AddCounter(std::string_view name, std::string_view help, Labels labels) {
  auto series = std::make_unique<Series>(Series{std::move(labels), std::make_unique<Counter>(), nullptr, nullptr, {}});
  Counter* out = series->counter.get();
  KILN_RETURN_IF_ERROR(AddSeries(MetricType::kCounter, name, help, std::move(series)));
  return out;
}

StatusOr<Gauge*> MetricsRegistry::AddGauge(std::string_view name, std::string_view help, Labels labels) {
  auto series = std::make_unique<Series>(Series{std::move(labels), nullptr, std::make_unique<Gauge>(), nullptr, {}});
  Gauge* out = series->gauge.get();
  KILN_RETURN_IF_ERROR(AddSeries(MetricType::kGauge, name, help, std::move(series)));
  return out;
}

StatusOr<Histogram*> MetricsRegistry::AddHistogram(std::string_view name, std::string_view help,
                                                   std::vector<double> upper_bounds, Labels labels) {
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i]))
      return InvalidArgumentError(StrCat("metrics: ", name, ": bucket bounds must be finite (+Inf is implicit)"));
    if (i > 0 && !(upper_bounds[i] > upper_bounds[i - 1]))
      return InvalidArgumentError(StrCat("metrics: ", name, ": bucket bounds must increase"));
  }
  auto series = std::make_unique<Series>(
      Series{std::move(labels), nullptr, nullptr, std::make_unique<Histogram>(std::move(upper_bounds)), {}});
  Histogram* out = series->histogram.get();
  KILN_RETURN_IF_ERROR(AddSeries(MetricType::kHistogram, name, help, std::move(series)));
  return out;
}

Status MetricsRegistry::AddCallback(MetricType type, std::string_view name, std::string_view help,
                                    std::function<double()> read, Labels labels) {
  if (type == MetricType::kHistogram)
    return InvalidArgumentError(StrCat("metrics: ", name, ": a callback series is a counter or a gauge"));
  if (!read) return InvalidArgumentError(StrCat("metrics: ", name, ": no callback"));
  return AddSeries(type, name, help,
                   std::make_unique<Series>(Series{std::move(labels), nullptr, nullptr, nullptr, std::move(read)}));
}

std::string MetricsRegistry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& family : families_) {
    out += "# HELP " + family->name + " " + EscapeHelp(family->help) + "\n";
    out += "# TYPE " + family->name + " " + std::string(TypeName(family->type)) + "\n";
    for (const auto& series : family->series) {
      if (series->histogram) {
        const Histogram& h = *series->histogram;
        Histogram::Snapshot s = h.snapshot();
        for (size_t i = 0; i < s.cumulative.size(); ++i) {
          std::string le = i < h.upper_bounds().size() ? FormatMetricValue(h.upper_bounds()[i]) : "+Inf";
          out += family->name + "_bucket" + LabelText(series->labels, "le", le) + " " +
                 std::to_string(s.cumulative[i]) + "\n";
        }
        out += family->name + "_sum" + LabelText(series->labels) + " " + FormatMetricValue(s.sum) + "\n";
        out += family->name + "_count" + LabelText(series->labels) + " " + std::to_string(s.count) + "\n";
        continue;
      }
      double value = 0;
      if (series->counter) value = series->counter->value();
      else if (series->gauge) value = series->gauge->value();
      else value = series->read();
      out += family->name + LabelText(series->labels) + " " + FormatMetricValue(value) + "\n";
    }
  }
  return out;
}

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) return "NaN";  // cannot happen with 64 bytes
  return std::string(buf, end);
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

}  // namespace kiln::serve
