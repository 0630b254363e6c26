//===- llm_kv_block_manager_test.cc - Paged KV cache block bookkeeping -----===//
//
// Slot numbering, exhaustion, prefix caching (hits, near misses, LRU
// eviction), fork + copy-on-write, truncation (speculative rollback), and a
// randomized run that keeps a shadow K/V pool to check that every sequence
// reads back its own tokens.
#include "runtime/llm/kv_block_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace kiln::llm {
namespace {

#define KV_EXPECT_OK(expr)                            \
  do {                                                \
    ::kiln::Status kv_status_ = (expr);               \
    EXPECT_TRUE(kv_status_.ok()) << kv_status_.ToString(); \
  } while (0)

using Ids = std::vector<int64_t>;

std::unique_ptr<KvBlockManager> Make(int64_t num_blocks, int64_t block_size, bool prefix_caching = true) {
  auto m = KvBlockManager::Create(
      {.num_blocks = num_blocks, .block_size = block_size, .enable_prefix_caching = prefix_caching});
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

/// `count` consecutive ids from `first`.
Ids Iota(int64_t first, int64_t count) {
  Ids ids(static_cast<size_t>(count));
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

Ids Concat(Ids a, const Ids& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Ids Table(const KvBlockManager& m, int64_t seq_id) {
  auto table = m.BlockTable(seq_id);
  EXPECT_TRUE(table.ok()) << table.status().ToString();
  if (!table.ok()) return {};
  return Ids(table->begin(), table->end());
}

int64_t Tokens(const KvBlockManager& m, int64_t seq_id) {
  auto n = m.NumTokens(seq_id);
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return n.ok() ? *n : -1;
}

KvAllocation AllocateOk(KvBlockManager& m, int64_t seq_id, const Ids& prompt) {
  auto a = m.Allocate(seq_id, prompt);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  KV_EXPECT_OK(m.CheckInvariants());
  return a.ok() ? std::move(a).value() : KvAllocation{};
}

KvAppend AppendOk(KvBlockManager& m, int64_t seq_id, const Ids& tokens) {
  auto a = m.AppendSlots(seq_id, tokens);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  KV_EXPECT_OK(m.CheckInvariants());
  return a.ok() ? std::move(a).value() : KvAppend{};
}

/// Everything a caller can observe, to check that a failed call changed nothing.
struct Snapshot {
  std::map<int64_t, Ids> tables;
  std::map<int64_t, int64_t> tokens;
  int64_t free = 0, cached = 0, queries = 0, hits = 0, sequences = 0;
  bool operator==(const Snapshot&) const = default;
};

Snapshot Snap(const KvBlockManager& m, const std::vector<int64_t>& ids) {
  Snapshot s;
  for (int64_t id : ids) {
    if (!m.HasSequence(id)) continue;
    s.tables[id] = Table(m, id);
    s.tokens[id] = Tokens(m, id);
  }
  s.free = m.NumFreeBlocks();
  s.cached = m.NumCachedBlocks();
  s.queries = m.prefix_cache_queries();
  s.hits = m.prefix_cache_hits();
  s.sequences = m.NumSequences();
  return s;
}

TEST(KvBlockManager, CreateChecksOptions) {
  EXPECT_EQ(KvBlockManager::Create({.num_blocks = 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KvBlockManager::Create({.num_blocks = -3}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KvBlockManager::Create({.num_blocks = 4, .block_size = 0}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(KvBlockManager::Create({.num_blocks = int64_t{1} << 60, .block_size = 1 << 8}).status().code(),
            StatusCode::kInvalidArgument);
  auto m = Make(10, 16);
  EXPECT_EQ(m->num_blocks(), 10);
  EXPECT_EQ(m->block_size(), 16);
  EXPECT_EQ(KvBlockManager::Create({.num_blocks = 1}).value()->block_size(), 16);  // the default
  EXPECT_EQ(m->NumFreeBlocks(), 10);
  EXPECT_EQ(m->NumBlocksInUse(), 0);
  EXPECT_EQ(m->UsageRatio(), 0.0);
  KV_EXPECT_OK(m->CheckInvariants());
}

TEST(KvBlockManager, AllocationAndSlotNumbering) {
  auto m = Make(8, 4);
  KvAllocation a = AllocateOk(*m, 1, Iota(100, 6));
  EXPECT_EQ(a.num_cached_tokens, 0);
  EXPECT_EQ(a.slots, Iota(0, 6));  // blocks 0 and 1, slot = block * 4 + offset
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1}));
  EXPECT_EQ(Tokens(*m, 1), 6);

  KvAllocation b = AllocateOk(*m, 2, Iota(200, 3));
  EXPECT_EQ(b.slots, (Ids{8, 9, 10}));
  EXPECT_EQ(Table(*m, 2), (Ids{2}));
  EXPECT_EQ(m->NumBlocksInUse(), 3);
  EXPECT_EQ(m->NumFreeBlocks(), 5);
  EXPECT_DOUBLE_EQ(m->UsageRatio(), 3.0 / 8.0);
  EXPECT_EQ(m->NumSequences(), 2);

  KvAppend c = AppendOk(*m, 1, {106});
  EXPECT_EQ(c.slots, (Ids{6}));
  EXPECT_TRUE(c.copies.empty());
  KvAppend none = AppendOk(*m, 1, {});
  EXPECT_TRUE(none.slots.empty());
  EXPECT_EQ(Tokens(*m, 1), 7);

  KV_EXPECT_OK(m->Free(1));
  KV_EXPECT_OK(m->Free(2));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_FALSE(m->HasSequence(1));
  EXPECT_EQ(m->NumBlocksInUse(), 0);
  EXPECT_EQ(m->NumFreeBlocks(), 8);
}

TEST(KvBlockManager, BlockBoundaryCrossing) {
  auto m = Make(8, 4, /*prefix_caching=*/false);
  AllocateOk(*m, 1, Iota(10, 3));  // block 0, slots 0..2
  AllocateOk(*m, 2, Iota(50, 1));  // block 1
  EXPECT_EQ(AppendOk(*m, 1, {13}).slots, (Ids{3}));  // fills block 0
  EXPECT_EQ(Table(*m, 1), (Ids{0}));
  EXPECT_TRUE(m->CanAppendSlots(1, 1));
  EXPECT_EQ(AppendOk(*m, 1, {14}).slots, (Ids{8}));  // crosses into block 2
  EXPECT_EQ(Table(*m, 1), (Ids{0, 2}));
  // Positions 5..10: offsets 1..3 of block 2, then 0..2 of a new block 3.
  EXPECT_EQ(AppendOk(*m, 1, Iota(15, 6)).slots, (Ids{9, 10, 11, 12, 13, 14}));
  EXPECT_EQ(Table(*m, 1), (Ids{0, 2, 3}));
  EXPECT_EQ(Tokens(*m, 1), 11);
  EXPECT_EQ(Table(*m, 2), (Ids{1}));
  // Exactly at a boundary, then several blocks at once.
  EXPECT_EQ(AppendOk(*m, 1, {21}).slots, (Ids{15}));
  EXPECT_EQ(AppendOk(*m, 1, Iota(22, 9)).slots, (Ids{16, 17, 18, 19, 20, 21, 22, 23, 24}));
  EXPECT_EQ(Table(*m, 1), (Ids{0, 2, 3, 4, 5, 6}));
}

TEST(KvBlockManager, ExhaustionReturnsResourceExhaustedAndChangesNothing) {
  auto m = Make(3, 4);
  AllocateOk(*m, 1, Iota(0, 8));    // blocks 0, 1
  AllocateOk(*m, 2, Iota(100, 4));  // block 2
  EXPECT_EQ(m->NumFreeBlocks(), 0);
  const std::vector<int64_t> ids = {1, 2, 3, 4};
  const Snapshot before = Snap(*m, ids);

  EXPECT_FALSE(m->CanAllocate(Ids{7}));
  EXPECT_EQ(m->Allocate(3, Ids{7}).status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(m->HasSequence(3));
  EXPECT_FALSE(m->CanAppendSlots(2, 1));
  EXPECT_EQ(m->AppendSlots(2, Ids{104}).status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(m->CanAppendSlots(2, 0));
  // Needing more blocks than the cache has is a different error: never fits.
  EXPECT_FALSE(m->CanAllocate(Iota(0, 13)));
  EXPECT_EQ(m->Allocate(4, Iota(0, 13)).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(m->AppendSlots(1, Iota(8, 5)).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(Snap(*m, ids), before);
  KV_EXPECT_OK(m->CheckInvariants());

  KV_EXPECT_OK(m->Free(2));
  EXPECT_TRUE(m->CanAllocate(Ids{7}));
  AllocateOk(*m, 3, {7});
  EXPECT_EQ(Table(*m, 3), (Ids{2}));  // the freed (cached) block, evicted for reuse
  KV_EXPECT_OK(m->Free(1));
  KV_EXPECT_OK(m->Free(3));
  EXPECT_EQ(m->NumFreeBlocks(), 3);
}

TEST(KvBlockManager, ErrorsAreStatuses) {
  auto m = Make(4, 4);
  AllocateOk(*m, 1, {1, 2, 3});
  EXPECT_EQ(m->Allocate(1, Ids{5}).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(m->Allocate(2, Ids{}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(m->CanAllocate(Ids{}));
  EXPECT_EQ(m->AppendSlots(9, Ids{1}).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(m->CanAppendSlots(9, 1));
  EXPECT_FALSE(m->CanAppendSlots(1, -1));
  EXPECT_EQ(m->Fork(9, 10).code(), StatusCode::kNotFound);
  EXPECT_EQ(m->Fork(1, 1).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(m->Free(9).code(), StatusCode::kNotFound);
  EXPECT_EQ(m->BlockTable(9).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(m->NumTokens(9).status().code(), StatusCode::kNotFound);
  KV_EXPECT_OK(m->Fork(1, 2));
  EXPECT_EQ(m->Fork(1, 2).code(), StatusCode::kAlreadyExists);
  KV_EXPECT_OK(m->Free(1));
  EXPECT_EQ(m->Free(1).code(), StatusCode::kNotFound);
  EXPECT_EQ(Table(*m, 2), (Ids{0}));  // the child survives its parent
  KV_EXPECT_OK(m->Free(2));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumFreeBlocks(), 4);
}

TEST(KvBlockManager, PrefixCacheHitReusesSharedFullBlocks) {
  auto m = Make(16, 4);
  const Ids prefix = Iota(1, 8);  // two full blocks
  KvAllocation a = AllocateOk(*m, 1, Concat(prefix, {9, 10}));
  EXPECT_EQ(a.num_cached_tokens, 0);
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1, 2}));
  EXPECT_EQ(m->NumCachedBlocks(), 2);  // the partial third block is not cached
  EXPECT_EQ(m->prefix_cache_queries(), 10);
  EXPECT_EQ(m->prefix_cache_hits(), 0);

  const Ids b_prompt = Concat(prefix, {20, 21, 22});
  EXPECT_EQ(m->NumCachedTokens(b_prompt), 8);
  KvAllocation b = AllocateOk(*m, 2, b_prompt);
  EXPECT_EQ(b.num_cached_tokens, 8);
  EXPECT_EQ(Table(*m, 2), (Ids{0, 1, 3}));
  EXPECT_EQ(b.slots, (Ids{12, 13, 14}));  // only the uncached tokens
  EXPECT_EQ(m->NumBlocksInUse(), 4);
  EXPECT_EQ(m->prefix_cache_queries(), 21);
  EXPECT_EQ(m->prefix_cache_hits(), 8);

  KV_EXPECT_OK(m->Free(1));  // blocks 0 and 1 are still B's
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumBlocksInUse(), 3);
  KV_EXPECT_OK(m->Free(2));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumBlocksInUse(), 0);
  EXPECT_EQ(m->NumFreeBlocks(), 16);
  EXPECT_EQ(m->NumCachedBlocks(), 2);  // cached free

  // A hit on cached free blocks revives them.
  KvAllocation c = AllocateOk(*m, 3, Concat(prefix, {30}));
  EXPECT_EQ(c.num_cached_tokens, 8);
  const Ids c_table = Table(*m, 3);
  EXPECT_EQ(Ids(c_table.begin(), c_table.begin() + 2), (Ids{0, 1}));
  EXPECT_EQ(m->NumBlocksInUse(), 3);
  EXPECT_EQ(m->NumFreeBlocks(), 13);
  EXPECT_EQ(m->prefix_cache_hits(), 16);

  // A block filled by decoding is cached too: C's third block after 3 more tokens.
  AppendOk(*m, 3, {31, 32, 33});
  EXPECT_EQ(m->NumCachedBlocks(), 3);
  EXPECT_EQ(m->NumCachedTokens(Concat(prefix, {30, 31, 32, 33, 34})), 12);
  KV_EXPECT_OK(m->Free(3));
  EXPECT_EQ(m->NumFreeBlocks(), 16);
}

TEST(KvBlockManager, PartialLastBlockIsNeverSharedThroughTheCache) {
  auto m = Make(16, 4);
  const Ids a_prompt = Iota(1, 6);
  AllocateOk(*m, 1, a_prompt);
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1}));
  EXPECT_EQ(m->NumCachedBlocks(), 1);

  KvAllocation same = AllocateOk(*m, 2, a_prompt);
  EXPECT_EQ(same.num_cached_tokens, 4);  // not 6
  EXPECT_EQ(Table(*m, 2), (Ids{0, 2}));
  EXPECT_EQ(AllocateOk(*m, 3, Concat(a_prompt, {7, 8, 9})).num_cached_tokens, 4);
  // The whole prompt is never a hit: its last token must be computed.
  const Ids one_block = Iota(1, 4);
  EXPECT_EQ(m->NumCachedTokens(one_block), 0);
  KvAllocation whole = AllocateOk(*m, 4, one_block);
  EXPECT_EQ(whole.num_cached_tokens, 0);
  EXPECT_EQ(whole.slots.size(), 4u);
  EXPECT_NE(Table(*m, 4), (Ids{0}));
  EXPECT_EQ(m->NumCachedBlocks(), 2);  // block 0 and seq 3's second; no duplicate of block 0
  EXPECT_EQ(AllocateOk(*m, 5, Iota(1, 8)).num_cached_tokens, 4);
  for (int64_t id = 1; id <= 5; ++id) KV_EXPECT_OK(m->Free(id));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumFreeBlocks(), 16);
}

TEST(KvBlockManager, NearMissInFirstBlockSharesNothing) {
  auto m = Make(16, 4);
  AllocateOk(*m, 1, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Differs only in the last token of the first block: the second block has
  // the same tokens but another prefix, so nothing is shared.
  const Ids near_miss = {1, 2, 3, 99, 5, 6, 7, 8, 9};
  EXPECT_EQ(m->NumCachedTokens(near_miss), 0);
  EXPECT_EQ(AllocateOk(*m, 2, near_miss).num_cached_tokens, 0);
  const Ids a = Table(*m, 1), b = Table(*m, 2);
  for (int64_t id : b) EXPECT_EQ(std::count(a.begin(), a.end(), id), 0) << "shared block " << id;
  EXPECT_EQ(m->NumCachedBlocks(), 4);
  // Differs in the last token of the second block: shares the first only.
  EXPECT_EQ(AllocateOk(*m, 3, {1, 2, 3, 4, 5, 6, 7, 99, 9}).num_cached_tokens, 4);
  EXPECT_EQ(Table(*m, 3)[0], a[0]);
  EXPECT_NE(Table(*m, 3)[1], a[1]);
  EXPECT_EQ(m->prefix_cache_hits(), 4);
  for (int64_t id = 1; id <= 3; ++id) KV_EXPECT_OK(m->Free(id));
  EXPECT_EQ(m->NumFreeBlocks(), 16);
}

TEST(KvBlockManager, LruEvictsLeastRecentlyUsedCachedFreeBlock) {
  auto m = Make(6, 2);
  const Ids a = {1, 2, 9}, b = {3, 4, 9}, c = {5, 6, 9};
  AllocateOk(*m, 1, a);  // blocks 0 (cached) and 1
  AllocateOk(*m, 2, b);  // 2 and 3
  AllocateOk(*m, 3, c);  // 4 and 5
  for (int64_t id = 1; id <= 3; ++id) KV_EXPECT_OK(m->Free(id));
  EXPECT_EQ(m->NumFreeBlocks(), 6);
  EXPECT_EQ(m->NumCachedBlocks(), 3);  // LRU, oldest first: 0, 2, 4

  // A hit revives A's block; freed again, it becomes the most recent: 2, 4, 0.
  EXPECT_EQ(AllocateOk(*m, 4, {1, 2, 8}).num_cached_tokens, 2);
  EXPECT_EQ(Table(*m, 4)[0], 0);
  KV_EXPECT_OK(m->Free(4));

  // Never-cached free blocks go first: no eviction yet.
  AllocateOk(*m, 5, {7, 7, 7, 7, 7, 7});
  EXPECT_EQ(m->NumFreeBlocks(), 3);
  EXPECT_EQ(m->NumCachedTokens(a), 2);
  EXPECT_EQ(m->NumCachedTokens(b), 2);
  EXPECT_EQ(m->NumCachedTokens(c), 2);

  AllocateOk(*m, 6, {11});
  EXPECT_EQ(Table(*m, 6), (Ids{2}));  // B's, the least recently used
  EXPECT_EQ(m->NumCachedTokens(b), 0);
  EXPECT_EQ(m->NumCachedTokens(a), 2);
  EXPECT_EQ(m->NumCachedTokens(c), 2);
  AllocateOk(*m, 7, {12});
  EXPECT_EQ(Table(*m, 7), (Ids{4}));  // then C's
  EXPECT_EQ(m->NumCachedTokens(c), 0);
  EXPECT_EQ(m->NumCachedTokens(a), 2);
  for (int64_t id : {5, 6, 7}) KV_EXPECT_OK(m->Free(id));
  EXPECT_EQ(m->NumFreeBlocks(), 6);
}

TEST(KvBlockManager, FreeEvictsTheTailOfAPrefixFirst) {
  auto m = Make(3, 2);
  const Ids a = {1, 2, 3, 4, 5};
  AllocateOk(*m, 1, a);  // 0 and 1 cached, 2 partial
  KV_EXPECT_OK(m->Free(1));
  EXPECT_EQ(m->NumCachedTokens(a), 4);
  AllocateOk(*m, 2, {9, 9, 9});  // takes block 2, then evicts one cached block
  EXPECT_EQ(Table(*m, 2), (Ids{2, 1}));
  EXPECT_EQ(m->NumCachedTokens(a), 2);  // the head of the prefix still hits
  KV_EXPECT_OK(m->Free(2));
  KV_EXPECT_OK(m->CheckInvariants());
}

TEST(KvBlockManager, CanAllocateCountsRevivedHitsAsTaken) {
  auto m = Make(3, 2);
  AllocateOk(*m, 1, {50});            // block 0
  AllocateOk(*m, 2, {1, 2, 3, 4});    // 1 and 2, both cached
  KV_EXPECT_OK(m->Free(2));
  EXPECT_EQ(m->NumFreeBlocks(), 2);
  // Both free blocks would be hits, leaving none for the fifth token.
  const Ids longer = {1, 2, 3, 4, 5};
  EXPECT_EQ(m->NumCachedTokens(longer), 4);
  EXPECT_FALSE(m->CanAllocate(longer));
  const Snapshot before = Snap(*m, {1, 3});
  EXPECT_EQ(m->Allocate(3, longer).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Snap(*m, {1, 3}), before);
  // One hit, one fresh block: the fresh one evicts the other cached block,
  // never the one being reused.
  const Ids shorter = {1, 2, 3};
  EXPECT_TRUE(m->CanAllocate(shorter));
  KvAllocation c = AllocateOk(*m, 3, shorter);
  EXPECT_EQ(c.num_cached_tokens, 2);
  EXPECT_EQ(Table(*m, 3), (Ids{1, 2}));
  EXPECT_EQ(c.slots, (Ids{4}));
  EXPECT_EQ(m->NumCachedBlocks(), 1);
  KV_EXPECT_OK(m->Free(1));
  KV_EXPECT_OK(m->Free(3));
  EXPECT_EQ(m->NumFreeBlocks(), 3);
}

TEST(KvBlockManager, ForkSharesBlocksAndCopiesOnWrite) {
  auto m = Make(8, 4);
  AllocateOk(*m, 1, Iota(1, 6));  // blocks 0 (full) and 1 (2 of 4)
  KV_EXPECT_OK(m->Fork(1, 2));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(Table(*m, 2), (Ids{0, 1}));
  EXPECT_EQ(Tokens(*m, 2), 6);
  EXPECT_EQ(m->NumBlocksInUse(), 2);

  // The child writes into the shared partial block: it gets a copy.
  EXPECT_TRUE(m->CanAppendSlots(2, 1));
  KvAppend child = AppendOk(*m, 2, {70});
  EXPECT_EQ(child.copies, (std::vector<KvBlockCopy>{{.src = 1, .dst = 2}}));
  EXPECT_EQ(child.slots, (Ids{2 * 4 + 2}));
  EXPECT_EQ(Table(*m, 2), (Ids{0, 2}));
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1}));  // the parent's blocks are unchanged
  // The parent is now the only holder of block 1: no copy.
  KvAppend parent = AppendOk(*m, 1, {60});
  EXPECT_TRUE(parent.copies.empty());
  EXPECT_EQ(parent.slots, (Ids{1 * 4 + 2}));

  // A copy followed by a new block in one call.
  KV_EXPECT_OK(m->Fork(1, 3));
  KvAppend two = AppendOk(*m, 3, {80, 81});
  EXPECT_EQ(two.copies, (std::vector<KvBlockCopy>{{.src = 1, .dst = 3}}));
  EXPECT_EQ(two.slots, (Ids{3 * 4 + 3, 4 * 4}));
  EXPECT_EQ(Table(*m, 3), (Ids{0, 3, 4}));
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1}));

  // A full shared last block needs no copy: the next token opens a new block.
  AllocateOk(*m, 4, Iota(100, 4));
  KV_EXPECT_OK(m->Fork(4, 5));
  KvAppend full = AppendOk(*m, 5, {104});
  EXPECT_TRUE(full.copies.empty());
  EXPECT_EQ(Table(*m, 5).size(), 2u);
  EXPECT_EQ(Table(*m, 5)[0], Table(*m, 4)[0]);

  for (int64_t id = 1; id <= 5; ++id) KV_EXPECT_OK(m->Free(id));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumBlocksInUse(), 0);
  EXPECT_EQ(m->NumFreeBlocks(), 8);
}

