//===- main.cc - kiln-generate: generate text with a compiled LLM ----------===//
//
//   kiln-generate OUT.kiln (--prompt TEXT | --prompt-ids 1,2,3) [--max-tokens 64]
//                 [--temperature 0] [--top-k K] [--top-p P] [--seed S]
//                 [--ignore-eos] [--threads N] [--json] [--stats] [--profile]
//                 [--warmup N] [--speculative auto|off|ngram|draft] [--num-speculative-tokens K]
//
// Streams the generated text to stdout (ids, when the artifact has no
// tokenizer), or with --json prints one line
//   {"prompt_ids": [...], "ids": [...], "text": "..."}
// where ids are the generated ids (ending with the EOS id when generation
// stopped at one) and text is their decoding without that EOS. --stats adds
// one JSON line of timings on stderr, --profile a table of time per kernel;
// --warmup N generates N times first (untimed), as benchmarks do. Errors: one line
// "kiln-generate: error: ..." on stderr, exit 1.
#include <CLI/CLI.hpp>
#include <sys/resource.h>

#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "runtime/base/tool_error.h"
#include "runtime/llm/engine.h"
#include "runtime/llm/speculative.h"
#include "runtime/llm/text_stream.h"
#include "runtime/llm/tokenizer.h"

namespace {

using kiln::StrCat;

struct Flags {
  std::string artifact;
  std::optional<std::string> prompt;
  std::optional<std::string> prompt_ids;
  int64_t max_tokens = 64;
  double temperature = 0;
  int64_t top_k = 0;
  double top_p = 1.0;
  std::optional<uint64_t> seed;
  bool ignore_eos = false;
  std::string device = "cpu";
  int threads = 0;
  bool profile = false;
  int warmup = 0;
  std::string speculative = "auto";  // auto (the artifact's choice), off, ngram, draft
  int num_speculative_tokens = 4;
  bool adaptive = false;
  bool no_adaptive = false;
  std::optional<float> draft_min_probability;  // unset: as suits the artifact's draft
  bool json = false;
  bool stats = false;
};

/// "1, 2,3" -> {1, 2, 3}; anything else is an error naming the bad item.
kiln::StatusOr<std::vector<int64_t>> ParseIds(const std::string& list) {
  std::vector<int64_t> ids;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(pos, comma - pos);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    size_t used = 0;
    int64_t id = 0;
    bool ok = !item.empty() && item[0] != '+';
    if (ok) {
      try {
        id = std::stoll(item, &used);
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok || used != item.size())
      return kiln::InvalidArgumentError(StrCat("--prompt-ids: '", item, "' is not an integer id"));
    ids.push_back(id);
    pos = comma + 1;
  }
  return ids;
}

double PeakRssMib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // KiB on Linux
}

