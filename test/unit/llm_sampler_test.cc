//===- llm_sampler_test.cc - Greedy, temperature, top-k, top-p, seeds -------===//
#include "runtime/llm/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

namespace kiln::llm {
namespace {

Sampler Make(SamplerParams p) {
  StatusOr<Sampler> s = Sampler::Create(p);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return std::move(s).value();
}

/// Counts of each id over `n` draws.
std::map<int64_t, int> Histogram(Sampler& s, const std::vector<float>& logits, int n) {
  std::map<int64_t, int> counts;
  for (int i = 0; i < n; ++i) counts[s.Sample(logits).value()]++;
  return counts;
}

TEST(SamplerTest, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler s = Make({});
  EXPECT_EQ(s.Sample(std::vector<float>{0.1f, 3.0f, -2.0f, 2.9f}).value(), 1);
  EXPECT_EQ(s.Sample(std::vector<float>{1.0f, 5.0f, 5.0f}).value(), 1);
  EXPECT_EQ(s.Sample(std::vector<float>{NAN, -1.0f, NAN}).value(), 1);  // NaN never wins
  EXPECT_EQ(s.Sample(std::vector<float>{-INFINITY, -INFINITY, -3.0f}).value(), 2);
  EXPECT_FALSE(s.Sample(std::vector<float>{NAN, NAN}).ok());
  EXPECT_FALSE(s.Sample(std::vector<float>{-INFINITY}).ok());
  EXPECT_FALSE(s.Sample(std::vector<float>{}).ok());
}

TEST(SamplerTest, TopKOneIsGreedy) {
  Sampler s = Make({.temperature = 1.5, .top_k = 1, .seed = 7});
  std::vector<float> logits = {0.5f, 0.4f, 0.7f, 0.69f};
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s.Sample(logits).value(), 2);
}

TEST(SamplerTest, SameSeedSameIdsOtherSeedOtherIds) {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(static_cast<float>(i)) * 2;
  auto draw = [&](uint64_t seed) {
    Sampler s = Make({.temperature = 1.0, .seed = seed});
    std::vector<int64_t> ids;
    for (int i = 0; i < 100; ++i) ids.push_back(s.Sample(logits).value());
    return ids;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(SamplerTest, TemperatureFollowsSoftmax) {
  // p = softmax([0, ln 3]) = [0.25, 0.75] at T = 1; at T = 0.5, [0.1, 0.9].
  std::vector<float> logits = {0.0f, std::log(3.0f)};
  Sampler t1 = Make({.temperature = 1.0, .seed = 1});
  auto h1 = Histogram(t1, logits, 20000);
  EXPECT_NEAR(h1[1] / 20000.0, 0.75, 0.015);
  Sampler t05 = Make({.temperature = 0.5, .seed = 1});
  auto h05 = Histogram(t05, logits, 20000);
  EXPECT_NEAR(h05[1] / 20000.0, 0.9, 0.01);
}

TEST(SamplerTest, TopKKeepsOnlyTheKBest) {
  Sampler s = Make({.temperature = 1.0, .top_k = 2, .seed = 3});
  auto h = Histogram(s, {1.0f, 3.0f, 2.9f, 2.0f}, 5000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_GT(h[1], 0);
  EXPECT_GT(h[2], 0);
}

TEST(SamplerTest, TopPCutsTheTail) {
  // probs 0.5, 0.3, 0.15, 0.05: top_p 0.8 keeps {0, 1}; 0.81 also keeps 2.
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  Sampler s = Make({.temperature = 1.0, .top_p = 0.79, .seed = 5});
  auto h = Histogram(s, logits, 10000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[0] / 10000.0, 0.5 / 0.8, 0.02);  // renormalized over the kept ids
  Sampler wider = Make({.temperature = 1.0, .top_p = 0.81, .seed = 5});
  EXPECT_EQ(Histogram(wider, logits, 10000).size(), 3u);
  Sampler tiny = Make({.temperature = 1.0, .top_p = 0.01, .seed = 5});
  EXPECT_EQ(Histogram(tiny, logits, 1000), (std::map<int64_t, int>{{0, 1000}}));  // always at least one
}

TEST(SamplerTest, RejectsBadParameters) {
  EXPECT_FALSE(Sampler::Create({.temperature = -1}).ok());
  EXPECT_FALSE(Sampler::Create({.temperature = NAN}).ok());
  EXPECT_FALSE(Sampler::Create({.top_k = -2}).ok());
  EXPECT_FALSE(Sampler::Create({.top_p = 0}).ok());
  EXPECT_FALSE(Sampler::Create({.top_p = 1.5}).ok());
  EXPECT_TRUE(Sampler::Create({.temperature = 0.7, .top_k = 40, .top_p = 0.9}).ok());
}

}  // namespace
}  // namespace kiln::llm
