//===- llm_test_util.h - Fixtures and a tiny tokenizer for the LLM tests ----===//
#ifndef KILN_TEST_UNIT_LLM_TEST_UTIL_H_
#define KILN_TEST_UNIT_LLM_TEST_UTIL_H_

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/llm/utf8.h"

namespace kiln::testing {

/// /work/shared/fixtures seen from the repository: ${KILN_SOURCE_DIR}/../shared/fixtures.
inline std::string FixturesDir() { return KILN_FIXTURES_DIR; }
inline bool HaveFixtures() { return std::filesystem::is_directory(FixturesDir()); }

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A hand-made byte-level BPE tokenizer.json of 261 ids: the 256 byte
/// symbols (id = byte value), "ab" 256, "bc" 257, "abc" 258, "Ġab" 259 and
/// the added token "<eot>" 260; merges "b c" < "a b" < "ab c" < "Ġ ab" by
/// rank. `extra_model` is merged into "model", `pre` replaces the pre-tokenizer.
inline std::string TinyTokenizerJson(const std::string& extra_model = "", const std::string& pre = "") {
  using nlohmann::json;
  json vocab = json::object();
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    bool p = std::find(printable.begin(), printable.end(), b) != printable.end();
    std::string s;
    llm::AppendUtf8(p ? b : next++, s);
    vocab[s] = b;
  }
  vocab["ab"] = 256;
  vocab["bc"] = 257;
  vocab["abc"] = 258;
  vocab["\xC4\xA0" "ab"] = 259;  // "Ġab"
  json tok = {{"version", "1.0"},
              {"added_tokens", json::array({{{"id", 260}, {"content", "<eot>"}, {"special", true}}})},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"decoder", {{"type", "ByteLevel"}}},
              {"model",
               {{"type", "BPE"},
                {"vocab", vocab},
                // "b c" outranks "a b": "abc" -> a + bc, and "a bc" has no merge.
                {"merges", json::array({"b c", "a b", "ab c", "\xC4\xA0 ab"})}}}};
  if (!pre.empty()) tok["pre_tokenizer"] = json::parse(pre);
  if (!extra_model.empty()) tok["model"].update(json::parse(extra_model));
  return tok.dump();
}

}  // namespace kiln::testing

#endif  // KILN_TEST_UNIT_LLM_TEST_UTIL_H_
