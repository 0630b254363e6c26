//===- main.cc - kiln-serve: an OpenAI-compatible HTTP server --------------===//
//
//   kiln-serve OUT.kiln [--host 127.0.0.1] [--port 8000] [--api-key KEY]
//              [--model-name NAME] [--max-num-seqs N] [--kv-cache-memory MB]
//              [--max-queue N] [--max-body-bytes N] [--device cpu] [--threads N]
//
// Verifies the artifact, listens, and prints one JSON line on stdout:
//   {"event":"listening","host":"127.0.0.1","port":8000,"model":"NAME"}
// (with --port 0 the port is the one the system picked). The model is then
// loaded in the background (/health answers 503 until it is ready), which
// prints {"event":"ready",...}. SIGINT/SIGTERM stop accepting, cancel what
// runs (its clients get an error) and exit 0. Bad flags, a bad artifact or a
// port in use: one line "kiln-serve: error: ..." on stderr, exit 1.
// Routes and behaviour: docs/serving.md.
#include <CLI/CLI.hpp>
#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "runtime/artifact/artifact.h"
#include "runtime/base/tool_error.h"
#include "runtime/llm/engine.h"
#include "runtime/llm/speculative.h"
#include "runtime/llm/tokenizer.h"
#include "runtime/serve/http_server.h"
#include "runtime/serve/openai_service.h"
#include "runtime/serve/batching_backend.h"
#include "runtime/serve/serial_backend.h"

namespace {

using kiln::StrCat;
namespace net = boost::asio;

struct Flags {
  std::string artifact;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  std::string model_name;
  int max_num_seqs = 256;
  int64_t kv_cache_memory_mb = 0;
  int64_t max_queue = 1024;
  int64_t max_body_bytes = 8ll << 20;
  std::string device = "cpu";
  int threads = 0;
  bool profile = false;
  std::string speculative = "auto";
  int num_speculative_tokens = 4;
  int64_t speculative_max_batch = 4;
  bool adaptive_speculation = false;
  bool no_adaptive_speculation = false;
  std::optional<float> draft_min_probability;  // unset: as suits the artifact's draft
};

/// Seconds the server waits for its connections to close after a signal.
constexpr std::chrono::seconds kShutdownGrace{10};

void PrintEvent(const nlohmann::ordered_json& event) {
  std::printf("%s\n", event.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  std::fflush(stdout);
}

/// Lifts the soft limit on open files to the hard one: every connection is a
/// descriptor.
void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

/// The artifact's chat template (kiln-compile --chat-template), or the default.
kiln::StatusOr<kiln::serve::ChatTemplate> ChatTemplateOf(const kiln::artifact::Artifact& artifact) {
  std::optional<std::string_view> text = artifact.metadata("llm.chat_template");
  if (!text) return kiln::serve::ChatTemplate{};
  kiln::StatusOr<kiln::serve::ChatTemplate> t = kiln::serve::ChatTemplate::Parse(*text);
  if (!t.ok()) return t.status().Annotate("llm.chat_template");
  return t;
}

/// KV cache for --kv-cache-memory 0: room for every sequence's full context
/// up to 256 MiB, and never less than one context.
constexpr int64_t kAutoKvCacheBytes = int64_t{256} << 20;

/// Builds the model, tokenizer and backend (the slow part, off the io
/// thread): continuous batching over a paged `forward`, else (an artifact
/// compiled with --kv-cache=concat) one request at a time.
kiln::StatusOr<kiln::serve::ServedModel> LoadModel(std::unique_ptr<kiln::artifact::Artifact> artifact,
                                                   const Flags& flags, kiln::exec::Profile* profile) {
  kiln::serve::ServedModel model;
  if (artifact->FindFunction("forward")) {
    kiln::llm::PagedModelOptions options;
    options.device = flags.device;
    options.threads = flags.threads;
    options.kv_cache_bytes = flags.kv_cache_memory_mb << 20;
    options.auto_sequences = flags.max_num_seqs;
    options.auto_max_bytes = kAutoKvCacheBytes;
    options.profile = profile;  // used by the scheduler thread only
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::llm::PagedModel> paged,
                          kiln::llm::PagedModel::Open(std::move(artifact), options));
    KILN_ASSIGN_OR_RETURN(model.tokenizer, kiln::llm::LoadTokenizer(paged->artifact(), paged->config()));
    KILN_ASSIGN_OR_RETURN(model.chat_template, ChatTemplateOf(paged->artifact()));
    model.vocab_size = paged->vocab_size();
    kiln::serve::BatchingBackendOptions backend_options;
    backend_options.max_num_seqs = flags.max_num_seqs;
    // Speculation under batching, as the artifact was compiled unless told:
    // prompt lookup, or its draft_forward (--draft or layer-skip:N).
    std::string mode = flags.speculative;
    const std::string_view compiled = paged->artifact().metadata("llm.speculative").value_or("");
    if (mode == "auto") {
      mode = compiled == "ngram" ? "ngram" : paged->has_draft() ? "draft" : "off";
    }
    if (mode != "off") {
      backend_options.num_speculative_tokens = flags.num_speculative_tokens;
      backend_options.proposer = mode == "draft" ? kiln::llm::Proposer::kDraft : kiln::llm::Proposer::kNgram;
      backend_options.speculative_max_batch = flags.speculative_max_batch;
      backend_options.adaptive_speculation =
          flags.adaptive_speculation ||
          (!flags.no_adaptive_speculation && kiln::llm::AdaptiveByDefault(backend_options.proposer));
      backend_options.draft_min_probability =
          flags.draft_min_probability.value_or(kiln::llm::DefaultDraftMinProbability(compiled));
    }
    backend_options.max_queue = flags.max_queue;
    KILN_ASSIGN_OR_RETURN(model.backend, kiln::serve::BatchingBackend::Create(std::move(paged), backend_options));
    return model;
  }
  kiln::llm::EngineOptions options;
  options.device = flags.device;
  options.threads = flags.threads;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::llm::Engine> engine,
                        kiln::llm::Engine::Create(std::move(artifact), options));
  KILN_ASSIGN_OR_RETURN(model.tokenizer, kiln::llm::LoadTokenizer(engine->artifact(), engine->config()));
  KILN_ASSIGN_OR_RETURN(model.chat_template, ChatTemplateOf(engine->artifact()));
  model.vocab_size = engine->vocab_size();
  kiln::serve::SerialBackendOptions backend_options;
  backend_options.max_queue = flags.max_queue;
  KILN_ASSIGN_OR_RETURN(model.backend, kiln::serve::SerialBackend::Create(std::move(engine), backend_options));
  return model;
}

