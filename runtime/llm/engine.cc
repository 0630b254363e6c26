//===- engine.cc - Generation and scoring over a compiled LLM --------------===//
#include "runtime/llm/engine.h"

#include <chrono>
#include <cmath>
#include <optional>

#include "runtime/hal/registry.h"
#include "runtime/llm/ngram_proposer.h"
#include "runtime/llm/paged_model.h"
#include "runtime/llm/speculative.h"

namespace kiln::llm {
namespace {

constexpr std::string_view kMain = "main";
constexpr std::string_view kForward = "forward";
constexpr std::string_view kDraftForward = "draft_forward";
/// The one sequence the Engine runs in the paged KV cache.
constexpr int64_t kSeq = 0;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

io::Tensor I64(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  return io::Tensor::FromValues<int64_t>(DType::kI64, std::move(shape), values);
}

}  // namespace

StatusOr<std::unique_ptr<Engine>> Engine::Open(const std::string& path, const EngineOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<artifact::Artifact> artifact, artifact::Artifact::Open(path));
  return Create(std::move(artifact), options);
}

StatusOr<std::unique_ptr<Engine>> Engine::Create(std::unique_ptr<artifact::Artifact> artifact,
                                                 const EngineOptions& options) {
  std::unique_ptr<Engine> engine(new Engine());
  engine->artifact_ = std::move(artifact);
  // A paged `forward` (the default compile) or the concat-style `main`.
  if (const fb::Function* fwd = engine->artifact_->FindFunction(kForward)) {
    KILN_ASSIGN_OR_RETURN(engine->signature_, LlmSignature::FromForward(*fwd));
  } else if (const fb::Function* fn = engine->artifact_->FindFunction(kMain)) {
    KILN_ASSIGN_OR_RETURN(engine->signature_, LlmSignature::FromFunction(*fn));
  } else {
    return InvalidArgumentError("artifact has neither 'forward' nor 'main': not a compiled LLM");
  }
  KILN_ASSIGN_OR_RETURN(engine->config_, ModelConfig::FromArtifact(*engine->artifact_));
  // Ids are checked against the vocabulary before they reach the model: an
  // embedding gather does not check its indices.
  if (engine->signature_.vocab > 0) {
    engine->vocab_ = engine->signature_.vocab;
  } else if (engine->config_.vocab_size) {
    engine->vocab_ = *engine->config_.vocab_size;
  } else {
    return InvalidArgumentError("cannot tell the vocabulary size: logits' last dim is dynamic and llm.config has no vocab_size");
  }

  hal::DeviceOptions device_options;
  device_options.threads = options.threads;
  KILN_ASSIGN_OR_RETURN(engine->device_, hal::CreateDevice(options.device, device_options));
  exec::ExecutorOptions executor_options;
  executor_options.profile = options.profile;
  KILN_ASSIGN_OR_RETURN(engine->executor_,
                        exec::Executor::Create(*engine->artifact_, *engine->device_, executor_options));
  if (engine->signature_.paged) KILN_RETURN_IF_ERROR(engine->CreatePools(options));
  if (const fb::Function* draft = engine->artifact_->FindFunction(kDraftForward); draft && engine->signature_.paged) {
    KILN_ASSIGN_OR_RETURN(engine->draft_signature_, LlmSignature::FromForward(*draft));
    // The draft's own heads and head size (a separate draft model may
    // differ from the target), the target's blocks.
    const std::vector<int64_t>& target = engine->pools_.front().shape;
    KILN_ASSIGN_OR_RETURN(engine->draft_pools_,
                          AllocateKvPools(*engine->device_, engine->draft_signature_, target[0], target[1]));
  }
  engine->Reset();
  return engine;
}

Engine::~Engine() = default;

