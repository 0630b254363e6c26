//===- backend.h - What the HTTP server asks of the generation engine -----===//
//
// kiln-serve's HTTP layer (routes, JSON, SSE, errors, metrics exposition)
// talks to generation only through this interface, so that it can be built
// and tested against a simple backend while the continuous-batching engine
// implements the same contract.
//
// Threading contract: Submit/Cancel/Stats may be called from any thread.
// The callbacks run on the backend's own thread; they must be quick and must
// not call back into the backend synchronously (post to the I/O context).
#ifndef KILN_RUNTIME_SERVE_BACKEND_H_
#define KILN_RUNTIME_SERVE_BACKEND_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/llm/sampler.h"

namespace kiln::serve {

/// One completion request, already tokenized and validated by the server.
struct GenerationRequest {
  std::vector<int64_t> prompt_ids;
  /// Ids to generate per choice (> 0).
  int64_t max_tokens = 16;
  /// Choices: n sequences sharing the prompt (its KV blocks are shared).
  int n = 1;
  /// Sampling of choice i uses seed + i, so choices differ when sampling.
  llm::SamplerParams sampler;
  bool ignore_eos = false;
};

enum class FinishReason {
  kLength,     // max_tokens reached (or the context is full)
  kEos,        // the model produced an end-of-sequence id (not reported as a token)
  kCancelled,  // Cancel() was called (client gone, stop string matched)
  kError,      // see the status given to on_done
};

/// Called once per generated id of choice `index`, in order. An EOS id that
/// ends a choice is not delivered here (on_done says kEos).
using TokenCallback = std::function<void(int index, int64_t id)>;
/// Called exactly once per choice when it ends; after every choice has
/// ended the request is gone and its KV blocks are free.
using DoneCallback = std::function<void(int index, FinishReason reason, const Status& status)>;

/// Live figures for /metrics and /health.
struct BackendStats {
  int64_t num_requests_running = 0;
  int64_t num_requests_waiting = 0;
  /// KV blocks held by live requests / all blocks (cached blocks no request
  /// holds count as free). 0 for a backend without a paged cache.
  double kv_cache_usage_ratio = 0;
  /// Prompt tokens looked up in / found in the prefix cache.
  int64_t prefix_cache_queries_total = 0;
  int64_t prefix_cache_hits_total = 0;
  /// KV slots of the running sequences' blocks, and how many of them hold a
  /// token (summed per sequence; a shared block counts for each holder).
  /// allocated - used is what paging wastes: under one block per sequence.
  int64_t kv_cache_slots_allocated = 0;
  int64_t kv_cache_slots_used = 0;
  /// Speculative decoding: ids proposed, and of those, kept.
  int64_t spec_decode_draft_tokens_total = 0;
  int64_t spec_decode_accepted_tokens_total = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  /// Queues a request; returns its id. ResourceExhaustedError when the queue
  /// is full (the server answers 429), InvalidArgumentError when the request
  /// can never run (e.g. prompt + max_tokens beyond the context).
  virtual StatusOr<uint64_t> Submit(GenerationRequest request, TokenCallback on_token, DoneCallback on_done) = 0;
  /// Ends every choice of a request that has not ended yet with kCancelled
  /// and frees its blocks at once. Unknown or finished ids are ignored.
  virtual void Cancel(uint64_t id) = 0;
  virtual BackendStats Stats() const = 0;
  /// Longest context (prompt + generated ids) a request may use.
  virtual int64_t max_context() const = 0;
  /// Stops taking requests, cancels or finishes what runs (per `drain`) and
  /// joins the backend's thread. Idempotent.
  virtual void Shutdown(bool drain) = 0;
};

}  // namespace kiln::serve

#endif  // KILN_RUNTIME_SERVE_BACKEND_H_
