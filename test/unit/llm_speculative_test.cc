//===- llm_speculative_test.cc - N-gram proposer and acceptance rules -----===//
//
// ProposeNgram against hand-made contexts and a brute-force reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "runtime/llm/ngram_proposer.h"

namespace kiln::llm {
namespace {

using Ids = std::vector<int64_t>;

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

}  // namespace
}  // namespace kiln::llm