Status Engine::CreatePools(const EngineOptions& options) {
  const int64_t block_size = options.block_size;
  if (block_size <= 0) return InvalidArgumentError(StrCat("KV block size must be > 0, got ", block_size));
  // One sequence of the model's whole context (or of kv_cache_tokens).
  int64_t tokens = options.kv_cache_tokens > 0 ? options.kv_cache_tokens
                   : config_.max_positions   ? *config_.max_positions
                                             : 4096;
  KvBlockManagerOptions block_options;
  block_options.num_blocks = (tokens + block_size - 1) / block_size + 1;
  block_options.block_size = block_size;
  block_options.enable_prefix_caching = false;  // one sequence; scoring needs every row computed
  KILN_ASSIGN_OR_RETURN(blocks_, KvBlockManager::Create(block_options));
  KILN_ASSIGN_OR_RETURN(pools_, AllocateKvPools(*device_, signature_, block_options.num_blocks, block_size));
  return OkStatus();
}

void Engine::Reset() {
  cached_ = 0;
  draft_cached_ = 0;
  past_.clear();
  if (blocks_ && blocks_->HasSequence(kSeq)) (void)blocks_->Free(kSeq);
}

StatusOr<exec::DeviceTensor> Engine::Forward(std::span<const int64_t> ids, bool all_rows) {
  StatusOr<exec::DeviceTensor> logits = CheckAndRun(ids, all_rows);
  if (!logits.ok()) Reset();  // any error drops the cache (it may be half replaced)
  return logits;
}

StatusOr<exec::DeviceTensor> Engine::CheckAndRun(std::span<const int64_t> ids, bool all_rows) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n == 0) return InvalidArgumentError("no token ids to run");
  for (int64_t id : ids)
    if (id < 0 || id >= vocab_)
      return InvalidArgumentError(StrCat("token id ", id, " is outside the model's vocabulary of ", vocab_));
  if (config_.max_positions && cached_ + n > *config_.max_positions)
    return OutOfRangeError(StrCat("context of ", cached_ + n, " tokens exceeds the model's ",
                                  *config_.max_positions, " positions"));
  return signature_.paged ? RunPaged(ids, all_rows) : RunConcat(ids);
}

StatusOr<std::vector<int32_t>> Engine::SlotsFor(int64_t first, std::span<const int64_t> ids) {
  // The manager holds slots for positions [0, NumTokens): give the ones
  // beyond it to `ids`' tail first. The target and the draft share these
  // slots (each writes its own pools).
  const int64_t n = static_cast<int64_t>(ids.size());
  int64_t have = blocks_->HasSequence(kSeq) ? *blocks_->NumTokens(kSeq) : 0;
  if (first > have) return InternalError(StrCat("positions from ", first, " but only ", have, " have slots"));
  if (first + n > have) {
    std::span<const int64_t> fresh = ids.subspan(have - first);
    if (have == 0) {
      KILN_RETURN_IF_ERROR(blocks_->Allocate(kSeq, fresh).status());
    } else {
      KILN_ASSIGN_OR_RETURN(KvAppend append, blocks_->AppendSlots(kSeq, fresh));
      if (!append.copies.empty()) return InternalError("copy-on-write in a sequence nobody shares");
    }
  }
  KILN_ASSIGN_OR_RETURN(std::span<const int64_t> table, blocks_->BlockTable(kSeq));
  const int64_t bs = blocks_->block_size();
  std::vector<int32_t> slots(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = first + i;
    slots[i] = static_cast<int32_t>(table[p / bs] * bs + p % bs);
  }
  return slots;
}

StatusOr<exec::DeviceTensor> Engine::RunPagedFunction(std::string_view function, std::span<const exec::DeviceTensor> pools,
                                                      int num_layers, std::span<const int64_t> ids, int64_t first,
                                                      bool all_rows) {
  const int64_t n = static_cast<int64_t>(ids.size());
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> slot_mapping, SlotsFor(first, ids));
  KILN_ASSIGN_OR_RETURN(std::span<const int64_t> table, blocks_->BlockTable(kSeq));
  ForwardArgs args;
  args.tokens.assign(ids.begin(), ids.end());
  for (int64_t i = 0; i < n; ++i) args.positions.push_back(static_cast<int32_t>(first + i));
  args.query_start = {0, static_cast<int32_t>(n)};
  args.seq_lens = {static_cast<int32_t>(first + n)};
  args.block_tables.assign(table.begin(), table.end());
  args.slot_mapping = std::move(slot_mapping);
  for (int64_t i = all_rows ? 0 : n - 1; i < n; ++i) args.logits_indices.push_back(static_cast<int32_t>(i));
  args.num_seqs = 1;
  args.max_blocks = static_cast<int64_t>(table.size());
  return RunForwardFunction(*executor_, function, args, pools, num_layers, vocab_);
}

