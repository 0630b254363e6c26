//===- serial_backend.cc - One request at a time over llm::Engine ----------===//
#include "runtime/serve/serial_backend.h"

#include <atomic>
#include <limits>

namespace kiln::serve {
namespace {

/// What the token callback returns to stop Engine::Generate on Cancel.
Status CancelledMarker() { return UnavailableError("request cancelled"); }

}  // namespace

struct SerialBackend::Job {
  uint64_t id = 0;
  GenerationRequest request;
  TokenCallback on_token;
  DoneCallback on_done;
  /// Set by Cancel/Shutdown on any thread, read by the worker between steps.
  std::atomic<bool> cancelled{false};
};

StatusOr<std::unique_ptr<SerialBackend>> SerialBackend::Create(std::unique_ptr<llm::Engine> engine,
                                                               const SerialBackendOptions& options) {
  if (!engine) return InvalidArgumentError("SerialBackend: no engine");
  if (options.max_queue < 0)
    return InvalidArgumentError(StrCat("SerialBackend: max_queue must be >= 0, got ", options.max_queue));
  std::unique_ptr<SerialBackend> backend(new SerialBackend(std::move(engine), options));
  backend->worker_ = std::thread([b = backend.get()] { b->Run(); });
  return backend;
}

SerialBackend::SerialBackend(std::unique_ptr<llm::Engine> engine, const SerialBackendOptions& options)
    : engine_(std::move(engine)),
      options_(options),
      // Without a limit in the config, the engine takes any length; keep
      // prompt + max_tokens arithmetic far from overflowing.
      max_context_(engine_->config().max_positions.value_or(std::numeric_limits<int32_t>::max())) {}

SerialBackend::~SerialBackend() { Shutdown(/*drain=*/false); }

StatusOr<uint64_t> SerialBackend::Submit(GenerationRequest request, TokenCallback on_token, DoneCallback on_done) {
  const int64_t prompt = static_cast<int64_t>(request.prompt_ids.size());
  if (prompt == 0) return InvalidArgumentError("the prompt has no tokens");
  if (request.max_tokens <= 0)
    return InvalidArgumentError(StrCat("max_tokens must be at least 1, got ", request.max_tokens));
  if (request.n < 1) return InvalidArgumentError(StrCat("n must be at least 1, got ", request.n));
  if (request.max_tokens > max_context_ - prompt)
    return InvalidArgumentError(StrCat("a prompt of ", prompt, " tokens and ", request.max_tokens,
                                       " new ones exceed the context of ", max_context_));
  for (int64_t id : request.prompt_ids)
    if (id < 0 || id >= engine_->vocab_size())
      return InvalidArgumentError(StrCat("token id ", id, " is outside the vocabulary [0, ", engine_->vocab_size(), ")"));
  if (!on_token || !on_done) return InvalidArgumentError("Submit needs both callbacks");

  auto job = std::make_shared<Job>();
  job->request = std::move(request);
  job->on_token = std::move(on_token);
  job->on_done = std::move(on_done);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return UnavailableError("the server is shutting down");
  const bool idle = !running_ && waiting_.empty();
  if (static_cast<int64_t>(waiting_.size()) >= options_.max_queue && !(options_.max_queue == 0 && idle))
    return ResourceExhaustedError(
        StrCat("the request queue is full (", waiting_.size(), " waiting); try again later"));
  job->id = next_id_++;
  waiting_.push_back(job);
  wake_.notify_one();
  return job->id;
}

void SerialBackend::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_ && running_->id == id) {
    running_->cancelled = true;
    return;
  }
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if ((*it)->id == id) {
      (*it)->cancelled = true;
      cancelled_.push_back(std::move(*it));
      waiting_.erase(it);
      wake_.notify_one();
      return;
    }
  }
}

BackendStats SerialBackend::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  BackendStats stats;
  stats.num_requests_running = running_ ? 1 : 0;
  stats.num_requests_waiting = static_cast<int64_t>(waiting_.size());
  return stats;
}

void SerialBackend::Shutdown(bool drain) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (!drain) {
      drain_ = false;
      if (running_) running_->cancelled = true;
    }
    wake_.notify_one();
  }
  // From a callback (the worker itself) joining would deadlock: the worker
  // sees stopping_ and ends on its own.
  if (worker_.joinable() && std::this_thread::get_id() != worker_.get_id())
    std::call_once(joined_, [this] { worker_.join(); });
}

void SerialBackend::FlushCancelled() {
  std::deque<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs.swap(cancelled_);
  }
  for (const auto& job : jobs)
    for (int i = 0; i < job->request.n; ++i) job->on_done(i, FinishReason::kCancelled, OkStatus());
}

void SerialBackend::Run() {
  while (true) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !waiting_.empty() || !cancelled_.empty(); });
      if (stopping_ && !drain_) {
        for (auto& w : waiting_) {
          w->cancelled = true;
          cancelled_.push_back(std::move(w));
        }
        waiting_.clear();
      }
      if (!waiting_.empty()) {
        job = std::move(waiting_.front());
        waiting_.pop_front();
        running_ = job;
      }
    }
    FlushCancelled();
    if (!job) {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ && waiting_.empty() && cancelled_.empty()) return;
      continue;
    }
    Generate(*job);  // clears running_
  }
}

void SerialBackend::Generate(Job& job) {
  const GenerationRequest& r = job.request;
  const llm::ModelConfig& config = engine_->config();
  // The request stops counting as running before its last choice is
  // reported, so a client that has its answer never sees it still running.
  auto done = [&](int i, FinishReason reason, const Status& status) {
    if (i == r.n - 1) {
      std::lock_guard<std::mutex> lock(mu_);
      running_.reset();
    }
    job.on_done(i, reason, status);
  };
  for (int i = 0; i < r.n; ++i) {
    if (job.cancelled) {
      done(i, FinishReason::kCancelled, OkStatus());
      continue;
    }
    llm::GenerateParams params;
    params.max_tokens = r.max_tokens;
    params.sampler = r.sampler;
    params.sampler.seed = r.sampler.seed + static_cast<uint64_t>(i);
    params.ignore_eos = r.ignore_eos;
    auto on_token = [&](int64_t id) -> Status {
      // Between two decode steps: end requests cancelled while waiting, and
      // stop this one if it was cancelled.
      FlushCancelled();
      if (job.cancelled) return CancelledMarker();
      if (!r.ignore_eos && config.IsEos(id)) return OkStatus();  // reported by on_done as kEos
      job.on_token(i, id);
      return OkStatus();
    };
    StatusOr<llm::GenerateResult> result = engine_->Generate(r.prompt_ids, params, on_token);
    if (job.cancelled) {
      done(i, FinishReason::kCancelled, OkStatus());
    } else if (!result.ok()) {
      done(i, FinishReason::kError, result.status());
    } else {
      done(i, result->stopped_at_eos ? FinishReason::kEos : FinishReason::kLength, OkStatus());
    }
  }
  // Free the KV cache now rather than when the next request starts.
  engine_->Reset();
}

}  // namespace kiln::serve
