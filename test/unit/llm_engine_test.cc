//===- llm_engine_test.cc - Engine over a fake LLM with a real KV cache -----===//
#include "runtime/llm/engine.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test/unit/llm_fake_model.h"

namespace kiln::llm {
namespace {

using kiln::testing::FakeLlmModel;
using kiln::testing::FakeLlmOptions;
using kiln::testing::FakeLogits;
using kiln::testing::FakeNextToken;

StatusOr<std::unique_ptr<Engine>> MakeEngine(const testing::ModelSpec& spec) {
  KILN_ASSIGN_OR_RETURN(auto artifact, artifact::Artifact::FromBytes(testing::BuildArtifact(spec)));
  return Engine::Create(std::move(artifact), {.device = "cpu", .threads = 2});
}

std::unique_ptr<Engine> MustMake(const FakeLlmOptions& o = {}) {
  StatusOr<std::unique_ptr<Engine>> e = MakeEngine(FakeLlmModel(o));
  EXPECT_TRUE(e.ok()) << e.status().message();
  return e.ok() ? std::move(e).value() : nullptr;
}

/// Greedy continuation computed by re-running the rule on the whole context.
std::vector<int64_t> Simulate(std::vector<int64_t> context, int n, int64_t vocab) {
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(FakeNextToken(context, vocab));
    context.push_back(out.back());
  }
  return out;
}

TEST(EngineTest, ReadsTheSignature) {
  std::unique_ptr<Engine> e = MustMake({.layers = 3, .kv_heads = 2, .head_dim = 5, .vocab = 40});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->signature().num_layers, 3);
  EXPECT_EQ(e->signature().kv_heads, 2);
  EXPECT_EQ(e->signature().head_dim, 5);
  EXPECT_TRUE(e->signature().has_attention_mask);
  EXPECT_TRUE(e->signature().has_position_ids);
  EXPECT_EQ(e->vocab_size(), 40);
}

TEST(EngineTest, GreedyWithTheCacheEqualsRecomputingTheContext) {
  for (int layers : {1, 2, 4}) {
    std::unique_ptr<Engine> e = MustMake({.layers = layers});
    ASSERT_TRUE(e);
    for (std::vector<int64_t> prompt : {std::vector<int64_t>{5}, {1, 2, 3}, {60, 0, 17, 33, 9, 9, 9}}) {
      std::vector<int64_t> seen;
      StatusOr<GenerateResult> r = e->Generate(prompt, {.max_tokens = 20, .ignore_eos = true}, [&](int64_t id) {
        seen.push_back(id);
        return OkStatus();
      });
      ASSERT_TRUE(r.ok()) << r.status().message();
      EXPECT_EQ(r->ids, Simulate(prompt, 20, 64)) << "layers " << layers;
      EXPECT_EQ(seen, r->ids);
      EXPECT_FALSE(r->stopped_at_eos);
      // The last id is chosen but never run.
      EXPECT_EQ(e->cached_tokens(), static_cast<int64_t>(prompt.size()) + 19);
    }
  }
}

TEST(EngineTest, StepContinuesWhatPrefillCached) {
  std::unique_ptr<Engine> e = MustMake();
  ASSERT_TRUE(e);
  StatusOr<std::vector<float>> a = e->Prefill(std::vector<int64_t>{3, 1, 4});
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(*a, FakeLogits({3, 1, 4}, 64));
  StatusOr<std::vector<float>> b = e->Step(1);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(*b, FakeLogits({3, 1, 4, 1}, 64));
  EXPECT_EQ(e->cached_tokens(), 4);
  StatusOr<std::vector<float>> c = e->Prefill(std::vector<int64_t>{3, 1, 4, 1});  // starts over
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, *b);
  e->Reset();
  EXPECT_EQ(e->cached_tokens(), 0);
  EXPECT_EQ(e->Step(1).status().code(), StatusCode::kFailedPrecondition);
}