StatusOr<exec::DeviceTensor> Engine::RunPaged(std::span<const int64_t> ids, bool all_rows) {
  if (cached_ == 0 && blocks_->HasSequence(kSeq)) KILN_RETURN_IF_ERROR(blocks_->Free(kSeq));
  KILN_ASSIGN_OR_RETURN(exec::DeviceTensor logits,
                        RunPagedFunction(kForward, pools_, signature_.num_layers, ids, cached_, all_rows));
  cached_ += static_cast<int64_t>(ids.size());
  return logits;
}

StatusOr<std::vector<int64_t>> Engine::ProposeWithDraft(std::span<const int64_t> context, int k,
                                                        float min_probability, const SamplerParams& sampler,
                                                        std::mt19937_64& rng,
                                                        std::vector<std::vector<float>>* draft_probs) {
  // The draft catches up on what it has not seen (the prompt, the ids the
  // target emitted), then runs one id at a time; it shares the target's
  // block table and slots, writing its own pools.
  std::vector<int64_t> proposal;
  int64_t pos = draft_cached_;
  std::vector<int64_t> feed(context.begin() + pos, context.end());
  for (int i = 0; i < k; ++i) {
    KILN_ASSIGN_OR_RETURN(exec::DeviceTensor logits,
                          RunPagedFunction(kDraftForward, draft_pools_, draft_signature_.num_layers, feed, pos, false));
    pos += static_cast<int64_t>(feed.size());
    draft_cached_ = pos;
    KILN_ASSIGN_OR_RETURN(std::vector<float> row, LastRow(logits));
    float probability = 1;
    const int64_t next = ProposeFromDraftLogits(row, sampler, rng, *draft_probs, &probability);
    if (next < 0) return InternalError("the draft's logits give no id to propose");
    proposal.push_back(next);
    // An unsure id is still verified (its draft pass is paid for), but the
    // ids after it would rarely be kept: stop here.
    if (probability < min_probability) break;
    feed = {next};
  }
  return proposal;
}

