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

}  // namespace kiln::llm
