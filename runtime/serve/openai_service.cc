//===- openai_service.cc - kiln-serve's routes over a Backend --------------===//
#include "runtime/serve/openai_service.h"

#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>

#include "runtime/llm/text_stream.h"
#include "runtime/serve/stop_matcher.h"

namespace kiln::serve {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kJson = "application/json";

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

/// Compares without an early exit, so the time taken says nothing of the key.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string_view FinishReasonName(FinishReason reason) { return reason == FinishReason::kLength ? "length" : "stop"; }

}  // namespace

/// One completion request between Submit and its answer. Lives on the io
/// thread; the backend's callbacks (posted here) keep it alive.
struct OpenAiService::Job {
  struct Choice {
    std::optional<llm::TextStream> text;  // empty without a tokenizer
    std::optional<StopMatcher> stop;
    std::string out;  // non-streamed text so far
    std::string finish_reason;
    bool finished = false;
    int64_t tokens = 0;
    Clock::time_point last_token;  // when tokens > 0
  };

  OpenAiService* service = nullptr;
  std::shared_ptr<Responder> responder;
  ResponseHeader header;
  bool stream = false;
  bool include_usage = false;
  uint64_t backend_id = 0;
  bool submitted = false;
  int64_t prompt_tokens = 0;
  std::vector<Choice> choices;
  int open_choices = 0;
  /// Answered, failed or abandoned: later callbacks are ignored.
  bool done = false;
  bool any_token = false;
  Clock::time_point start;

  void OnToken(int index, int64_t id) {
    // Counted even when nobody reads it any more: it is work done.
    service->generation_tokens_->Increment();
    if (done) return;
    Choice& c = choices[index];
    if (c.finished) return;  // a stop string ended it; the rest is dropped
    const Clock::time_point now = Clock::now();
    if (!any_token) service->time_to_first_token_->Observe(SecondsBetween(start, now));
    if (c.tokens > 0) service->inter_token_latency_->Observe(SecondsBetween(c.last_token, now));
    any_token = true;
    c.last_token = now;
    ++c.tokens;
    std::string piece;
    if (c.text) {
      StatusOr<std::string> decoded = c.text->Push(id);
      if (!decoded.ok()) {
        Fail(ApiErrorOf(InternalError(StrCat("detokenizing: ", decoded.status().message()))));
        return;
      }
      piece = std::move(decoded).value();
    } else {
      piece = (c.tokens > 1 ? " " : "") + std::to_string(id);
    }
    if (Emit(index, piece)) FinishChoice(index, "stop");
  }

  void OnDone(int index, FinishReason reason, const Status& status) {
    if (done) return;
    Choice& c = choices[index];
    if (c.finished) return;
    switch (reason) {
      case FinishReason::kEos:
        ++c.tokens;  // the EOS id is generated, though not shown
        [[fallthrough]];
      case FinishReason::kLength: {
        std::string rest;
        if (c.text) {
          StatusOr<std::string> flushed = c.text->Flush();
          if (!flushed.ok()) {
            Fail(ApiErrorOf(InternalError(StrCat("detokenizing: ", flushed.status().message()))));
            return;
          }
          rest = std::move(flushed).value();
        }
        if (Emit(index, rest)) {
          FinishChoice(index, "stop");
        } else {
          Output(index, c.stop->Flush());
          FinishChoice(index, std::string(FinishReasonName(reason)));
        }
        return;
      }
      case FinishReason::kCancelled:
        Fail(service->shutting_down_ ? MakeApiError(503, "the server is shutting down")
                                     : MakeApiError(500, "the request was cancelled"));
        return;
      case FinishReason::kError:
        Fail(ApiErrorOf(status.ok() ? InternalError("generation failed") : status));
        return;
    }
  }

  /// The client went away: stop generating for it.
  void OnClientGone() {
    if (done) return;
    done = true;
    responder.reset();
    if (submitted) service->model_.backend->Cancel(backend_id);
  }

  /// Runs `piece` through the choice's stop matcher and outputs what is
  /// certain; true when a stop string matched.
  bool Emit(int index, std::string_view piece) {
    StopMatcher::Result r = choices[index].stop->Push(piece);
    Output(index, std::move(r.text));
    return r.stopped;
  }

