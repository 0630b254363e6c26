//===- paged_model.cc - A compiled LLM's `forward` over a batch -----------===//
#include "runtime/llm/paged_model.h"

#include <algorithm>

#include "runtime/hal/registry.h"

namespace kiln::llm {
namespace {

constexpr std::string_view kForward = "forward";
constexpr std::string_view kDraftForward = "draft_forward";

int64_t TokenBytes(const LlmSignature& s) { return 2 * s.num_layers * DTypeSize(s.kv_dtype) * s.kv_heads * s.head_dim; }

io::Tensor I32(std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  return io::Tensor::FromValues<int32_t>(DType::kI32, std::move(shape), values);
}

}  // namespace

StatusOr<exec::DeviceTensor> RunForwardFunction(exec::Executor& executor, std::string_view function,
                                                const ForwardArgs& args, std::span<const exec::DeviceTensor> pools,
                                                int num_layers, int64_t vocab) {
  const fb::Function* fn = executor.FindFunction(function);
  if (!fn || !fn->inputs()) return InternalError(StrCat("the artifact has no '", function, "'"));
  const int64_t t = static_cast<int64_t>(args.tokens.size());
  const int64_t rows = static_cast<int64_t>(args.logits_indices.size());
  std::vector<exec::DeviceTensor> inputs;
  for (const auto* sig : *fn->inputs()) {
    const std::string_view name = sig->name()->string_view();
    io::Tensor host;
    if (name == "tokens") {
      host = I32({t}, args.tokens);
    } else if (name == "positions") {
      host = I32({t}, args.positions);
    } else if (name == "query_start") {
      host = I32({args.num_seqs + 1}, args.query_start);
    } else if (name == "seq_lens") {
      host = I32({args.num_seqs}, args.seq_lens);
    } else if (name == "block_tables") {
      host = I32({args.num_seqs, args.max_blocks}, args.block_tables);
    } else if (name == "slot_mapping") {
      host = I32({t}, args.slot_mapping);
    } else if (name == "logits_indices") {
      host = I32({rows}, args.logits_indices);
    } else {
      int index = -1;
      for (int layer = 0; layer < num_layers && index < 0; ++layer)
        for (int kv = 0; kv < 2; ++kv)
          if (name == LlmSignature::PoolName(layer, kv == 1)) index = 2 * layer + kv;
      if (index < 0 || index >= static_cast<int>(pools.size()))
        return InternalError(StrCat("'", function, "' has an input '", name, "' the runtime does not know"));
      inputs.push_back(pools[index]);
      continue;
    }
    KILN_ASSIGN_OR_RETURN(exec::DeviceTensor uploaded, executor.Upload(host));
    inputs.push_back(std::move(uploaded));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<exec::DeviceTensor> outputs, executor.RunOnDevice(function, inputs));
  const std::vector<int64_t> want = {rows, vocab};
  if (outputs.size() != 1 || outputs[0].shape != want || outputs[0].dtype != DType::kF32)
    return InternalError(StrCat("'", function, "' returned no f32", ShapeToString(want), " logits"));
  return std::move(outputs[0]);
}

StatusOr<std::vector<exec::DeviceTensor>> AllocateKvPools(hal::Device& device, const LlmSignature& signature,
                                                          int64_t num_blocks, int64_t block_size) {
  const std::vector<int64_t> shape = {num_blocks, block_size, signature.kv_heads, signature.head_dim};
  KILN_ASSIGN_OR_RETURN(int64_t bytes, CheckedByteSize(signature.kv_dtype, shape));
  std::vector<exec::DeviceTensor> pools;
  for (int i = 0; i < 2 * signature.num_layers; ++i) {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<hal::Buffer> buffer, device.Allocate(static_cast<uint64_t>(bytes)));
    pools.push_back(exec::DeviceTensor{std::move(buffer), 0, signature.kv_dtype, shape});
  }
  return pools;
}