TEST(EngineTest, ScoreIsTheNllOfEveryIdAfterTheFirst) {
  std::unique_ptr<Engine> e = MustMake();
  ASSERT_TRUE(e);
  std::vector<int64_t> window = {7, 30, 2, 2, 63, 0, 11};
  double want = 0;
  for (size_t i = 1; i < window.size(); ++i) {
    std::vector<float> row = FakeLogits({window.begin(), window.begin() + i}, 64);
    double sum = 0;
    for (float x : row) sum += std::exp(static_cast<double>(x));
    want -= row[window[i]] - std::log(sum);
  }
  StatusOr<ScoreResult> r = e->Score(window);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->count, 6);
  EXPECT_NEAR(r->nll, want, 1e-9 * want);
  EXPECT_EQ(e->cached_tokens(), 0);
  StatusOr<ScoreResult> one = e->Score(std::vector<int64_t>{5});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->count, 0);
}

TEST(EngineTest, StopsAfterEosUnlessIgnored) {
  const std::vector<int64_t> prompt = {1, 2, 3};
  std::vector<int64_t> path = Simulate(prompt, 12, 64);
  // An EOS id that first shows up at position k > 0 of the greedy path.
  size_t k = 1;
  while (std::find(path.begin(), path.begin() + k, path[k]) != path.begin() + k) ++k;
  ASSERT_LT(k, path.size());
  std::string config = StrCat(R"({"eos_token_id": [999, )", path[k], R"(], "bos_token_id": 1})");
  std::unique_ptr<Engine> e = MustMake({.metadata = {{"llm.config", config}}});
  ASSERT_TRUE(e);
  StatusOr<GenerateResult> stop = e->Generate(prompt, {.max_tokens = 12});
  ASSERT_TRUE(stop.ok()) << stop.status().message();
  EXPECT_TRUE(stop->stopped_at_eos);
  EXPECT_EQ(stop->ids, std::vector<int64_t>(path.begin(), path.begin() + k + 1));
  StatusOr<GenerateResult> all = e->Generate(prompt, {.max_tokens = 12, .ignore_eos = true});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->ids, path);
  StatusOr<GenerateResult> none = e->Generate(prompt, {.max_tokens = 0});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->ids.empty());
}

TEST(EngineTest, SampledGenerationIsReproducible) {
  std::unique_ptr<Engine> e = MustMake();
  ASSERT_TRUE(e);
  GenerateParams p{.max_tokens = 30, .sampler = {.temperature = 2.0, .top_p = 0.95, .seed = 11}, .ignore_eos = true};
  StatusOr<GenerateResult> a = e->Generate(std::vector<int64_t>{4, 4}, p);
  StatusOr<GenerateResult> b = e->Generate(std::vector<int64_t>{4, 4}, p);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->ids, b->ids);
  EXPECT_NE(a->ids, Simulate({4, 4}, 30, 64));  // at T = 2 some draw leaves the argmax
}

