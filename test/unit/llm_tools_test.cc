//===- llm_tools_test.cc - kiln-generate and kiln-perplexity as processes ---===//
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/io/file.h"
#include "runtime/llm/tokenizer.h"
#include "test/unit/llm_fake_model.h"
#include "test/unit/llm_test_util.h"
#include "test/unit/test_kernels.h"

namespace kiln {
namespace {

using namespace kiln::testing;  // NOLINT: test shorthands
using nlohmann::json;

constexpr int64_t kVocab = 261;  // the tiny tokenizer's
constexpr int64_t kBos = 5, kEos = 260;

struct Result {
  int exit_code;
  std::string out;
  std::string err;
};

std::vector<int64_t> Simulate(std::vector<int64_t> context, int n, int64_t vocab = kVocab) {
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(FakeNextToken(context, vocab));
    context.push_back(out.back());
  }
  return out;
}

class LlmToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/llm_tools_test_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_ = StrCat(R"({"bos_token_id": )", kBos, R"(, "eos_token_id": )", kEos, R"(, "vocab_size": 261})");
    FakeLlmOptions with_tok{.vocab = kVocab,
                            .metadata = {{"llm.config", config_},
                                         {"llm.tokenizer.kind", "hf-tokenizer-json"},
                                         {"llm.tokenizer", TinyTokenizerJson()}}};
    ASSERT_TRUE(WriteArtifact(dir_ + "/tok.kiln", FakeLlmModel(with_tok)).ok());
    ASSERT_TRUE(WriteArtifact(dir_ + "/ids.kiln", FakeLlmModel({.vocab = kVocab})).ok());
    FakeLlmOptions bad_kind = with_tok;
    bad_kind.metadata[1].second = "wordpiece";
    ASSERT_TRUE(WriteArtifact(dir_ + "/badkind.kiln", FakeLlmModel(bad_kind)).ok());
    ASSERT_TRUE(WriteArtifact(dir_ + "/add.kiln", AddModel()).ok());
    auto tok = llm::CreateHfJsonTokenizer(TinyTokenizerJson());
    ASSERT_TRUE(tok.ok());
    tokenizer_ = std::move(tok).value();
  }

  Result Run(const std::string& tool, const std::string& args) {
    std::string cmd = StrCat(tool, " ", args, " >", dir_, "/stdout 2>", dir_, "/stderr");
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), ReadText(dir_ + "/stdout"),
            ReadText(dir_ + "/stderr")};
  }
  Result Generate(const std::string& args) { return Run(KILN_GENERATE_PATH, args); }
  Result Perplexity(const std::string& args) { return Run(KILN_PERPLEXITY_PATH, args); }

  void ExpectError(const Result& r, const std::string& tool, const std::string& expect) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind(tool + ": error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << "want: " << expect << "\n got: " << r.err;
  }

  std::string Decode(const std::vector<int64_t>& ids) { return tokenizer_->Decode(ids).value(); }

  std::string dir_, config_;
  std::unique_ptr<llm::Tokenizer> tokenizer_;
};

TEST_F(LlmToolsTest, GenerateJsonAndStreamedTextAgree) {
  const std::vector<int64_t> prompt = {kBos, 256, 259};  // BOS + "ab ab"
  const std::vector<int64_t> want = Simulate(prompt, 12);
  ASSERT_EQ(std::find(want.begin(), want.end(), kEos), want.end());  // the path never hits EOS
  Result r = Generate(StrCat(dir_, "/tok.kiln --prompt 'ab ab' --max-tokens 12 --json --threads 1"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_EQ(r.out.rfind(R"({"prompt_ids":)", 0), 0u) << r.out;  // keys in the documented order
  json j = json::parse(r.out);
  EXPECT_EQ(j.size(), 3u);
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int64_t>>(), prompt);
  EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), want);
  EXPECT_EQ(j["text"].get<std::string>(), Decode(want));

  Result streamed = Generate(StrCat(dir_, "/tok.kiln --prompt 'ab ab' --max-tokens 12"));
  ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
  EXPECT_EQ(streamed.out, Decode(want) + "\n");
}

