//===- ngram_proposer.h - Draft tokens by prompt lookup (no draft model) ---===//
//
// Speculative decoding's cheapest proposer (`--speculative=ngram`): when the
// text repeats itself (code, quotes of the prompt, lists), the tokens that
// followed the last n-gram's earlier occurrence in the context are a good
// guess of what comes next. The target model then verifies the guesses in one
// forward (runtime/llm/speculative.h). The same idea as vLLM's n-gram
// proposer and llama.cpp's prompt lookup decoding.
#ifndef KILN_RUNTIME_LLM_NGRAM_PROPOSER_H_
#define KILN_RUNTIME_LLM_NGRAM_PROPOSER_H_

#include <cstdint>
#include <span>
#include <vector>

namespace kiln::llm {

/// Up to `k` draft tokens for the sequence whose tokens so far (prompt and
/// generated) are `context`.
///
/// For n from `max_ngram` down to `min_ngram`, the last n tokens of the
/// context are looked up at earlier start positions (an occurrence may
/// overlap the suffix itself, but is never the suffix); the first n that has
/// one wins, and among its occurrences the most recent one (the nearest is
/// the likeliest to continue the same way). The proposal is the tokens that
/// followed that occurrence: `k` of them, or fewer when the context ends
/// first, and they may run into the suffix itself (in "a b a b" the 2-gram
/// "a b" at 0 is followed by "a b"). A match always yields at least one
/// token. Longer n-grams win over recency: they are more specific.
///
/// Empty when nothing matches, when `k <= 0`, when the context has fewer
/// than two tokens, or when `max_ngram < min_ngram`; `min_ngram` below 1
/// counts as 1, and n-grams longer than `context.size() - 1` are skipped.
///
/// Cost: one backwards scan over the context comparing at most `max_ngram`
/// tokens at each position, O(context.size() * max_ngram) in the worst case
/// (no match), and it stops at the most recent occurrence of the longest
/// n-gram. A few thousand tokens take microseconds. No state, no allocation
/// beyond the result.
std::vector<int64_t> ProposeNgram(std::span<const int64_t> context, int k, int max_ngram = 3,
                                  int min_ngram = 1);

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_NGRAM_PROPOSER_H_