  void Output(int index, std::string text) {
    if (text.empty()) return;
    if (stream) {
      responder->Write(SseEvent(CompletionChunkJson(header, index, text, std::nullopt)));
    } else {
      choices[index].out += text;
    }
  }

  void FinishChoice(int index, std::string reason) {
    Choice& c = choices[index];
    c.finished = true;
    c.finish_reason = std::move(reason);
    if (stream) responder->Write(SseEvent(CompletionChunkJson(header, index, "", c.finish_reason)));
    if (--open_choices > 0) return;
    // Every choice has ended for the client; stop whatever the backend still
    // runs for this request (stop strings end choices early).
    service->model_.backend->Cancel(backend_id);
    Finish();
  }

  Usage usage() const {
    Usage u{prompt_tokens, 0};
    for (const Choice& c : choices) u.completion_tokens += c.tokens;
    return u;
  }

  void Finish() {
    done = true;
    service->request_success_->Increment();
    service->e2e_latency_->Observe(SecondsBetween(start, Clock::now()));
    if (stream) {
      if (include_usage) responder->Write(SseEvent(UsageChunkJson(header, usage())));
      responder->Write(std::string(kSseDone));
      responder->End();
    } else {
      std::vector<ChoiceText> texts;
      for (Choice& c : choices) texts.push_back({std::move(c.out), c.finish_reason});
      service->SendJson(responder, 200, CompletionResponseJson(header, texts, usage()));
    }
    responder.reset();
  }

  void Fail(const ApiError& error) {
    if (done) return;
    done = true;
    if (submitted) service->model_.backend->Cancel(backend_id);
    if (error.http_status >= 500) std::fprintf(stderr, "kiln-serve: %s: %s\n", header.id.c_str(), error.message.c_str());
    if (stream) {
      responder->Write(SseEvent(ErrorBodyJson(error)));
      responder->Write(std::string(kSseDone));
      responder->End();
    } else {
      service->SendError(responder, error);
    }
    responder.reset();
  }
};

OpenAiService::OpenAiService(net::io_context& io, const ServiceOptions& options)
    : io_(io), options_(options), created_(static_cast<int64_t>(std::time(nullptr))), rng_(std::random_device{}()) {}

OpenAiService::~OpenAiService() { Shutdown(); }

StatusOr<std::unique_ptr<OpenAiService>> OpenAiService::Create(net::io_context& io, const ServiceOptions& options) {
  if (options.model_name.empty()) return InvalidArgumentError("the model name is empty");
  std::unique_ptr<OpenAiService> service(new OpenAiService(io, options));
  KILN_RETURN_IF_ERROR(service->RegisterMetrics());
  return service;
}

