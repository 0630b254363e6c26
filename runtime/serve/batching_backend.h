//===- batching_backend.h - Continuous batching over the paged forward ------===//
//
// The serving engine: a scheduler thread that runs one `forward` per step
// over every running sequence (vLLM-style continuous batching):
//  - decodes of running sequences first (one token each), then chunks of
//    prompts, under a token budget per step (chunked prefill mixed with
//    decodes), at most max_num_seqs sequences;
//  - waiting requests are admitted first come, first served; a request that
//    does not fit blocks the ones behind it (no overtaking);
//  - when a running sequence needs a block and none is free, the most
//    recently admitted request is preempted: its blocks are freed and it
//    goes back to the front of the queue, to be recomputed (prompt + what it
//    generated) when blocks free up;
//  - n > 1: the prompt is computed once; the choices then fork its blocks
//    (copy-on-write on their first own token) and sample with seed + i;
//  - prefix caching: full blocks of earlier prompts are reused;
//  - Cancel frees the request's blocks at the start of the next step.
//  - with num_speculative_tokens, decoding sequences speculate independently:
//    each proposes up to k ids (prompt lookup, or the artifact's
//    draft_forward run k times over every decoding sequence at once) and
//    verifies them in the same target forward.
// Each sequence's tokens, positions and sampler are its own, and every
// kernel computes a row the same way whatever else is in the batch, so a
// request's greedy output does not depend on what it is batched with.
#ifndef KILN_RUNTIME_SERVE_BATCHING_BACKEND_H_
#define KILN_RUNTIME_SERVE_BATCHING_BACKEND_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/llm/paged_model.h"
#include "runtime/llm/sampler.h"
#include "runtime/llm/speculative.h"
#include "runtime/serve/backend.h"

namespace kiln::serve {

struct BatchingBackendOptions {
  /// Most sequences in one step.
  int64_t max_num_seqs = 64;
  /// Most tokens in one step (decodes count one each).
  int64_t max_batched_tokens = 512;
  /// Most requests waiting to start.
  int64_t max_queue = 1024;
  /// Speculative decoding: each decoding sequence proposes up to this many
  /// ids, verified in the same batched forward; 0 = off.
  int num_speculative_tokens = 0;
  /// Where proposals come from: prompt lookup, or the artifact's
  /// draft_forward (which it must have).
  llm::Proposer proposer = llm::Proposer::kNgram;
  /// Speculate only in steps with at most this many decoding sequences (0:
  /// always). A batch already reads each weight once for all its rows;
  /// verifying k + 1 rows per sequence then costs compute the batch does
  /// not have to spare (vLLM's speculative_disable_by_batch_size).
  int64_t speculative_max_batch = 0;
  /// Each sequence tunes its own k to its acceptance, as kiln-generate's
  /// --adaptive-speculation: one more after a step that kept every
  /// proposal (up to 2x num_speculative_tokens, at most 16), one fewer after
  /// a step that kept none (at least 1).
  bool adaptive_speculation = false;
  /// A draft stops proposing for a sequence after an id it gives less than
  /// this probability (llm::GenerateParams::draft_min_probability); 0 = never.
  float draft_min_probability = 0;
};

class BatchingBackend final : public Backend {
 public:
  static StatusOr<std::unique_ptr<BatchingBackend>> Create(std::unique_ptr<llm::PagedModel> model,
                                                           const BatchingBackendOptions& options = {});
  ~BatchingBackend() override;

  StatusOr<uint64_t> Submit(GenerationRequest request, TokenCallback on_token, DoneCallback on_done) override;
  void Cancel(uint64_t id) override;
  BackendStats Stats() const override;
  int64_t max_context() const override { return model_->max_context(); }
  void Shutdown(bool drain) override;

  const llm::PagedModel& model() const { return *model_; }
  /// Steps run and preemptions so far (tests, metrics).
  int64_t steps() const;
  int64_t preemptions() const;

 private:
  struct Request;
  struct Sequence;
  BatchingBackend(std::unique_ptr<llm::PagedModel> model, const BatchingBackendOptions& options);
  void Loop();
  /// One scheduling step (scheduler thread, lock not held).
  void Step();
  void FinishSequence(Sequence& seq, FinishReason reason, const Status& status);
  /// Delivers one generated id; false when it ended the sequence.
  bool Emit(Sequence& seq, int64_t id);
  /// Keeps the verified proposals of `seq` (rows: its k + 1 logits rows),
  /// rolls the rest of its cache back and emits what it kept plus the next id.
  void Speculate(Sequence& seq, std::span<const float> rows);
  /// Most ids decoding sequence `s` may propose this step: its k, within
  /// max_tokens (the id after the kept ones must still be emitted), the
  /// context, and `budget` (its verification entry has 1 + k ids).
  int64_t SpeculationRoom(const Sequence& s, int64_t budget) const;
  /// Draft proposals for the decoding sequences of this step that have room
  /// in `budget` (the same order and budget as Step's first phase): up to
  /// num_speculative_tokens batched draft_forward rounds. Each round appends
  /// the slot of the id it feeds (kept in Sequence::spec_slots).
  void ProposeWithDraft(int64_t budget);
  /// Frees `req`'s blocks and sends it back to the queue front.
  void Preempt(Request& req);
  Status Admit(Sequence& seq, int64_t budget, std::vector<llm::BatchEntry>& batch, std::vector<Sequence*>& ran);

  std::unique_ptr<llm::PagedModel> model_;  // scheduler thread only, once running
  const BatchingBackendOptions options_;

  // Shared with Submit/Cancel/Stats.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Request>> incoming_;
  std::vector<uint64_t> cancels_;
  uint64_t next_id_ = 1;
  bool stopping_ = false, drain_ = false;
  BackendStats stats_;
  int64_t steps_ = 0, preemptions_ = 0;

  // Scheduler thread only.
  std::map<uint64_t, std::unique_ptr<Request>> requests_;
  std::list<Sequence*> waiting_;  // FCFS; preempted ones at the front
  std::list<Sequence*> running_;  // in admission order
  int64_t next_seq_id_ = 0;
  int64_t spec_drafted_ = 0, spec_accepted_ = 0;
  bool reset_prefix_cache_ = false;  // a sequence with unwritten slots was preempted

  std::thread thread_;
};

}  // namespace kiln::serve

#endif  // KILN_RUNTIME_SERVE_BATCHING_BACKEND_H_
