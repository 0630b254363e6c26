//===- llm_speculative_test.cc - N-gram proposer and acceptance rules -----===//
//
// ProposeNgram against hand-made contexts and a brute-force reference;
// AcceptGreedy; AcceptSampled on small hand-made distributions, its errors,
// and chi-square goodness-of-fit tests that the tokens it emits follow the
// target's distribution (with a draft model and with a deterministic
// proposer), with near misses: broken acceptance rules must fail the same
// test. ProbsFromLogits against hand-computed values and against Sampler.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "runtime/llm/ngram_proposer.h"
#include "runtime/llm/sampler.h"
#include "runtime/llm/speculative.h"

namespace kiln::llm {
namespace {

using Ids = std::vector<int64_t>;
using Row = std::vector<float>;

// --- ProposeNgram -------------------------------------------------------------

TEST(NgramProposer, ProposesWhatFollowedTheRepeatedNgram) {
  const Ids context = {1, 2, 3, 4, 1, 2, 3};
  EXPECT_EQ(ProposeNgram(context, 2), (Ids{4, 1}));
  EXPECT_EQ(ProposeNgram(context, 1), (Ids{4}));
  // Up to the end of the context, running into the suffix itself.
  EXPECT_EQ(ProposeNgram(context, 10), (Ids{4, 1, 2, 3}));
}

TEST(NgramProposer, NoMatchProposesNothing) {
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 3, 4, 5}, 4), Ids{});
  // Earlier tokens repeat, the last one does not.
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 1, 2, 3}, 4), Ids{});
  // The suffix itself is not an occurrence.
  EXPECT_EQ(ProposeNgram(Ids{9, 8, 7}, 4, /*max_ngram=*/3), Ids{});
}

TEST(NgramProposer, PrefersTheLongerNgram) {
  // Suffix (1, 2): the 2-gram occurs at 0 (then 10); "2" alone occurs more
  // recently at 4 (then 20).
  const Ids context = {1, 2, 10, 3, 2, 20, 1, 2};
  EXPECT_EQ(ProposeNgram(context, 1), (Ids{10}));
  EXPECT_EQ(ProposeNgram(context, 3), (Ids{10, 3, 2}));
  EXPECT_EQ(ProposeNgram(context, 3, /*max_ngram=*/1), (Ids{20, 1, 2}));
  // min_ngram 2 ignores 1-gram matches.
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 3, 9, 3}, 2, /*max_ngram=*/3, /*min_ngram=*/1), (Ids{9, 3}));
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 3, 9, 3}, 2, /*max_ngram=*/3, /*min_ngram=*/2), Ids{});
}

TEST(NgramProposer, TakesTheMostRecentOccurrence) {
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 5, 1, 2, 6, 1, 2}, 3), (Ids{6, 1, 2}));
  EXPECT_EQ(ProposeNgram(Ids{7, 1, 7, 2, 7, 3, 7}, 1), (Ids{3}));
}

TEST(NgramProposer, StopsAtTheEndOfTheContext) {
  EXPECT_EQ(ProposeNgram(Ids{7, 8, 9, 7, 8}, 5), (Ids{9, 7, 8}));
  // A run of one token: the most recent earlier 3-gram starts at 0 and only
  // the last token follows it.
  EXPECT_EQ(ProposeNgram(Ids{4, 4, 4, 4}, 5), (Ids{4}));
  EXPECT_EQ(ProposeNgram(Ids{4, 4}, 5), (Ids{4}));
}

TEST(NgramProposer, DegenerateInputs) {
  EXPECT_EQ(ProposeNgram(Ids{}, 4), Ids{});
  EXPECT_EQ(ProposeNgram(Ids{5}, 4), Ids{});
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 1, 2}, 0), Ids{});
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 1, 2}, -3), Ids{});
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 1, 2}, 2, /*max_ngram=*/1, /*min_ngram=*/2), Ids{});
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 1, 2}, 2, /*max_ngram=*/0, /*min_ngram=*/0), Ids{});
  // min_ngram below 1 counts as 1; n-grams longer than the context are skipped.
  EXPECT_EQ(ProposeNgram(Ids{3, 1, 3}, 2, /*max_ngram=*/3, /*min_ngram=*/-1), (Ids{1, 3}));
  EXPECT_EQ(ProposeNgram(Ids{1, 2, 1, 2}, 2, /*max_ngram=*/50), (Ids{1, 2}));
}

