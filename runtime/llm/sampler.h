//===- sampler.h - Pick the next token from logits ------------------------===//
#ifndef KILN_RUNTIME_LLM_SAMPLER_H_
#define KILN_RUNTIME_LLM_SAMPLER_H_

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "runtime/base/status.h"

namespace kiln::llm {

struct SamplerParams {
  /// 0 = greedy (argmax, lowest id on ties); > 0 divides the logits.
  double temperature = 0.0;
  /// Keep only the k most likely ids; 0 = no limit.
  int64_t top_k = 0;
  /// Keep the smallest set of most likely ids whose probability reaches
  /// top_p (nucleus sampling); 1 = no limit.
  double top_p = 1.0;
  /// Seed of the generator: the same seed and logits give the same ids.
  uint64_t seed = 0;
};

/// Checks sampling parameters: temperature a finite number >= 0, top_k >= 0,
/// 0 < top_p <= 1.
Status CheckSamplerParams(const SamplerParams& params);

/// What Sampler::Sample draws from at temperature > 0: the ids that survive
/// top-k and top-p, most likely first (lower id first on ties), and their
/// weights exp((logit - max) / temperature), not normalized. Sample picks
/// ids[i] with probability weights[i] / sum(weights).
struct SamplingCandidates {
  std::vector<int64_t> ids;
  std::vector<double> weights;
};

/// The candidates for `logits` under `params` (which CheckSamplerParams
/// accepts); at temperature 0, the argmax alone with weight 1. Shared by
/// Sampler::Sample and the speculative decoding rules (speculative.h), so
/// that both target the same distribution. Fails when no logit is a number
/// (all NaN or -inf).
StatusOr<SamplingCandidates> ComputeSamplingCandidates(std::span<const float> logits, const SamplerParams& params);

/// Uniform in [0, 1) from the top 53 bits of one draw: the same on every
/// standard library, unlike std::uniform_real_distribution.
double Uniform53(std::mt19937_64& rng);

/// Greedy or temperature / top-k / top-p sampling with a seeded
/// std::mt19937_64. Not thread-safe: one Sampler per sequence.
class Sampler {
 public:
  /// Checks the parameters (temperature >= 0, top_k >= 0, 0 < top_p <= 1).
  static StatusOr<Sampler> Create(const SamplerParams& params);

  /// The next id. Fails when no logit is a number (all NaN or -inf).
  StatusOr<int64_t> Sample(std::span<const float> logits);

  const SamplerParams& params() const { return params_; }

 private:
  explicit Sampler(const SamplerParams& params) : params_(params), rng_(params.seed) {}

  SamplerParams params_;
  std::mt19937_64 rng_;
};

/// Index of the largest logit (lowest index on ties, NaN never wins), or -1
/// when there is none.
int64_t Argmax(std::span<const float> logits);

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_SAMPLER_H_