TEST(KvBlockManager, CopyOnWriteNeedsAFreeBlock) {
  auto m = Make(2, 4);
  AllocateOk(*m, 1, {1, 2});
  KV_EXPECT_OK(m->Fork(1, 2));
  AllocateOk(*m, 3, {5});
  EXPECT_FALSE(m->CanAppendSlots(2, 1));
  const Snapshot before = Snap(*m, {1, 2, 3});
  EXPECT_EQ(m->AppendSlots(2, Ids{3}).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Snap(*m, {1, 2, 3}), before);
  KV_EXPECT_OK(m->CheckInvariants());
  KV_EXPECT_OK(m->Free(3));
  EXPECT_EQ(AppendOk(*m, 2, {3}).copies, (std::vector<KvBlockCopy>{{.src = 0, .dst = 1}}));
  KV_EXPECT_OK(m->Free(1));
  KV_EXPECT_OK(m->Free(2));
  EXPECT_EQ(m->NumFreeBlocks(), 2);
}

TEST(KvBlockManager, PrefixCachingOffKeepsNoHashes) {
  auto m = Make(8, 4, /*prefix_caching=*/false);
  const Ids prompt = Iota(1, 9);
  AllocateOk(*m, 1, prompt);
  EXPECT_EQ(m->NumCachedTokens(prompt), 0);
  EXPECT_EQ(AllocateOk(*m, 2, prompt).num_cached_tokens, 0);
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1, 2}));
  EXPECT_EQ(Table(*m, 2), (Ids{3, 4, 5}));
  AppendOk(*m, 1, {10, 11, 12});
  EXPECT_EQ(m->NumCachedBlocks(), 0);
  KV_EXPECT_OK(m->Free(1));
  KV_EXPECT_OK(m->Free(2));
  EXPECT_EQ(AllocateOk(*m, 3, prompt).num_cached_tokens, 0);
  EXPECT_EQ(m->NumCachedBlocks(), 0);
  EXPECT_EQ(m->prefix_cache_queries(), 0);
  EXPECT_EQ(m->prefix_cache_hits(), 0);
  KV_EXPECT_OK(m->Free(3));
  EXPECT_EQ(m->NumFreeBlocks(), 8);
}