/// The rule as written, by brute force.
Ids ReferenceNgram(const Ids& context, int k, int max_ngram, int min_ngram) {
  const int64_t size = static_cast<int64_t>(context.size());
  if (k <= 0) return {};
  for (int64_t n = max_ngram; n >= std::max(min_ngram, 1); --n) {
    if (n > size - 1) continue;
    for (int64_t start = size - n - 1; start >= 0; --start) {
      if (!std::equal(context.begin() + start, context.begin() + start + n, context.end() - n)) continue;
      const int64_t from = start + n;
      return Ids(context.begin() + from, context.begin() + std::min(size, from + k));
    }
  }
  return {};
}

TEST(NgramProposer, MatchesABruteForceReference) {
  std::mt19937_64 rng(11);
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int trial = 0; trial < 20000; ++trial) {
    Ids context(static_cast<size_t>(uniform(0, 40)));
    const int64_t vocab = uniform(1, 6);
    for (int64_t& t : context) t = uniform(0, vocab - 1);
    const int k = static_cast<int>(uniform(-1, 8));
    const int max_ngram = static_cast<int>(uniform(0, 5));
    const int min_ngram = static_cast<int>(uniform(0, 3));
    ASSERT_EQ(ProposeNgram(context, k, max_ngram, min_ngram), ReferenceNgram(context, k, max_ngram, min_ngram))
        << "trial " << trial << " k " << k << " max " << max_ngram << " min " << min_ngram;
  }
}

TEST(NgramProposer, LongContext) {
  // 4096 distinct tokens with a quoted passage: the 3-gram before the end
  // was seen once, 3000 tokens back.
  Ids context(4096);
  std::iota(context.begin(), context.end(), 1000);
  const Ids quote(context.begin() + 500, context.begin() + 503);
  context.insert(context.end(), quote.begin(), quote.end());
  EXPECT_EQ(ProposeNgram(context, 4), (Ids{1503, 1504, 1505, 1506}));
  context.push_back(-1);
  EXPECT_EQ(ProposeNgram(context, 4), Ids{});
}

// --- AcceptGreedy ---------------------------------------------------------------

TEST(SpeculativeGreedy, AcceptsTheCommonPrefix) {
  EXPECT_EQ(AcceptGreedy(Ids{5, 6, 7}, Ids{5, 6, 9, 1}), 2);
  EXPECT_EQ(AcceptGreedy(Ids{5, 6, 7}, Ids{5, 6, 7, 8}), 3);
  EXPECT_EQ(AcceptGreedy(Ids{5, 6, 7}, Ids{4, 6, 7, 8}), 0);
  EXPECT_EQ(AcceptGreedy(Ids{5, 6, 7}, Ids{5, 1, 7, 8}), 1);  // a later match does not count
  EXPECT_EQ(AcceptGreedy(Ids{}, Ids{3}), 0);
  // Fewer target rows than k + 1: target_argmax[accepted] stays in range.
  EXPECT_EQ(AcceptGreedy(Ids{5, 6, 7}, Ids{5, 6, 7}), 2);
  EXPECT_EQ(AcceptGreedy(Ids{5, 6, 7}, Ids{}), 0);
}

// --- AcceptSampled: hand-made distributions -------------------------------------

StatusOr<SpecStep> Accept(const Ids& proposed, const std::vector<Row>& draft, const std::vector<Row>& target,
                          std::mt19937_64& rng) {
  return AcceptSampled(proposed, draft, target, rng);
}

SpecStep AcceptOk(const Ids& proposed, const std::vector<Row>& draft, const std::vector<Row>& target,
                  std::mt19937_64& rng) {
  StatusOr<SpecStep> step = Accept(proposed, draft, target, rng);
  EXPECT_TRUE(step.ok()) << step.status().ToString();
  return step.ok() ? *step : SpecStep{.accepted = -1, .next = -1};
}