kiln::Status Serve(const Flags& flags) {
  // Verify the artifact before listening: a bad file is an error at once.
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::artifact::Artifact> artifact,
                        kiln::artifact::Artifact::Open(flags.artifact));
  RaiseFileLimit();

  kiln::exec::Profile profile;  // filled by the scheduler thread, printed after it is joined
  net::io_context io;
  kiln::serve::ServiceOptions service_options;
  service_options.model_name = flags.model_name;
  service_options.api_key = flags.api_key;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::serve::OpenAiService> service,
                        kiln::serve::OpenAiService::Create(io, service_options));
  kiln::serve::HttpServerOptions server_options;
  server_options.host = flags.host;
  server_options.port = static_cast<uint16_t>(flags.port);
  server_options.max_body_bytes = static_cast<uint64_t>(flags.max_body_bytes);
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::serve::HttpServer> server,
                        kiln::serve::HttpServer::Create(io, server_options, service.get()));

  // Signals: stop accepting, cancel the work, let the answers go out, then
  // leave io.run() once every connection is closed (or after the grace time).
  // Caught from before the listening line, so a client that reacts to it
  // can already stop the server cleanly.
  net::signal_set signals(io, SIGINT, SIGTERM);
  net::steady_timer poll(io), deadline(io);
  bool stopping = false;
  std::optional<std::string> load_error;
  std::function<void()> check_closed = [&] {
    if (server->connections() == 0) {
      signals.cancel();
      deadline.cancel();
      return;
    }
    poll.expires_after(std::chrono::milliseconds(20));
    poll.async_wait([&](boost::system::error_code ec) {
      if (!ec) check_closed();
    });
  };
  auto stop = [&] {
    if (stopping) return;
    stopping = true;
    server->Stop();
    service->Shutdown();
    deadline.expires_after(kShutdownGrace);
    deadline.async_wait([&](boost::system::error_code ec) {
      if (!ec) io.stop();
    });
    check_closed();
  };
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    std::fprintf(stderr, "kiln-serve: %s: shutting down\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
    stop();
  });

  server->Start();
  PrintEvent({{"event", "listening"}, {"host", flags.host}, {"port", server->port()}, {"model", flags.model_name}});

  std::thread loader([&, artifact = std::move(artifact)]() mutable {
    auto model = std::make_shared<kiln::StatusOr<kiln::serve::ServedModel>>(
        LoadModel(std::move(artifact), flags, flags.profile ? &profile : nullptr));
    net::post(io, [&, model] {
      if (!model->ok()) {
        load_error = model->status().message();
        stop();
        io.stop();
        return;
      }
      const int64_t context = (*model)->backend->max_context();
      const bool batching = dynamic_cast<kiln::serve::BatchingBackend*>((*model)->backend.get()) != nullptr;
      service->SetModel(std::move(**model));
      if (!stopping)
        PrintEvent({{"event", "ready"}, {"model", flags.model_name}, {"max_model_len", context},
                    {"backend", batching ? "batching" : "serial"}});
    });
  });

  io.run();
  loader.join();
  // Work posted after run() ended (the loader's result, the backend's last
  // callbacks): run it while the service is alive. Shutdown joins the
  // backend's thread, so nothing is posted after it.
  service->Shutdown();
  io.restart();
  io.poll();
  server.reset();  // closes what is left; its handlers may still reach the service
  io.restart();
  io.poll();
  service.reset();
  if (flags.profile) std::fprintf(stderr, "%s", profile.Report(40).c_str());
  if (load_error) return kiln::InvalidArgumentError(*load_error);
  return kiln::OkStatus();
}

