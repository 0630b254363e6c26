//===- batching_backend.cc - Continuous batching over the paged forward ----===//
#include "runtime/serve/batching_backend.h"

#include <algorithm>
#include <optional>
#include <random>
#include <span>
#include <unordered_set>

#include "runtime/llm/ngram_proposer.h"
#include "runtime/llm/speculative.h"

namespace kiln::serve {

struct BatchingBackend::Sequence {
  Request* req = nullptr;
  int choice = 0;
  int64_t id = 0;                // in the block manager
  std::vector<int64_t> tokens;   // prompt + generated ids
  int64_t computed = 0;          // tokens whose K/V are in the cache
  int64_t generated = 0;
  std::optional<llm::Sampler> sampler;
  std::mt19937_64 spec_rng;      // speculative acceptance at temperature > 0
  std::vector<int64_t> proposal; // this step's speculative ids (after tokens.back())
  std::vector<std::vector<float>> draft_probs;  // the draft's rows, when it sampled them
  std::vector<int64_t> spec_slots;  // slots the draft rounds appended (positions computed..)
  int64_t draft_computed = 0;    // tokens whose draft K/V are in the draft pools
  int64_t k = 0;                 // ids it proposes per step (adaptive, else the option)
  bool allocated = false;        // holds blocks
  bool running = false;
  bool done = false;
};

struct BatchingBackend::Request {
  uint64_t id = 0;
  GenerationRequest params;
  TokenCallback on_token;
  DoneCallback on_done;
  std::vector<std::unique_ptr<Sequence>> seqs;  // choice 0 first; the rest after the prompt
  int live = 0;                                  // choices not ended
  bool forked = false;
};

StatusOr<std::unique_ptr<BatchingBackend>> BatchingBackend::Create(std::unique_ptr<llm::PagedModel> model,
                                                                   const BatchingBackendOptions& options) {
  if (options.max_num_seqs < 1 || options.max_batched_tokens < 1 || options.max_queue < 0)
    return InvalidArgumentError("max_num_seqs and max_batched_tokens must be >= 1, max_queue >= 0");
  if (options.num_speculative_tokens < 0)
    return InvalidArgumentError(StrCat("speculative tokens must be >= 0, got ", options.num_speculative_tokens));
  if (options.num_speculative_tokens > 0 && options.proposer == llm::Proposer::kDraft && !model->has_draft())
    return InvalidArgumentError(
        "the artifact has no draft_forward (compile with --draft DRAFT.onnx or --speculative=layer-skip:N)");
  std::unique_ptr<BatchingBackend> b(new BatchingBackend(std::move(model), options));
  b->thread_ = std::thread([raw = b.get()] { raw->Loop(); });
  return b;
}

BatchingBackend::BatchingBackend(std::unique_ptr<llm::PagedModel> model, const BatchingBackendOptions& options)
    : model_(std::move(model)), options_(options) {}

BatchingBackend::~BatchingBackend() { Shutdown(/*drain=*/false); }

StatusOr<uint64_t> BatchingBackend::Submit(GenerationRequest request, TokenCallback on_token, DoneCallback on_done) {
  const int64_t prompt = static_cast<int64_t>(request.prompt_ids.size());
  if (prompt == 0) return InvalidArgumentError("the prompt has no tokens");
  if (request.max_tokens < 1) return InvalidArgumentError(StrCat("max_tokens must be >= 1, got ", request.max_tokens));
  if (request.n < 1) return InvalidArgumentError(StrCat("n must be >= 1, got ", request.n));
  // The last id is never run: the context holds prompt + max_tokens - 1.
  const int64_t needed = prompt + request.max_tokens - 1;
  if (needed > model_->max_context())
    return InvalidArgumentError(StrCat("a prompt of ", prompt, " tokens and ", request.max_tokens, " new ones need ",
                                       needed, " positions but the model has ", model_->max_context()));
  for (int64_t id : request.prompt_ids)
    if (id < 0 || id >= model_->vocab_size())
      return InvalidArgumentError(StrCat("token id ", id, " is outside the model's vocabulary of ", model_->vocab_size()));
  KILN_RETURN_IF_ERROR(llm::Sampler::Create(request.sampler).status());

  auto req = std::make_unique<Request>();
  req->params = std::move(request);
  req->on_token = std::move(on_token);
  req->on_done = std::move(on_done);
  req->live = req->params.n;
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return UnavailableError("the server is shutting down");
  if (stats_.num_requests_waiting + static_cast<int64_t>(incoming_.size()) >= options_.max_queue)
    return ResourceExhaustedError(StrCat("the queue is full (", options_.max_queue, " requests waiting)"));
  req->id = next_id_++;
  const uint64_t id = req->id;
  incoming_.push_back(std::move(req));
  wake_.notify_one();
  return id;
}

void BatchingBackend::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancels_.push_back(id);
  wake_.notify_one();
}

