//===- ngram_proposer.cc - Draft tokens by prompt lookup -------------------===//
#include "runtime/llm/ngram_proposer.h"

#include <algorithm>

namespace kiln::llm {

std::vector<int64_t> ProposeNgram(std::span<const int64_t> context, int k, int max_ngram, int min_ngram) {
  const int64_t size = static_cast<int64_t>(context.size());
  const int64_t lo = std::max(min_ngram, 1);
  // An occurrence needs an earlier start, so n <= size - 1.
  const int64_t hi = std::min<int64_t>(max_ngram, size - 1);
  if (k <= 0 || hi < lo) return {};

  // Scan the positions `end` where an earlier occurrence would end (the
  // tokens after it start at `end`), most recent first; end < size keeps it
  // from being the suffix itself. `match` is how many of the suffix's last
  // tokens end there too. The first end reaching n is the most recent
  // occurrence of the n-gram; the first reaching `hi` settles everything.
  int64_t best_n = 0;
  int64_t best_end = -1;
  for (int64_t end = size - 1; end >= lo; --end) {
    const int64_t limit = std::min(hi, end);
    int64_t match = 0;
    while (match < limit && context[static_cast<size_t>(end - 1 - match)] ==
                                context[static_cast<size_t>(size - 1 - match)])
      ++match;
    if (match >= lo && match > best_n) {
      best_n = match;
      best_end = end;
      if (match == hi) break;
    }
  }
  if (best_end < 0) return {};
  const int64_t count = std::min<int64_t>(k, size - best_end);
  return std::vector<int64_t>(context.begin() + best_end, context.begin() + best_end + count);
}

}  // namespace kiln::llm
