//===- signature.h - The HF/optimum "with past" signature of an LLM's main -===//
//
//   input_ids               i64 [B, S]
//   attention_mask          i64 [B, P+S]       (optional)
//   position_ids            i64 [B, S]         (optional)
//   past_key_values.N.key   [B, KVH, P, hd]    N = 0 .. layers-1, and .value
//   -> logits               f32 [B, S, V]
//   -> present.N.key        [B, KVH, P+S, hd]  and .value
#ifndef KILN_RUNTIME_LLM_SIGNATURE_H_
#define KILN_RUNTIME_LLM_SIGNATURE_H_

#include <cstdint>
#include <string>

#include "runtime/artifact/kiln_generated.h"
#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace kiln::llm {

struct LlmSignature {
  int num_layers = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  DType kv_dtype = DType::kF32;
  /// Last dim of logits; -1 when the signature leaves it dynamic.
  int64_t vocab = -1;
  bool has_attention_mask = false;
  bool has_position_ids = false;
  /// The paged `forward` ABI (DESIGN.md) rather than the "with past" main.
  bool paged = false;

  /// Reads `fn`'s signature; anything that is not the LLM signature above
  /// is an error saying what is missing or wrong.
  static StatusOr<LlmSignature> FromFunction(const fb::Function& fn);

  /// The paged ABI of `forward`: tokens, positions, query_start, seq_lens,
  /// block_tables, slot_mapping, logits_indices (i32), k_cache.N / v_cache.N
  /// [num_blocks, block_size, kv_heads, head_dim] -> logits f32 [L, V].
  static StatusOr<LlmSignature> FromForward(const fb::Function& fn);
  static std::string PastName(int layer, bool value);
  /// "k_cache.N" / "v_cache.N".
  static std::string PoolName(int layer, bool value);
  static std::string PresentName(int layer, bool value);
};

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_SIGNATURE_H_
