//===- llm_fake_model.h - A fake LLM artifact with a real KV cache ----------===//
//
// main(input_ids, attention_mask, position_ids, past_key_values.N.key/value)
//   -> logits, present.N.key/value
// with the kernels of llm_test_kernels.c: each present is Concat(past, new),
// where key rows hold the token id and value rows the position; logits peak
// at (31 * sum(ids) + 7 * sum(positions) + 3) mod V over the context. So the
// next token depends on the whole history, and only an engine that carries
// the cache (and feeds positions) gets it right. FakeNextToken is the same
// rule in C++.
#ifndef KILN_TEST_UNIT_LLM_FAKE_MODEL_H_
#define KILN_TEST_UNIT_LLM_FAKE_MODEL_H_

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "test/unit/artifact_builder.h"

namespace kiln::testing {

struct FakeLlmOptions {
  int layers = 2;
  int64_t kv_heads = 2;
  int64_t head_dim = 3;
  int64_t vocab = 64;
  std::vector<std::pair<std::string, std::string>> metadata;
};

inline std::vector<uint8_t> LlmTestKernelsBinary() {
  std::ifstream in(KILN_LLM_TEST_KERNELS_SO, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline ModelSpec FakeLlmModel(const FakeLlmOptions& o = {}) {
  ModelSpec m;
  m.executables.push_back({HostElfFormat(),
                           LlmTestKernelsBinary(),
                           {{"kiln_llm_test_append", {2, 4, 4}, false}, {"kiln_llm_test_logits", {4, 4, 3}, false}}});
  FunctionSpec f;
  f.inputs = {{"input_ids", DType::kI64, {-1, -1}, {"batch_size", "sequence_length"}},
              {"attention_mask", DType::kI64, {-1, -1}, {"batch_size", "total_sequence_length"}},
              {"position_ids", DType::kI64, {-1, -1}, {"batch_size", "sequence_length"}}};
  for (int l = 0; l < o.layers; ++l)
    for (const char* kv : {"key", "value"})
      f.inputs.push_back({"past_key_values." + std::to_string(l) + "." + kv, DType::kF32, {-1, o.kv_heads, -1, o.head_dim},
                          {"batch_size", "", "past_sequence_length", ""}});
  f.outputs = {{"logits", DType::kF32, {-1, -1, o.vocab}, {"batch_size", "sequence_length", ""}}};
  for (int l = 0; l < o.layers; ++l)
    for (const char* kv : {"key", "value"})
      f.outputs.push_back({"present." + std::to_string(l) + "." + kv, DType::kF32, {-1, o.kv_heads, -1, o.head_dim},
                           {"batch_size", "", "total_sequence_length", ""}});
  const int past0 = 3, present0 = past0 + 2 * o.layers, logits = present0 + 2 * o.layers;
  f.num_slots = logits + 1;
  f.num_regs = 7;
  for (int i = 0; i < past0 + 2 * o.layers; ++i) f.input_slots.push_back(i);
  f.output_slots.push_back(logits);
  for (int i = 0; i < 2 * o.layers; ++i) f.output_slots.push_back(present0 + i);
  // r0 = B, r1 = S, r2 = P, r3 = P + S, r4 = KVH, r5 = hd, r6 = V
  f.instrs = {Dim(0, 0, 0), Dim(1, 0, 1), Dim(2, past0, 2), Arith(3, fb::ArithKind::Add, 2, 1),
              ConstIndex(4, o.kv_heads), ConstIndex(5, o.head_dim), ConstIndex(6, o.vocab)};
  for (int i = 0; i < 2 * o.layers; ++i) {
    f.instrs.push_back(Alloc(present0 + i, DType::kF32, {0, 4, 3, 5}));
    // keys take the ids (slot 0), values the positions (slot 2)
    f.instrs.push_back(Dispatch(0, 0, {i % 2 == 0 ? 0 : 2, past0 + i, present0 + i}));
  }
  f.instrs.push_back(Alloc(logits, DType::kF32, {0, 1, 6}));
  // keys of the last layer, values of the first: a key/value mix-up shows
  // in the logits.
  f.instrs.push_back(Dispatch(0, 1, {present0 + 2 * (o.layers - 1), present0 + 1, logits}));
  m.functions.push_back(f);
  m.metadata = o.metadata;
  return m;
}

/// The id the fake model predicts after `context` (positions 0..n-1).
inline int64_t FakeNextToken(const std::vector<int64_t>& context, int64_t vocab) {
  int64_t a = 0, c = 0;
  for (size_t t = 0; t < context.size(); ++t) a += context[t], c += static_cast<int64_t>(t);
  return (31 * a + 7 * c + 3) % vocab;
}

/// logits row of the fake model after `context`.
inline std::vector<float> FakeLogits(const std::vector<int64_t>& context, int64_t vocab) {
  int64_t target = FakeNextToken(context, vocab);
  std::vector<float> row(vocab);
  for (int64_t v = 0; v < vocab; ++v) row[v] = -0.5f * static_cast<float>(v > target ? v - target : target - v);
  return row;
}

}  // namespace kiln::testing

#endif  // KILN_TEST_UNIT_LLM_FAKE_MODEL_H_