TEST(KvBlockManager, ResetPrefixCacheForgetsEveryPrefix) {
  auto m = Make(8, 4);
  const Ids prompt = Iota(1, 9);
  AllocateOk(*m, 1, prompt);
  AllocateOk(*m, 2, Concat(Iota(1, 4), {50, 51}));  // shares block 0
  KV_EXPECT_OK(m->Free(1));
  EXPECT_EQ(m->NumCachedBlocks(), 2);
  m->ResetPrefixCache();
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumCachedBlocks(), 0);
  EXPECT_EQ(m->NumCachedTokens(prompt), 0);
  EXPECT_EQ(Table(*m, 2)[0], 0);  // the live sequence keeps its blocks
  // Blocks filled after the reset are cached again.
  AppendOk(*m, 2, {52, 53});
  EXPECT_EQ(m->NumCachedBlocks(), 1);
  KV_EXPECT_OK(m->Free(2));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumFreeBlocks(), 8);
}

// --- Truncate (speculative decoding rollback) --------------------------------

Status TruncateOk(KvBlockManager& m, int64_t seq_id, int64_t num_tokens) {
  Status s = m.Truncate(seq_id, num_tokens);
  KV_EXPECT_OK(m.CheckInvariants());
  return s;
}

TEST(KvBlockManager, TruncateWithinABlock) {
  auto m = Make(8, 4);
  AllocateOk(*m, 1, Iota(100, 6));  // blocks 0 (full, cached) and 1 (2 of 4)
  KV_EXPECT_OK(TruncateOk(*m, 1, 5));
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1}));
  EXPECT_EQ(Tokens(*m, 1), 5);
  EXPECT_EQ(m->NumBlocksInUse(), 2);
  EXPECT_EQ(m->NumCachedBlocks(), 1);  // block 0 is wholly before the cut
  // The rolled-back slot is handed out again, in place: the block is not shared.
  KvAppend a = AppendOk(*m, 1, {205});
  EXPECT_EQ(a.slots, (Ids{1 * 4 + 1}));
  EXPECT_TRUE(a.copies.empty());
  // Keeping every token is a no-op.
  const Snapshot before = Snap(*m, {1});
  KV_EXPECT_OK(TruncateOk(*m, 1, 6));
  EXPECT_EQ(Snap(*m, {1}), before);
  KV_EXPECT_OK(m->Free(1));
  EXPECT_EQ(m->NumFreeBlocks(), 8);
}

