//===- llm_tokenizer_test.cc - Tokenizers against the fixtures' references --===//
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/llm/text_stream.h"
#include "runtime/llm/tokenizer.h"
#include "runtime/llm/utf8.h"
#include "test/unit/llm_test_util.h"

namespace kiln::llm {
namespace {

using kiln::testing::FixturesDir;
using kiln::testing::HaveFixtures;
using kiln::testing::ReadText;
using kiln::testing::TinyTokenizerJson;
using nlohmann::json;

#define SKIP_WITHOUT_FIXTURES() \
  if (!HaveFixtures()) GTEST_SKIP() << "no fixtures at " << FixturesDir()

std::vector<int64_t> Ids(const json& list) { return list.get<std::vector<int64_t>>(); }

/// The fixture's tokenizer with the special ids of its config.json.
std::unique_ptr<Tokenizer> FixtureTokenizer(const std::string& model) {
  const std::string dir = FixturesDir() + "/" + model;
  StatusOr<ModelConfig> config = ModelConfig::Parse(ReadText(dir + "/config.json"));
  EXPECT_TRUE(config.ok()) << config.status().message();
  StatusOr<std::unique_ptr<Tokenizer>> tok =
      std::filesystem::exists(dir + "/tokenizer.model") ? CreateSentencePieceTokenizer(ReadText(dir + "/tokenizer.model"))
                                                        : CreateHfJsonTokenizer(ReadText(dir + "/tokenizer.json"));
  EXPECT_TRUE(tok.ok()) << tok.status().message();
  if (!tok.ok() || !config.ok()) return nullptr;
  (*tok)->set_special({config->bos_token_id, config->eos_token_ids});
  return std::move(tok).value();
}

/// Streams `ids` through a TextStream and returns the concatenated pieces.
std::string Streamed(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  TextStream stream(tok);
  std::string out;
  for (int64_t id : ids) {
    StatusOr<std::string> piece = stream.Push(id);
    EXPECT_TRUE(piece.ok()) << piece.status().message();
    if (piece.ok()) out += *piece;
  }
  StatusOr<std::string> rest = stream.Flush();
  EXPECT_TRUE(rest.ok());
  return out + (rest.ok() ? *rest : "");
}

class FixtureTokenizerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureTokenizerTest, MatchesReferencePromptsAndGreedyText) {
  SKIP_WITHOUT_FIXTURES();
  std::unique_ptr<Tokenizer> tok = FixtureTokenizer(GetParam());
  ASSERT_TRUE(tok);
  json ref = json::parse(ReadText(FixturesDir() + "/" + GetParam() + "/reference.json"));
  ASSERT_EQ(ref["prompts"].size(), 4u);
  for (const json& p : ref["prompts"]) {
    const std::string text = p["text"];
    StatusOr<std::vector<int64_t>> ids = tok->Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    // prompt_ids = [bos] + encode(text) when the config has a BOS.
    EXPECT_EQ(tok->WithBos(*ids), Ids(p["prompt_ids"])) << text;
    const std::vector<int64_t> greedy = Ids(p["greedy_48"]);
    StatusOr<std::string> decoded = tok->Decode(greedy);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    EXPECT_EQ(*decoded, p["greedy_48_text"].get<std::string>()) << text;
    EXPECT_EQ(Streamed(*tok, greedy), *decoded) << text;
  }
}

TEST_P(FixtureTokenizerTest, RoundTripsValidText) {
  SKIP_WITHOUT_FIXTURES();
  std::unique_ptr<Tokenizer> tok = FixtureTokenizer(GetParam());
  ASSERT_TRUE(tok);
  const std::string valid = ReadText(FixturesDir() + "/valid.txt");
  ASSERT_GT(valid.size(), 10000u);
  std::istringstream lines(valid);
  int checked = 0;
  for (std::string line; std::getline(lines, line);) {
    StatusOr<std::vector<int64_t>> ids = tok->Encode(line);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    StatusOr<std::string> back = tok->Decode(*ids);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, line);
    ++checked;
  }
  EXPECT_GT(checked, 1000);
  // The whole file as one text, as kiln-perplexity encodes it: the number of
  // ids scored under the reference protocol (windows of 256, every id after
  // the first of each) must be the reference's.
  StatusOr<std::vector<int64_t>> ids = tok->Encode(valid);
  ASSERT_TRUE(ids.ok());
  int64_t scored = 0;
  for (size_t start = 0; start < ids->size(); start += 256) scored += std::min<size_t>(256, ids->size() - start) - 1;
  json ref = json::parse(ReadText(FixturesDir() + "/" + GetParam() + "/reference.json"));
  EXPECT_EQ(scored, ref["valid_tokens_scored"].get<int64_t>());
  StatusOr<std::string> back = tok->Decode(*ids);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, valid);
}

