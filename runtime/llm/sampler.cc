//===- sampler.cc - Pick the next token from logits -----------------------===//
#include "runtime/llm/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace kiln::llm {
namespace {

/// Whether Argmax found a logit to choose (not none, not -inf).
bool IsChoice(std::span<const float> logits, int64_t best) {
  return best >= 0 && !(std::isinf(logits[best]) && logits[best] < 0);
}

Status NoChoiceError() { return InvalidArgumentError("logits hold no finite value to choose from"); }

}  // namespace

int64_t Argmax(std::span<const float> logits) {
  int64_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[best]) best = static_cast<int64_t>(i);
  }
  return best;
}

Status CheckSamplerParams(const SamplerParams& params) {
  if (!(params.temperature >= 0) || std::isinf(params.temperature))
    return InvalidArgumentError(StrCat("temperature must be a finite number >= 0, got ", params.temperature));
  if (params.top_k < 0) return InvalidArgumentError(StrCat("top-k must be >= 0, got ", params.top_k));
  if (!(params.top_p > 0 && params.top_p <= 1))
    return InvalidArgumentError(StrCat("top-p must be in (0, 1], got ", params.top_p));
  return OkStatus();
}

StatusOr<Sampler> Sampler::Create(const SamplerParams& params) {
  KILN_RETURN_IF_ERROR(CheckSamplerParams(params));
  return Sampler(params);
}

double Uniform53(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

StatusOr<SamplingCandidates> ComputeSamplingCandidates(std::span<const float> logits, const SamplerParams& params) {
  const int64_t best = Argmax(logits);
  if (!IsChoice(logits, best)) return NoChoiceError();
  if (params.temperature == 0) return SamplingCandidates{.ids = {best}, .weights = {1.0}};

  // Candidates sorted by logit, highest first (stable: lower id first on ties).
  SamplingCandidates out;
  std::vector<int64_t>& order = out.ids;
  order.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isnan(logits[i]) && !(std::isinf(logits[i]) && logits[i] < 0)) order.push_back(static_cast<int64_t>(i));
  auto before = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < order.size()) {
    std::partial_sort(order.begin(), order.begin() + params.top_k, order.end(), before);
    order.resize(params.top_k);
  } else {
    std::sort(order.begin(), order.end(), before);
  }

  // Softmax of logits / T in double, shifted by the maximum for stability.
  // A +inf logit (a broken model) makes every finite one 0 and itself 1.
  std::vector<double>& probs = out.weights;
  probs.resize(order.size());
  const double top = logits[order[0]];
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    double x = logits[order[i]];
    probs[i] = std::isinf(top) ? (x == top ? 1.0 : 0.0) : std::exp((x - top) / params.temperature);
    sum += probs[i];
  }
  // Nucleus: the shortest prefix whose mass reaches top_p (at least one id).
  size_t keep = order.size();
  if (params.top_p < 1) {
    double mass = 0;
    for (size_t i = 0; i < order.size(); ++i) {
      mass += probs[i] / sum;
      if (mass >= params.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  order.resize(keep);
  probs.resize(keep);
  return out;
}

StatusOr<int64_t> Sampler::Sample(std::span<const float> logits) {
  if (params_.temperature == 0) {
    const int64_t best = Argmax(logits);
    if (!IsChoice(logits, best)) return NoChoiceError();
    return best;
  }
  KILN_ASSIGN_OR_RETURN(SamplingCandidates candidates, ComputeSamplingCandidates(logits, params_));
  const std::vector<double>& probs = candidates.weights;
  double kept = std::accumulate(probs.begin(), probs.end(), 0.0);
  double u = Uniform53(rng_) * kept;
  for (size_t i = 0; i < probs.size(); ++i) {
    u -= probs[i];
    if (u < 0) return candidates.ids[i];
  }
  return candidates.ids.back();  // rounding left u a hair above zero
}

}  // namespace kiln::llm