TEST_F(LlmToolsTest, GenerateStopsAfterEosAndLeavesItOutOfTheText) {
  // Find a prompt whose greedy path reaches EOS (id 260) within 40 ids.
  std::vector<int64_t> prompt, path;
  for (int64_t a = 0; a < kVocab && prompt.empty(); ++a) {
    std::vector<int64_t> p = {a, 97};
    std::vector<int64_t> s = Simulate(p, 40);
    auto eos = std::find(s.begin(), s.end(), kEos);
    if (eos != s.end() && eos != s.begin() && eos + 1 != s.end()) prompt = p, path = s;
  }
  ASSERT_FALSE(prompt.empty());
  const std::string list = StrCat(prompt[0], ",", prompt[1]);
  const size_t stop = std::find(path.begin(), path.end(), kEos) - path.begin();

  Result r = Generate(StrCat(dir_, "/tok.kiln --prompt-ids ", list, " --max-tokens 40 --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  const std::vector<int64_t> before_eos(path.begin(), path.begin() + stop);
  std::vector<int64_t> with_eos = before_eos;
  with_eos.push_back(kEos);
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int64_t>>(), prompt);  // ids are used as given: no BOS
  EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), with_eos);
  EXPECT_EQ(j["text"].get<std::string>(), Decode(before_eos));
  Result streamed = Generate(StrCat(dir_, "/tok.kiln --prompt-ids ", list, " --max-tokens 40"));
  EXPECT_EQ(streamed.out, Decode(before_eos) + "\n");

  Result all = Generate(StrCat(dir_, "/tok.kiln --prompt-ids ", list, " --max-tokens 40 --json --ignore-eos"));
  ASSERT_EQ(all.exit_code, 0) << all.err;
  json k = json::parse(all.out);
  EXPECT_EQ(k["ids"].get<std::vector<int64_t>>(), path);
  EXPECT_EQ(k["text"].get<std::string>(), Decode(path));  // "<eot>" included, as HF decodes it
}

TEST_F(LlmToolsTest, WithoutATokenizerIdsInIdsOut) {
  const std::vector<int64_t> want = Simulate({1, 2, 3}, 5);
  Result r = Generate(StrCat(dir_, "/ids.kiln --prompt-ids 1,2,3 --max-tokens 5"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, StrCat(want[0], " ", want[1], " ", want[2], " ", want[3], " ", want[4], "\n"));
  Result j = Generate(StrCat(dir_, "/ids.kiln --prompt-ids ' 1, 2,3' --max-tokens 5 --json"));
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_EQ(json::parse(j.out), (json{{"prompt_ids", {1, 2, 3}}, {"ids", want}}));
  ExpectError(Generate(StrCat(dir_, "/ids.kiln --prompt hi")), "kiln-generate", "no tokenizer");
}

TEST_F(LlmToolsTest, StatsLine) {
  Result r = Generate(StrCat(dir_, "/tok.kiln --prompt ab --max-tokens 6 --ignore-eos --stats"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  json s = json::parse(r.err);
  EXPECT_EQ(s["prompt_tokens"], 2);  // BOS + "ab"
  EXPECT_EQ(s["generated_tokens"], 6);
  for (const char* key : {"prefill_s", "decode_s", "prefill_tok_s", "decode_tok_s", "peak_rss_mib"}) {
    ASSERT_TRUE(s.contains(key)) << key;
    EXPECT_GT(s[key].get<double>(), 0) << key;
  }
}

TEST_F(LlmToolsTest, SamplingIsReproducibleForASeed) {
  const std::string args = StrCat(dir_, "/tok.kiln --prompt ab --max-tokens 30 --ignore-eos --json --temperature 3 --top-k 50");
  Result a = Generate(args + " --seed 9"), b = Generate(args + " --seed 9"), c = Generate(args + " --seed 10");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST_F(LlmToolsTest, GenerateErrors) {
  const std::string tool = "kiln-generate";
  ExpectError(Generate(StrCat(dir_, "/missing.kiln --prompt hi")), tool, "missing.kiln");
  ExpectError(Generate(StrCat(dir_, "/add.kiln --prompt-ids 1")), tool, "not an LLM with a KV cache");
  ExpectError(Generate(StrCat(dir_, "/badkind.kiln --prompt hi")), tool, "unknown tokenizer kind 'wordpiece'");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln")), tool, "give --prompt TEXT or --prompt-ids LIST");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt a --prompt-ids 1")), tool, "excludes");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt-ids 1,x")), tool, "--prompt-ids: 'x' is not an integer id");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt-ids 1,,2")), tool, "'' is not an integer id");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt-ids 1,261")), tool, "token id 261 is outside");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt a --top-p 2")), tool, "top-p must be in (0, 1]");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt a --temperature -1")), tool, "temperature");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt a --max-tokens -3")), tool, "--max-tokens must be >= 0");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt \"$(printf '\\377')\"")), tool, "not valid UTF-8");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt a --adaptive-speculation --no-adaptive-speculation")), tool,
              "excludes");
  ExpectError(Generate(StrCat(dir_, "/tok.kiln --prompt a --draft-min-probability 1.5")), tool,
              "--draft-min-probability");
}