TEST(KvBlockManager, TruncateAcrossBlocksFreesTheBlocksPastTheCut) {
  auto m = Make(8, 4);
  AllocateOk(*m, 1, {1, 2, 3});
  // Eight draft tokens for the verify forward: blocks 0 and 1 fill (and are
  // registered), block 2 holds three.
  EXPECT_EQ(AppendOk(*m, 1, Iota(10, 8)).slots, (Ids{3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1, 2}));
  EXPECT_EQ(m->NumCachedBlocks(), 2);
  // None accepted: back to the prompt and one token.
  KV_EXPECT_OK(TruncateOk(*m, 1, 2));
  EXPECT_EQ(Table(*m, 1), (Ids{0}));
  EXPECT_EQ(Tokens(*m, 1), 2);
  EXPECT_EQ(m->NumFreeBlocks(), 7);
  EXPECT_EQ(m->NumCachedBlocks(), 0);  // block 0 is partial again, block 1 free
  EXPECT_EQ(AppendOk(*m, 1, {3, 40, 41}).slots, (Ids{2, 3, 4}));  // block 1 again, a plain free block
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1}));
  KV_EXPECT_OK(m->Free(1));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumFreeBlocks(), 8);
}

TEST(KvBlockManager, TruncateToABlockBoundary) {
  auto m = Make(8, 4);
  const Ids prompt = Iota(1, 10);  // blocks 0, 1 full and cached, 2 holds two
  AllocateOk(*m, 1, prompt);
  KV_EXPECT_OK(TruncateOk(*m, 1, 8));
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1}));
  EXPECT_EQ(m->NumFreeBlocks(), 6);
  EXPECT_EQ(m->NumCachedBlocks(), 2);  // both full blocks are before the cut
  EXPECT_EQ(m->NumCachedTokens(Concat(Iota(1, 8), {50})), 8);
  // The next token opens a new block; nothing is copied.
  KvAppend a = AppendOk(*m, 1, {60});
  EXPECT_TRUE(a.copies.empty());
  EXPECT_EQ(Table(*m, 1).size(), 3u);
  // To the first boundary: block 1 goes, block 0 keeps its registration.
  KV_EXPECT_OK(TruncateOk(*m, 1, 4));
  EXPECT_EQ(Table(*m, 1), (Ids{0}));
  EXPECT_EQ(m->NumCachedBlocks(), 1);
  EXPECT_EQ(m->NumCachedTokens(prompt), 4);
  KV_EXPECT_OK(m->Free(1));
  EXPECT_EQ(m->NumFreeBlocks(), 8);
  EXPECT_EQ(m->NumCachedBlocks(), 1);  // cached free
}