BackendStats BatchingBackend::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  BackendStats s = stats_;
  s.num_requests_waiting += static_cast<int64_t>(incoming_.size());
  return s;
}

int64_t BatchingBackend::steps() const {
  std::lock_guard<std::mutex> lock(mu_);
  return steps_;
}

int64_t BatchingBackend::preemptions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return preemptions_;
}

void BatchingBackend::Shutdown(bool drain) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) drain_ = drain;
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void BatchingBackend::Loop() {
  while (true) {
    const bool busy = !running_.empty() || !waiting_.empty();
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return busy || stopping_ || !incoming_.empty() || !cancels_.empty(); });
      if (stopping_ && !drain_) {
        // Everything still known ends now (Step takes new requests in
        // before it applies cancellations).
        for (auto& req : incoming_) cancels_.push_back(req->id);
        for (auto& [id, req] : requests_) cancels_.push_back(id);
      }
    }
    Step();
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && requests_.empty() && incoming_.empty()) return;
  }
}

void BatchingBackend::FinishSequence(Sequence& seq, FinishReason reason, const Status& status) {
  if (seq.done) return;
  if (seq.allocated) (void)model_->blocks().Free(seq.id);
  seq.allocated = false;
  if (seq.running) running_.remove(&seq);
  else waiting_.remove(&seq);
  seq.running = false;
  seq.done = true;
  Request& req = *seq.req;
  --req.live;
  if (req.on_done) req.on_done(seq.choice, reason, status);
}

bool BatchingBackend::Emit(Sequence& s, int64_t id) {
  Request& req = *s.req;
  if (!req.params.ignore_eos && model_->config().IsEos(id)) {
    FinishSequence(s, FinishReason::kEos, OkStatus());
    return false;
  }
  if (req.on_token) req.on_token(s.choice, id);
  ++s.generated;
  s.tokens.push_back(id);
  if (s.generated >= req.params.max_tokens || (int64_t)s.tokens.size() > model_->max_context()) {
    FinishSequence(s, FinishReason::kLength, OkStatus());
    return false;
  }
  return true;
}

void BatchingBackend::Speculate(Sequence& s, std::span<const float> rows) {
  const int64_t vocab = model_->vocab_size();
  const int64_t k = static_cast<int64_t>(s.proposal.size());
  const llm::SamplerParams& sp = s.req->params.sampler;
  int accepted = 0;
  int64_t next = 0;
  if (sp.temperature == 0) {
    std::vector<int64_t> argmax(k + 1);
    for (int64_t r = 0; r <= k; ++r) argmax[r] = llm::Argmax(rows.subspan(r * vocab, vocab));
    accepted = llm::AcceptGreedy(s.proposal, argmax);
    next = argmax[accepted];
  } else {
    std::vector<std::vector<float>> probs;
    for (int64_t r = 0; r <= k; ++r) probs.push_back(llm::ProbsFromLogits(rows.subspan(r * vocab, vocab), sp));
    StatusOr<llm::SpecStep> step = llm::AcceptSampled(s.proposal, s.draft_probs, probs, s.spec_rng);
    if (!step.ok()) {
      FinishSequence(s, FinishReason::kError, step.status());
      return;
    }
    accepted = step->accepted, next = step->next;
  }
  // The cache keeps the last id and the kept proposals; the rest is rolled
  // back (the draft's K/V past it was for rejected ids).
  s.computed += 1 + accepted;
  s.draft_computed = std::min(s.draft_computed, s.computed);
  s.spec_slots.clear();
  s.draft_probs.clear();
  if (Status t = model_->blocks().Truncate(s.id, s.computed); !t.ok()) {
    FinishSequence(s, FinishReason::kError, t);
    return;
  }
  spec_drafted_ += k;
  spec_accepted_ += accepted;
  if (options_.adaptive_speculation) {
    const int64_t cap = std::min<int64_t>(16, std::max(1, 2 * options_.num_speculative_tokens));
    if (accepted == k) s.k = std::min(cap, s.k + 1);
    if (accepted == 0) s.k = std::max<int64_t>(1, s.k - 1);
  }
  const std::vector<int64_t> proposal = std::move(s.proposal);
  s.proposal.clear();
  for (int i = 0; i < accepted; ++i)
    if (!Emit(s, proposal[i])) return;
  Emit(s, next);
}

