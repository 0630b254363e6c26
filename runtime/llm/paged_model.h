//===- paged_model.h - A compiled LLM's `forward` over a batch of sequences -===//
//
// The device side of continuous batching: the artifact's paged `forward`
// (DESIGN.md, "LLM runtime ABI"), its per-layer K/V pools on the device and
// the KvBlockManager that hands out their blocks. The scheduler decides
// which tokens of which sequences run in a step and asks the block manager
// for their slots; Run turns that into one forward and returns the logits
// rows it asked for.
#ifndef KILN_RUNTIME_LLM_PAGED_MODEL_H_
#define KILN_RUNTIME_LLM_PAGED_MODEL_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/artifact/artifact.h"
#include "runtime/base/status.h"
#include "runtime/exec/executor.h"
#include "runtime/hal/device.h"
#include "runtime/llm/config.h"
#include "runtime/llm/kv_block_manager.h"
#include "runtime/llm/signature.h"

namespace kiln::llm {

struct PagedModelOptions {
  std::string device = "cpu";
  int threads = 0;
  int64_t block_size = 16;
  /// Bytes for all K/V pools together (at least one full context); 0 =
  /// automatic: `auto_sequences` full contexts, at most `auto_max_bytes`,
  /// and never less than one context.
  int64_t kv_cache_bytes = 0;
  int64_t auto_sequences = 1;
  int64_t auto_max_bytes = int64_t{256} << 20;
  bool enable_prefix_caching = true;
  exec::Profile* profile = nullptr;
};

/// One sequence's part of a step: `tokens` are its next ids, at positions
/// start .. start + size - 1, whose K/V go to `slots`; with `want_logits`
/// the logits of its last `logits_rows` tokens come back (1: the last one;
/// more when speculative proposals are verified).
struct BatchEntry {
  int64_t seq_id = 0;
  std::span<const int64_t> tokens;
  int64_t start = 0;
  std::span<const int64_t> slots;
  bool want_logits = false;
  int64_t logits_rows = 1;
};

/// The index vectors of one call of the paged ABI (DESIGN.md, "LLM runtime
/// ABI") over `num_seqs` sequences; block_tables is [num_seqs, max_blocks].
struct ForwardArgs {
  std::vector<int32_t> tokens, positions, query_start, seq_lens, block_tables, slot_mapping, logits_indices;
  int64_t num_seqs = 0;
  int64_t max_blocks = 0;
};

/// Uploads `args`, binds them and the K/V `pools` ([2 * layer + (value ? 1
/// : 0)], num_layers layers) to `function`'s inputs by name, runs it on the
/// device and returns its logits [logits_indices.size(), vocab], checked.
/// Shared by the single-sequence Engine and PagedModel (forward and
/// draft_forward alike).
StatusOr<exec::DeviceTensor> RunForwardFunction(exec::Executor& executor, std::string_view function,
                                                const ForwardArgs& args, std::span<const exec::DeviceTensor> pools,
                                                int num_layers, int64_t vocab);

/// The K/V pools of `signature`'s layers ([2 * layer + (value ? 1 : 0)]),
/// each [num_blocks, block_size, kv_heads, head_dim] of its KV dtype, on
/// `device`. Shared by the Engine and PagedModel, target and draft alike.
StatusOr<std::vector<exec::DeviceTensor>> AllocateKvPools(hal::Device& device, const LlmSignature& signature,
                                                          int64_t num_blocks, int64_t block_size);

class PagedModel {
 public:
  /// Opens the artifact (which must have the paged `forward`) and sizes the
  /// pools: a clear error when they cannot hold one full context.
  static StatusOr<std::unique_ptr<PagedModel>> Open(std::unique_ptr<artifact::Artifact> artifact,
                                                    const PagedModelOptions& options);

  /// Applies copy-on-write block copies to every pool, then runs one
  /// forward over `batch` (sequences whose block tables the block manager
  /// holds). Returns the wanted logits rows, in batch order, as one
  /// [rows * vocab] vector.
  StatusOr<std::vector<float>> Run(std::span<const BatchEntry> batch, std::span<const KvBlockCopy> copies);

  /// Whether the artifact has a `draft_forward` (kiln-compile --draft or
  /// --speculative=layer-skip:N), with pools of its own beside the target's.
  bool has_draft() const { return !draft_pools_.empty(); }
  /// One `draft_forward` over `batch`: the same block tables and slots as
  /// the target (the block manager's), the draft's own pools. Returns the
  /// wanted logits rows like Run. Copies must have been applied (CopyBlocks).
  StatusOr<std::vector<float>> RunDraft(std::span<const BatchEntry> batch);
  /// Copy-on-write: copies whole blocks in every pool, the draft's included.
  Status CopyBlocks(std::span<const KvBlockCopy> copies);

  KvBlockManager& blocks() { return *blocks_; }
  const KvBlockManager& blocks() const { return *blocks_; }
  const ModelConfig& config() const { return config_; }
  const artifact::Artifact& artifact() const { return *artifact_; }
  int64_t vocab_size() const { return vocab_; }
  /// Longest context a sequence may have (the model's positions).
  int64_t max_context() const { return max_context_; }
  /// Bytes of one token's K/V over all layers (the draft's included).
  int64_t bytes_per_token() const { return bytes_per_token_; }

 private:
  PagedModel() = default;
  StatusOr<std::vector<float>> RunFunction(std::string_view function, std::span<const exec::DeviceTensor> pools,
                                           int num_layers, std::span<const BatchEntry> batch);

  std::unique_ptr<artifact::Artifact> artifact_;
  std::unique_ptr<hal::Device> device_;
  std::unique_ptr<exec::Executor> executor_;  // borrows artifact_ and device_
  ModelConfig config_;
  LlmSignature signature_;
  int64_t vocab_ = 0;
  int64_t max_context_ = 0;
  int64_t bytes_per_token_ = 0;
  std::vector<exec::DeviceTensor> pools_;  // [2 * layer + (value ? 1 : 0)]
  LlmSignature draft_signature_;
  std::vector<exec::DeviceTensor> draft_pools_;  // same blocks, the draft's heads
  std::unique_ptr<KvBlockManager> blocks_;
};

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_PAGED_MODEL_H_