StatusOr<exec::DeviceTensor> Engine::RunConcat(std::span<const int64_t> ids) {
  const int64_t n = static_cast<int64_t>(ids.size());

  // The KV cache stays on the device: the presents of one forward are bound
  // as the pasts of the next without a copy. Only ids, mask and positions
  // are uploaded, and only the logits rows the caller wants come back.
  if (past_.empty()) {
    // [1, KVH, 0, hd]: no bytes, but the shape the signature wants.
    KILN_ASSIGN_OR_RETURN(exec::DeviceTensor empty,
                          executor_->Upload(io::Tensor{signature_.kv_dtype,
                                                       {1, signature_.kv_heads, 0, signature_.head_dim}, {}}));
    past_.assign(2 * signature_.num_layers, empty);
  }
  const fb::Function* fn = executor_->FindFunction(kMain);
  if (!fn || !fn->inputs()) return InternalError("the artifact has no 'main' with inputs");
  std::vector<exec::DeviceTensor> inputs;
  for (const auto* sig : *fn->inputs()) {
    const std::string_view name = sig->name()->string_view();
    io::Tensor host;
    if (name == "input_ids") {
      host = I64({1, n}, std::vector<int64_t>(ids.begin(), ids.end()));
    } else if (name == "attention_mask") {
      host = I64({1, cached_ + n}, std::vector<int64_t>(cached_ + n, 1));
    } else if (name == "position_ids") {
      std::vector<int64_t> positions(n);
      for (int64_t i = 0; i < n; ++i) positions[i] = cached_ + i;
      host = I64({1, n}, positions);
    } else {
      int index = -1;
      for (int layer = 0; layer < signature_.num_layers && index < 0; ++layer)
        for (int kv = 0; kv < 2; ++kv)
          if (name == LlmSignature::PastName(layer, kv == 1)) index = 2 * layer + kv;
      if (index < 0) return InternalError(StrCat("'main' has an input '", name, "' the engine does not know"));
      inputs.push_back(past_[index]);
      continue;
    }
    KILN_ASSIGN_OR_RETURN(exec::DeviceTensor uploaded, executor_->Upload(host));
    inputs.push_back(std::move(uploaded));
  }

  KILN_ASSIGN_OR_RETURN(std::vector<exec::DeviceTensor> outputs, executor_->RunOnDevice(kMain, inputs));
  inputs.clear();  // frees the old cache before the new one is kept

  // Outputs are checked against what the next step will feed back: a wrong
  // shape here would otherwise surface as a confusing input error later.
  const int64_t total = cached_ + n;
  std::vector<exec::DeviceTensor> present(2 * signature_.num_layers);
  std::vector<bool> seen(present.size(), false);
  std::optional<exec::DeviceTensor> logits;
  for (uint32_t o = 0; o < outputs.size(); ++o) {
    const std::string_view name = fn->outputs()->Get(o)->name()->string_view();
    exec::DeviceTensor& out = outputs[o];
    auto describe = [&] { return StrCat(DTypeName(out.dtype), ShapeToString(out.shape)); };
    if (name == "logits") {
      const std::vector<int64_t> want = {1, n, vocab_};
      if (out.shape != want || out.dtype != DType::kF32)
        return InternalError(StrCat("output 'logits' is ", describe(), ", expected f32", ShapeToString(want)));
      logits = std::move(out);
      continue;
    }
    for (int layer = 0; layer < signature_.num_layers; ++layer)
      for (int kv = 0; kv < 2; ++kv) {
        if (name != LlmSignature::PresentName(layer, kv == 1)) continue;
        const std::vector<int64_t> want = {1, signature_.kv_heads, total, signature_.head_dim};
        if (out.shape != want || out.dtype != signature_.kv_dtype)
          return InternalError(StrCat("output '", name, "' is ", describe(), ", expected ",
                                      DTypeName(signature_.kv_dtype), ShapeToString(want)));
        present[2 * layer + kv] = std::move(out);
        seen[2 * layer + kv] = true;
      }
  }
  if (!logits) return InternalError("the model returned no 'logits'");
  for (size_t i = 0; i < seen.size(); ++i)
    if (!seen[i]) return InternalError(StrCat("the model returned no '", LlmSignature::PresentName(i / 2, i % 2), "'"));
  past_ = std::move(present);
  cached_ = total;
  return std::move(*logits);
}

StatusOr<std::vector<float>> Engine::LastRow(const exec::DeviceTensor& logits) {
  KILN_ASSIGN_OR_RETURN(int64_t count, CheckedElementCount(logits.shape));
  KILN_ASSIGN_OR_RETURN(io::Tensor t, executor_->Download(logits, count - vocab_, vocab_));
  auto values = t.values<float>();
  return std::vector<float>(values.begin(), values.end());
}

StatusOr<std::vector<float>> Engine::Prefill(std::span<const int64_t> ids) {
  Reset();
  KILN_ASSIGN_OR_RETURN(exec::DeviceTensor logits, Forward(ids, /*all_rows=*/false));
  return LastRow(logits);
}

StatusOr<std::vector<float>> Engine::Step(int64_t id) {
  if (cached_ == 0) return FailedPreconditionError("Step before Prefill: the KV cache is empty");
  const int64_t ids[1] = {id};
  KILN_ASSIGN_OR_RETURN(exec::DeviceTensor logits, Forward(ids, /*all_rows=*/false));
  return LastRow(logits);
}

