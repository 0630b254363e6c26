//===- config.cc - Parse the model's config.json --------------------------===//
#include "runtime/llm/config.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace kiln::llm {
namespace {

using nlohmann::json;

/// An optional integer field: absent or null -> nullopt; anything but an
/// integer is an error (a config with "bos_token_id": "1" is broken).
StatusOr<std::optional<int64_t>> OptionalInt(const json& root, const char* key) {
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer())
    return InvalidArgumentError(StrCat("llm.config: '", key, "' must be an integer, got ", it->type_name()));
  return std::optional<int64_t>(it->get<int64_t>());
}

}  // namespace

StatusOr<ModelConfig> ModelConfig::Parse(std::string_view json_text) {
  // Parse without exceptions: a discarded value means malformed JSON.
  json root = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return InvalidArgumentError("llm.config: not valid JSON");
  if (!root.is_object()) return InvalidArgumentError("llm.config: expected a JSON object");

  ModelConfig config;
  if (auto it = root.find("model_type"); it != root.end() && it->is_string()) config.model_type = it->get<std::string>();
  KILN_ASSIGN_OR_RETURN(config.bos_token_id, OptionalInt(root, "bos_token_id"));
  KILN_ASSIGN_OR_RETURN(config.vocab_size, OptionalInt(root, "vocab_size"));
  if (config.vocab_size && *config.vocab_size <= 0)
    return InvalidArgumentError(StrCat("llm.config: vocab_size must be positive, got ", *config.vocab_size));
  for (const char* key : {"max_position_embeddings", "n_positions", "n_ctx"}) {
    KILN_ASSIGN_OR_RETURN(std::optional<int64_t> n, OptionalInt(root, key));
    if (n && *n > 0) {
      config.max_positions = n;
      break;
    }
  }

  if (auto it = root.find("eos_token_id"); it != root.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      config.eos_token_ids.push_back(it->get<int64_t>());
    } else if (it->is_array()) {
      for (const json& v : *it) {
        if (!v.is_number_integer())
          return InvalidArgumentError("llm.config: 'eos_token_id' list must hold integers");
        config.eos_token_ids.push_back(v.get<int64_t>());
      }
    } else {
      return InvalidArgumentError(
          StrCat("llm.config: 'eos_token_id' must be an integer or a list, got ", it->type_name()));
    }
  }
  return config;
}

StatusOr<ModelConfig> ModelConfig::FromArtifact(const artifact::Artifact& artifact) {
  std::optional<std::string_view> text = artifact.metadata(kConfigKey);
  if (!text) return ModelConfig{};
  return Parse(*text);
}

bool ModelConfig::IsEos(int64_t id) const {
  return std::find(eos_token_ids.begin(), eos_token_ids.end(), id) != eos_token_ids.end();
}

}  // namespace kiln::llm
