//===- serial_backend.h - One request at a time over llm::Engine -----------===//
//
// The stop-gap Backend until the paged-KV, continuous-batching engine lands:
// one worker thread owns an llm::Engine and runs requests first come, first
// served, one at a time; the n choices of a request run one after another,
// choice i sampled with seed + i. Requests wait in a bounded queue (Submit
// answers ResourceExhausted when it is full). Cancel takes a waiting request
// out at once and stops a running one between two decode steps. There is no
// paged cache, so Stats() reports the KV figures as 0.
#ifndef KILN_RUNTIME_SERVE_SERIAL_BACKEND_H_
#define KILN_RUNTIME_SERVE_SERIAL_BACKEND_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "runtime/llm/engine.h"
#include "runtime/serve/backend.h"

namespace kiln::serve {

struct SerialBackendOptions {
  /// Most requests waiting (not yet running); the running one is not
  /// counted. With 0 a request is taken only when nothing runs or waits.
  int64_t max_queue = 1024;
};

class SerialBackend final : public Backend {
 public:
  /// Takes the engine and starts the worker thread.
  static StatusOr<std::unique_ptr<SerialBackend>> Create(std::unique_ptr<llm::Engine> engine,
                                                         const SerialBackendOptions& options = {});
  /// Shutdown(/*drain=*/false).
  ~SerialBackend() override;

  StatusOr<uint64_t> Submit(GenerationRequest request, TokenCallback on_token, DoneCallback on_done) override;
  void Cancel(uint64_t id) override;
  BackendStats Stats() const override;
  int64_t max_context() const override { return max_context_; }
  void Shutdown(bool drain) override;

  /// The engine (its config and artifact stay valid; do not generate with it).
  const llm::Engine& engine() const { return *engine_; }

 private:
  struct Job;
  SerialBackend(std::unique_ptr<llm::Engine> engine, const SerialBackendOptions& options);
  void Run();
  /// Runs every choice of `job` on the worker thread.
  void Generate(Job& job);
  /// Ends the choices of cancelled waiting jobs (worker thread).
  void FlushCancelled();

  std::unique_ptr<llm::Engine> engine_;  // used by the worker thread only
  const SerialBackendOptions options_;
  const int64_t max_context_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> waiting_;
  /// Cancelled while waiting; the worker delivers their on_done.
  std::deque<std::shared_ptr<Job>> cancelled_;
  std::shared_ptr<Job> running_;
  uint64_t next_id_ = 1;
  bool stopping_ = false;  // no more Submit
  bool drain_ = true;      // on stop: finish what waits (true) or cancel it
  std::thread worker_;
  std::once_flag joined_;
};

}  // namespace kiln::serve

#endif  // KILN_RUNTIME_SERVE_SERIAL_BACKEND_H_
