//===- signature.cc - The HF/optimum "with past" signature of an LLM's main ===//
#include "runtime/llm/signature.h"

#include <map>
#include <optional>
#include <vector>

namespace kiln::llm {
namespace {

struct Sig {
  DType dtype;
  std::vector<int64_t> shape;
};

/// name -> (dtype, shape) of a signature list.
std::map<std::string, Sig> ByName(const flatbuffers::Vector<flatbuffers::Offset<fb::TensorSig>>* sigs) {
  std::map<std::string, Sig> out;
  for (uint32_t i = 0; sigs && i < sigs->size(); ++i) {
    const fb::TensorSig* s = sigs->Get(i);
    std::vector<int64_t> shape;
    if (s->shape()) shape.assign(s->shape()->begin(), s->shape()->end());
    out[s->name() ? s->name()->str() : ""] = {static_cast<DType>(s->dtype()), std::move(shape)};
  }
  return out;
}

/// "past_key_values.12.value" -> (12, true); nullopt for any other name.
std::optional<std::pair<int, bool>> ParseKvName(const std::string& name, std::string_view prefix) {
  if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size() || dot - prefix.size() > 6) return std::nullopt;
  int layer = 0;
  for (size_t i = prefix.size(); i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    layer = layer * 10 + (name[i] - '0');
  }
  std::string kind = name.substr(dot + 1);
  if (kind != "key" && kind != "value") return std::nullopt;
  return std::make_pair(layer, kind == "value");
}

Status Wrong(const std::string& what) {
  return InvalidArgumentError(StrCat("function 'main' is not an LLM with a KV cache: ", what));
}

}  // namespace

std::string LlmSignature::PastName(int layer, bool value) {
  return StrCat("past_key_values.", layer, value ? ".value" : ".key");
}
std::string LlmSignature::PresentName(int layer, bool value) {
  return StrCat("present.", layer, value ? ".value" : ".key");
}

StatusOr<LlmSignature> LlmSignature::FromFunction(const fb::Function& fn) {
  const std::map<std::string, Sig> inputs = ByName(fn.inputs());
  const std::map<std::string, Sig> outputs = ByName(fn.outputs());
  LlmSignature sig;

  auto check_ids = [&](const char* name, bool required) -> StatusOr<bool> {
    auto it = inputs.find(name);
    if (it == inputs.end()) {
      if (required) return Wrong(StrCat("no input '", name, "'"));
      return false;
    }
    if (it->second.dtype != DType::kI64 || it->second.shape.size() != 2)
      return Wrong(StrCat("input '", name, "' must be i64 of rank 2, got ", DTypeName(it->second.dtype),
                          ShapeToString(it->second.shape)));
    return true;
  };
  KILN_RETURN_IF_ERROR(check_ids("input_ids", true).status());
  KILN_ASSIGN_OR_RETURN(sig.has_attention_mask, check_ids("attention_mask", false));
  KILN_ASSIGN_OR_RETURN(sig.has_position_ids, check_ids("position_ids", false));

  // Every other input must be a past tensor; collect their layers.
  int max_layer = -1;
  for (const auto& [name, s] : inputs) {
    if (name == "input_ids" || name == "attention_mask" || name == "position_ids") continue;
    auto kv = ParseKvName(name, "past_key_values.");
    if (!kv) return Wrong(StrCat("unexpected input '", name, "'"));
    max_layer = std::max(max_layer, kv->first);
  }
  if (max_layer < 0) return Wrong("no past_key_values.N.key/.value inputs (compile the model 'with past')");
  sig.num_layers = max_layer + 1;

  bool first = true;
  for (int layer = 0; layer < sig.num_layers; ++layer) {
    for (bool value : {false, true}) {
      const std::string past = PastName(layer, value), present = PresentName(layer, value);
      auto in = inputs.find(past);
      if (in == inputs.end()) return Wrong(StrCat("no input '", past, "'"));
      auto out = outputs.find(present);
      if (out == outputs.end()) return Wrong(StrCat("no output '", present, "'"));
      const Sig& p = in->second;
      if (p.shape.size() != 4 || out->second.shape.size() != 4)
        return Wrong(StrCat("'", past, "' and '", present, "' must have rank 4 [batch, kv_heads, seq, head_dim]"));
      if (p.dtype != out->second.dtype)
        return Wrong(StrCat("'", past, "' is ", DTypeName(p.dtype), " but '", present, "' is ",
                            DTypeName(out->second.dtype)));
      // Heads and head size fix the shape of the empty cache, so they must be
      // known: from the past, or else from the present.
      int64_t heads = p.shape[1] >= 0 ? p.shape[1] : out->second.shape[1];
      int64_t dim = p.shape[3] >= 0 ? p.shape[3] : out->second.shape[3];
      if (heads < 0 || dim < 0) return Wrong(StrCat("'", past, "' has dynamic kv_heads or head_dim"));
      if (first) {
        sig.kv_heads = heads, sig.head_dim = dim, sig.kv_dtype = p.dtype;
        first = false;
      } else if (heads != sig.kv_heads || dim != sig.head_dim || p.dtype != sig.kv_dtype) {
        return Wrong(StrCat("'", past, "' is ", DTypeName(p.dtype), "[?,", heads, ",?,", dim, "] but layer 0 is ",
                            DTypeName(sig.kv_dtype), "[?,", sig.kv_heads, ",?,", sig.head_dim, "]"));
      }
    }
  }

  auto logits = outputs.find("logits");
  if (logits == outputs.end()) return Wrong("no output 'logits'");
  if (logits->second.dtype != DType::kF32 || logits->second.shape.size() != 3)
    return Wrong(StrCat("output 'logits' must be f32 of rank 3 [batch, seq, vocab], got ",
                        DTypeName(logits->second.dtype), ShapeToString(logits->second.shape)));
  sig.vocab = logits->second.shape[2];
  return sig;
}