StatusOr<std::unique_ptr<PagedModel>> PagedModel::Open(std::unique_ptr<artifact::Artifact> artifact,
                                                       const PagedModelOptions& options) {
  std::unique_ptr<PagedModel> m(new PagedModel());
  m->artifact_ = std::move(artifact);
  const fb::Function* fn = m->artifact_->FindFunction(kForward);
  if (!fn)
    return InvalidArgumentError("the artifact has no paged 'forward' (compile it with --kv-cache=paged, the default)");
  KILN_ASSIGN_OR_RETURN(m->signature_, LlmSignature::FromForward(*fn));
  KILN_ASSIGN_OR_RETURN(m->config_, ModelConfig::FromArtifact(*m->artifact_));
  if (m->signature_.vocab > 0) {
    m->vocab_ = m->signature_.vocab;
  } else if (m->config_.vocab_size) {
    m->vocab_ = *m->config_.vocab_size;
  } else {
    return InvalidArgumentError("cannot tell the vocabulary size: logits' last dim is dynamic and llm.config has no vocab_size");
  }
  m->max_context_ = m->config_.max_positions ? *m->config_.max_positions : 4096;
  if (options.block_size <= 0) return InvalidArgumentError(StrCat("block size must be > 0, got ", options.block_size));

  m->bytes_per_token_ = TokenBytes(m->signature_);
  const fb::Function* draft = m->artifact_->FindFunction(kDraftForward);
  if (draft) {
    KILN_ASSIGN_OR_RETURN(m->draft_signature_, LlmSignature::FromForward(*draft));
    if (!m->draft_signature_.paged)
      return InvalidArgumentError("the artifact's draft_forward is not paged like its forward");
    m->bytes_per_token_ += TokenBytes(m->draft_signature_);
  }
  // One full context (+ a block of slack for the partial last block).
  const int64_t context_blocks = (m->max_context_ + options.block_size - 1) / options.block_size + 1;
  const int64_t block_bytes = m->bytes_per_token_ * options.block_size;
  int64_t num_blocks = context_blocks;
  if (options.kv_cache_bytes > 0) {
    const int64_t fit = options.kv_cache_bytes / block_bytes;
    if (fit < context_blocks)
      return InvalidArgumentError(StrCat("a KV cache of ", options.kv_cache_bytes >> 20, " MiB holds ",
                                         fit * options.block_size, " tokens, less than one context of ",
                                         m->max_context_, " (", (context_blocks * block_bytes + (1 << 20) - 1) >> 20,
                                         " MiB needed)"));
    num_blocks = fit;
  } else {
    const int64_t want = std::min(std::max<int64_t>(options.auto_sequences, 1) * context_blocks,
                                  std::max<int64_t>(options.auto_max_bytes, 0) / block_bytes);
    num_blocks = std::max(context_blocks, want);
  }
  KvBlockManagerOptions block_options;
  block_options.num_blocks = num_blocks;
  block_options.block_size = options.block_size;
  block_options.enable_prefix_caching = options.enable_prefix_caching;
  KILN_ASSIGN_OR_RETURN(m->blocks_, KvBlockManager::Create(block_options));

  hal::DeviceOptions device_options;
  device_options.threads = options.threads;
  KILN_ASSIGN_OR_RETURN(m->device_, hal::CreateDevice(options.device, device_options));
  exec::ExecutorOptions executor_options;
  executor_options.profile = options.profile;
  KILN_ASSIGN_OR_RETURN(m->executor_, exec::Executor::Create(*m->artifact_, *m->device_, executor_options));
  KILN_ASSIGN_OR_RETURN(m->pools_, AllocateKvPools(*m->device_, m->signature_, num_blocks, options.block_size));
  if (draft) {
    KILN_ASSIGN_OR_RETURN(m->draft_pools_,
                          AllocateKvPools(*m->device_, m->draft_signature_, num_blocks, options.block_size));
  }
  return m;
}

Status PagedModel::CopyBlocks(std::span<const KvBlockCopy> copies) {
  if (copies.empty()) return OkStatus();
  for (const auto* pools : {&pools_, &draft_pools_})
    for (const exec::DeviceTensor& pool : *pools) {
      // [blocks, block_size, heads, head_dim]: a block is one row of dim 0.
      const uint64_t block_bytes =
          static_cast<uint64_t>(pool.shape[1] * pool.shape[2] * pool.shape[3] * DTypeSize(pool.dtype));
      for (const KvBlockCopy& c : copies)
        KILN_RETURN_IF_ERROR(device_->CopyBuffer(*pool.buffer, static_cast<uint64_t>(c.src) * block_bytes,
                                                 *pool.buffer, static_cast<uint64_t>(c.dst) * block_bytes,
                                                 block_bytes));
    }
  return OkStatus();
}