Status OpenAiService::RegisterMetrics() {
  MetricsRegistry& m = metrics_;
  KILN_RETURN_IF_ERROR(m.AddCallback(
      MetricType::kGauge, "kiln_num_requests_running", "Requests being generated now.",
      [this] { return static_cast<double>(stats_.num_requests_running); }));
  KILN_RETURN_IF_ERROR(m.AddCallback(
      MetricType::kGauge, "kiln_num_requests_waiting", "Requests queued, not yet started.",
      [this] { return static_cast<double>(stats_.num_requests_waiting); }));
  KILN_RETURN_IF_ERROR(m.AddCallback(MetricType::kGauge, "kiln_kv_cache_usage_ratio",
                                     "Share of KV cache blocks held by live requests (0 to 1).",
                                     [this] { return stats_.kv_cache_usage_ratio; }));
  KILN_RETURN_IF_ERROR(m.AddCallback(
      MetricType::kCounter, "kiln_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
      [this] { return static_cast<double>(stats_.prefix_cache_queries_total); }));
  KILN_RETURN_IF_ERROR(m.AddCallback(
      MetricType::kCounter, "kiln_prefix_cache_hits_total", "Prompt tokens found in the prefix cache.",
      [this] { return static_cast<double>(stats_.prefix_cache_hits_total); }));
  KILN_RETURN_IF_ERROR(m.AddCallback(
      MetricType::kGauge, "kiln_kv_cache_allocated_slots", "KV slots in the blocks of running sequences.",
      [this] { return static_cast<double>(stats_.kv_cache_slots_allocated); }));
  KILN_RETURN_IF_ERROR(m.AddCallback(
      MetricType::kGauge, "kiln_kv_cache_used_slots", "Of those, slots holding a token (the rest is paging waste).",
      [this] { return static_cast<double>(stats_.kv_cache_slots_used); }));
  KILN_RETURN_IF_ERROR(m.AddCallback(
      MetricType::kCounter, "kiln_spec_decode_draft_tokens_total", "Ids proposed by speculative decoding.",
      [this] { return static_cast<double>(stats_.spec_decode_draft_tokens_total); }));
  KILN_RETURN_IF_ERROR(m.AddCallback(
      MetricType::kCounter, "kiln_spec_decode_accepted_tokens_total", "Proposed ids the model kept.",
      [this] { return static_cast<double>(stats_.spec_decode_accepted_tokens_total); }));
  KILN_ASSIGN_OR_RETURN(prompt_tokens_, m.AddCounter("kiln_prompt_tokens_total", "Prompt tokens of accepted requests."));
  KILN_ASSIGN_OR_RETURN(generation_tokens_,
                        m.AddCounter("kiln_generation_tokens_total", "Tokens generated (every choice, read or not)."));
  KILN_ASSIGN_OR_RETURN(request_success_,
                        m.AddCounter("kiln_request_success_total",
                                     "Requests answered in full (every choice ended by a stop or the length limit)."));
  KILN_ASSIGN_OR_RETURN(
      time_to_first_token_,
      m.AddHistogram("kiln_time_to_first_token_seconds", "Time from a request's arrival to its first token.",
                     {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40,
                      80}));
  KILN_ASSIGN_OR_RETURN(
      inter_token_latency_,
      m.AddHistogram("kiln_inter_token_latency_seconds", "Time between two tokens of the same choice.",
                     {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
                      0.4, 0.5, 0.75, 1, 2.5}));
  KILN_ASSIGN_OR_RETURN(e2e_latency_, m.AddHistogram("kiln_e2e_request_latency_seconds",
                                                     "Time from a request's arrival to its full answer.",
                                                     {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 40,
                                                      50, 60, 120, 240, 480, 960}));
  return OkStatus();
}

void OpenAiService::SetModel(ServedModel model) {
  if (shutting_down_) {
    if (model.backend) model.backend->Shutdown(/*drain=*/false);
    return;
  }
  model_ = std::move(model);
  loaded_ = true;
}

void OpenAiService::Shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  // Cancels what waits and runs; their on_done callbacks are posted and run
  // once this returns, answering those clients.
  if (model_.backend) model_.backend->Shutdown(/*drain=*/false);
}

ApiError OpenAiService::ModelNotFound(std::string_view name) const {
  return ApiError{404, StrCat("no model '", name, "' (this server has '", options_.model_name, "')"),
                  "model_not_found"};
}

std::optional<ApiError> OpenAiService::TokenizerRouteError(const std::optional<std::string>& model) const {
  if (model && *model != options_.model_name) return ModelNotFound(*model);
  if (!model_.tokenizer) return MakeApiError(400, "the model has no tokenizer");
  return std::nullopt;
}

std::string OpenAiService::NewId(std::string_view prefix) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(prefix);
  uint64_t a = rng_(), b = rng_();
  for (int i = 0; i < 16; ++i) id += kHex[(a >> (4 * i)) & 15];
  for (int i = 0; i < 8; ++i) id += kHex[(b >> (4 * i)) & 15];
  return id;
}

void OpenAiService::SendJson(const std::shared_ptr<Responder>& responder, int status, std::string body) {
  responder->Send(static_cast<HttpStatus>(status), kJson, std::move(body));
}

void OpenAiService::SendError(const std::shared_ptr<Responder>& responder, const ApiError& error,
                              const HttpHeaders& headers) {
  responder->Send(static_cast<HttpStatus>(error.http_status), kJson, ErrorBodyJson(error), headers);
}