TEST(KvBlockManager, TruncateAForkedSequenceLeavesItsSiblingAlone) {
  auto m = Make(8, 4);
  const Ids prompt = Iota(1, 10);  // blocks 0, 1 (cached) and 2 (2 of 4)
  AllocateOk(*m, 1, prompt);
  KV_EXPECT_OK(m->Fork(1, 2));
  KV_EXPECT_OK(TruncateOk(*m, 2, 5));
  EXPECT_EQ(Table(*m, 2), (Ids{0, 1}));
  EXPECT_EQ(Tokens(*m, 2), 5);
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1, 2}));  // the sibling keeps every block
  EXPECT_EQ(Tokens(*m, 1), 10);
  EXPECT_EQ(m->NumBlocksInUse(), 3);  // shared blocks only lost a holder
  // Block 1 is partial for sequence 2 now: it leaves the cache, although its
  // content is intact for sequence 1. Block 0 stays.
  EXPECT_EQ(m->NumCachedBlocks(), 1);
  EXPECT_EQ(m->NumCachedTokens(prompt), 4);

  // Writing into the shared partial block still copies it first.
  EXPECT_TRUE(m->CanAppendSlots(2, 1));
  KvAppend child = AppendOk(*m, 2, {99});
  EXPECT_EQ(child.copies, (std::vector<KvBlockCopy>{{.src = 1, .dst = 3}}));
  EXPECT_EQ(child.slots, (Ids{3 * 4 + 1}));
  EXPECT_EQ(Table(*m, 2), (Ids{0, 3}));
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1, 2}));
  // Sequence 1 is now the only holder of block 2: no copy.
  KvAppend parent = AppendOk(*m, 1, {11});
  EXPECT_TRUE(parent.copies.empty());
  EXPECT_EQ(parent.slots, (Ids{2 * 4 + 2}));

  // Rolling back the parent into block 0, which its child still names.
  KV_EXPECT_OK(TruncateOk(*m, 1, 3));
  EXPECT_EQ(Table(*m, 1), (Ids{0}));
  EXPECT_EQ(Table(*m, 2), (Ids{0, 3}));
  EXPECT_EQ(m->NumBlocksInUse(), 2);
  EXPECT_EQ(m->NumCachedBlocks(), 0);
  // Block 0 is shared and partial for sequence 1: copied (into block 1,
  // freed last by the truncation, so on top of the free stack).
  EXPECT_EQ(AppendOk(*m, 1, {77}).copies, (std::vector<KvBlockCopy>{{.src = 0, .dst = 1}}));
  KV_EXPECT_OK(m->Free(1));
  KV_EXPECT_OK(m->Free(2));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumFreeBlocks(), 8);
}

