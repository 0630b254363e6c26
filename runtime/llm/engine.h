//===- engine.h - Generation and scoring over a compiled LLM ---------------===//
//
// The Engine runs a compiled LLM one sequence at a time and owns its KV
// cache, so a prompt is run once and every new token costs one single-token
// forward. Two kinds of artifact (signature.h): the paged `forward` (the
// default compile: pools on the device, blocks from a KvBlockManager, new
// K/V written in place) and the concat-style `main` (the present.N tensors
// of one forward become the past_key_values.N inputs of the next, kept on
// the device).
#ifndef KILN_RUNTIME_LLM_ENGINE_H_
#define KILN_RUNTIME_LLM_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/artifact/artifact.h"
#include "runtime/base/status.h"
#include "runtime/exec/executor.h"
#include "runtime/hal/device.h"
#include "runtime/io/tensor.h"
#include "runtime/llm/config.h"
#include "runtime/llm/kv_block_manager.h"
#include "runtime/llm/sampler.h"
#include "runtime/llm/signature.h"
#include "runtime/llm/speculative.h"

namespace kiln::llm {

struct EngineOptions {
  std::string device = "cpu";
  /// cpu worker threads; 0 = all cores.
  int threads = 0;
  /// Optional: the executor adds per-kernel and host times here (borrowed).
  exec::Profile* profile = nullptr;
  /// Paged artifacts (`forward`): tokens per KV block, and tokens the pools
  /// hold (0 = the model's max_position_embeddings, else 4096).
  int64_t block_size = 16;
  int64_t kv_cache_tokens = 0;
};

struct GenerateParams {
  /// Most ids to generate (the prompt not counted).
  int64_t max_tokens = 64;
  SamplerParams sampler;
  /// Keep going past an EOS id instead of stopping after it.
  bool ignore_eos = false;
  /// Speculative decoding by prompt lookup (n-gram): propose up to this many
  /// ids that followed the last n-gram's earlier occurrence in the context
  /// and verify them in one forward; 0 = off. Greedy output is unchanged;
  /// at temperature > 0 every id still follows the model's distribution
  /// (rejection sampling). Needs a paged artifact.
  int num_speculative_tokens = 0;
  Proposer proposer = Proposer::kNgram;
  /// Adapt k to the acceptance: one more after a step that kept every
  /// proposal (up to 2x the start, at most 16), one fewer after a step that
  /// kept none (at least 1); num_speculative_tokens is where it starts.
  bool adaptive_speculation = false;
  /// A draft model stops proposing after an id it gives less than this
  /// probability (its softmax at temperature 1 when greedy, else the row it
  /// samples from); 0 = never. The stopping rule reads only the draft's
  /// rows, so the output is unchanged and the distribution still the
  /// model's. It saves the draft passes least likely to be kept.
  float draft_min_probability = 0;
};

struct GenerateResult {
  /// Generated ids only; when generation stopped at an EOS, it is the last.
  std::vector<int64_t> ids;
  bool stopped_at_eos = false;
  /// Prompt forward plus choosing the first id.
  double prefill_seconds = 0;
  /// Every later id (one single-token forward each, or one verification
  /// forward per speculative step).
  double decode_seconds = 0;
  /// Speculation: forwards after the prefill, ids proposed, ids kept.
  int64_t decode_forwards = 0;
  int64_t draft_tokens = 0;
  int64_t accepted_tokens = 0;
  /// Steps whose proposer proposed nothing (they run a plain decode step),
  /// and the time spent proposing (lookups, draft passes), part of
  /// decode_seconds.
  int64_t empty_proposals = 0;
  double propose_seconds = 0;
};

struct ScoreResult {
  /// Sum over every id after the first of -log p(id | the ids before it).
  double nll = 0;
  /// How many ids that sum covers (window size - 1).
  int64_t count = 0;
};

class Engine {
 public:
  /// Opens and verifies `path`, creates the device and the executor, and
  /// checks that `main` has the LLM signature.
  static StatusOr<std::unique_ptr<Engine>> Open(const std::string& path, const EngineOptions& options = {});
  /// Same over an artifact already in memory (the Engine keeps it).
  static StatusOr<std::unique_ptr<Engine>> Create(std::unique_ptr<artifact::Artifact> artifact,
                                                  const EngineOptions& options = {});
  ~Engine();

