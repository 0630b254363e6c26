//===- speculative.cc - Speculative decoding: which draft tokens to keep ---===//
#include "runtime/llm/speculative.h"

#include <algorithm>
#include <cmath>

namespace kiln::llm {
namespace {

bool IsProbability(float x) { return std::isfinite(x) && x >= 0; }

/// Every entry of a row that is sampled from is a probability.
Status CheckRow(const std::vector<float>& row, const char* what, size_t i) {
  for (size_t y = 0; y < row.size(); ++y) {
    if (!IsProbability(row[y]))
      return InvalidArgumentError(StrCat("speculative: ", what, " row ", i, " gives id ", y, " probability ", row[y]));
  }
  return OkStatus();
}

/// Draws id y with probability weight(y) / sum of weights, walking the ids in
/// order with one Uniform53. -1 when the weights have no mass.
template <typename Weight>
int64_t Draw(size_t vocab, Weight weight, std::mt19937_64& rng) {
  double total = 0;
  for (size_t y = 0; y < vocab; ++y) total += weight(y);
  if (!(total > 0) || !std::isfinite(total)) return -1;
  double u = Uniform53(rng) * total;
  int64_t last = -1;
  for (size_t y = 0; y < vocab; ++y) {
    const double w = weight(y);
    if (w <= 0) continue;
    last = static_cast<int64_t>(y);
    u -= w;
    if (u < 0) return last;
  }
  return last;  // rounding left u a hair above zero
}

StatusOr<int64_t> DrawFromTarget(const std::vector<float>& p, size_t i, std::mt19937_64& rng) {
  KILN_RETURN_IF_ERROR(CheckRow(p, "target", i));
  const int64_t id = Draw(p.size(), [&](size_t y) { return static_cast<double>(p[y]); }, rng);
  if (id < 0) return InvalidArgumentError(StrCat("speculative: target row ", i, " has no probability mass"));
  return id;
}

}  // namespace

int AcceptGreedy(std::span<const int64_t> proposed, std::span<const int64_t> target_argmax) {
  if (target_argmax.empty()) return 0;
  const size_t limit = std::min(proposed.size(), target_argmax.size() - 1);
  size_t accepted = 0;
  while (accepted < limit && proposed[accepted] == target_argmax[accepted]) ++accepted;
  return static_cast<int>(accepted);
}

StatusOr<SpecStep> AcceptSampled(std::span<const int64_t> proposed,
                                 std::span<const std::vector<float>> draft_probs,
                                 std::span<const std::vector<float>> target_probs, std::mt19937_64& rng) {
  const size_t k = proposed.size();
  if (target_probs.size() != k + 1)
    return InvalidArgumentError(StrCat("speculative: ", k, " proposed tokens need ", k + 1, " target rows, got ",
                                       target_probs.size()));
  const bool deterministic = draft_probs.empty();
  if (!deterministic && draft_probs.size() != k)
    return InvalidArgumentError(StrCat("speculative: ", k, " proposed tokens need ", k,
                                       " draft rows (or none for a deterministic proposer), got ",
                                       draft_probs.size()));
  const size_t vocab = target_probs[0].size();
  if (vocab == 0) return InvalidArgumentError("speculative: target rows are empty");
  for (size_t i = 0; i <= k; ++i) {
    if (target_probs[i].size() != vocab)
      return InvalidArgumentError(StrCat("speculative: target row ", i, " has ", target_probs[i].size(),
                                         " entries, row 0 has ", vocab));
    if (i == k) break;
    if (!deterministic && draft_probs[i].size() != vocab)
      return InvalidArgumentError(StrCat("speculative: draft row ", i, " has ", draft_probs[i].size(),
                                         " entries, the target's have ", vocab));
    if (proposed[i] < 0 || static_cast<size_t>(proposed[i]) >= vocab)
      return InvalidArgumentError(StrCat("speculative: proposed id ", proposed[i], " is outside the vocabulary of ",
                                         vocab));
    const float p = target_probs[i][static_cast<size_t>(proposed[i])];
    if (!IsProbability(p))
      return InvalidArgumentError(StrCat("speculative: target row ", i, " gives proposed id ", proposed[i],
                                         " probability ", p));
    if (!deterministic) {
      const float q = draft_probs[i][static_cast<size_t>(proposed[i])];
      if (!IsProbability(q) || q == 0)
        return InvalidArgumentError(StrCat("speculative: draft row ", i, " gives its proposed id ", proposed[i],
                                           " probability ", q));
    }
  }

  for (size_t i = 0; i < k; ++i) {
    const size_t x = static_cast<size_t>(proposed[i]);
    const std::vector<float>& p = target_probs[i];
    const double q_x = deterministic ? 1.0 : draft_probs[i][x];
    // Kept with probability min(1, p(x) / q(x)): u < p / q, without dividing.
    if (Uniform53(rng) * q_x < p[x]) continue;

    // Rejected (so p(x) < q(x)): next from max(0, p - q), normalized.
    KILN_RETURN_IF_ERROR(CheckRow(p, "target", i));
    if (!deterministic) KILN_RETURN_IF_ERROR(CheckRow(draft_probs[i], "draft", i));
    auto residual = [&](size_t y) {
      const double q_y = deterministic ? (y == x ? 1.0 : 0.0) : draft_probs[i][y];
      return std::max(0.0, static_cast<double>(p[y]) - q_y);
    };
    int64_t next = Draw(vocab, residual, rng);
    if (next < 0) {
      // Only rows that do not sum to the same total get here (p <= q
      // everywhere although p(x) < q(x)): fall back to the target itself.
      KILN_ASSIGN_OR_RETURN(next, DrawFromTarget(p, i, rng));
    }
    return SpecStep{.accepted = static_cast<int>(i), .next = next};
  }
  KILN_ASSIGN_OR_RETURN(int64_t next, DrawFromTarget(target_probs[k], k, rng));
  return SpecStep{.accepted = static_cast<int>(k), .next = next};
}

std::vector<float> ProbsFromLogits(std::span<const float> logits, const SamplerParams& params) {
  std::vector<float> probs(logits.size(), 0.0f);
  if (!CheckSamplerParams(params).ok()) return probs;
  StatusOr<SamplingCandidates> candidates = ComputeSamplingCandidates(logits, params);
  if (!candidates.ok()) return probs;
  // Summed in the order Sampler::Sample sums them.
  double total = 0;
  for (double w : candidates->weights) total += w;
  for (size_t i = 0; i < candidates->ids.size(); ++i)
    probs[static_cast<size_t>(candidates->ids[i])] = static_cast<float>(candidates->weights[i] / total);
  return probs;
}

float DefaultDraftMinProbability(std::string_view compiled_speculative) {
  return compiled_speculative.starts_with("layer-skip:") ? 0.5f : 0.0f;
}

int64_t ProposeFromDraftLogits(std::span<const float> logits, const SamplerParams& params, std::mt19937_64& rng,
                               std::vector<std::vector<float>>& draft_probs, float* probability) {
  if (params.temperature == 0) {
    const int64_t id = Argmax(logits);
    if (probability && id >= 0) {
      // p(argmax) = 1 / sum exp(x - max), in double.
      const double top = logits[id];
      double sum = 0;
      for (float x : logits) sum += std::exp(static_cast<double>(x) - top);
      *probability = static_cast<float>(1.0 / sum);
    }
    return id;
  }
  std::vector<float> q = ProbsFromLogits(logits, params);
  const int64_t id = Draw(q.size(), [&](size_t y) { return IsProbability(q[y]) ? static_cast<double>(q[y]) : 0.0; }, rng);
  if (id < 0) return id;
  if (probability) *probability = q[id];
  draft_probs.push_back(std::move(q));
  return id;
}

}  // namespace kiln::llm
