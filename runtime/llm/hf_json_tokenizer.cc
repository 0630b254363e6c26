//===- hf_json_tokenizer.cc - Hugging Face tokenizer.json, byte-level BPE --===//
//
// The subset of tokenizers' JSON format that GPT-2 style models use:
//   added_tokens      matched first (longest match), each becomes its own id
//   normalizer        none
//   pre_tokenizer     ByteLevel (optionally with GPT-2's regex), or a
//                     Sequence of Split(Regex, Isolated) and ByteLevel
//   model             BPE over byte-level symbols, merges applied by rank
//   decoder           ByteLevel: symbols back to bytes, lossy UTF-8
// Anything else is refused with a message naming it, rather than silently
// tokenizing differently from the model's training.
#include <nlohmann/json.hpp>

#include <array>
#include <limits>
#include <unordered_map>

#include "runtime/llm/regex.h"
#include "runtime/llm/tokenizer.h"
#include "runtime/llm/utf8.h"

namespace kiln::llm {
namespace {

using nlohmann::json;

/// GPT-2's reversible byte <-> printable code point table: printable Latin-1
/// bytes map to themselves, the other 68 bytes to U+0100 upwards, so that
/// every byte string is a string of visible characters.
struct ByteTable {
  std::array<std::string, 256> byte_to_text;           // UTF-8 of each byte's code point
  std::unordered_map<char32_t, uint8_t> code_to_byte;  // inverse

  ByteTable() {
    std::array<bool, 256> printable{};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      char32_t cp = printable[b] ? static_cast<char32_t>(b) : next++;
      AppendUtf8(cp, byte_to_text[b]);
      code_to_byte[cp] = static_cast<uint8_t>(b);
    }
  }
};

const ByteTable& Bytes() {
  static const ByteTable table;
  return table;
}

struct AddedToken {
  int64_t id;
  std::string content;
  bool lstrip = false;  // absorbs whitespace on its left
  bool rstrip = false;  // absorbs whitespace on its right
};

struct Merge {
  int64_t rank;
  int64_t merged;
};

Status Malformed(std::string what) { return InvalidArgumentError(StrCat("tokenizer.json: ", what)); }

bool IsAsciiSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

class HfJsonTokenizer final : public Tokenizer {
 public:
  static StatusOr<std::unique_ptr<Tokenizer>> Create(std::string_view json_text);