StatusOr<std::vector<float>> PagedModel::Run(std::span<const BatchEntry> batch, std::span<const KvBlockCopy> copies) {
  if (batch.empty()) return InvalidArgumentError("an empty batch");
  KILN_RETURN_IF_ERROR(CopyBlocks(copies));
  return RunFunction(kForward, pools_, signature_.num_layers, batch);
}

StatusOr<std::vector<float>> PagedModel::RunDraft(std::span<const BatchEntry> batch) {
  if (!has_draft()) return FailedPreconditionError("the artifact has no draft_forward");
  if (batch.empty()) return InvalidArgumentError("an empty batch");
  return RunFunction(kDraftForward, draft_pools_, draft_signature_.num_layers, batch);
}

StatusOr<std::vector<float>> PagedModel::RunFunction(std::string_view function,
                                                     std::span<const exec::DeviceTensor> pools, int num_layers,
                                                     std::span<const BatchEntry> batch) {
  const int64_t block_size = blocks_->block_size();
  std::vector<int32_t> tokens, positions, slots, query_start{0}, seq_lens, logits_rows;
  std::vector<std::span<const int64_t>> tables;
  size_t max_blocks = 1;
  for (const BatchEntry& e : batch) {
    const int64_t n = static_cast<int64_t>(e.tokens.size());
    if (n == 0 || static_cast<int64_t>(e.slots.size()) != n)
      return InvalidArgumentError(StrCat("sequence ", e.seq_id, ": ", n, " tokens but ", e.slots.size(), " slots"));
    if (e.start < 0 || e.start + n > max_context_)
      return OutOfRangeError(StrCat("sequence ", e.seq_id, ": positions ", e.start, "..", e.start + n - 1,
                                    " beyond the model's ", max_context_));
    KILN_ASSIGN_OR_RETURN(std::span<const int64_t> table, blocks_->BlockTable(e.seq_id));
    if (static_cast<int64_t>(table.size()) * block_size < e.start + n)
      return InternalError(StrCat("sequence ", e.seq_id, " has ", table.size(), " blocks for ", e.start + n, " tokens"));
    for (int64_t i = 0; i < n; ++i) {
      if (e.tokens[i] < 0 || e.tokens[i] >= vocab_)
        return InvalidArgumentError(StrCat("token id ", e.tokens[i], " is outside the model's vocabulary of ", vocab_));
      tokens.push_back(static_cast<int32_t>(e.tokens[i]));
      positions.push_back(static_cast<int32_t>(e.start + i));
      slots.push_back(static_cast<int32_t>(e.slots[i]));
    }
    if (e.want_logits) {
      const int64_t rows = std::clamp<int64_t>(e.logits_rows, 1, n);
      for (int64_t r = rows; r >= 1; --r) logits_rows.push_back(static_cast<int32_t>(tokens.size() - r));
    }
    query_start.push_back(static_cast<int32_t>(tokens.size()));
    seq_lens.push_back(static_cast<int32_t>(e.start + n));
    tables.push_back(table);
    max_blocks = std::max(max_blocks, table.size());
  }
  const bool no_logits = logits_rows.empty();
  if (no_logits) logits_rows.push_back(static_cast<int32_t>(tokens.size() - 1));  // forward wants >= 1 row
  const int64_t b = static_cast<int64_t>(batch.size());
  // Rows shorter than the longest table are padded with block 0: only the
  // first seq_len keys of a sequence are ever read.
  std::vector<int32_t> block_tables(b * max_blocks, 0);
  for (int64_t s = 0; s < b; ++s)
    for (size_t j = 0; j < tables[s].size(); ++j) block_tables[s * max_blocks + j] = static_cast<int32_t>(tables[s][j]);

  ForwardArgs args{std::move(tokens), std::move(positions), std::move(query_start), std::move(seq_lens),
                   std::move(block_tables), std::move(slots), std::move(logits_rows), b,
                   static_cast<int64_t>(max_blocks)};
  KILN_ASSIGN_OR_RETURN(exec::DeviceTensor out,
                        RunForwardFunction(*executor_, function, args, pools, num_layers, vocab_));
  if (no_logits) return std::vector<float>();
  KILN_ASSIGN_OR_RETURN(io::Tensor logits, executor_->Download(out));
  auto values = logits.values<float>();
  return std::vector<float>(values.begin(), values.end());
}

}  // namespace kiln::llm