TEST_P(FixtureTokenizerTest, RoundTripsAnyUtf8AndStreamsSplitCharacters) {
  SKIP_WITHOUT_FIXTURES();
  std::unique_ptr<Tokenizer> tok = FixtureTokenizer(GetParam());
  ASSERT_TRUE(tok);
  // Characters the corpus never saw: byte fallback (SentencePiece) or byte
  // symbols (byte-level BPE) spell them one byte per token.
  const std::string text = "na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 \xF0\x9F\x9A\x80 x  \t y\n\n  end";
  StatusOr<std::vector<int64_t>> ids = tok->Encode(text);
  ASSERT_TRUE(ids.ok()) << ids.status().message();
  StatusOr<std::string> back = tok->Decode(*ids);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, text);
  EXPECT_EQ(Streamed(*tok, *ids), text);
  // A prefix that ends inside the rocket's four bytes decodes with U+FFFD.
  bool saw_partial = false;
  for (size_t n = 1; n <= ids->size(); ++n) {
    StatusOr<std::string> part = tok->Decode(std::span<const int64_t>(ids->data(), n));
    ASSERT_TRUE(part.ok());
    if (part->find(kReplacementChar) != std::string::npos) saw_partial = true;
  }
  EXPECT_TRUE(saw_partial);
  EXPECT_EQ(tok->Encode("bad \xFF utf-8").status().message(), "text to encode is not valid UTF-8");
  EXPECT_FALSE(tok->Decode(std::vector<int64_t>{-1}).ok());
  EXPECT_FALSE(tok->Decode(std::vector<int64_t>{tok->vocab_size()}).ok());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureTokenizerTest, ::testing::Values("llama-s", "llama-draft", "gpt2-s"));

TEST(HfJsonTokenizerTest, AddedTokensAreMatchedBeforePreTokenization) {
  SKIP_WITHOUT_FIXTURES();
  std::unique_ptr<Tokenizer> tok = FixtureTokenizer("gpt2-s");
  ASSERT_TRUE(tok);
  StatusOr<std::vector<int64_t>> a = tok->Encode("Hello.");
  StatusOr<std::vector<int64_t>> b = tok->Encode(" world");
  StatusOr<std::vector<int64_t>> all = tok->Encode("Hello.<|endoftext|> world");
  ASSERT_TRUE(a.ok() && b.ok() && all.ok());
  std::vector<int64_t> want = *a;
  want.push_back(2047);
  want.insert(want.end(), b->begin(), b->end());
  EXPECT_EQ(*all, want);
  EXPECT_EQ(tok->Decode(*all).value(), "Hello.<|endoftext|> world");
  EXPECT_FALSE(tok->Encode("bad \xFF utf-8").ok());
}

TEST(HfJsonTokenizerTest, MergesByRank) {
  StatusOr<std::unique_ptr<Tokenizer>> tok = CreateHfJsonTokenizer(TinyTokenizerJson());
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ((*tok)->vocab_size(), 261);
  EXPECT_EQ((*tok)->Encode("abc").value(), (std::vector<int64_t>{'a', 257}));
  EXPECT_EQ((*tok)->Encode("ab").value(), (std::vector<int64_t>{256}));
  // " ab" is one pre-token: Ġ a b -> (a b) first by rank, then (Ġ ab).
  EXPECT_EQ((*tok)->Encode("ab ab").value(), (std::vector<int64_t>{256, 259}));
  EXPECT_EQ((*tok)->Encode("x<eot>y").value(), (std::vector<int64_t>{'x', 260, 'y'}));
  EXPECT_EQ((*tok)->Decode(std::vector<int64_t>{256, 259, 260}).value(), "ab ab<eot>");
  // Bytes of an incomplete character decode to U+FFFD, as HF does.
  EXPECT_EQ((*tok)->Decode(std::vector<int64_t>{0xE2, 0x82}).value(), std::string(kReplacementChar));
}

