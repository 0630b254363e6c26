//===- tokenizer.h - Text <-> token ids -----------------------------------===//
//
// Two implementations, picked by the artifact's `llm.tokenizer.kind`:
//   sentencepiece      `llm.tokenizer` holds the raw bytes of tokenizer.model
//   hf-tokenizer-json  `llm.tokenizer` holds tokenizer.json (byte-level BPE)
// Special ids (BOS, EOS) come from the model's config, not from the
// tokenizer file: config.json is what the model was trained and exported with.
#ifndef KILN_RUNTIME_LLM_TOKENIZER_H_
#define KILN_RUNTIME_LLM_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/artifact/artifact.h"
#include "runtime/base/status.h"
#include "runtime/llm/config.h"

namespace kiln::llm {

/// BOS/EOS ids, from ModelConfig.
struct SpecialTokens {
  std::optional<int64_t> bos_id;
  std::vector<int64_t> eos_ids;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Ids of `text` (valid UTF-8), without BOS: callers add it (see WithBos).
  virtual StatusOr<std::vector<int64_t>> Encode(std::string_view text) const = 0;
  /// Text of `ids` as one sequence (SentencePiece drops the leading space of
  /// the first piece). Always valid UTF-8; ids outside the vocabulary are errors.
  virtual StatusOr<std::string> Decode(std::span<const int64_t> ids) const = 0;
  /// Number of ids the tokenizer knows (including added tokens).
  virtual int64_t vocab_size() const = 0;

  const SpecialTokens& special() const { return special_; }
  void set_special(SpecialTokens special) { special_ = std::move(special); }

  /// `ids` prefixed with the BOS id when there is one.
  std::vector<int64_t> WithBos(std::vector<int64_t> ids) const;

 private:
  SpecialTokens special_;
};

/// SentencePiece model from the bytes of tokenizer.model.
StatusOr<std::unique_ptr<Tokenizer>> CreateSentencePieceTokenizer(std::string_view model_proto);
/// Hugging Face byte-level BPE from tokenizer.json text.
StatusOr<std::unique_ptr<Tokenizer>> CreateHfJsonTokenizer(std::string_view json_text);

/// The artifact's tokenizer with `config`'s special ids, or nullptr when the
/// artifact carries none. An unknown kind or a malformed file is an error.
StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const artifact::Artifact& artifact, const ModelConfig& config);

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_TOKENIZER_H_