int64_t BatchingBackend::SpeculationRoom(const Sequence& s, int64_t budget) const {
  const GenerationRequest& p = s.req->params;
  return std::min<int64_t>({p.max_tokens - s.generated - 1,
                            model_->max_context() - static_cast<int64_t>(s.tokens.size()), budget - 1, s.k});
}

void BatchingBackend::ProposeWithDraft(int64_t budget) {
  llm::KvBlockManager& blocks = model_->blocks();
  // Who speculates, and how far: as Step's first phase will spend the budget.
  std::vector<std::pair<Sequence*, int64_t>> drafting;  // sequence, most ids
  for (Sequence* s : running_) {
    if (!s->spec_slots.empty()) {
      // Draft slots a previous step did not verify (it never should): drop them.
      (void)blocks.Truncate(s->id, s->computed);
      s->draft_computed = std::min(s->draft_computed, s->computed);
      reset_prefix_cache_ = true;
    }
    s->proposal.clear();
    s->draft_probs.clear();
    s->spec_slots.clear();
    if (budget <= 0) continue;
    const int64_t remaining = static_cast<int64_t>(s->tokens.size()) - s->computed;
    if (remaining != 1) {
      budget -= std::min(remaining, budget);
      continue;
    }
    const int64_t room = SpeculationRoom(*s, budget);
    budget -= 1 + std::max<int64_t>(room, 0);
    if (room > 0) drafting.emplace_back(s, room);
  }
  // Round i feeds each sequence what its draft has not seen (round 0: the
  // ids since draft_computed, the last one included; then its previous
  // proposal) and appends a slot for the newest id, shared with the target.
  std::deque<std::vector<int64_t>> store;
  std::unordered_set<const Sequence*> unsure;  // stopped by draft_min_probability
  for (int64_t round = 0; !drafting.empty(); ++round) {
    std::vector<llm::BatchEntry> batch;
    std::vector<llm::KvBlockCopy> copies;
    std::vector<Sequence*> fed;
    for (auto& [s, room] : drafting) {
      const int64_t start = s->draft_computed;
      const int64_t newest = s->computed + round;  // the position whose slot is new
      // The context is tokens, then the ids proposed so far.
      const int64_t n = static_cast<int64_t>(s->tokens.size());
      std::vector<int64_t> feed(s->tokens.begin() + std::min(start, n), s->tokens.end());
      feed.insert(feed.end(), s->proposal.begin() + std::max<int64_t>(start - n, 0), s->proposal.end());
      const int64_t last = feed.back();
      StatusOr<llm::KvAppend> app = blocks.AppendSlots(s->id, std::span<const int64_t>(&last, 1));
      if (!app.ok()) {
        room = 0;  // no block for it now: verify what was proposed so far
        continue;
      }
      copies.insert(copies.end(), app->copies.begin(), app->copies.end());
      s->spec_slots.push_back(app->slots[0]);
      StatusOr<std::span<const int64_t>> table = blocks.BlockTable(s->id);
      const int64_t bs = blocks.block_size();
      std::vector<int64_t> slots;
      for (int64_t pos = start; pos < newest; ++pos) slots.push_back((*table)[pos / bs] * bs + pos % bs);
      slots.push_back(app->slots[0]);
      store.push_back(std::move(feed));
      std::span<const int64_t> ids = store.back();
      store.push_back(std::move(slots));
      batch.push_back({s->id, ids, start, store.back(), /*want_logits=*/true, 1});
      fed.push_back(s);
    }
    if (Status copied = model_->CopyBlocks(copies); !copied.ok()) {
      // The target's copy-on-write did not happen either: these sequences
      // cannot go on, and their new slots were never written.
      for (Sequence* s : fed) FinishSequence(*s, FinishReason::kError, copied);
      reset_prefix_cache_ = true;
      return;
    }
    if (batch.empty()) return;
    StatusOr<std::vector<float>> logits = model_->RunDraft(batch);
    const int64_t vocab = model_->vocab_size();
    for (size_t i = 0; i < fed.size(); ++i) {
      Sequence& s = *fed[i];
      if (!logits.ok()) {
        // The draft's pools may be half written at these slots: it starts
        // over next time; the target verifies what it proposed so far.
        s.draft_computed = 0;
        continue;
      }
      s.draft_computed = batch[i].start + static_cast<int64_t>(batch[i].tokens.size());
      std::span<const float> row(logits->data() + i * vocab, vocab);
      float probability = 1;
      const int64_t id = llm::ProposeFromDraftLogits(row, s.req->params.sampler, s.spec_rng, s.draft_probs, &probability);
      if (id < 0) continue;
      s.proposal.push_back(id);
      // An unsure id is still verified; the draft stops after it.
      if (probability < options_.draft_min_probability) unsure.insert(&s);
    }
    // Sequences stop when they have their ids, failed, or could not append.
    std::erase_if(drafting, [&](const std::pair<Sequence*, int64_t>& d) {
      return !logits.ok() || unsure.contains(d.first) || static_cast<int64_t>(d.first->proposal.size()) <= round ||
             static_cast<int64_t>(d.first->proposal.size()) >= d.second;
    });
  }
}