  StatusOr<std::vector<int64_t>> Encode(std::string_view text) const override;
  StatusOr<std::string> Decode(std::span<const int64_t> ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  Status ParseModel(const json& model);
  Status ParsePreTokenizer(const json& pre);
  Status ParseAddedTokens(const json& added);
  Status AddSplit(const json& split);
  Status EncodeSegment(std::string_view text, std::vector<int64_t>& ids) const;
  Status EncodeWord(std::string_view word, std::vector<int64_t>& ids) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::optional<std::string>> id_to_token_;  // holes where no token has the id
  std::unordered_map<uint64_t, Merge> merges_;          // (left id << 32 | right id) -> merge
  std::vector<AddedToken> added_;                       // longest content first
  std::optional<int64_t> unk_id_;
  bool ignore_merges_ = false;
  bool add_prefix_space_ = false;
  std::vector<std::unique_ptr<Regex>> splits_;  // applied in order before the byte mapping
};

StatusOr<std::unique_ptr<Tokenizer>> HfJsonTokenizer::Create(std::string_view json_text) {
  json root = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Malformed("not valid JSON");
  if (!root.is_object()) return Malformed("expected a JSON object");
  auto tok = std::unique_ptr<HfJsonTokenizer>(new HfJsonTokenizer());

  if (auto it = root.find("normalizer"); it != root.end() && !it->is_null())
    return Malformed(StrCat("unsupported normalizer ", it->dump()));
  auto model = root.find("model");
  if (model == root.end() || !model->is_object()) return Malformed("missing 'model' object");
  KILN_RETURN_IF_ERROR(tok->ParseModel(*model));
  auto pre = root.find("pre_tokenizer");
  if (pre == root.end() || pre->is_null()) return Malformed("missing 'pre_tokenizer' (expected ByteLevel)");
  KILN_RETURN_IF_ERROR(tok->ParsePreTokenizer(*pre));
  if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null())
    KILN_RETURN_IF_ERROR(tok->ParseAddedTokens(*it));
  if (auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
    if (!it->is_object() || it->value("type", "") != "ByteLevel")
      return Malformed(StrCat("unsupported decoder ", it->dump(), " (expected ByteLevel)"));
  }
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

Status HfJsonTokenizer::ParseModel(const json& model) {
  if (model.value("type", "BPE") != "BPE")
    return Malformed(StrCat("unsupported model type '", model.value("type", ""), "' (expected BPE)"));
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(key);
    if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
      return Malformed(StrCat("unsupported model.", key, " ", it->dump()));
  }
  if (auto it = model.find("byte_fallback"); it != model.end() && it->is_boolean() && it->get<bool>())
    return Malformed("unsupported model.byte_fallback (byte-level BPE needs none)");
  if (auto it = model.find("ignore_merges"); it != model.end() && it->is_boolean()) ignore_merges_ = it->get<bool>();

  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object() || vocab->empty())
    return Malformed("model.vocab must be a non-empty object");
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() >= std::numeric_limits<int32_t>::max())
      return Malformed(StrCat("model.vocab['", it.key(), "'] must be a non-negative integer id"));
    int64_t id = it.value().get<int64_t>();
    if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(id + 1);
    if (id_to_token_[id]) return Malformed(StrCat("model.vocab gives id ", id, " to two tokens"));
    id_to_token_[id] = it.key();
    vocab_[it.key()] = id;
  }

  if (auto it = model.find("unk_token"); it != model.end() && it->is_string()) {
    auto unk = vocab_.find(it->get<std::string>());
    if (unk == vocab_.end()) return Malformed(StrCat("model.unk_token '", it->get<std::string>(), "' is not in the vocab"));
    unk_id_ = unk->second;
  }

  auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) return Malformed("model.merges must be an array");
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const json& m = (*merges)[rank];
    std::string left, right;
    if (m.is_string()) {  // "a b" (the classic format)
      const std::string& s = m.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        return Malformed(StrCat("model.merges[", rank, "] '", s, "' is not two tokens separated by one space"));
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return Malformed(StrCat("model.merges[", rank, "] must be \"a b\" or [\"a\", \"b\"]"));
    }
    auto l = vocab_.find(left), r = vocab_.find(right), merged = vocab_.find(left + right);
    if (l == vocab_.end() || r == vocab_.end() || merged == vocab_.end())
      return Malformed(StrCat("model.merges[", rank, "] '", left, " ", right, "' uses a token that is not in the vocab"));
    uint64_t key = (static_cast<uint64_t>(l->second) << 32) | static_cast<uint64_t>(r->second);
    merges_.try_emplace(key, Merge{static_cast<int64_t>(rank), merged->second});  // first (lowest) rank wins
  }
  return OkStatus();
}

Status HfJsonTokenizer::AddSplit(const json& split) {
  if (split.value("behavior", "") != "Isolated" || split.value("invert", false))
    return Malformed(StrCat("unsupported Split pre-tokenizer ", split.dump(), " (only behavior Isolated)"));
  auto pattern = split.find("pattern");
  if (pattern == split.end() || !pattern->is_object()) return Malformed("Split pre-tokenizer without a pattern");
  std::unique_ptr<Regex> regex;
  if (auto it = pattern->find("Regex"); it != pattern->end() && it->is_string()) {
    KILN_ASSIGN_OR_RETURN(regex, Regex::Compile(it->get<std::string>()));
  } else if (auto lit = pattern->find("String"); lit != pattern->end() && lit->is_string()) {
    KILN_ASSIGN_OR_RETURN(regex, Regex::Compile(lit->get<std::string>(), /*literal=*/true));
  } else {
    return Malformed(StrCat("Split pattern ", pattern->dump(), " is neither Regex nor String"));
  }
  splits_.push_back(std::move(regex));
  return OkStatus();
}