void OpenAiService::Handle(HttpRequest& request, std::shared_ptr<Responder> responder) {
  std::string_view target(request.target().data(), request.target().size());
  target = target.substr(0, target.find('?'));
  const http::verb method = request.method();

  // Route -> (method it takes, whether it needs the API key).
  enum class Route { kNone, kHealth, kMetrics, kModels, kModel, kCompletions, kChat, kTokenize, kDetokenize };
  Route route = Route::kNone;
  http::verb wanted = http::verb::get;
  if (target == "/health") route = Route::kHealth;
  else if (target == "/metrics") route = Route::kMetrics;
  else if (target == "/v1/models") route = Route::kModels;
  else if (target.starts_with("/v1/models/") && target.size() > 11) route = Route::kModel;
  else if (target == "/v1/completions") route = Route::kCompletions, wanted = http::verb::post;
  else if (target == "/v1/chat/completions") route = Route::kChat, wanted = http::verb::post;
  else if (target == "/tokenize") route = Route::kTokenize, wanted = http::verb::post;
  else if (target == "/detokenize") route = Route::kDetokenize, wanted = http::verb::post;

  if (route == Route::kNone) {
    SendError(responder, MakeApiError(404, StrCat("no route ", target)));
    return;
  }
  if (method != wanted) {
    const auto wanted_name = http::to_string(wanted);
    const auto got_name = request.method_string();
    const std::string allowed(wanted_name.data(), wanted_name.size());
    SendError(responder,
              MakeApiError(405, StrCat(target, " takes ", allowed, ", not ", std::string(got_name.data(), got_name.size()))),
              {{"Allow", allowed}});
    return;
  }
  if (!options_.api_key.empty() && route != Route::kHealth && route != Route::kMetrics) {
    const auto header = request[http::field::authorization];
    std::string_view auth(header.data(), header.size());
    constexpr std::string_view kBearer = "Bearer ";
    bool ok = auth.size() > kBearer.size() && auth.substr(0, kBearer.size()) == kBearer &&
              ConstantTimeEquals(auth.substr(kBearer.size()), options_.api_key);
    if (!ok) {
      SendError(responder, MakeApiError(401, "missing or wrong API key (Authorization: Bearer KEY)"),
                {{"WWW-Authenticate", "Bearer"}});
      return;
    }
  }
  if (route == Route::kMetrics) {
    HandleMetrics(responder);
    return;
  }
  if (shutting_down_) {
    SendError(responder, MakeApiError(503, "the server is shutting down"));
    return;
  }
  if (!loaded_) {
    SendError(responder, ApiError{503, "the model is loading", "model_loading"});
    return;
  }
  const int64_t context = model_.backend->max_context();
  switch (route) {
    case Route::kHealth:
      SendJson(responder, 200, R"({"status":"ok"})");
      return;
    case Route::kModels:
      SendJson(responder, 200, ModelListJson(options_.model_name, created_, context));
      return;
    case Route::kModel:
      if (target.substr(11) != options_.model_name) {
        SendError(responder, ModelNotFound(target.substr(11)));
        return;
      }
      SendJson(responder, 200, ModelObjectJson(options_.model_name, created_, context));
      return;
    case Route::kCompletions:
    case Route::kChat:
      HandleCompletion(request, std::move(responder), route == Route::kChat);
      return;
    case Route::kTokenize:
      HandleTokenize(request, responder);
      return;
    case Route::kDetokenize:
      HandleDetokenize(request, responder);
      return;
    default:
      return;
  }
}

void OpenAiService::HandleMetrics(const std::shared_ptr<Responder>& responder) {
  stats_ = model_.backend ? model_.backend->Stats() : BackendStats{};
  responder->Send(http::status::ok, kMetricsContentType, metrics_.Render());
}