TEST(SpeculativeSampling, AlwaysKeepsATokenTheTargetLikesMore) {
  // p(1) = 0.8 >= q(1) = 0.5: kept every time; next from the one-hot last row.
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(AcceptOk({1}, {{0.5f, 0.5f, 0.0f}}, {{0.2f, 0.8f, 0.0f}, {0.0f, 0.0f, 1.0f}}, rng),
              (SpecStep{.accepted = 1, .next = 2}));
  }
  // Several in a row, then the bonus token.
  EXPECT_EQ(AcceptOk({0, 1}, {{0.5f, 0.5f, 0.0f}, {0.5f, 0.5f, 0.0f}},
                     {{0.6f, 0.4f, 0.0f}, {0.0f, 1.0f, 0.0f}, {0.0f, 0.0f, 1.0f}}, rng),
            (SpecStep{.accepted = 2, .next = 2}));
  // No proposal at all: next from the only row.
  EXPECT_EQ(AcceptOk({}, {}, {{0.0f, 1.0f, 0.0f}}, rng), (SpecStep{.accepted = 0, .next = 1}));
}

TEST(SpeculativeSampling, NeverKeepsATokenTheTargetExcludes) {
  // p(2) = 0: rejected every time; the residual max(0, p - q) is one-hot at 1.
  std::mt19937_64 rng(2);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(AcceptOk({2, 0}, {{0.0f, 0.0f, 1.0f}, {1.0f, 0.0f, 0.0f}},
                       {{0.0f, 1.0f, 0.0f}, {1.0f, 0.0f, 0.0f}, {1.0f, 0.0f, 0.0f}}, rng),
              (SpecStep{.accepted = 0, .next = 1}));
    // The same with a deterministic proposer: the residual is p without 2.
    EXPECT_EQ(AcceptOk({2}, {}, {{0.0f, 1.0f, 0.0f}, {1.0f, 0.0f, 0.0f}}, rng),
              (SpecStep{.accepted = 0, .next = 1}));
  }
}

TEST(SpeculativeSampling, ResidualDistribution) {
  // p = (0.1, 0.4, 0.5), q = (0.6, 0.2, 0.2), proposed 0: kept with
  // probability p(0) / q(0) = 1/6; residual (0, 0.2, 0.3) / 0.5.
  const std::vector<Row> target = {{0.1f, 0.4f, 0.5f}, {1.0f, 0.0f, 0.0f}};
  const std::vector<Row> draft = {{0.6f, 0.2f, 0.2f}};
  std::mt19937_64 rng(3);
  const int n = 30000;
  int kept = 0;
  std::vector<int> next(3, 0);
  for (int i = 0; i < n; ++i) {
    SpecStep step = AcceptOk({0}, draft, target, rng);
    if (step.accepted == 1) {
      ++kept;
      EXPECT_EQ(step.next, 0);
    } else {
      ++next[static_cast<size_t>(step.next)];
    }
  }
  EXPECT_NEAR(kept / double(n), 1.0 / 6.0, 0.01);
  EXPECT_EQ(next[0], 0);  // p(0) < q(0): no residual mass
  EXPECT_NEAR(next[1] / double(n - kept), 0.4, 0.015);
  EXPECT_NEAR(next[2] / double(n - kept), 0.6, 0.015);
}

TEST(SpeculativeSampling, ResidualOfADeterministicProposer) {
  // p = (0.25, 0.25, 0.5), proposed 2: kept with probability 0.5, else 0 or
  // 1 evenly, never 2.
  const std::vector<Row> target = {{0.25f, 0.25f, 0.5f}, {0.0f, 0.0f, 1.0f}};
  std::mt19937_64 rng(4);
  const int n = 20000;
  std::vector<int> counts(3, 0);
  for (int i = 0; i < n; ++i) {
    SpecStep step = AcceptOk({2}, {}, target, rng);
    counts[static_cast<size_t>(step.accepted == 1 ? 2 : step.next)]++;
    if (step.accepted == 1) EXPECT_EQ(step.next, 2);
  }
  EXPECT_NEAR(counts[2] / double(n), 0.5, 0.015);
  EXPECT_NEAR(counts[0] / double(n), 0.25, 0.015);
  EXPECT_NEAR(counts[1] / double(n), 0.25, 0.015);
}