Status HfJsonTokenizer::ParsePreTokenizer(const json& pre) {
  std::vector<const json*> steps;
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array()) {
    for (const json& p : pre["pretokenizers"]) steps.push_back(&p);
  } else {
    steps.push_back(&pre);
  }
  bool byte_level = false;
  for (const json* step : steps) {
    if (!step->is_object()) return Malformed("pre_tokenizer entries must be objects");
    std::string type = step->value("type", "");
    if (type == "Split" && !byte_level) {
      KILN_RETURN_IF_ERROR(AddSplit(*step));
    } else if (type == "ByteLevel" && !byte_level) {
      byte_level = true;
      add_prefix_space_ = step->value("add_prefix_space", false);
      if (step->value("use_regex", true)) {
        KILN_ASSIGN_OR_RETURN(std::unique_ptr<Regex> gpt2, Regex::Compile(kGpt2Pattern));
        splits_.push_back(std::move(gpt2));
      }
    } else {
      return Malformed(StrCat("unsupported pre_tokenizer ", step->dump(), " (expected ByteLevel, after optional Splits)"));
    }
  }
  if (!byte_level) return Malformed("pre_tokenizer has no ByteLevel step (only byte-level BPE is supported)");
  return OkStatus();
}

Status HfJsonTokenizer::ParseAddedTokens(const json& added) {
  if (!added.is_array()) return Malformed("added_tokens must be an array");
  for (const json& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
        !a["content"].is_string())
      return Malformed("each added_tokens entry needs an integer 'id' and a string 'content'");
    AddedToken t{a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("lstrip", false),
                 a.value("rstrip", false)};
    if (t.id < 0 || t.id >= std::numeric_limits<int32_t>::max())
      return Malformed(StrCat("added token '", t.content, "' has a bad id ", t.id));
    if (t.content.empty()) return Malformed(StrCat("added token ", t.id, " has empty content"));
    if (static_cast<size_t>(t.id) >= id_to_token_.size()) id_to_token_.resize(t.id + 1);
    if (id_to_token_[t.id] && *id_to_token_[t.id] != t.content)
      return Malformed(StrCat("added token '", t.content, "' reuses id ", t.id, " of '", *id_to_token_[t.id], "'"));
    id_to_token_[t.id] = t.content;
    added_.push_back(std::move(t));
  }
  // Longest first, so that "<|a|><|ab|>"-style prefixes match leftmost-longest.
  std::sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.content.size() != b.content.size() ? a.content.size() > b.content.size() : a.id < b.id;
  });
  return OkStatus();
}