std::string Dump(const nlohmann::ordered_json& j) {
  // Decoded text is valid UTF-8 already; replace rather than throw regardless.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

kiln::Status RunTool(const Flags& flags) {
  kiln::llm::EngineOptions options;
  options.device = flags.device;
  options.threads = flags.threads;
  kiln::exec::Profile profile;
  if (flags.profile) options.profile = &profile;
  KILN_ASSIGN_OR_RETURN(auto engine, kiln::llm::Engine::Open(flags.artifact, options));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::llm::Tokenizer> tokenizer,
                        kiln::llm::LoadTokenizer(engine->artifact(), engine->config()));

  std::vector<int64_t> prompt;
  if (flags.prompt) {
    if (!tokenizer)
      return kiln::InvalidArgumentError("the artifact has no tokenizer: give the prompt as --prompt-ids");
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ids, tokenizer->Encode(*flags.prompt));
    // As the model saw text in training: BOS first when the config has one.
    prompt = tokenizer->WithBos(std::move(ids));
  } else {
    KILN_ASSIGN_OR_RETURN(prompt, ParseIds(*flags.prompt_ids));
  }

  kiln::llm::GenerateParams params;
  params.max_tokens = flags.max_tokens;
  params.ignore_eos = flags.ignore_eos;
  // Speculation: as the artifact was compiled (--speculative), unless told.
  std::string mode = flags.speculative;
  const std::string_view compiled = engine->artifact().metadata("llm.speculative").value_or("");
  if (mode == "auto") {
    mode = compiled == "ngram" ? "ngram" : (compiled == "draft" || compiled.starts_with("layer-skip:")) ? "draft" : "off";
  }
  if (mode != "off") {
    params.num_speculative_tokens = flags.num_speculative_tokens;
    params.proposer = mode == "draft" ? kiln::llm::Proposer::kDraft : kiln::llm::Proposer::kNgram;
    params.adaptive_speculation =
        flags.adaptive || (!flags.no_adaptive && kiln::llm::AdaptiveByDefault(params.proposer));
    params.draft_min_probability =
        flags.draft_min_probability.value_or(kiln::llm::DefaultDraftMinProbability(compiled));
  }
  params.sampler.temperature = flags.temperature;
  params.sampler.top_k = flags.top_k;
  params.sampler.top_p = flags.top_p;
  params.sampler.seed = flags.seed ? *flags.seed : std::random_device{}();

  // Streaming: print text (or ids) as each id arrives, except an EOS that
  // ends generation. The text printed is exactly the --json text.
  std::optional<kiln::llm::TextStream> stream;
  if (tokenizer && !flags.json) stream.emplace(*tokenizer);
  bool first_id = true;
  auto ends_generation = [&](int64_t id) { return !flags.ignore_eos && engine->config().IsEos(id); };
  auto on_token = [&](int64_t id) -> kiln::Status {
    if (flags.json || ends_generation(id)) return kiln::OkStatus();
    if (stream) {
      KILN_ASSIGN_OR_RETURN(std::string piece, stream->Push(id));
      std::fputs(piece.c_str(), stdout);
    } else {
      std::printf(first_id ? "%lld" : " %lld", static_cast<long long>(id));
    }
    first_id = false;
    std::fflush(stdout);
    return kiln::OkStatus();
  };
  // Warm-up generations (as benchmarks run them: caches, page tables and the
  // allocator warm) are neither printed, timed nor profiled.
  for (int i = 0; i < flags.warmup; ++i) KILN_RETURN_IF_ERROR(engine->Generate(prompt, params).status());
  profile.Clear();
  KILN_ASSIGN_OR_RETURN(kiln::llm::GenerateResult result, engine->Generate(prompt, params, on_token));

  std::vector<int64_t> text_ids = result.ids;
  if (result.stopped_at_eos) text_ids.pop_back();
  if (flags.json) {
    nlohmann::ordered_json out = {{"prompt_ids", prompt}, {"ids", result.ids}};
    if (tokenizer) {
      KILN_ASSIGN_OR_RETURN(std::string text, tokenizer->Decode(text_ids));
      out["text"] = text;
    }
    std::printf("%s\n", Dump(out).c_str());
  } else {
    if (stream) {
      KILN_ASSIGN_OR_RETURN(std::string rest, stream->Flush());
      std::fputs(rest.c_str(), stdout);
    }
    std::fputc('\n', stdout);
  }
  std::fflush(stdout);

  if (flags.stats) {
    const int64_t n = static_cast<int64_t>(result.ids.size());
    const double prompt_tokens = static_cast<double>(prompt.size());
    nlohmann::ordered_json stats = {
        {"prompt_tokens", prompt.size()},
        {"generated_tokens", n},
        {"prefill_s", result.prefill_seconds},
        {"decode_s", result.decode_seconds},
        {"prefill_tok_s", result.prefill_seconds > 0 ? prompt_tokens / result.prefill_seconds : 0.0},
        // The first id comes out of the prefill; decoding makes the rest.
        {"decode_tok_s", n > 1 && result.decode_seconds > 0 ? (n - 1) / result.decode_seconds : 0.0},
        {"peak_rss_mib", PeakRssMib()}};
    if (params.num_speculative_tokens > 0) {
      stats["decode_forwards"] = result.decode_forwards;
      stats["draft_tokens"] = result.draft_tokens;
      stats["accepted_tokens"] = result.accepted_tokens;
      stats["empty_proposals"] = result.empty_proposals;
      stats["propose_s"] = result.propose_seconds;
    }
    std::fprintf(stderr, "%s\n", Dump(stats).c_str());
  }
  if (flags.profile) std::fprintf(stderr, "%s", profile.Report().c_str());
  return kiln::OkStatus();
}