std::string LlmSignature::PoolName(int layer, bool value) {
  return StrCat(value ? "v_cache." : "k_cache.", layer);
}

StatusOr<LlmSignature> LlmSignature::FromForward(const fb::Function& fn) {
  const std::map<std::string, Sig> inputs = ByName(fn.inputs());
  const std::map<std::string, Sig> outputs = ByName(fn.outputs());
  auto wrong = [](const std::string& what) {
    return InvalidArgumentError(StrCat("function 'forward' is not the paged LLM ABI: ", what));
  };
  LlmSignature sig;
  sig.paged = true;
  for (const char* name : {"tokens", "positions", "query_start", "seq_lens", "slot_mapping", "logits_indices"}) {
    auto it = inputs.find(name);
    if (it == inputs.end()) return wrong(StrCat("no input '", name, "'"));
    if (it->second.dtype != DType::kI32 || it->second.shape.size() != 1)
      return wrong(StrCat("input '", name, "' must be i32 of rank 1"));
  }
  auto tables = inputs.find("block_tables");
  if (tables == inputs.end() || tables->second.dtype != DType::kI32 || tables->second.shape.size() != 2)
    return wrong("input 'block_tables' must be i32 of rank 2");
  int max_layer = -1;
  for (const auto& [name, s] : inputs) {
    if (name.rfind("k_cache.", 0) != 0 && name.rfind("v_cache.", 0) != 0) continue;
    int layer = 0;
    for (size_t i = 8; i < name.size(); ++i) {
      if (name[i] < '0' || name[i] > '9' || i > 14) return wrong(StrCat("unexpected input '", name, "'"));
      layer = layer * 10 + (name[i] - '0');
    }
    max_layer = std::max(max_layer, layer);
  }
  if (max_layer < 0) return wrong("no k_cache.N / v_cache.N pools");
  sig.num_layers = max_layer + 1;
  if (inputs.size() != 7 + 2 * static_cast<size_t>(sig.num_layers))
    return wrong(StrCat("expected 7 inputs and 2 pools per layer, got ", inputs.size(), " inputs"));
  for (int layer = 0; layer < sig.num_layers; ++layer)
    for (bool value : {false, true}) {
      const std::string name = PoolName(layer, value);
      auto it = inputs.find(name);
      if (it == inputs.end()) return wrong(StrCat("no input '", name, "'"));
      const Sig& p = it->second;
      if (p.shape.size() != 4 || p.shape[2] < 0 || p.shape[3] < 0)
        return wrong(StrCat("'", name, "' must be [num_blocks, block_size, kv_heads, head_dim] with static heads"));
      if (layer == 0 && !value) {
        sig.kv_heads = p.shape[2], sig.head_dim = p.shape[3], sig.kv_dtype = p.dtype;
      } else if (p.shape[2] != sig.kv_heads || p.shape[3] != sig.head_dim || p.dtype != sig.kv_dtype) {
        return wrong(StrCat("'", name, "' differs from k_cache.0"));
      }
    }
  auto logits = outputs.find("logits");
  if (outputs.size() != 1 || logits == outputs.end()) return wrong("the one output must be 'logits'");
  if (logits->second.dtype != DType::kF32 || logits->second.shape.size() != 2)
    return wrong("output 'logits' must be f32 [num_logits, vocab]");
  sig.vocab = logits->second.shape[1];
  return sig;
}

}  // namespace kiln::llm