TEST(EngineTest, RejectsBadIdsAndLongContexts) {
  std::unique_ptr<Engine> e = MustMake({.metadata = {{"llm.config", R"({"max_position_embeddings": 8})"}}});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->Prefill(std::vector<int64_t>{1, 64}).status().message(),
            "token id 64 is outside the model's vocabulary of 64");
  EXPECT_FALSE(e->Prefill(std::vector<int64_t>{-1}).ok());
  EXPECT_FALSE(e->Prefill(std::vector<int64_t>{}).ok());
  EXPECT_EQ(e->Generate(std::vector<int64_t>{}, {}).status().message(), "the prompt has no tokens");
  // 5 + 4 new ids need 8 positions (the last is never run): fits; 5 + 5 does not.
  EXPECT_TRUE(e->Generate(std::vector<int64_t>{1, 2, 3, 4, 5}, {.max_tokens = 4, .ignore_eos = true}).ok());
  Status s = e->Generate(std::vector<int64_t>{1, 2, 3, 4, 5}, {.max_tokens = 5}).status();
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << s.message();
  ASSERT_TRUE(e->Prefill(std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}).ok());
  EXPECT_EQ(e->Step(1).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(e->cached_tokens(), 0);  // an error drops the cache
  Status callback = e->Generate(std::vector<int64_t>{1}, {.max_tokens = 3}, [](int64_t) {
                       return InvalidArgumentError("stop here");
                     }).status();
  EXPECT_EQ(callback.message(), "stop here");
  // Speculation rolls back KV blocks: it needs the paged forward.
  Status spec = e->Generate(std::vector<int64_t>{1}, {.max_tokens = 3, .num_speculative_tokens = 2}).status();
  EXPECT_EQ(spec.code(), StatusCode::kInvalidArgument) << spec.message();
  EXPECT_EQ(e->Generate(std::vector<int64_t>{1}, {.max_tokens = 3, .num_speculative_tokens = -1}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(EngineTest, ChecksWhatTheModelReturns) {
  // A model whose present.0.key holds only the new rows ([1, KVH, S, hd])
  // instead of past + new: right after a prefill (P = 0) nobody can tell,
  // but feeding it back would silently lose the cache.
  testing::ModelSpec spec = FakeLlmModel();
  ASSERT_EQ(spec.functions[0].instrs[7].opcode, fb::OpCode::Alloc);
  spec.functions[0].instrs[7] = testing::Alloc(7, DType::kF32, {0, 4, 1, 5});
  StatusOr<std::unique_ptr<Engine>> e = MakeEngine(spec);
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_TRUE((*e)->Prefill(std::vector<int64_t>{1, 2}).ok());
  Status s = (*e)->Step(3).status();
  EXPECT_EQ(s.message(), "output 'present.0.key' is f32[1,2,1,3], expected f32[1,2,3,3]");
  EXPECT_EQ((*e)->cached_tokens(), 0);  // the cache is dropped, not half updated
}

TEST(EngineTest, RefusesFunctionsThatAreNotLlms) {
  auto error = [](testing::ModelSpec spec) {
    StatusOr<std::unique_ptr<Engine>> e = MakeEngine(spec);
    return e.ok() ? std::string("ok") : e.status().message();
  };
  testing::ModelSpec no_past;  // main(input_ids) -> logits, no cache
  testing::FunctionSpec f;
  f.inputs = {{"input_ids", DType::kI64, {-1, -1}}};
  f.outputs = {{"logits", DType::kF32, {-1, -1, 8}}};
  f.num_slots = 2;
  f.num_regs = 3;
  f.input_slots = {0};
  f.output_slots = {1};
  f.instrs = {testing::Dim(0, 0, 0), testing::Dim(1, 0, 1), testing::ConstIndex(2, 8),
              testing::Alloc(1, DType::kF32, {0, 1, 2})};
  no_past.functions.push_back(f);
  EXPECT_EQ(error(no_past),
            "function 'main' is not an LLM with a KV cache: no past_key_values.N.key/.value inputs (compile the "
            "model 'with past')");
  testing::ModelSpec no_present = FakeLlmModel({.layers = 2});
  no_present.functions[0].outputs[4].name = "something";  // present.1.value
  EXPECT_EQ(error(no_present), "function 'main' is not an LLM with a KV cache: no output 'present.1.value'");
  testing::ModelSpec bad_ids = FakeLlmModel();
  bad_ids.functions[0].inputs[0].dtype = DType::kI32;
  EXPECT_NE(error(bad_ids).find("input 'input_ids' must be i64 of rank 2"), std::string::npos);
  testing::ModelSpec renamed = FakeLlmModel();
  renamed.functions[0].name = "forward";
  // A `forward` is taken for the paged ABI, and this one is not it.
  EXPECT_EQ(error(renamed), "function 'forward' is not the paged LLM ABI: no input 'tokens'");
  testing::ModelSpec other = FakeLlmModel();
  other.functions[0].name = "encode";
  EXPECT_EQ(error(other), "artifact has neither 'forward' nor 'main': not a compiled LLM");
  testing::ModelSpec bad_config = FakeLlmModel({.metadata = {{"llm.config", "{\"eos_token_id\": \"2\"}"}}});
  EXPECT_EQ(error(bad_config), "llm.config: 'eos_token_id' must be an integer or a list, got string");
}

}  // namespace
}  // namespace kiln::llm