  const artifact::Artifact& artifact() const { return *artifact_; }
  const ModelConfig& config() const { return config_; }
  const LlmSignature& signature() const { return signature_; }
  /// Ids the model scores (the logits' last dim).
  int64_t vocab_size() const { return vocab_; }
  /// Tokens now in the KV cache.
  int64_t cached_tokens() const { return cached_; }

  /// Drops the KV cache.
  void Reset();
  /// Resets, runs `ids` from an empty cache and returns the logits of the
  /// last position ([vocab]).
  StatusOr<std::vector<float>> Prefill(std::span<const int64_t> ids);
  /// Appends one id to the cache and returns the logits after it.
  StatusOr<std::vector<float>> Step(int64_t id);

  /// Called with each generated id as soon as it is chosen; an error stops
  /// generation and is returned by Generate.
  using TokenCallback = std::function<Status(int64_t id)>;
  /// Prefill(prompt), then choose and Step until max_tokens ids or an EOS id
  /// of the config (unless ignore_eos). The last id chosen is never run.
  StatusOr<GenerateResult> Generate(std::span<const int64_t> prompt, const GenerateParams& params,
                                    const TokenCallback& on_token = {});

  /// One forward over `window` from an empty cache; NLL of every id after
  /// the first under log-softmax computed in double. Leaves the cache empty.
  StatusOr<ScoreResult> Score(std::span<const int64_t> window);

 private:
  Engine() = default;
  /// Runs `ids` after the cached tokens and returns logits left on the
  /// device: their last `vocab` floats are the last id's, and with
  /// `all_rows` the rows of every id in order ([1, S, V] or [S, V]). On
  /// error the cache is dropped.
  StatusOr<exec::DeviceTensor> Forward(std::span<const int64_t> ids, bool all_rows);
  StatusOr<exec::DeviceTensor> CheckAndRun(std::span<const int64_t> ids, bool all_rows);
  /// `main` with past_key_values -> present (the cache as tensors).
  StatusOr<exec::DeviceTensor> RunConcat(std::span<const int64_t> ids);
  /// `forward` over the paged pools (one sequence, blocks from blocks_).
  StatusOr<exec::DeviceTensor> RunPaged(std::span<const int64_t> ids, bool all_rows);
  /// A paged function (forward or draft_forward, with its pools) over `ids`
  /// at positions first.., giving them slots first where they have none.
  StatusOr<exec::DeviceTensor> RunPagedFunction(std::string_view function, std::span<const exec::DeviceTensor> pools,
                                                int num_layers, std::span<const int64_t> ids, int64_t first,
                                                bool all_rows);
  /// Slots of positions first.. for `ids` (appended to the block manager's
  /// sequence where they go past it).
  StatusOr<std::vector<int32_t>> SlotsFor(int64_t first, std::span<const int64_t> ids);
  /// k proposals of draft_forward after `context` (greedy, or sampled with
  /// their distributions added to `draft_probs`).
  StatusOr<std::vector<int64_t>> ProposeWithDraft(std::span<const int64_t> context, int k, float min_probability,
                                                  const SamplerParams& sampler,
                                                  std::mt19937_64& rng, std::vector<std::vector<float>>* draft_probs);
  Status CreatePools(const EngineOptions& options);
  /// The last `vocab` logits, downloaded.
  StatusOr<std::vector<float>> LastRow(const exec::DeviceTensor& logits);
  /// Drops cached tokens past the first `keep` (speculation's rejected ids).
  Status Rollback(int64_t keep);

  std::unique_ptr<artifact::Artifact> artifact_;
  std::unique_ptr<hal::Device> device_;
  std::unique_ptr<exec::Executor> executor_;  // borrows artifact_ and device_: declared after them
  ModelConfig config_;
  LlmSignature signature_;
  int64_t vocab_ = 0;
  int64_t cached_ = 0;
  /// past_key_values inputs for the next forward, on the device:
  /// [2 * layer + (value ? 1 : 0)]; empty after Reset.
  std::vector<exec::DeviceTensor> past_;
  /// Paged: the pools [2 * layer + (value ? 1 : 0)] and their blocks.
  std::vector<exec::DeviceTensor> pools_;
  std::unique_ptr<KvBlockManager> blocks_;
  /// draft_forward's signature and pools (same block tables and slots as
  /// the target's), and how many context ids it has K/V for.
  LlmSignature draft_signature_;
  std::vector<exec::DeviceTensor> draft_pools_;
  int64_t draft_cached_ = 0;
};

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_ENGINE_H_