void BatchingBackend::Preempt(Request& req) {
  for (auto it = req.seqs.rbegin(); it != req.seqs.rend(); ++it) {
    Sequence& s = **it;
    if (s.done || !s.running) continue;
    if (s.allocated) (void)model_->blocks().Free(s.id);
    s.allocated = false;
    s.computed = 0;
    s.running = false;
    s.proposal.clear();  // its verification entry, if any, is dropped
    s.draft_probs.clear();
    s.draft_computed = 0;
    // Slots the draft rounds appended were never written by the target:
    // their blocks must not be served from the prefix cache.
    if (!s.spec_slots.empty()) reset_prefix_cache_ = true;
    s.spec_slots.clear();
    running_.remove(&s);
    waiting_.push_front(&s);
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++preemptions_;
}

void BatchingBackend::Step() {
  // Intake: new requests to the back of the queue, then cancellations.
  std::deque<std::unique_ptr<Request>> fresh;
  std::vector<uint64_t> cancels;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fresh.swap(incoming_);
    cancels.swap(cancels_);
  }
  for (auto& req : fresh) {
    auto seq = std::make_unique<Sequence>();
    seq->req = req.get();
    seq->id = next_seq_id_++;
    seq->tokens = req->params.prompt_ids;
    llm::SamplerParams sp = req->params.sampler;
    seq->sampler = *llm::Sampler::Create(sp);  // checked by Submit
    seq->spec_rng.seed(sp.seed ^ 0x9e3779b97f4a7c15ull);
    seq->k = options_.num_speculative_tokens;
    waiting_.push_back(seq.get());
    req->seqs.push_back(std::move(seq));
    const uint64_t id = req->id;
    requests_[id] = std::move(req);
  }
  for (uint64_t id : cancels) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    Request& req = *it->second;
    for (auto& s : req.seqs) FinishSequence(*s, FinishReason::kCancelled, OkStatus());
    // Choices not forked yet never started: they end too.
    for (int c = static_cast<int>(req.seqs.size()); c < req.params.n; ++c) {
      --req.live;
      if (req.on_done) req.on_done(c, FinishReason::kCancelled, OkStatus());
    }
  }

  llm::KvBlockManager& blocks = model_->blocks();
  int64_t budget = options_.max_batched_tokens;
  std::vector<llm::BatchEntry> batch;
  std::vector<Sequence*> ran;
  std::deque<std::vector<int64_t>> slot_store;   // stable storage for the entries' slots
  std::deque<std::vector<int64_t>> token_store;  // and for speculative entries' ids
  std::vector<llm::KvBlockCopy> copies;

  // 1. Running sequences: a decode token, or the next chunk of a prompt.
  int64_t decoding = 0;
  for (Sequence* s : running_) decoding += static_cast<int64_t>(s->tokens.size()) - s->computed == 1;
  const bool speculate = options_.num_speculative_tokens > 0 &&
                         (options_.speculative_max_batch <= 0 || decoding <= options_.speculative_max_batch);
  const bool draft = speculate && options_.proposer == llm::Proposer::kDraft;
  if (draft) ProposeWithDraft(budget);
  std::vector<Sequence*> snapshot(running_.begin(), running_.end());
  for (Sequence* s : snapshot) {
    if (!s->running || budget <= 0) continue;
    const int64_t remaining = static_cast<int64_t>(s->tokens.size()) - s->computed;
    int64_t chunk = std::min(remaining, budget);
    std::span<const int64_t> next(s->tokens.data() + s->computed, chunk);
    // Speculation (decodes only): the last id plus the proposed ids (the
    // draft's, or those that followed the context's last n-gram before),
    // verified in this one forward.
    // (ProposeWithDraft filled the draft's proposals already.)
    if (!draft) {
      s->proposal.clear();
      const int64_t room = speculate && remaining == 1 ? SpeculationRoom(*s, budget) : 0;
      if (room > 0) s->proposal = llm::ProposeNgram(s->tokens, static_cast<int>(room));
    }
    if (!s->proposal.empty()) {
      std::vector<int64_t> run{s->tokens.back()};
      run.insert(run.end(), s->proposal.begin(), s->proposal.end());
      token_store.push_back(std::move(run));
      next = token_store.back();
      chunk = static_cast<int64_t>(next.size());
    }
    // The draft rounds appended the slots of all but the last id already.
    const size_t have = s->spec_slots.size();
    StatusOr<llm::KvAppend> app = blocks.AppendSlots(s->id, next.subspan(have));
    while (!app.ok() && app.status().code() == StatusCode::kResourceExhausted && s->running) {
      // No free block: preempt the most recently admitted request.
      Preempt(*running_.back()->req);
      if (s->running) app = blocks.AppendSlots(s->id, next.subspan(have));
    }
    if (!s->running) continue;  // preempted itself
    if (!app.ok()) {
      FinishSequence(*s, FinishReason::kError, app.status());
      continue;
    }
    copies.insert(copies.end(), app->copies.begin(), app->copies.end());
    if (have > 0) app->slots.insert(app->slots.begin(), s->spec_slots.begin(), s->spec_slots.end());
    s->spec_slots.clear();  // consumed: this entry writes them
    slot_store.push_back(std::move(app->slots));
    const bool spec = !s->proposal.empty();
    batch.push_back({s->id, next, s->computed, slot_store.back(),
                     spec || s->computed + chunk == (int64_t)s->tokens.size(), spec ? chunk : 1});
    ran.push_back(s);
    budget -= chunk;
  }
  // Drop the entries of sequences that a later allocation preempted (a
  // sibling choice of the newest request). Their slots were handed out but
  // will not be written this step, and full blocks among them may already
  // be in the prefix cache: forget the cache rather than serve them.
  bool dropped = false;
  for (size_t i = 0; i < ran.size();) {
    if (ran[i]->running) {
      ++i;
      continue;
    }
    ran.erase(ran.begin() + i);
    batch.erase(batch.begin() + i);
    dropped = true;
  }
  if (dropped || reset_prefix_cache_) blocks.ResetPrefixCache();
  reset_prefix_cache_ = false;

  // 2. Waiting sequences, first come first served, while budget and seats last.
  while (!waiting_.empty() && budget > 0 && static_cast<int64_t>(running_.size()) < options_.max_num_seqs) {
    Sequence* s = waiting_.front();
    const int64_t chunk = std::min(static_cast<int64_t>(s->tokens.size()), budget);
    std::span<const int64_t> first(s->tokens.data(), chunk);
    if (!blocks.CanAllocate(first)) break;  // no overtaking
    StatusOr<llm::KvAllocation> alloc = blocks.Allocate(s->id, first);
    if (!alloc.ok()) break;
    waiting_.pop_front();
    s->proposal.clear();
    s->draft_probs.clear();
    s->spec_slots.clear();
    s->draft_computed = 0;  // the draft catches up over the whole prompt
    s->allocated = s->running = true;
    running_.push_back(s);
    s->computed = alloc->num_cached_tokens;
    std::span<const int64_t> todo(s->tokens.data() + s->computed, chunk - s->computed);
    slot_store.push_back(std::move(alloc->slots));
    batch.push_back({s->id, todo, s->computed, slot_store.back(), chunk == (int64_t)s->tokens.size()});
    ran.push_back(s);
    budget -= static_cast<int64_t>(todo.size());
  }

  if (!batch.empty()) {
    StatusOr<std::vector<float>> logits = model_->Run(batch, copies);
    if (!logits.ok()) {
      // The pools may be half written: nothing cached can be trusted.
      for (Sequence* s : ran) FinishSequence(*s, FinishReason::kError, logits.status());
      blocks.ResetPrefixCache();
    } else {
      const int64_t vocab = model_->vocab_size();
      int64_t row = 0;
      for (size_t i = 0; i < ran.size(); ++i) {
        Sequence* s = ran[i];
        if (!s->proposal.empty()) {
          const int64_t rows = static_cast<int64_t>(s->proposal.size()) + 1;
          std::span<const float> all(logits->data() + row * vocab, rows * vocab);
          row += rows;
          Speculate(*s, all);
          continue;
        }
        s->computed += static_cast<int64_t>(batch[i].tokens.size());
        if (!batch[i].want_logits) continue;
        std::span<const float> r(logits->data() + row * vocab, vocab);
        ++row;
        Request& req = *s->req;
        std::vector<Sequence*> choosers{s};
        if (!req.forked && req.params.n > 1 && s->choice == 0 && s->generated == 0) {
          // The prompt is done: the other choices share its blocks.
          for (int c = 1; c < req.params.n; ++c) {
            auto child = std::make_unique<Sequence>();
            child->req = &req;
            child->choice = c;
            child->id = next_seq_id_++;
            child->tokens = s->tokens;
            child->computed = s->computed;
            child->draft_computed = s->draft_computed;
            child->k = s->k;
            llm::SamplerParams sp = req.params.sampler;
            sp.seed += static_cast<uint64_t>(c);
            child->sampler = *llm::Sampler::Create(sp);
            if (Status fork = blocks.Fork(s->id, child->id); !fork.ok()) {
              --req.live;
              if (req.on_done) req.on_done(c, FinishReason::kError, fork);
              child->done = true;
            } else {
              child->allocated = child->running = true;
              running_.push_back(child.get());
              choosers.push_back(child.get());
            }
            req.seqs.push_back(std::move(child));
          }
        }
        if (!req.forked) req.forked = true;
        for (Sequence* c : choosers) {
          StatusOr<int64_t> id = c->sampler->Sample(r);
          if (!id.ok()) {
            FinishSequence(*c, FinishReason::kError, id.status());
            continue;
          }
          if (!req.params.ignore_eos && model_->config().IsEos(*id)) {
            FinishSequence(*c, FinishReason::kEos, OkStatus());
            continue;
          }
          if (req.on_token) req.on_token(c->choice, *id);
          ++c->generated;
          c->tokens.push_back(*id);
          if (c->generated >= req.params.max_tokens || (int64_t)c->tokens.size() > model_->max_context())
            FinishSequence(*c, FinishReason::kLength, OkStatus());
        }
      }
    }
  }

  // Requests whose choices all ended are gone; publish the figures.
  for (auto it = requests_.begin(); it != requests_.end();)
    it = it->second->live <= 0 ? requests_.erase(it) : std::next(it);
  int64_t running = 0, waiting = 0, allocated = 0, used = 0;
  for (Sequence* s : running_) {
    StatusOr<std::span<const int64_t>> table = blocks.BlockTable(s->id);
    StatusOr<int64_t> tokens = blocks.NumTokens(s->id);
    if (table.ok() && tokens.ok()) allocated += static_cast<int64_t>(table->size()) * blocks.block_size(), used += *tokens;
  }
  for (auto& [id, req] : requests_) {
    bool any_running = false;
    for (auto& s : req->seqs) any_running |= s->running;
    (any_running ? running : waiting) += 1;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!batch.empty()) ++steps_;
  stats_.num_requests_running = running;
  stats_.num_requests_waiting = waiting;
  stats_.kv_cache_usage_ratio = blocks.UsageRatio();
  stats_.prefix_cache_queries_total = blocks.prefix_cache_queries();
  stats_.prefix_cache_hits_total = blocks.prefix_cache_hits();
  stats_.kv_cache_slots_allocated = allocated;
  stats_.spec_decode_draft_tokens_total = spec_drafted_;
  stats_.spec_decode_accepted_tokens_total = spec_accepted_;
  stats_.kv_cache_slots_used = used;
}

}  // namespace kiln::serve
