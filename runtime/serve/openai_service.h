//===- openai_service.h - kiln-serve's routes over a Backend ---------------===//
//
// The HttpHandler of kiln-serve: authentication, routing, the OpenAI-style
// endpoints, /tokenize, /detokenize, /health and /metrics. It turns a request
// into prompt ids and a GenerationRequest (openai_api.h), submits it to the
// Backend, and turns the ids that come back into text per choice
// (llm::TextStream, then StopMatcher), answered whole or streamed as
// server-sent events.
//
// Routes, methods and status codes are listed in docs/serving.md.
//
// Threading: everything runs on the io_context's thread. Backend callbacks
// arrive on the backend's thread and are posted here; the tokenizer is only
// ever used on this thread.
#ifndef KILN_RUNTIME_SERVE_OPENAI_SERVICE_H_
#define KILN_RUNTIME_SERVE_OPENAI_SERVICE_H_

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "runtime/llm/tokenizer.h"
#include "runtime/serve/backend.h"
#include "runtime/serve/http_server.h"
#include "runtime/serve/metrics.h"
#include "runtime/serve/openai_api.h"

namespace kiln::serve {

struct ServiceOptions {
  /// The name clients use in "model" (required to match).
  std::string model_name = "model";
  /// When not empty, every route but /health and /metrics wants
  /// "Authorization: Bearer <api_key>".
  std::string api_key;
};

/// What is served once the model is loaded.
struct ServedModel {
  /// May be null (an artifact without one): then only token-id prompts work
  /// and completions come back as space-separated ids.
  std::unique_ptr<llm::Tokenizer> tokenizer;
  std::unique_ptr<Backend> backend;
  /// Ids the model accepts: [0, vocab_size).
  int64_t vocab_size = 0;
  /// The artifact's chat template, or the default.
  ChatTemplate chat_template;
};

class OpenAiService final : public HttpHandler {
 public:
  /// `io` is borrowed: the thread that runs it is the service's thread.
  static StatusOr<std::unique_ptr<OpenAiService>> Create(boost::asio::io_context& io, const ServiceOptions& options);
  ~OpenAiService() override;

  /// Starts serving `model` (/health answers 200 from now on). io thread.
  void SetModel(ServedModel model);
  /// Refuses new work (503), cancels what waits or runs (those clients get
  /// a 503 error, or an error event on a stream) and joins the backend's
  /// thread. io thread; idempotent.
  void Shutdown();

  void Handle(HttpRequest& request, std::shared_ptr<Responder> responder) override;

  MetricsRegistry& metrics() { return metrics_; }

 private:
  struct Job;
  OpenAiService(boost::asio::io_context& io, const ServiceOptions& options);
  Status RegisterMetrics();

  void HandleCompletion(const HttpRequest& request, std::shared_ptr<Responder> responder, bool chat);
  void HandleTokenize(const HttpRequest& request, const std::shared_ptr<Responder>& responder);
  void HandleDetokenize(const HttpRequest& request, const std::shared_ptr<Responder>& responder);
  void HandleMetrics(const std::shared_ptr<Responder>& responder);
  void SendJson(const std::shared_ptr<Responder>& responder, int status, std::string body);
  void SendError(const std::shared_ptr<Responder>& responder, const ApiError& error, const HttpHeaders& headers = {});
  /// 404 model_not_found for a name other than the served one.
  ApiError ModelNotFound(std::string_view name) const;
  /// /tokenize and /detokenize: the wrong model, or no tokenizer to use.
  std::optional<ApiError> TokenizerRouteError(const std::optional<std::string>& model) const;
  /// "cmpl-<24 hex>"
  std::string NewId(std::string_view prefix);

  boost::asio::io_context& io_;
  const ServiceOptions options_;
  const int64_t created_;
  std::mt19937_64 rng_;
  ServedModel model_;
  bool loaded_ = false;
  bool shutting_down_ = false;

  MetricsRegistry metrics_;
  BackendStats stats_;  // read by the metrics callbacks, refreshed per scrape
  Counter* prompt_tokens_ = nullptr;
  Counter* generation_tokens_ = nullptr;
  Counter* request_success_ = nullptr;
  Histogram* time_to_first_token_ = nullptr;
  Histogram* inter_token_latency_ = nullptr;
  Histogram* e2e_latency_ = nullptr;
};

}  // namespace kiln::serve

#endif  // KILN_RUNTIME_SERVE_OPENAI_SERVICE_H_
