//===- config.h - The parts of a Hugging Face config.json the runtime uses -===//
#ifndef KILN_RUNTIME_LLM_CONFIG_H_
#define KILN_RUNTIME_LLM_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/artifact/artifact.h"
#include "runtime/base/status.h"

namespace kiln::llm {

/// Artifact metadata keys written by the compiler for an LLM.
inline constexpr std::string_view kConfigKey = "llm.config";
inline constexpr std::string_view kTokenizerKindKey = "llm.tokenizer.kind";
inline constexpr std::string_view kTokenizerKey = "llm.tokenizer";

/// What generation and scoring need from config.json. Everything is optional
/// because a model may come without a config (then the tools need ids).
struct ModelConfig {
  std::string model_type;                 // "llama", "gpt2", ... ("" when absent)
  std::optional<int64_t> bos_token_id;    // null/absent: prompts get no BOS
  std::vector<int64_t> eos_token_ids;     // eos_token_id is an int or a list
  std::optional<int64_t> vocab_size;
  /// Longest context the model was built for (max_position_embeddings, or
  /// GPT-2's n_positions / n_ctx). Past it a learned position table would be
  /// indexed out of range, so the engine refuses to go beyond it.
  std::optional<int64_t> max_positions;

  /// Parses config.json text; a malformed file or a field of the wrong type
  /// is an error naming the field.
  static StatusOr<ModelConfig> Parse(std::string_view json_text);
  /// The artifact's `llm.config`, or an empty config when it has none.
  static StatusOr<ModelConfig> FromArtifact(const artifact::Artifact& artifact);

  bool IsEos(int64_t id) const;
};

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_CONFIG_H_