TEST(KvBlockManager, TruncateKeepsTheRegistrationOfABlockOthersHold) {
  auto m = Make(8, 4);
  const Ids prompt = Iota(1, 9);  // blocks 0, 1 cached, 2 holds one
  AllocateOk(*m, 1, prompt);
  EXPECT_EQ(AllocateOk(*m, 2, prompt).num_cached_tokens, 8);  // names 0 and 1 too
  KV_EXPECT_OK(TruncateOk(*m, 1, 4));
  EXPECT_EQ(Table(*m, 1), (Ids{0}));
  // Block 1 is sequence 2's own content: still a hit.
  EXPECT_EQ(m->NumCachedBlocks(), 2);
  EXPECT_EQ(m->NumCachedTokens(prompt), 8);
  KV_EXPECT_OK(m->Free(2));
  EXPECT_EQ(m->NumCachedTokens(prompt), 8);  // cached free now
  KV_EXPECT_OK(m->Free(1));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumFreeBlocks(), 8);
}

TEST(KvBlockManager, RolledBackDraftTokensAreNeverPrefixCacheHits) {
  auto m = Make(8, 4);
  AllocateOk(*m, 1, {1, 2, 3});
  AppendOk(*m, 1, {4, 5, 6, 7, 8});  // drafts: blocks 0 and 1 full, registered
  const Ids drafted = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(m->NumCachedTokens(drafted), 8);  // before the verify forward's verdict

  // Draft tokens 4 and 5 accepted, 6..8 rejected: the cut is inside block 1.
  KV_EXPECT_OK(TruncateOk(*m, 1, 5));
  EXPECT_EQ(m->NumCachedBlocks(), 1);
  EXPECT_EQ(m->NumCachedTokens(drafted), 4);
  // A new request with the rejected tokens computes them.
  EXPECT_EQ(AllocateOk(*m, 2, drafted).num_cached_tokens, 4);
  EXPECT_NE(Table(*m, 2)[1], Table(*m, 1)[1]);
  KV_EXPECT_OK(m->Free(2));

  // The accepted continuation fills block 1 again and is registered with it.
  AppendOk(*m, 1, {50, 51, 52});
  const Ids accepted = {1, 2, 3, 4, 5, 50, 51, 52, 9};
  EXPECT_EQ(m->NumCachedTokens(accepted), 8);

  // Rejections across a whole block: its last holder frees it and it leaves
  // the cache instead of staying there as cached free.
  AppendOk(*m, 1, {60, 61, 62, 63, 64});  // block 2 full, block 3 holds one
  const int64_t cached = m->NumCachedBlocks();
  KV_EXPECT_OK(TruncateOk(*m, 1, 8));
  EXPECT_EQ(m->NumCachedBlocks(), cached - 1);
  EXPECT_EQ(m->NumCachedTokens(Concat(Ids(accepted.begin(), accepted.end() - 1), {60, 61, 62, 63, 64})), 8);

  KV_EXPECT_OK(m->Free(1));
  KV_EXPECT_OK(m->CheckInvariants());
  EXPECT_EQ(m->NumFreeBlocks(), 8);
  EXPECT_EQ(m->NumCachedTokens(accepted), 8);  // what was kept stays cached free
}