TEST(HfJsonTokenizerTest, ListMergesAndSplitPreTokenizer) {
  // Newer tokenizers write merges as pairs and cut words with a Split first.
  StatusOr<std::unique_ptr<Tokenizer>> tok = CreateHfJsonTokenizer(TinyTokenizerJson(
      R"({"merges": [["b", "c"], ["a", "b"]]})",
      R"({"type": "Sequence", "pretokenizers": [
           {"type": "Split", "pattern": {"Regex": "[a-z]"}, "behavior": "Isolated", "invert": false},
           {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})"));
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  // Every letter is its own word: nothing merges.
  EXPECT_EQ((*tok)->Encode("abc").value(), (std::vector<int64_t>{'a', 'b', 'c'}));
}

TEST(HfJsonTokenizerTest, MalformedFilesAreErrors) {
  auto error = [](const std::string& text) {
    StatusOr<std::unique_ptr<Tokenizer>> tok = CreateHfJsonTokenizer(text);
    return tok.ok() ? std::string("ok") : tok.status().message();
  };
  EXPECT_EQ(error("{not json"), "tokenizer.json: not valid JSON");
  EXPECT_EQ(error("[]"), "tokenizer.json: expected a JSON object");
  EXPECT_EQ(error("{}"), "tokenizer.json: missing 'model' object");
  EXPECT_NE(error(TinyTokenizerJson(R"({"type": "WordPiece"})")).find("unsupported model type 'WordPiece'"),
            std::string::npos);
  EXPECT_NE(error(TinyTokenizerJson(R"({"merges": ["a"]})")).find("model.merges[0] 'a' is not two tokens"),
            std::string::npos);
  EXPECT_NE(error(TinyTokenizerJson(R"({"merges": ["a zz"]})")).find("not in the vocab"), std::string::npos);
  EXPECT_NE(error(TinyTokenizerJson(R"({"merges": 3})")).find("model.merges must be an array"), std::string::npos);
  EXPECT_NE(error(TinyTokenizerJson(R"({"vocab": {"a": "x"}})")).find("non-negative integer id"), std::string::npos);
  EXPECT_NE(error(TinyTokenizerJson("", R"({"type": "Whitespace"})")).find("unsupported pre_tokenizer"),
            std::string::npos);
  EXPECT_NE(error(TinyTokenizerJson("", R"({"type": "Sequence", "pretokenizers": [{"type": "Split",
      "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}, {"type": "ByteLevel"}]})"))
                .find("bad pre-tokenizer pattern"),
            std::string::npos);
  EXPECT_NE(error(TinyTokenizerJson("", R"({"type": "ByteLevel", "add_prefix_space": "yes"})")).find("tokenizer.json:"),
            std::string::npos);
  json with_normalizer = json::parse(TinyTokenizerJson());
  with_normalizer["normalizer"] = {{"type", "NFC"}};
  EXPECT_NE(error(with_normalizer.dump()).find("unsupported normalizer"), std::string::npos);
}

TEST(SentencePieceTokenizerTest, MalformedModelsAreErrors) {
  EXPECT_FALSE(CreateSentencePieceTokenizer("").ok());
  StatusOr<std::unique_ptr<Tokenizer>> junk = CreateSentencePieceTokenizer(std::string(300, '\xab'));
  ASSERT_FALSE(junk.ok());
  EXPECT_NE(junk.status().message().find("sentencepiece: cannot load"), std::string::npos) << junk.status().message();
  if (!HaveFixtures()) return;
  // A truncated real model must not load either.
  std::string model = ReadText(FixturesDir() + "/llama-s/tokenizer.model");
  EXPECT_FALSE(CreateSentencePieceTokenizer(model.substr(0, model.size() / 2)).ok());
}

TEST(Utf8Test, LossyDecodingReplacesMaximalSubparts) {
  const std::string r(kReplacementChar);
  EXPECT_EQ(Utf8Lossy("plain"), "plain");
  EXPECT_EQ(Utf8Lossy("\xC3\xA9"), "\xC3\xA9");
  EXPECT_EQ(Utf8Lossy("\xE2\x82"), r);              // truncated 3-byte sequence: one
  EXPECT_EQ(Utf8Lossy("\xF0\x80"), r + r);          // bad second byte: two
  EXPECT_EQ(Utf8Lossy("a\xFF" "b"), "a" + r + "b");
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), r + r + r);  // a surrogate is not UTF-8
  EXPECT_EQ(Utf8Lossy("\xF0\x9F\x9A\x80"), "\xF0\x9F\x9A\x80");
}

}  // namespace
}  // namespace kiln::llm