void OpenAiService::HandleCompletion(const HttpRequest& request, std::shared_ptr<Responder> responder, bool chat) {
  const Clock::time_point start = Clock::now();
  StatusOr<CompletionRequest> parsed = ParseCompletionRequest(request.body(), chat);
  if (!parsed.ok()) {
    SendError(responder, ApiErrorOf(parsed.status()));
    return;
  }
  CompletionRequest& r = *parsed;
  if (r.model != options_.model_name) {
    SendError(responder, ModelNotFound(r.model));
    return;
  }
  const ModelLimits limits{model_.backend->max_context(), model_.vocab_size};
  StatusOr<std::vector<int64_t>> ids = PromptIds(r, model_.tokenizer.get(), limits, model_.chat_template);
  if (!ids.ok()) {
    SendError(responder, ApiErrorOf(ids.status()));
    return;
  }
  const int64_t prompt_tokens = static_cast<int64_t>(ids->size());
  StatusOr<GenerationRequest> generation = MakeGenerationRequest(r, std::move(ids).value(), limits, rng_());
  if (!generation.ok()) {
    SendError(responder, ApiErrorOf(generation.status()));
    return;
  }

  auto job = std::make_shared<Job>();
  job->service = this;
  job->responder = responder;
  job->header = {chat, NewId(chat ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)),
                 options_.model_name};
  job->stream = r.stream;
  job->include_usage = r.include_usage;
  job->prompt_tokens = prompt_tokens;
  job->start = start;
  job->choices.resize(r.n);
  job->open_choices = r.n;
  for (Job::Choice& c : job->choices) {
    if (model_.tokenizer) c.text.emplace(*model_.tokenizer);
    c.stop.emplace(r.stop);
  }

  // Callbacks come on the backend's thread: hand them to this one.
  auto on_token = [this, job](int index, int64_t id) {
    net::post(io_, [job, index, id] { job->OnToken(index, id); });
  };
  auto on_done = [this, job](int index, FinishReason reason, const Status& status) {
    net::post(io_, [job, index, reason, status] { job->OnDone(index, reason, status); });
  };
  StatusOr<uint64_t> id = model_.backend->Submit(std::move(generation).value(), on_token, on_done);
  if (!id.ok()) {
    SendError(responder, ApiErrorOf(id.status()));
    return;
  }
  job->backend_id = *id;
  job->submitted = true;
  prompt_tokens_->Increment(static_cast<double>(prompt_tokens));
  // The watch on the connection: a client that goes away cancels its request.
  std::weak_ptr<Job> weak = job;
  responder->OnClose([weak] {
    if (auto j = weak.lock()) j->OnClientGone();
  });
  if (job->stream && !job->done) {
    responder->BeginStream(http::status::ok, "text/event-stream", {{"Cache-Control", "no-cache"}});
    if (chat)
      for (int i = 0; i < r.n; ++i) responder->Write(SseEvent(CompletionChunkJson(job->header, i, "", std::nullopt, true)));
  }
}

void OpenAiService::HandleTokenize(const HttpRequest& request, const std::shared_ptr<Responder>& responder) {
  StatusOr<TokenizeRequest> r = ParseTokenizeRequest(request.body());
  if (!r.ok()) {
    SendError(responder, ApiErrorOf(r.status()));
    return;
  }
  if (std::optional<ApiError> error = TokenizerRouteError(r->model)) {
    SendError(responder, *error);
    return;
  }
  StatusOr<std::vector<int64_t>> ids = model_.tokenizer->Encode(r->prompt);
  if (!ids.ok()) {
    SendError(responder, ApiErrorOf(InvalidArgumentError(ids.status().message())));
    return;
  }
  std::vector<int64_t> tokens = r->add_special_tokens ? model_.tokenizer->WithBos(std::move(ids).value()) : *ids;
  SendJson(responder, 200, TokenizeResponseJson(tokens, model_.backend->max_context()));
}

void OpenAiService::HandleDetokenize(const HttpRequest& request, const std::shared_ptr<Responder>& responder) {
  StatusOr<DetokenizeRequest> r = ParseDetokenizeRequest(request.body());
  if (!r.ok()) {
    SendError(responder, ApiErrorOf(r.status()));
    return;
  }
  if (std::optional<ApiError> error = TokenizerRouteError(r->model)) {
    SendError(responder, *error);
    return;
  }
  if (Status ids = CheckTokenIds(r->tokens, model_.tokenizer->vocab_size(), "tokens"); !ids.ok()) {
    SendError(responder, ApiErrorOf(ids));
    return;
  }
  StatusOr<std::string> text = model_.tokenizer->Decode(r->tokens);
  if (!text.ok()) {
    SendError(responder, ApiErrorOf(InvalidArgumentError(text.status().message())));
    return;
  }
  SendJson(responder, 200, DetokenizeResponseJson(*text));
}

}  // namespace kiln::serve