int Fail(std::string message) { return kiln::ToolError("kiln-generate", std::move(message)); }

}  // namespace

int main(int argc, char** argv) {
  try {
    Flags flags;
    CLI::App app{"Generate text with a compiled LLM (.kiln).", "kiln-generate"};
    app.add_option("artifact", flags.artifact, "the .kiln file")->required();
    auto* prompt = app.add_option("-p,--prompt", flags.prompt, "prompt text (BOS is added when the model has one)");
    auto* ids = app.add_option("--prompt-ids", flags.prompt_ids, "prompt as comma-separated ids, used as given");
    prompt->excludes(ids);
    app.add_option("-n,--max-tokens", flags.max_tokens, "most ids to generate")->capture_default_str();
    app.add_option("--temperature", flags.temperature, "0 = greedy")->capture_default_str();
    app.add_option("--top-k", flags.top_k, "sample among the k most likely ids (0 = all)")->capture_default_str();
    app.add_option("--top-p", flags.top_p, "nucleus sampling mass (1 = all)")->capture_default_str();
    app.add_option("--seed", flags.seed, "sampling seed (default: random)");
    app.add_flag("--ignore-eos", flags.ignore_eos, "do not stop at an end-of-sequence id");
    app.add_option("--device", flags.device, "HAL driver: cpu, vulkan, vulkan:N (Nth Vulkan device), cuda, cuda:N (Nth NVIDIA GPU), null")->capture_default_str();
    app.add_option("--threads", flags.threads, "cpu worker threads (0 = all cores)")->capture_default_str();
    app.add_flag("--profile", flags.profile, "print time per kernel and host work on stderr at the end");
    app.add_option("--speculative", flags.speculative,
                   "speculative decoding: ngram (prompt lookup), draft (the artifact's draft_forward), off, or "
                   "auto (what the artifact was compiled with); greedy output is unchanged")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "off", "ngram", "draft"}));
    app.add_option("--num-speculative-tokens", flags.num_speculative_tokens, "ids proposed per step")
        ->capture_default_str()
        ->check(CLI::Range(1, 64));
    CLI::Option* adaptive = app.add_flag("--adaptive-speculation", flags.adaptive,
                                         "tune the ids proposed per step to the acceptance, starting at "
                                         "--num-speculative-tokens (the default with a draft)");
    app.add_flag("--no-adaptive-speculation", flags.no_adaptive, "always propose --num-speculative-tokens ids")
        ->excludes(adaptive);
    app.add_option("--draft-min-probability", flags.draft_min_probability,
                   "a draft stops proposing after an id it gives less than this probability (0 = never; "
                   "default 0.5 for a layer-skip draft, else 0)")
        ->check(CLI::Range(0.0f, 1.0f));
    app.add_option("--warmup", flags.warmup, "generate this many times first, unprinted and untimed (benchmarks)")
        ->capture_default_str();
    app.add_flag("--json", flags.json, "print one JSON line instead of streaming text");
    app.add_flag("--stats", flags.stats, "print timings as one JSON line on stderr");
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
      return Fail(e.what());
    }
    if (!flags.prompt && !flags.prompt_ids) return Fail("give --prompt TEXT or --prompt-ids LIST");
    if (flags.max_tokens < 0) return Fail(StrCat("--max-tokens must be >= 0, got ", flags.max_tokens));
    if (flags.threads < 0) return Fail(StrCat("--threads must be >= 0, got ", flags.threads));
    if (flags.warmup < 0) return Fail(StrCat("--warmup must be >= 0, got ", flags.warmup));
    kiln::Status status = RunTool(flags);
    if (!status.ok()) return Fail(status.message());
    return 0;
  } catch (const std::exception& e) {
    return Fail(e.what());
  } catch (...) {
    return Fail("unknown internal error");
  }
}