Status Engine::Rollback(int64_t keep) {
  if (keep >= cached_) return OkStatus();
  if (!blocks_) return FailedPreconditionError("rolling back a cache that is not paged");
  KILN_RETURN_IF_ERROR(blocks_->Truncate(kSeq, keep));
  cached_ = keep;
  draft_cached_ = std::min(draft_cached_, keep);  // its K/V past `keep` was for rejected ids
  return OkStatus();
}

StatusOr<GenerateResult> Engine::Generate(std::span<const int64_t> prompt, const GenerateParams& params,
                                          const TokenCallback& on_token) {
  if (prompt.empty()) return InvalidArgumentError("the prompt has no tokens");
  if (params.max_tokens < 0) return InvalidArgumentError(StrCat("max tokens must be >= 0, got ", params.max_tokens));
  if (params.num_speculative_tokens < 0)
    return InvalidArgumentError(StrCat("speculative tokens must be >= 0, got ", params.num_speculative_tokens));
  if (params.num_speculative_tokens > 0 && !signature_.paged)
    return InvalidArgumentError("speculative decoding needs the paged forward (compile without --kv-cache=concat)");
  if (params.num_speculative_tokens > 0 && params.proposer == Proposer::kDraft && draft_pools_.empty())
    return InvalidArgumentError("the artifact has no draft_forward (compile with --speculative=layer-skip:N)");
  // The last chosen id is never run, so the context holds prompt + max - 1.
  const int64_t needed = static_cast<int64_t>(prompt.size()) + std::max<int64_t>(params.max_tokens - 1, 0);
  if (config_.max_positions && needed > *config_.max_positions)
    return OutOfRangeError(StrCat("a prompt of ", prompt.size(), " tokens and ", params.max_tokens,
                                  " new ones need ", needed, " positions but the model has ", *config_.max_positions));
  KILN_ASSIGN_OR_RETURN(Sampler sampler, Sampler::Create(params.sampler));
  GenerateResult result;
  if (params.max_tokens == 0) return result;
  // Speculative acceptance at temperature > 0 draws from its own stream.
  std::mt19937_64 spec_rng(params.sampler.seed ^ 0x9e3779b97f4a7c15ull);
  std::vector<int64_t> context(prompt.begin(), prompt.end());
  int k_now = params.num_speculative_tokens;  // adapted when asked
  const int k_cap = std::min(16, std::max(1, 2 * params.num_speculative_tokens));

  auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(std::vector<float> logits, Prefill(prompt));
  KILN_ASSIGN_OR_RETURN(int64_t id, sampler.Sample(logits));
  result.prefill_seconds = Seconds(start);
  start = std::chrono::steady_clock::now();
  // Emits `id`; false when generation ends with it.
  auto emit = [&](int64_t tok) -> StatusOr<bool> {
    result.ids.push_back(tok);
    context.push_back(tok);
    if (on_token) KILN_RETURN_IF_ERROR(on_token(tok));
    if (!params.ignore_eos && config_.IsEos(tok)) {
      result.stopped_at_eos = true;
      return false;
    }
    return static_cast<int64_t>(result.ids.size()) < params.max_tokens;
  };
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool go_on, emit(id));
    if (!go_on) break;
    // Proposals never run past max_tokens: the id after the last kept one
    // must still be emitted.
    const int64_t room = params.max_tokens - static_cast<int64_t>(result.ids.size()) - 1;
    std::vector<int64_t> proposal;
    std::vector<std::vector<float>> draft_probs;  // the draft's q rows when it samples
    const int k_max = static_cast<int>(std::min<int64_t>(k_now, room));
    if (params.num_speculative_tokens > 0 && room > 0) {
      const auto propose_start = std::chrono::steady_clock::now();
      if (params.proposer == Proposer::kDraft) {
        KILN_ASSIGN_OR_RETURN(proposal, ProposeWithDraft(context, k_max, params.draft_min_probability, params.sampler, spec_rng,
                                                            &draft_probs));
      } else {
        proposal = ProposeNgram(context, k_max);
      }
      result.propose_seconds += Seconds(propose_start);
      if (proposal.empty()) ++result.empty_proposals;
    }
    ++result.decode_forwards;
    if (proposal.empty()) {
      KILN_ASSIGN_OR_RETURN(logits, Step(id));
      KILN_ASSIGN_OR_RETURN(id, sampler.Sample(logits));
      continue;
    }
    // Verify: one forward over the last id and the proposal, a row each.
    const int64_t k = static_cast<int64_t>(proposal.size());
    const int64_t before = cached_;
    std::vector<int64_t> run{id};
    run.insert(run.end(), proposal.begin(), proposal.end());
    KILN_ASSIGN_OR_RETURN(exec::DeviceTensor device_rows, Forward(run, /*all_rows=*/true));
    KILN_ASSIGN_OR_RETURN(io::Tensor rows, executor_->Download(device_rows));
    auto all = rows.values<float>();
    int accepted = 0;
    int64_t next = 0;
    if (params.sampler.temperature == 0) {
      std::vector<int64_t> argmax(k + 1);
      for (int64_t r = 0; r <= k; ++r) argmax[r] = Argmax(all.subspan(r * vocab_, vocab_));
      accepted = AcceptGreedy(proposal, argmax);
      next = argmax[accepted];
    } else {
      std::vector<std::vector<float>> probs;
      for (int64_t r = 0; r <= k; ++r) probs.push_back(ProbsFromLogits(all.subspan(r * vocab_, vocab_), params.sampler));
      KILN_ASSIGN_OR_RETURN(SpecStep step, AcceptSampled(proposal, draft_probs, probs, spec_rng));
      accepted = step.accepted, next = step.next;
    }
    result.draft_tokens += k;
    result.accepted_tokens += accepted;
    if (params.adaptive_speculation) {
      if (accepted == k) k_now = std::min(k_cap, k_now + 1);
      if (accepted == 0) k_now = std::max(1, k_now - 1);
    }
    // The cache keeps id and the accepted proposals; the rest is rolled back.
    KILN_RETURN_IF_ERROR(Rollback(before + 1 + accepted));
    bool stopped = false;
    for (int i = 0; i < accepted && !stopped; ++i) {
      KILN_ASSIGN_OR_RETURN(bool more, emit(proposal[i]));
      stopped = !more;
    }
    if (stopped) break;
    id = next;
  }
  result.decode_seconds = Seconds(start);
  return result;
}