TEST_F(LlmToolsTest, SentencePieceArtifactAndAForeignProtobuf) {
  if (!HaveFixtures()) GTEST_SKIP() << "no fixtures at " << FixturesDir();
  const std::string dir = FixturesDir() + "/llama-s";
  const std::string model = ReadText(dir + "/tokenizer.model");
  FakeLlmOptions o{.vocab = 2048,
                   .metadata = {{"llm.config", ReadText(dir + "/config.json")},
                                {"llm.tokenizer.kind", "sentencepiece"},
                                {"llm.tokenizer", model}}};
  ASSERT_TRUE(WriteArtifact(dir_ + "/sp.kiln", FakeLlmModel(o)).ok());
  auto sp = llm::CreateSentencePieceTokenizer(model);
  ASSERT_TRUE(sp.ok()) << sp.status().message();
  const std::vector<int64_t> prompt = {1, 1343, 304};  // llama-s reference: BOS + "Linux is"
  const std::vector<int64_t> want = Simulate(prompt, 8, 2048);
  Result r = Generate(StrCat(dir_, "/sp.kiln --prompt 'Linux is' --max-tokens 8 --ignore-eos --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int64_t>>(), prompt);
  EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), want);
  EXPECT_EQ(j["text"].get<std::string>(), (*sp)->Decode(want).value());
  // Debian's libsentencepiece bundles its own protobuf: with the system
  // libprotobuf loaded first it would abort; the tool must say why instead.
  Result c = Run(StrCat("LD_PRELOAD=", KILN_PROTOBUF_SO, " ", KILN_GENERATE_PATH), StrCat(dir_, "/sp.kiln --prompt x"));
  ExpectError(c, "kiln-generate", "conflicts with the one inside libsentencepiece");
}

TEST_F(LlmToolsTest, PerplexityOverWindows) {
  // "abcab ab" -> a bc ab Ġab: ids 97 257 256 259 (no BOS); windows of 3:
  // [97 257 256] [259], so two ids are scored, both in the first window.
  ASSERT_TRUE(io::WriteFileBytes(dir_ + "/t.txt", std::vector<uint8_t>{'a', 'b', 'c', 'a', 'b', ' ', 'a', 'b'}).ok());
  const std::vector<int64_t> ids = {97, 257, 256};
  double nll = 0;
  for (size_t i = 1; i < ids.size(); ++i) {
    std::vector<float> row = FakeLogits({ids.begin(), ids.begin() + i}, kVocab);
    double sum = 0;
    for (float x : row) sum += std::exp(static_cast<double>(x));
    nll -= row[ids[i]] - std::log(sum);
  }
  Result r = Perplexity(StrCat(dir_, "/tok.kiln --text ", dir_, "/t.txt --window 3 --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  json j = json::parse(r.out);
  EXPECT_EQ(j["tokens"], 2);
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(nll / 2), 1e-9 * std::exp(nll / 2));
  Result plain = Perplexity(StrCat(dir_, "/tok.kiln --text ", dir_, "/t.txt --window 3 --verbose"));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out.rfind("perplexity ", 0), 0u) << plain.out;
  EXPECT_NE(plain.err.find("window 2/2"), std::string::npos) << plain.err;
}

TEST_F(LlmToolsTest, PerplexityErrors) {
  const std::string tool = "kiln-perplexity";
  ASSERT_TRUE(io::WriteFileBytes(dir_ + "/t.txt", std::vector<uint8_t>{'a', 'b'}).ok());
  ExpectError(Perplexity(StrCat(dir_, "/ids.kiln --text ", dir_, "/t.txt")), tool, "no tokenizer");
  ExpectError(Perplexity(StrCat(dir_, "/tok.kiln --text ", dir_, "/none.txt")), tool, "none.txt");
  ExpectError(Perplexity(StrCat(dir_, "/tok.kiln --text ", dir_, "/t.txt --window 1")), tool, "--window must be >= 2");
  ExpectError(Perplexity(StrCat(dir_, "/tok.kiln --text ", dir_, "/t.txt")), tool, "nothing to score");
  ExpectError(Perplexity(StrCat(dir_, "/tok.kiln")), tool, "--text is required");
}

}  // namespace
}  // namespace kiln
