//===- tokenizer.cc - Pick the tokenizer an artifact carries ---------------===//
#include "runtime/llm/tokenizer.h"

namespace kiln::llm {

std::vector<int64_t> Tokenizer::WithBos(std::vector<int64_t> ids) const {
  if (special_.bos_id) ids.insert(ids.begin(), *special_.bos_id);
  return ids;
}

StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const artifact::Artifact& artifact, const ModelConfig& config) {
  std::optional<std::string_view> kind = artifact.metadata(kTokenizerKindKey);
  std::optional<std::string_view> data = artifact.metadata(kTokenizerKey);
  if (!kind && !data) return std::unique_ptr<Tokenizer>();
  if (!kind) return InvalidArgumentError(StrCat("artifact has '", kTokenizerKey, "' but no '", kTokenizerKindKey, "'"));
  if (!data) return InvalidArgumentError(StrCat("artifact has '", kTokenizerKindKey, "' but no '", kTokenizerKey, "'"));

  std::unique_ptr<Tokenizer> tokenizer;
  if (*kind == "sentencepiece") {
    KILN_ASSIGN_OR_RETURN(tokenizer, CreateSentencePieceTokenizer(*data));
  } else if (*kind == "hf-tokenizer-json") {
    KILN_ASSIGN_OR_RETURN(tokenizer, CreateHfJsonTokenizer(*data));
  } else {
    return InvalidArgumentError(StrCat("unknown tokenizer kind '", *kind,
                                       "' (expected 'sentencepiece' or 'hf-tokenizer-json')"));
  }
  for (int64_t id : config.eos_token_ids)
    if (id < 0 || id >= tokenizer->vocab_size())
      return InvalidArgumentError(StrCat("llm.config: eos_token_id ", id, " is outside the tokenizer's ",
                                         tokenizer->vocab_size(), " ids"));
  if (config.bos_token_id && (*config.bos_token_id < 0 || *config.bos_token_id >= tokenizer->vocab_size()))
    return InvalidArgumentError(StrCat("llm.config: bos_token_id ", *config.bos_token_id,
                                       " is outside the tokenizer's ", tokenizer->vocab_size(), " ids"));
  tokenizer->set_special({config.bos_token_id, config.eos_token_ids});
  return tokenizer;
}

}  // namespace kiln::llm