StatusOr<ScoreResult> Engine::Score(std::span<const int64_t> window) {
  Reset();
  ScoreResult result;
  if (window.size() < 2) return result;  // nothing after the first id
  KILN_ASSIGN_OR_RETURN(exec::DeviceTensor device_logits, Forward(window, /*all_rows=*/true));
  Reset();  // scoring keeps no cache; free it now
  KILN_ASSIGN_OR_RETURN(io::Tensor logits, executor_->Download(device_logits));
  auto all = logits.values<float>();
  for (size_t i = 0; i + 1 < window.size(); ++i) {
    std::span<const float> row = all.subspan(i * vocab_, vocab_);
    // log p(target) = x_target - (max + log sum exp(x - max)), in double.
    double top = -INFINITY;
    for (float x : row) top = std::max(top, static_cast<double>(x));
    double sum = 0;
    for (float x : row) sum += std::exp(static_cast<double>(x) - top);
    const double log_prob = static_cast<double>(row[window[i + 1]]) - (top + std::log(sum));
    if (!std::isfinite(log_prob))
      return InternalError(StrCat("log-probability of id ", window[i + 1], " at position ", i + 1, " is not finite"));
    result.nll -= log_prob;
  }
  result.count = static_cast<int64_t>(window.size()) - 1;
  return result;
}

}  // namespace kiln::llm