TEST(SpeculativeSampling, SameSeedSameSteps) {
  const std::vector<Row> target = {{0.3f, 0.3f, 0.4f}, {0.2f, 0.5f, 0.3f}, {0.6f, 0.2f, 0.2f}};
  const std::vector<Row> draft = {{0.1f, 0.8f, 0.1f}, {0.4f, 0.2f, 0.4f}};
  auto run = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<SpecStep> steps;
    for (int i = 0; i < 100; ++i) steps.push_back(AcceptOk({1, 0}, draft, target, rng));
    return steps;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(SpeculativeSampling, ErrorsAreInvalidArgument) {
  std::mt19937_64 rng(5);
  const Row p = {0.5f, 0.5f};
  auto code = [&](const Ids& proposed, const std::vector<Row>& draft, const std::vector<Row>& target) {
    return Accept(proposed, draft, target, rng).status().code();
  };
  const StatusCode bad = StatusCode::kInvalidArgument;
  EXPECT_EQ(code({0}, {p}, {p}), bad);            // k + 1 target rows needed
  EXPECT_EQ(code({0}, {p, p}, {p, p}), bad);      // k draft rows (or none)
  EXPECT_EQ(code({}, {}, {}), bad);
  EXPECT_EQ(code({}, {}, {Row{}}), bad);          // empty vocabulary
  EXPECT_EQ(code({0}, {p}, {p, {1.0f}}), bad);    // rows of different lengths
  EXPECT_EQ(code({0}, {{1.0f}}, {p, p}), bad);
  EXPECT_EQ(code({2}, {p}, {p, p}), bad);         // id outside the vocabulary
  EXPECT_EQ(code({-1}, {}, {p, p}), bad);
  EXPECT_EQ(code({0}, {{0.0f, 1.0f}}, {p, p}), bad);           // q(x) = 0
  EXPECT_EQ(code({0}, {p}, {{NAN, 0.5f}, p}), bad);            // p(x) not a number
  EXPECT_EQ(code({0}, {{-0.5f, 1.5f}}, {p, p}), bad);          // q(x) < 0
  EXPECT_EQ(code({}, {}, {{0.0f, 0.0f}}), bad);                // a sampled row without mass
  EXPECT_EQ(code({}, {}, {{0.5f, -0.1f}}), bad);               // a sampled row with a negative entry
  EXPECT_EQ(code({}, {}, {{0.5f, INFINITY}}), bad);
  // A rejection samples the residual: the whole draft row is checked then.
  EXPECT_EQ(code({1}, {{NAN, 1.0f}}, {{1.0f, 0.0f}, p}), bad);
  EXPECT_TRUE(Accept({0}, {p}, {p, p}, rng).ok());
}

// --- AcceptSampled: the emitted tokens follow the target ------------------------

// Chi-square goodness of fit over 8 ids: 7 degrees of freedom. At
// significance 0.001 the critical value is the 0.999 quantile of the
// chi-square distribution with 7 degrees of freedom, 24.3219 (tables give
// 24.322). With a correct rule and a random seed a check fails once in a
// thousand runs; the seeds here are fixed, so the tests are deterministic.
constexpr int kVocab = 8;
constexpr double kCritical = 24.3219;

/// Target rows p_0..p_3 (a toy model whose next-token distribution depends on
/// the position only) and a deliberately different draft q_0..q_2.
const std::vector<Row> kTarget = {
    {0.30f, 0.20f, 0.15f, 0.10f, 0.08f, 0.07f, 0.06f, 0.04f},
    {0.05f, 0.05f, 0.10f, 0.10f, 0.15f, 0.15f, 0.20f, 0.20f},
    {0.125f, 0.125f, 0.125f, 0.125f, 0.125f, 0.125f, 0.125f, 0.125f},
    {0.02f, 0.40f, 0.02f, 0.20f, 0.06f, 0.10f, 0.10f, 0.10f},
};
const std::vector<Row> kDraft = {
    {0.05f, 0.10f, 0.10f, 0.15f, 0.20f, 0.05f, 0.25f, 0.10f},
    {0.40f, 0.20f, 0.10f, 0.10f, 0.05f, 0.05f, 0.05f, 0.05f},
    {0.50f, 0.02f, 0.02f, 0.02f, 0.02f, 0.02f, 0.20f, 0.20f},
};
constexpr int kTrials = 20000;

/// An acceptance rule with AcceptSampled's signature.
using Rule = std::function<StatusOr<SpecStep>(std::span<const int64_t>, std::span<const Row>,
                                              std::span<const Row>, std::mt19937_64&)>;

/// Draws an id from `row` with one Uniform53 (the same on every standard
/// library, unlike std::discrete_distribution).
int64_t DrawFrom(const Row& row, std::mt19937_64& rng) {
  double u = Uniform53(rng) * std::accumulate(row.begin(), row.end(), 0.0);
  for (size_t y = 0; y < row.size(); ++y) {
    u -= row[y];
    if (u < 0) return static_cast<int64_t>(y);
  }
  return static_cast<int64_t>(row.size()) - 1;
}

/// counts[j][y]: how often the j-th token a step emits was y, over the steps
/// that emit at least j + 1 tokens (accepted >= j).
struct Emitted {
  std::vector<std::vector<int64_t>> counts;
  std::vector<int64_t> totals;
};

/// `trials` verification steps of `rule` over kTarget. The proposer draws
/// each token from kDraft with its own generator, or, when `fixed` is not
/// empty, proposes `fixed` (deterministic, draft_probs empty).
Emitted RunSteps(const Rule& rule, const Ids& fixed, uint64_t seed, int trials) {
  const size_t k = kTarget.size() - 1;
  Emitted out{.counts = std::vector<std::vector<int64_t>>(k + 1, std::vector<int64_t>(kVocab, 0)),
              .totals = std::vector<int64_t>(k + 1, 0)};
  std::mt19937_64 proposer_rng(seed);
  std::mt19937_64 accept_rng(seed ^ 0x5deece66dULL);
  const std::vector<Row> draft = fixed.empty() ? kDraft : std::vector<Row>{};
  for (int trial = 0; trial < trials; ++trial) {
    Ids proposed = fixed;
    if (fixed.empty()) {
      for (size_t i = 0; i < k; ++i) proposed.push_back(DrawFrom(kDraft[i], proposer_rng));
    }
    StatusOr<SpecStep> step = rule(proposed, draft, kTarget, accept_rng);
    EXPECT_TRUE(step.ok()) << step.status().ToString();
    if (!step.ok()) return out;
    for (size_t j = 0; j <= static_cast<size_t>(step->accepted); ++j) {
      const int64_t token = j < static_cast<size_t>(step->accepted) ? proposed[j] : step->next;
      ++out.counts[j][static_cast<size_t>(token)];
      ++out.totals[j];
    }
  }
  return out;
}

/// Pearson's statistic of `counts` (over `total` draws) against `p`, whose
/// entries are all > 0.
double ChiSquare(const std::vector<int64_t>& counts, int64_t total, const Row& p) {
  double stat = 0;
  for (size_t y = 0; y < p.size(); ++y) {
    const double expected = static_cast<double>(total) * p[y];
    const double diff = static_cast<double>(counts[y]) - expected;
    stat += diff * diff / expected;
  }
  return stat;
}

double FirstTokenChiSquare(const Rule& rule, const Ids& fixed, uint64_t seed, const char* what) {
  Emitted e = RunSteps(rule, fixed, seed, kTrials);
  EXPECT_EQ(e.totals[0], kTrials);
  const double stat = ChiSquare(e.counts[0], e.totals[0], kTarget[0]);
  std::printf("[ chi2     ] %s: first token, N = %d, statistic %.2f (critical %.2f, 7 df, alpha 0.001)\n", what,
              kTrials, stat, kCritical);
  return stat;
}

const Rule kAcceptSampled = [](std::span<const int64_t> proposed, std::span<const Row> draft,
                               std::span<const Row> target, std::mt19937_64& rng) {
  return AcceptSampled(proposed, draft, target, rng);
};

TEST(SpeculativeSampling, FirstTokenFollowsTheTargetWithADraftModel) {
  EXPECT_LT(FirstTokenChiSquare(kAcceptSampled, {}, 1, "draft model"), kCritical);
}

TEST(SpeculativeSampling, FirstTokenFollowsTheTargetWithADeterministicProposer) {
  // The n-gram proposer's case: the proposal is a function of the context,
  // here fixed; a likely first token and an unlikely one.
  EXPECT_LT(FirstTokenChiSquare(kAcceptSampled, {0, 6, 1}, 2, "deterministic, proposes 0 first"), kCritical);
  EXPECT_LT(FirstTokenChiSquare(kAcceptSampled, {7, 0, 3}, 3, "deterministic, proposes 7 first"), kCritical);
}

TEST(SpeculativeSampling, EveryEmittedTokenFollowsTheTarget) {
  // The j-th emitted token, over the steps that emit it (accepted >= j),
  // follows p_j: a kept draft token below k, the residual at a rejection,
  // the last row when all k are kept. More steps than for the first token:
  // with the deterministic proposer only 0.3 * 0.2 * 0.125 of them keep all
  // three tokens, which leaves 1500 draws (at least 30 expected per id).
  for (const Ids& fixed : {Ids{}, Ids{0, 6, 1}}) {
    Emitted e = RunSteps(kAcceptSampled, fixed, 4, 10 * kTrials);
    for (size_t j = 0; j < kTarget.size(); ++j) {
      const double stat = ChiSquare(e.counts[j], e.totals[j], kTarget[j]);
      std::printf("[ chi2     ] %s: token %zu, N = %lld, statistic %.2f (critical %.2f)\n",
                  fixed.empty() ? "draft model" : "deterministic", j, static_cast<long long>(e.totals[j]), stat,
                  kCritical);
      EXPECT_GT(e.totals[j], 1000) << "token " << j;
      EXPECT_LT(stat, kCritical) << "token " << j;
    }
  }
}

// Near misses: the same test must reject broken rules, or it proves nothing.

/// Keeps every proposed token: the first token then follows the draft.
const Rule kAlwaysAccept = [](std::span<const int64_t> proposed, std::span<const Row>, std::span<const Row> target,
                              std::mt19937_64& rng) -> StatusOr<SpecStep> {
  return SpecStep{.accepted = static_cast<int>(proposed.size()), .next = DrawFrom(target.back(), rng)};
};

/// The right acceptance test, but a rejection redraws from p instead of the
/// residual (a plausible bug: it double-counts the mass where q > p).
const Rule kRedrawFromTarget = [](std::span<const int64_t> proposed, std::span<const Row> draft,
                                  std::span<const Row> target, std::mt19937_64& rng) -> StatusOr<SpecStep> {
  for (size_t i = 0; i < proposed.size(); ++i) {
    const size_t x = static_cast<size_t>(proposed[i]);
    const double q = draft.empty() ? 1.0 : draft[i][x];
    if (Uniform53(rng) * q < target[i][x]) continue;
    return SpecStep{.accepted = static_cast<int>(i), .next = DrawFrom(target[i], rng)};
  }
  return SpecStep{.accepted = static_cast<int>(proposed.size()), .next = DrawFrom(target.back(), rng)};
};

TEST(SpeculativeSampling, NearMissAlwaysAcceptingFailsTheTest) {
  EXPECT_GT(FirstTokenChiSquare(kAlwaysAccept, {}, 1, "near miss, always accept, draft model"), kCritical);
  EXPECT_GT(FirstTokenChiSquare(kAlwaysAccept, {7, 0, 3}, 3, "near miss, always accept, deterministic"), kCritical);
}

TEST(SpeculativeSampling, NearMissRedrawingFromTheTargetFailsTheTest) {
  EXPECT_GT(FirstTokenChiSquare(kRedrawFromTarget, {}, 1, "near miss, redraw from p, draft model"), kCritical);
  EXPECT_GT(FirstTokenChiSquare(kRedrawFromTarget, {0, 6, 1}, 2, "near miss, redraw from p, deterministic"),
            kCritical);
}

// --- ProbsFromLogits ------------------------------------------------------------

void ExpectProbs(const Row& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "id " << i;
}

TEST(SpeculativeProbs, SoftmaxWithTemperature) {
  const Row logits = {0.0f, std::log(3.0f), -INFINITY, NAN};
  ExpectProbs(ProbsFromLogits(logits, {.temperature = 1.0}), {0.25, 0.75, 0, 0});
  ExpectProbs(ProbsFromLogits(logits, {.temperature = 0.5}), {0.1, 0.9, 0, 0});
}

TEST(SpeculativeProbs, TopKAndTopPAsTheSampler) {
  const Row logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  ExpectProbs(ProbsFromLogits(logits, {.temperature = 1.0, .top_k = 2}), {0.625, 0.375, 0, 0});
  ExpectProbs(ProbsFromLogits(logits, {.temperature = 1.0, .top_p = 0.79}), {0.625, 0.375, 0, 0});
  ExpectProbs(ProbsFromLogits(logits, {.temperature = 1.0, .top_p = 0.81}), {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0});
  ExpectProbs(ProbsFromLogits(logits, {.temperature = 1.0, .top_p = 0.01}), {1, 0, 0, 0});
}

TEST(SpeculativeProbs, GreedyIsOneHotAndBadInputIsAllZeros) {
  ExpectProbs(ProbsFromLogits(Row{1.0f, 5.0f, 5.0f}, {}), {0, 1, 0});  // lowest id on ties
  ExpectProbs(ProbsFromLogits(Row{NAN, -INFINITY}, {.temperature = 1.0}), {0, 0});
  ExpectProbs(ProbsFromLogits(Row{1.0f, 2.0f}, {.temperature = -1.0}), {0, 0});
  ExpectProbs(ProbsFromLogits(Row{1.0f, 2.0f}, {.temperature = 1.0, .top_p = 0}), {0, 0});
  EXPECT_TRUE(ProbsFromLogits(Row{}, {.temperature = 1.0}).empty());
}

TEST(SpeculativeDraft, ReportsHowSureTheDraftIs) {
  std::mt19937_64 rng(5);
  std::vector<Row> draft_probs;
  // Greedy: the argmax and its softmax probability at temperature 1.
  float p = -1;
  const Row logits = {0.0f, std::log(3.0f), std::log(4.0f)};
  EXPECT_EQ(ProposeFromDraftLogits(logits, {}, rng, draft_probs, &p), 2);
  EXPECT_NEAR(p, 0.5, 1e-6);
  EXPECT_TRUE(draft_probs.empty());  // greedy acceptance needs no rows
  // Sampled: the drawn id's probability in the row it was drawn from.
  const Row sure = {0.0f, 40.0f, -INFINITY};
  EXPECT_EQ(ProposeFromDraftLogits(sure, {.temperature = 1.0}, rng, draft_probs, &p), 1);
  ASSERT_EQ(draft_probs.size(), 1u);
  EXPECT_EQ(p, draft_probs[0][1]);
  EXPECT_GT(p, 0.999f);
  for (int i = 0; i < 50; ++i) {
    const int64_t id = ProposeFromDraftLogits(logits, {.temperature = 2.0}, rng, draft_probs, &p);
    ASSERT_GE(id, 0);
    EXPECT_EQ(p, draft_probs.back()[id]);
  }
  // Nothing to choose: no id, no probability written.
  p = -1;
  EXPECT_EQ(ProposeFromDraftLogits(Row{NAN, NAN}, {.temperature = 1.0}, rng, draft_probs, &p), -1);
  EXPECT_EQ(p, -1);
}

TEST(SpeculativeDraft, Defaults) {
  EXPECT_EQ(DefaultDraftMinProbability("layer-skip:1"), 0.5f);
  EXPECT_EQ(DefaultDraftMinProbability("draft"), 0.0f);
  EXPECT_EQ(DefaultDraftMinProbability("ngram"), 0.0f);
  EXPECT_EQ(DefaultDraftMinProbability(""), 0.0f);
  EXPECT_EQ(DefaultDraftMinProbability("layer-skip"), 0.0f);  // near miss: no ':N', not what the compiler writes
  EXPECT_TRUE(AdaptiveByDefault(Proposer::kDraft));
  EXPECT_FALSE(AdaptiveByDefault(Proposer::kNgram));
}

TEST(SpeculativeProbs, SamplerDrawsFromTheseProbabilities) {
  // Twelve logits, top-k 8 and a temperature: the sampler's draws against
  // ProbsFromLogits over the 8 candidates (7 df, the same critical value).
  Row logits(12);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(static_cast<float>(i) * 1.7f) * 2;
  const SamplerParams params = {.temperature = 0.8, .top_k = 8, .seed = 9};
  const Row probs = ProbsFromLogits(logits, params);
  Row p;
  std::vector<int64_t> ids;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] > 0) {
      p.push_back(probs[i]);
      ids.push_back(static_cast<int64_t>(i));
    }
  }
  ASSERT_EQ(p.size(), 8u);
  EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-6);
  StatusOr<Sampler> sampler = Sampler::Create(params);
  ASSERT_TRUE(sampler.ok());
  std::vector<int64_t> counts(8, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const int64_t id = sampler->Sample(logits).value();
    auto it = std::find(ids.begin(), ids.end(), id);
    ASSERT_NE(it, ids.end()) << "the sampler drew id " << id << ", which has probability 0";
    ++counts[static_cast<size_t>(it - ids.begin())];
  }
  const double stat = ChiSquare(counts, n, p);
  std::printf("[ chi2     ] Sampler vs ProbsFromLogits: N = %d, statistic %.2f (critical %.2f)\n", n, stat,
              kCritical);
  EXPECT_LT(stat, kCritical);
}

}  // namespace
}  // namespace kiln::llm