TEST(KvBlockManager, TruncateErrorsChangeNothing) {
  auto m = Make(4, 4);
  AllocateOk(*m, 1, {1, 2, 3, 4, 5});
  const Snapshot before = Snap(*m, {1});
  EXPECT_EQ(m->Truncate(9, 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(m->Truncate(1, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m->Truncate(1, -2).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m->Truncate(1, 6).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(Snap(*m, {1}), before);
  KV_EXPECT_OK(m->CheckInvariants());
  KV_EXPECT_OK(m->Free(1));
}

TEST(KvBlockManager, TruncateWithPrefixCachingOff) {
  auto m = Make(4, 2, /*prefix_caching=*/false);
  AllocateOk(*m, 1, Iota(1, 7));
  KV_EXPECT_OK(TruncateOk(*m, 1, 3));
  EXPECT_EQ(Table(*m, 1), (Ids{0, 1}));
  EXPECT_EQ(m->NumFreeBlocks(), 2);
  EXPECT_EQ(AppendOk(*m, 1, {8, 9}).slots, (Ids{3, 4}));
  EXPECT_EQ(m->NumCachedBlocks(), 0);
  KV_EXPECT_OK(m->Free(1));
  EXPECT_EQ(m->NumFreeBlocks(), 4);
}

// --- Randomized --------------------------------------------------------------

/// Stands for the K/V of the token at position p: it depends on every token
/// up to p, so a slot shared by two sequences must see equal prefixes.
uint64_t PrefixKey(uint64_t key_before, int64_t token) {
  return (key_before ^ static_cast<uint64_t>(token + 1)) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
}

struct StressConfig {
  int64_t num_blocks;
  int64_t block_size;
  bool prefix_caching;
};

/// A scheduler-like workload over one manager, with a shadow K/V pool in
/// which each slot holds the PrefixKey of the token written there.
class StressRun {
 public:
  StressRun(const StressConfig& config, uint32_t seed)
      : config_(config), rng_(seed),
        pool_(static_cast<size_t>(config.num_blocks * config.block_size), 0) {
    manager_ = Make(config.num_blocks, config.block_size, config.prefix_caching);
    // A few shared prefixes drawn from a small vocabulary, so that equal
    // blocks of tokens also appear after different prefixes.
    for (int i = 0; i < 4; ++i) {
      Ids prefix(static_cast<size_t>(3 * config.block_size + 2));
      for (int64_t& t : prefix) t = Uniform(0, 3);
      prefixes_.push_back(prefix);
    }
  }

  void Run(int ops) {
    for (int op = 0; op < ops && !::testing::Test::HasFailure(); ++op) {
      const int64_t roll = Uniform(0, 99);
      if (roll < 30 || live_.empty()) {
        Allocate(next_id_++, RandomPrompt());
      } else if (roll < 55) {
        Append();
      } else if (roll < 67) {
        Truncate();
      } else if (roll < 75) {
        ForkOne();
      } else if (roll < 90 || live_.size() > 12) {
        FreeOne();
      } else if (roll < 98) {
        Preempt();
      } else {
        manager_->ResetPrefixCache();
      }
      Check();
    }
    // Every request finished or cancelled: every block is free again.
    while (!live_.empty()) FreeOne();
    KV_EXPECT_OK(manager_->CheckInvariants());
    EXPECT_EQ(manager_->NumSequences(), 0);
    EXPECT_EQ(manager_->NumBlocksInUse(), 0);
    EXPECT_EQ(manager_->NumFreeBlocks(), config_.num_blocks);
    EXPECT_EQ(manager_->UsageRatio(), 0.0);
    if (config_.prefix_caching) {
      EXPECT_GT(manager_->prefix_cache_hits(), 0);
      EXPECT_GT(manager_->prefix_cache_queries(), manager_->prefix_cache_hits());
    } else {
      EXPECT_EQ(manager_->NumCachedBlocks(), 0);
      EXPECT_EQ(manager_->prefix_cache_queries(), 0);
    }
    if (config_.block_size > 1) {
      EXPECT_GT(copies_, 0);  // size 1 has no partial block to copy
    }
    EXPECT_GT(exhausted_, 0);
    EXPECT_GT(truncations_, 0);
  }

 private:
  int64_t Uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }

  Ids RandomPrompt() {
    const Ids& prefix = prefixes_[static_cast<size_t>(Uniform(0, 3))];
    Ids prompt(prefix.begin(), prefix.begin() + Uniform(0, static_cast<int64_t>(prefix.size())));
    const int64_t suffix = Uniform(prompt.empty() ? 1 : 0, 2 * config_.block_size);
    for (int64_t i = 0; i < suffix; ++i) prompt.push_back(Uniform(0, 5));
    return prompt;
  }

  int64_t RandomLive() {
    auto it = live_.begin();
    std::advance(it, Uniform(0, static_cast<int64_t>(live_.size()) - 1));
    return it->first;
  }

  std::vector<int64_t> LiveIds() const {
    std::vector<int64_t> ids;
    for (const auto& [id, tokens] : live_) ids.push_back(id);
    return ids;
  }

  /// The forward: performs the copies, then writes the new tokens' keys.
  void Write(int64_t seq_id, int64_t first_position, const std::vector<int64_t>& slots,
             const std::vector<KvBlockCopy>& copies) {
    const int64_t bs = config_.block_size;
    for (const KvBlockCopy& c : copies) {
      std::copy_n(pool_.begin() + c.src * bs, bs, pool_.begin() + c.dst * bs);
      ++copies_;
    }
    const Ids& tokens = live_.at(seq_id);
    uint64_t key = 0;
    for (int64_t p = 0; p < static_cast<int64_t>(tokens.size()); ++p) {
      key = PrefixKey(key, tokens[static_cast<size_t>(p)]);
      if (p >= first_position) pool_[static_cast<size_t>(slots[static_cast<size_t>(p - first_position)])] = key;
    }
  }

  void Allocate(int64_t id, const Ids& prompt) {
    const bool can = manager_->CanAllocate(prompt);
    const int64_t cached = manager_->NumCachedTokens(prompt);
    const Snapshot before = Snap(*manager_, LiveIds());
    auto a = manager_->Allocate(id, prompt);
    EXPECT_EQ(a.ok(), can);
    if (!a.ok()) {
      EXPECT_TRUE(a.status().code() == StatusCode::kResourceExhausted ||
                  a.status().code() == StatusCode::kOutOfRange)
          << a.status().ToString();
      EXPECT_EQ(Snap(*manager_, LiveIds()), before);
      ++exhausted_;
      return;
    }
    EXPECT_EQ(a->num_cached_tokens, cached);
    EXPECT_EQ(a->num_cached_tokens % config_.block_size, 0);
    EXPECT_LT(a->num_cached_tokens, static_cast<int64_t>(prompt.size()));
    EXPECT_EQ(static_cast<int64_t>(a->slots.size()), static_cast<int64_t>(prompt.size()) - a->num_cached_tokens);
    live_[id] = prompt;
    Write(id, a->num_cached_tokens, a->slots, {});
  }

  void Append() {
    const int64_t id = RandomLive();
    Ids tokens(static_cast<size_t>(Uniform(0, 9) == 0 ? Uniform(0, 2 * config_.block_size) : 1));
    for (int64_t& t : tokens) t = Uniform(0, 5);
    const bool can = manager_->CanAppendSlots(id, static_cast<int64_t>(tokens.size()));
    const Snapshot before = Snap(*manager_, LiveIds());
    auto a = manager_->AppendSlots(id, tokens);
    EXPECT_EQ(a.ok(), can);
    if (!a.ok()) {
      EXPECT_TRUE(a.status().code() == StatusCode::kResourceExhausted ||
                  a.status().code() == StatusCode::kOutOfRange)
          << a.status().ToString();
      EXPECT_EQ(Snap(*manager_, LiveIds()), before);
      ++exhausted_;
      // The scheduler preempts (frees) a sequence to make room.
      FreeOne();
      return;
    }
    EXPECT_LE(a->copies.size(), 1u);
    EXPECT_EQ(a->slots.size(), tokens.size());
    const int64_t first = static_cast<int64_t>(live_[id].size());
    live_[id].insert(live_[id].end(), tokens.begin(), tokens.end());
    Write(id, first, a->slots, a->copies);
  }

  /// Speculative decoding's rollback: a sequence drops its last 1..k
  /// tokens (rejected drafts), k up to two blocks and a bit so that cuts
  /// cross blocks. Now and then a bad count, which must change nothing.
  void Truncate() {
    const int64_t id = RandomLive();
    const int64_t held = static_cast<int64_t>(live_[id].size());
    if (Uniform(0, 19) == 0) {
      const Snapshot before = Snap(*manager_, LiveIds());
      const int64_t bad = Uniform(0, 1) == 0 ? 0 : held + 1;
      EXPECT_FALSE(manager_->Truncate(id, bad).ok());
      EXPECT_EQ(Snap(*manager_, LiveIds()), before);
      return;
    }
    if (held == 1) return;
    const int64_t keep = held - Uniform(1, std::min(held - 1, 2 * config_.block_size + 2));
    KV_EXPECT_OK(manager_->Truncate(id, keep));
    live_[id].resize(static_cast<size_t>(keep));
    ++truncations_;
  }

  void ForkOne() {
    const int64_t parent = RandomLive();
    const int64_t child = next_id_++;
    KV_EXPECT_OK(manager_->Fork(parent, child));
    live_[child] = live_[parent];
  }

  void FreeOne() {
    if (live_.empty()) return;
    const int64_t id = RandomLive();
    KV_EXPECT_OK(manager_->Free(id));
    live_.erase(id);
  }

  /// Preemption by recompute: free, then allocate again with every token so
  /// far as the prompt (usually hitting its own cached blocks).
  void Preempt() {
    const int64_t id = RandomLive();
    Ids tokens = live_[id];
    KV_EXPECT_OK(manager_->Free(id));
    live_.erase(id);
    Allocate(id, tokens);
  }

  /// Invariants, and every live sequence reads back its own tokens' keys.
  void Check() {
    KV_EXPECT_OK(manager_->CheckInvariants());
    EXPECT_EQ(manager_->NumSequences(), static_cast<int64_t>(live_.size()));
    if (!config_.prefix_caching) {
      EXPECT_EQ(manager_->NumCachedBlocks(), 0);
    }
    const int64_t bs = config_.block_size;
    for (const auto& [id, tokens] : live_) {
      EXPECT_EQ(Tokens(*manager_, id), static_cast<int64_t>(tokens.size()));
      const Ids table = Table(*manager_, id);
      uint64_t key = 0;
      for (int64_t p = 0; p < static_cast<int64_t>(tokens.size()); ++p) {
        key = PrefixKey(key, tokens[static_cast<size_t>(p)]);
        const int64_t slot = table[static_cast<size_t>(p / bs)] * bs + p % bs;
        if (pool_[static_cast<size_t>(slot)] != key) {
          ADD_FAILURE() << "sequence " << id << " reads another K/V at position " << p << " (slot " << slot << ")";
          return;
        }
      }
    }
  }

  StressConfig config_;
  std::mt19937 rng_;
  std::unique_ptr<KvBlockManager> manager_;
  std::vector<uint64_t> pool_;
  std::vector<Ids> prefixes_;
  std::map<int64_t, Ids> live_;
  int64_t next_id_ = 0;
  int64_t copies_ = 0;
  int64_t exhausted_ = 0;
  int64_t truncations_ = 0;
};

TEST(KvBlockManager, RandomizedOpsKeepInvariantsAndFreeEverything) {
  const StressConfig configs[] = {
      {.num_blocks = 24, .block_size = 4, .prefix_caching = true},
      {.num_blocks = 24, .block_size = 4, .prefix_caching = false},
      {.num_blocks = 40, .block_size = 1, .prefix_caching = true},
      {.num_blocks = 30, .block_size = 3, .prefix_caching = true},
      {.num_blocks = 12, .block_size = 16, .prefix_caching = true},
  };
  for (const StressConfig& config : configs) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      SCOPED_TRACE(testing::Message() << "num_blocks " << config.num_blocks << " block_size "
                                      << config.block_size << " prefix_caching " << config.prefix_caching
                                      << " seed " << seed);
      StressRun(config, seed).Run(5000);
      if (HasFailure()) return;
    }
  }
}

}  // namespace
}  // namespace kiln::llm