int Fail(std::string message) { return kiln::ToolError("kiln-serve", std::move(message)); }

}  // namespace

int main(int argc, char** argv) {
  try {
    Flags flags;
    CLI::App app{"Serve a compiled LLM (.kiln) over an OpenAI-compatible HTTP API.", "kiln-serve"};
    app.add_option("artifact", flags.artifact, "the .kiln file")->required();
    app.add_option("--host", flags.host, "address or host name to listen on")->capture_default_str();
    app.add_option("--port", flags.port, "TCP port (0 = any free port; the chosen one is printed)")
        ->capture_default_str();
    app.add_option("--api-key", flags.api_key, "require 'Authorization: Bearer KEY' (also $KILN_API_KEY)")
        ->envname("KILN_API_KEY");
    app.add_option("--model-name", flags.model_name, "model name clients use (default: the artifact's file stem)");
    app.add_option("--max-num-seqs", flags.max_num_seqs, "most sequences in one batch")
        ->capture_default_str();
    app.add_option("--kv-cache-memory", flags.kv_cache_memory_mb, "KV cache size in MiB (0 = every sequence's full context, at most 256 MiB, at least one context)")
        ->capture_default_str();
    app.add_option("--speculative", flags.speculative,
                   "speculative decoding in the batch: ngram (prompt lookup), draft (the artifact's "
                   "draft_forward), off, or auto (as the artifact was compiled: --speculative=ngram, "
                   "--draft or --speculative=layer-skip:N)")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "off", "ngram", "draft"}));
    app.add_option("--speculative-max-batch", flags.speculative_max_batch,
                   "speculate only in steps with at most this many decoding sequences (0: always); larger "
                   "batches already share each weight read")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    CLI::Option* adaptive =
        app.add_flag("--adaptive-speculation", flags.adaptive_speculation,
                     "each sequence tunes its ids per step to its acceptance, starting at --num-speculative-tokens "
                     "(the default with a draft)");
    app.add_flag("--no-adaptive-speculation", flags.no_adaptive_speculation,
                 "every sequence always proposes --num-speculative-tokens ids")
        ->excludes(adaptive);
    app.add_option("--draft-min-probability", flags.draft_min_probability,
                   "a draft stops proposing for a sequence after an id it gives less than this probability "
                   "(0 = never; default 0.5 for a layer-skip draft, else 0)")
        ->check(CLI::Range(0.0f, 1.0f));
    app.add_option("--num-speculative-tokens", flags.num_speculative_tokens, "ids proposed per sequence and step")
        ->capture_default_str()
        ->check(CLI::Range(1, 64));
    app.add_flag("--profile", flags.profile, "print time per kernel and host work on stderr at exit");
    app.add_option("--max-queue", flags.max_queue, "most requests waiting; more are answered 429")
        ->capture_default_str();
    app.add_option("--max-body-bytes", flags.max_body_bytes, "largest request body; more is answered 413")
        ->capture_default_str();
    app.add_option("--device", flags.device, "HAL driver: cpu, vulkan, vulkan:N (Nth Vulkan device), cuda, cuda:N (Nth NVIDIA GPU), null")->capture_default_str();
    app.add_option("--threads", flags.threads, "cpu worker threads (0 = all cores)")->capture_default_str();
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
      return Fail(e.what());
    }
    if (flags.port < 0 || flags.port > 65535) return Fail(StrCat("--port must be in [0, 65535], got ", flags.port));
    if (flags.max_num_seqs < 1) return Fail(StrCat("--max-num-seqs must be >= 1, got ", flags.max_num_seqs));
    if (flags.kv_cache_memory_mb < 0)
      return Fail(StrCat("--kv-cache-memory must be >= 0, got ", flags.kv_cache_memory_mb));
    if (flags.max_queue < 0) return Fail(StrCat("--max-queue must be >= 0, got ", flags.max_queue));
    if (flags.max_body_bytes < 1) return Fail(StrCat("--max-body-bytes must be >= 1, got ", flags.max_body_bytes));
    if (flags.threads < 0) return Fail(StrCat("--threads must be >= 0, got ", flags.threads));
    if (flags.model_name.empty()) flags.model_name = std::filesystem::path(flags.artifact).stem().string();
    if (flags.model_name.empty()) return Fail("--model-name is empty");
    kiln::Status status = Serve(flags);
    if (!status.ok()) return Fail(status.message());
    return 0;
  } catch (const std::exception& e) {
    return Fail(e.what());
  } catch (...) {
    return Fail("unknown internal error");
  }
}
