//===- main.cc - kiln-perplexity: score a text file with a compiled LLM ----===//
//
//   kiln-perplexity OUT.kiln --text FILE [--window 256] [--threads N] [--json] [--verbose]
//
// Encodes the whole file without BOS, cuts the ids into consecutive
// non-overlapping windows of `window` ids (the last one shorter), scores each
// from an empty cache, and prints exp(mean NLL over every id after the first
// of each window) -- the protocol of the fixtures' reference.json. --json
// prints one line {"perplexity": X, "tokens": N} (N = ids scored).
// Errors: one line "kiln-perplexity: error: ..." on stderr, exit 1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "runtime/base/tool_error.h"
#include "runtime/io/file.h"
#include "runtime/llm/engine.h"
#include "runtime/llm/tokenizer.h"

namespace {

using kiln::StrCat;

struct Flags {
  std::string artifact;
  std::string text;
  int64_t window = 256;
  std::string device = "cpu";
  int threads = 0;
  bool profile = false;
  bool json = false;
  bool verbose = false;
};

kiln::Status RunTool(const Flags& flags) {
  kiln::llm::EngineOptions options;
  options.device = flags.device;
  options.threads = flags.threads;
  kiln::exec::Profile profile;
  if (flags.profile) options.profile = &profile;
  KILN_ASSIGN_OR_RETURN(auto engine, kiln::llm::Engine::Open(flags.artifact, options));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::llm::Tokenizer> tokenizer,
                        kiln::llm::LoadTokenizer(engine->artifact(), engine->config()));
  if (!tokenizer) return kiln::InvalidArgumentError("the artifact has no tokenizer to encode the text with");
  const auto& max_positions = engine->config().max_positions;
  if (max_positions && flags.window > *max_positions)
    return kiln::InvalidArgumentError(
        StrCat("--window ", flags.window, " is longer than the model's ", *max_positions, " positions"));

  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, kiln::io::ReadFileBytes(flags.text));
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  kiln::StatusOr<std::vector<int64_t>> encoded = tokenizer->Encode(text);
  if (!encoded.ok()) return encoded.status().Annotate(flags.text);
  const std::vector<int64_t>& ids = *encoded;

  const size_t windows = (ids.size() + flags.window - 1) / flags.window;
  double nll = 0;
  int64_t count = 0;
  for (size_t w = 0; w < windows; ++w) {
    const size_t begin = w * flags.window;
    std::span<const int64_t> window(ids.data() + begin, std::min<size_t>(flags.window, ids.size() - begin));
    KILN_ASSIGN_OR_RETURN(kiln::llm::ScoreResult score, engine->Score(window));
    nll += score.nll;
    count += score.count;
    if (flags.verbose)
      std::fprintf(stderr, "window %zu/%zu: %lld ids scored, perplexity so far %.4f\n", w + 1, windows,
                   static_cast<long long>(count), count ? std::exp(nll / count) : 0.0);
  }
  if (count == 0)
    return kiln::InvalidArgumentError(StrCat("'", flags.text, "' encodes to ", ids.size(), " ids: nothing to score"));
  const double perplexity = std::exp(nll / count);
  if (flags.json) {
    nlohmann::ordered_json out = {{"perplexity", perplexity}, {"tokens", count}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("perplexity %.4f over %lld tokens\n", perplexity, static_cast<long long>(count));
  }
  if (flags.profile) std::fprintf(stderr, "%s", profile.Report().c_str());
  return kiln::OkStatus();
}

int Fail(std::string message) { return kiln::ToolError("kiln-perplexity", std::move(message)); }

}  // namespace

int main(int argc, char** argv) {
  try {
    Flags flags;
    CLI::App app{"Perplexity of a text file under a compiled LLM (.kiln).", "kiln-perplexity"};
    app.add_option("artifact", flags.artifact, "the .kiln file")->required();
    app.add_option("--text", flags.text, "text file to score (UTF-8)")->required();
    app.add_option("--window", flags.window, "ids per window, each scored from an empty cache")->capture_default_str();
    app.add_option("--device", flags.device, "HAL driver: cpu, vulkan, vulkan:N (Nth Vulkan device), cuda, cuda:N (Nth NVIDIA GPU), null")->capture_default_str();
    app.add_option("--threads", flags.threads, "cpu worker threads (0 = all cores)")->capture_default_str();
    app.add_flag("--profile", flags.profile, "print time per kernel and host work on stderr at the end");
    app.add_flag("--json", flags.json, "print one JSON line");
    app.add_flag("-v,--verbose", flags.verbose, "progress per window on stderr");
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
      return Fail(e.what());
    }
    if (flags.window < 2) return Fail(StrCat("--window must be >= 2, got ", flags.window));
    if (flags.threads < 0) return Fail(StrCat("--threads must be >= 0, got ", flags.threads));
    kiln::Status status = RunTool(flags);
    if (!status.ok()) return Fail(status.message());
    return 0;
  } catch (const std::exception& e) {
    return Fail(e.what());
  } catch (...) {
    return Fail("unknown internal error");
  }
}