StatusOr<std::vector<int64_t>> HfJsonTokenizer::Encode(std::string_view text) const {
  if (!IsValidUtf8(text)) return InvalidArgumentError("text to encode is not valid UTF-8");
  std::vector<int64_t> ids;
  // Added tokens are cut out before pre-tokenization; the text between them
  // is encoded segment by segment, as Hugging Face does.
  size_t segment = 0, pos = 0;
  while (pos < text.size()) {
    const AddedToken* hit = nullptr;
    for (const AddedToken& t : added_)
      if (text.compare(pos, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t seg_end = pos;
    if (hit->lstrip)
      while (seg_end > segment && IsAsciiSpace(text[seg_end - 1])) --seg_end;
    KILN_RETURN_IF_ERROR(EncodeSegment(text.substr(segment, seg_end - segment), ids));
    ids.push_back(hit->id);
    pos += hit->content.size();
    if (hit->rstrip)
      while (pos < text.size() && IsAsciiSpace(text[pos])) ++pos;
    segment = pos;
  }
  KILN_RETURN_IF_ERROR(EncodeSegment(text.substr(segment), ids));
  return ids;
}

Status HfJsonTokenizer::EncodeSegment(std::string_view text, std::vector<int64_t>& ids) const {
  if (text.empty()) return OkStatus();
  std::string prefixed;
  if (add_prefix_space_ && !IsAsciiSpace(text[0])) {
    prefixed = StrCat(" ", text);
    text = prefixed;
  }
  std::vector<std::string_view> words = {text};
  for (const auto& split : splits_) {
    std::vector<std::string_view> next;
    for (std::string_view w : words) {
      KILN_ASSIGN_OR_RETURN(std::vector<std::string_view> parts, split->SplitIsolated(w));
      next.insert(next.end(), parts.begin(), parts.end());
    }
    words = std::move(next);
  }
  for (std::string_view w : words) KILN_RETURN_IF_ERROR(EncodeWord(w, ids));
  return OkStatus();
}

Status HfJsonTokenizer::EncodeWord(std::string_view word, std::vector<int64_t>& ids) const {
  const ByteTable& table = Bytes();
  std::string mapped;
  for (char c : word) mapped += table.byte_to_text[static_cast<uint8_t>(c)];
  if (ignore_merges_) {
    if (auto it = vocab_.find(mapped); it != vocab_.end()) {
      ids.push_back(it->second);
      return OkStatus();
    }
  }
  // One symbol per byte, then repeatedly merge the adjacent pair of lowest
  // rank (leftmost on ties) until no pair has a merge.
  std::vector<int64_t> symbols;
  for (char c : word) {
    auto it = vocab_.find(table.byte_to_text[static_cast<uint8_t>(c)]);
    if (it != vocab_.end()) {
      symbols.push_back(it->second);
    } else if (unk_id_) {
      symbols.push_back(*unk_id_);
    } else {
      return InvalidArgumentError(StrCat("tokenizer.json: byte 0x", std::hex, static_cast<int>(static_cast<uint8_t>(c)),
                                         " has no token and there is no unk_token"));
    }
  }
  while (symbols.size() > 1) {
    int64_t best_rank = std::numeric_limits<int64_t>::max();
    size_t best = 0;
    int64_t merged = -1;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      uint64_t key = (static_cast<uint64_t>(symbols[i]) << 32) | static_cast<uint64_t>(symbols[i + 1]);
      auto it = merges_.find(key);
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        best = i;
        merged = it->second.merged;
      }
    }
    if (merged < 0) break;
    symbols[best] = merged;
    symbols.erase(symbols.begin() + best + 1);
  }
  ids.insert(ids.end(), symbols.begin(), symbols.end());
  return OkStatus();
}

StatusOr<std::string> HfJsonTokenizer::Decode(std::span<const int64_t> ids) const {
  const ByteTable& table = Bytes();
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size() || !id_to_token_[id])
      return InvalidArgumentError(StrCat("token id ", id, " is outside the vocabulary of ", vocab_size()));
    const std::string& token = *id_to_token_[id];
    // ByteLevel decoder: map each symbol back to its byte; a token holding a
    // character outside the table (an added token such as "<|a b|>") is kept
    // as its own UTF-8, as Hugging Face's decoder does.
    std::string decoded;
    bool mapped = true;
    size_t pos = 0;
    while (pos < token.size()) {
      int32_t cp = NextCodePoint(token, pos);
      auto it = cp < 0 ? table.code_to_byte.end() : table.code_to_byte.find(static_cast<char32_t>(cp));
      if (it == table.code_to_byte.end()) {
        mapped = false;
        break;
      }
      decoded.push_back(static_cast<char>(it->second));
    }
    bytes += mapped ? decoded : token;
  }
  return Utf8Lossy(bytes);
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> CreateHfJsonTokenizer(std::string_view json_text) {
  // nlohmann's accessors may throw on an unexpected type; none may escape.
  try {
    return HfJsonTokenizer::Create(json_text);
  } catch (const std::exception& e) {
    return InvalidArgumentError(StrCat("tokenizer.json: ", e.what()));
  }
}

}  // namespace kiln::llm
