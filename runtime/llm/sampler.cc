//===- sampler.cc - Pick the next token from logits -----------------------===//
#include "runtime/llm/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace kiln::llm {

int64_t Argmax(std::span<const float> logits) {
  int64_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[best]) best = static_cast<int64_t>(i);
  }
  return best;
}

StatusOr<Sampler> Sampler::Create(const SamplerParams& params) {
  if (!(params.temperature >= 0) || std::isinf(params.temperature))
    return InvalidArgumentError(StrCat("temperature must be a finite number >= 0, got ", params.temperature));
  if (params.top_k < 0) return InvalidArgumentError(StrCat("top-k must be >= 0, got ", params.top_k));
  if (!(params.top_p > 0 && params.top_p <= 1))
    return InvalidArgumentError(StrCat("top-p must be in (0, 1], got ", params.top_p));
  return Sampler(params);
}

double Sampler::Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

StatusOr<int64_t> Sampler::Sample(std::span<const float> logits) {
  const int64_t best = Argmax(logits);
  if (best < 0 || (std::isinf(logits[best]) && logits[best] < 0))
    return InvalidArgumentError("logits hold no finite value to choose from");
  if (params_.temperature == 0) return best;

  // Candidates sorted by logit, highest first (stable: lower id first on ties).
  std::vector<int64_t> order;
  order.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isnan(logits[i]) && !(std::isinf(logits[i]) && logits[i] < 0)) order.push_back(static_cast<int64_t>(i));
  auto before = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < order.size()) {
    std::partial_sort(order.begin(), order.begin() + params_.top_k, order.end(), before);
    order.resize(params_.top_k);
  } else {
    std::sort(order.begin(), order.end(), before);
  }

  // Softmax of logits / T in double, shifted by the maximum for stability.
  // A +inf logit (a broken model) makes every finite one 0 and itself 1.
  std::vector<double> probs(order.size());
  const double top = logits[order[0]];
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    double x = logits[order[i]];
    probs[i] = std::isinf(top) ? (x == top ? 1.0 : 0.0) : std::exp((x - top) / params_.temperature);
    sum += probs[i];
  }
  // Nucleus: the shortest prefix whose mass reaches top_p (at least one id).
  size_t keep = order.size();
  if (params_.top_p < 1) {
    double mass = 0;
    for (size_t i = 0; i < order.size(); ++i) {
      mass += probs[i] / sum;
      if (mass >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double kept = std::accumulate(probs.begin(), probs.begin() + keep, 0.0);
  double u = Uniform() * kept;
  for (size_t i = 0; i < keep; ++i) {
    u -= probs[i];
    if (u < 0) return order[i];
  }
  return order[keep - 1];  // rounding left u a hair above zero
}

}  // namespace kiln::llm
