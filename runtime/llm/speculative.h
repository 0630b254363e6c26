//===- speculative.h - Speculative decoding: which draft tokens to keep ----===//
//
// Speculative decoding proposes k tokens cheaply (a draft model, or an
// n-gram lookup: ngram_proposer.h), then runs the target model once over all
// of them: k + 1 rows of logits per sequence, row i being the target's
// distribution after the context and the first i proposed tokens. These
// functions decide how many proposed tokens the sequence keeps and which
// token follows them, so that every step emits between 1 and k + 1 tokens:
//
//  - temperature 0: a proposed token is kept while it equals the target's
//    argmax (AcceptGreedy), so the output is exactly the plain greedy output;
//  - temperature > 0: the rejection sampling rule of Leviathan et al. (2023,
//    "Fast Inference from Transformers via Speculative Decoding") and Chen et
//    al. (2023, "Accelerating Large Language Model Decoding with Speculative
//    Sampling") (AcceptSampled), so that each emitted token follows the
//    target's distribution exactly, whatever the proposer.
//
// The caller then rolls the KV cache back past the rejected tokens
// (KvBlockManager::Truncate) and appends `next`.
#ifndef KILN_RUNTIME_LLM_SPECULATIVE_H_
#define KILN_RUNTIME_LLM_SPECULATIVE_H_

#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/llm/sampler.h"

namespace kiln::llm {

/// Where speculative proposals come from.
enum class Proposer {
  kNgram,  // prompt lookup: the ids after the last n-gram's earlier occurrence
  kDraft,  // the artifact's draft_forward (kiln-compile --draft or --speculative=layer-skip:N)
};

/// Temperature 0: how many of the `proposed` tokens (k) the target agrees
/// with, i.e. the length of the common prefix of `proposed` and
/// `target_argmax`, where target_argmax[i] is the target's argmax after the
/// first i proposed tokens (k + 1 entries). The token emitted after the
/// accepted ones is target_argmax[accepted]. With fewer than k + 1 entries,
/// at most target_argmax.size() - 1 are accepted, so that
/// target_argmax[accepted] always exists (0 when it is empty).
int AcceptGreedy(std::span<const int64_t> proposed, std::span<const int64_t> target_argmax);

/// One verification step's outcome at temperature > 0.
struct SpecStep {
  /// Leading proposed tokens kept, 0..k.
  int accepted = 0;
  /// The token emitted after them: drawn from the residual distribution at
  /// the first rejection, or from the target's last row when all k are kept.
  int64_t next = 0;
  bool operator==(const SpecStep&) const = default;
};

/// Temperature > 0: the rejection sampling rule. For i = 0..k-1, proposed[i]
/// = x is kept with probability min(1, p_i(x) / q_i(x)); at the first
/// rejection, `next` is drawn from the residual max(0, p_i - q_i),
/// normalized, and the step ends; when all are kept, `next` is drawn from
/// p_k. Each emitted token then follows p exactly (given the tokens before
/// it), which is what makes speculation invisible in the output's
/// distribution.
///
///  - `target_probs`: k + 1 rows p_0..p_k, the target's distributions after
///    the first i proposed tokens, each over the whole vocabulary, as the
///    plain sampler would draw from them (ProbsFromLogits).
///  - `draft_probs`: k rows q_0..q_{k-1}, the distributions the proposer
///    drew proposed[i] from (after its own temperature / top-k / top-p), or
///    empty for a deterministic proposer such as the n-gram one: then
///    q_i(x) = 1 for the proposed token, so it is kept with probability
///    p_i(x), and the residual is p_i without x, renormalized.
///  - `rng`: one uniform of 53 bits per examined proposed token and one per
///    drawn `next` (Uniform53), so that a seed gives the same tokens on every
///    standard library.
///
/// Rows are taken as given (non-negative, each summing to 1); a row that is
/// sampled from is checked to be finite, non-negative and to have mass.
/// Should rounding leave the residual without mass, `next` is drawn from p_i.
/// Errors (InvalidArgument): row counts other than k + 1 and k (or 0), rows
/// of different lengths or empty, a proposed id outside the vocabulary, a
/// probability that is not a finite number >= 0, q_i(x) = 0 for a proposed
/// x (the proposer could not have drawn it), a sampled row without mass. The
/// generator may have advanced when an error is found in a sampled row.
StatusOr<SpecStep> AcceptSampled(std::span<const int64_t> proposed,
                                 std::span<const std::vector<float>> draft_probs,
                                 std::span<const std::vector<float>> target_probs, std::mt19937_64& rng);

/// The distribution Sampler::Sample draws from for `logits` under `params`,
/// over every id (zeros outside the top-k / top-p candidates): the softmax
/// of logits / temperature restricted to the candidates of
/// ComputeSamplingCandidates and renormalized, in float. At temperature 0,
/// one-hot at the argmax. All zeros when the logits hold no finite value or
/// CheckSamplerParams rejects `params` (AcceptSampled then reports a row
/// without mass).
std::vector<float> ProbsFromLogits(std::span<const float> logits, const SamplerParams& params);

/// The draft_min_probability a tool uses unless told, from the artifact's
/// `llm.speculative` metadata: 0.5 for a layer-skip draft, else 0. A
/// layer-skip draft costs a large share of a target pass (its layers and
/// the whole LM head), so a pass after an unsure id, which the target
/// rarely keeps, loses more than it wins; a small draft model is cheap
/// enough that proposing on pays (docs/speculative.md has the figures).
float DefaultDraftMinProbability(std::string_view compiled_speculative);

/// Whether a tool tunes k to the acceptance (GenerateParams::
/// adaptive_speculation) unless told: yes for a draft (a draft model or
/// layer skip), whose every proposal costs a forward pass, so that proposing
/// less where the draft is often wrong pays; no for prompt lookup, whose
/// proposals are free. Measured on llama-wide in docs/speculative.md.
inline bool AdaptiveByDefault(Proposer proposer) { return proposer == Proposer::kDraft; }

/// A draft model's proposal from its `logits` row: the argmax at temperature
/// 0; otherwise an id drawn (one Uniform53 of `rng`) from ProbsFromLogits,
/// whose row is appended to `draft_probs` for AcceptSampled. -1 when the
/// logits give nothing to choose. `probability`, when given, receives how
/// sure the draft is of the id: its softmax at temperature 1 when greedy,
/// else its probability in the row it was drawn from.
int64_t ProposeFromDraftLogits(std::span<const float> logits, const SamplerParams& params, std::mt19937_64& rng,
                               std::vector<std::vector<float>>& draft_probs, float* probability = nullptr);

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_SPECULATIVE_H_
