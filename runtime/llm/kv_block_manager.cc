//===- kv_block_manager.cc - Paged KV cache block bookkeeping --------------===//
#include "runtime/llm/kv_block_manager.h"

#include <xxhash.h>

#include <algorithm>
#include <limits>
#include <utility>

namespace kiln::llm {
namespace {

/// Parent hash of a sequence's first block.
constexpr uint64_t kRootHash = 0;

/// Hash of a block holding `tokens` after the prefix hashed `parent`. Only
/// compared within one process, so the bytes' endianness does not matter.
uint64_t HashBlock(uint64_t parent, std::span<const int64_t> tokens) {
  return XXH64(tokens.data(), tokens.size_bytes(), parent);
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

StatusOr<std::unique_ptr<KvBlockManager>> KvBlockManager::Create(const KvBlockManagerOptions& options) {
  if (options.num_blocks <= 0)
    return InvalidArgumentError(StrCat("kv cache: num_blocks must be > 0, got ", options.num_blocks));
  if (options.block_size <= 0)
    return InvalidArgumentError(StrCat("kv cache: block_size must be > 0, got ", options.block_size));
  if (options.num_blocks > std::numeric_limits<int64_t>::max() / options.block_size)
    return InvalidArgumentError(StrCat("kv cache: ", options.num_blocks, " blocks of ", options.block_size,
                                       " tokens overflow the slot numbers"));
  return std::unique_ptr<KvBlockManager>(new KvBlockManager(options));
}

KvBlockManager::KvBlockManager(const KvBlockManagerOptions& options)
    : options_(options), blocks_(static_cast<size_t>(options.num_blocks)) {
  free_uncached_.reserve(blocks_.size());
  for (int64_t id = options.num_blocks - 1; id >= 0; --id) free_uncached_.push_back(id);
}

std::vector<uint64_t> KvBlockManager::FullBlockHashes(std::span<const int64_t> tokens) const {
  std::vector<uint64_t> hashes;
  if (!prefix_caching_enabled()) return hashes;
  const int64_t bs = block_size();
  const int64_t full = static_cast<int64_t>(tokens.size()) / bs;
  hashes.reserve(static_cast<size_t>(full));
  uint64_t parent = kRootHash;
  for (int64_t i = 0; i < full; ++i) {
    parent = HashBlock(parent, tokens.subspan(static_cast<size_t>(i * bs), static_cast<size_t>(bs)));
    hashes.push_back(parent);
  }
  return hashes;
}

std::vector<int64_t> KvBlockManager::FindCachedPrefix(std::span<const int64_t> prompt,
                                                      std::span<const uint64_t> hashes) const {
  std::vector<int64_t> hits;
  if (!prefix_caching_enabled() || prompt.empty()) return hits;
  const int64_t bs = block_size();
  // At least the last prompt token is computed, so that the forward has a
  // position to produce the next token's logits from.
  const int64_t reusable = std::min<int64_t>((static_cast<int64_t>(prompt.size()) - 1) / bs,
                                             static_cast<int64_t>(hashes.size()));
  for (int64_t i = 0; i < reusable; ++i) {
    auto it = cache_.find(hashes[static_cast<size_t>(i)]);
    if (it == cache_.end()) break;
    const Block& block = blocks_[static_cast<size_t>(it->second)];
    const uint64_t parent = i == 0 ? kRootHash : hashes[static_cast<size_t>(i - 1)];
    auto tokens = prompt.subspan(static_cast<size_t>(i * bs), static_cast<size_t>(bs));
    if (block.parent_hash != parent || !std::ranges::equal(block.tokens, tokens)) break;  // collision
    hits.push_back(it->second);
  }
  return hits;
}

int64_t KvBlockManager::NumCachedTokens(std::span<const int64_t> prompt) const {
  return static_cast<int64_t>(FindCachedPrefix(prompt, FullBlockHashes(prompt)).size()) * block_size();
}

bool KvBlockManager::CanAllocate(std::span<const int64_t> prompt) const {
  if (prompt.empty()) return false;
  const int64_t needed = CeilDiv(static_cast<int64_t>(prompt.size()), block_size());
  if (needed > num_blocks()) return false;
  std::vector<int64_t> hits = FindCachedPrefix(prompt, FullBlockHashes(prompt));
  int64_t revived = 0;
  for (int64_t id : hits) revived += blocks_[static_cast<size_t>(id)].ref_count == 0 ? 1 : 0;
  return needed - static_cast<int64_t>(hits.size()) <= NumFreeBlocks() - revived;
}

StatusOr<KvAllocation> KvBlockManager::Allocate(int64_t seq_id, std::span<const int64_t> prompt) {
  if (sequences_.contains(seq_id))
    return AlreadyExistsError(StrCat("kv cache: sequence ", seq_id, " already has blocks"));
  if (prompt.empty()) return InvalidArgumentError(StrCat("kv cache: sequence ", seq_id, " has an empty prompt"));
  const int64_t bs = block_size();
  const int64_t num_tokens = static_cast<int64_t>(prompt.size());
  const int64_t needed = CeilDiv(num_tokens, bs);
  if (needed > num_blocks())
    return OutOfRangeError(StrCat("kv cache: a prompt of ", num_tokens, " tokens needs ", needed,
                                  " blocks, the cache has ", num_blocks()));

  std::vector<uint64_t> hashes = FullBlockHashes(prompt);
  std::vector<int64_t> hits = FindCachedPrefix(prompt, hashes);
  int64_t revived = 0;
  for (int64_t id : hits) revived += blocks_[static_cast<size_t>(id)].ref_count == 0 ? 1 : 0;
  const int64_t fresh = needed - static_cast<int64_t>(hits.size());
  if (fresh > NumFreeBlocks() - revived)
    return ResourceExhaustedError(StrCat("kv cache: sequence ", seq_id, " needs ", fresh, " free blocks, ",
                                         NumFreeBlocks() - revived, " are free"));

  // Nothing fails from here on. Hits first, so that taking fresh blocks
  // cannot evict a block this prompt is about to reuse.
  Sequence seq;
  seq.block_table.reserve(static_cast<size_t>(needed));
  for (int64_t id : hits) {
    Block& block = blocks_[static_cast<size_t>(id)];
    if (block.ref_count == 0) lru_.erase(block.lru_pos);
    ++block.ref_count;
    seq.block_table.push_back(id);
  }
  while (static_cast<int64_t>(seq.block_table.size()) < needed) seq.block_table.push_back(TakeFreeBlock());
  seq.tokens.assign(prompt.begin(), prompt.end());
  for (size_t i = hits.size(); i < hashes.size(); ++i) {
    Register(seq.block_table[i], hashes[i], i == 0 ? kRootHash : hashes[i - 1],
             prompt.subspan(i * static_cast<size_t>(bs), static_cast<size_t>(bs)));
  }
  seq.block_hashes = std::move(hashes);

  KvAllocation allocation;
  allocation.num_cached_tokens = static_cast<int64_t>(hits.size()) * bs;
  allocation.slots.reserve(static_cast<size_t>(num_tokens - allocation.num_cached_tokens));
  for (int64_t p = allocation.num_cached_tokens; p < num_tokens; ++p)
    allocation.slots.push_back(seq.block_table[static_cast<size_t>(p / bs)] * bs + p % bs);
  if (prefix_caching_enabled()) {
    prefix_cache_queries_ += num_tokens;
    prefix_cache_hits_ += allocation.num_cached_tokens;
  }
  sequences_.emplace(seq_id, std::move(seq));
  return allocation;
}

int64_t KvBlockManager::BlocksToAppend(const Sequence& seq, int64_t num_tokens) const {
  const int64_t bs = block_size();
  const int64_t held = static_cast<int64_t>(seq.tokens.size());
  int64_t blocks = CeilDiv(held + num_tokens, bs) - static_cast<int64_t>(seq.block_table.size());
  const bool last_partial = held % bs != 0;
  if (num_tokens > 0 && last_partial && blocks_[static_cast<size_t>(seq.block_table.back())].ref_count > 1)
    ++blocks;  // copy-on-write of the shared last block
  return blocks;
}

bool KvBlockManager::CanAppendSlots(int64_t seq_id, int64_t num_tokens) const {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end() || num_tokens < 0) return false;
  const int64_t held = static_cast<int64_t>(it->second.tokens.size());
  if (num_tokens > num_blocks() * block_size() - held) return false;
  return BlocksToAppend(it->second, num_tokens) <= NumFreeBlocks();
}

StatusOr<KvAppend> KvBlockManager::AppendSlots(int64_t seq_id, std::span<const int64_t> tokens) {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) return NotFoundError(StrCat("kv cache: no sequence ", seq_id));
  Sequence& seq = it->second;
  KvAppend out;
  if (tokens.empty()) return out;
  const int64_t bs = block_size();
  const int64_t held = static_cast<int64_t>(seq.tokens.size());
  const int64_t count = static_cast<int64_t>(tokens.size());
  if (count > num_blocks() * bs - held)
    return OutOfRangeError(StrCat("kv cache: sequence ", seq_id, " of ", held, " tokens cannot grow by ", count,
                                  " in a cache of ", num_blocks() * bs, " slots"));
  const int64_t needed = BlocksToAppend(seq, count);
  if (needed > NumFreeBlocks())
    return ResourceExhaustedError(StrCat("kv cache: sequence ", seq_id, " needs ", needed, " free blocks, ",
                                         NumFreeBlocks(), " are free"));

  // Nothing fails from here on.
  if (held % bs != 0) {
    const int64_t last = seq.block_table.back();
    if (blocks_[static_cast<size_t>(last)].ref_count > 1) {
      const int64_t copy = TakeFreeBlock();
      --blocks_[static_cast<size_t>(last)].ref_count;  // still named by another sequence
      seq.block_table.back() = copy;
      out.copies.push_back({.src = last, .dst = copy});
    }
  }
  const int64_t total = held + count;
  while (static_cast<int64_t>(seq.block_table.size()) < CeilDiv(total, bs)) seq.block_table.push_back(TakeFreeBlock());
  seq.tokens.insert(seq.tokens.end(), tokens.begin(), tokens.end());
  out.slots.reserve(tokens.size());
  for (int64_t p = held; p < total; ++p)
    out.slots.push_back(seq.block_table[static_cast<size_t>(p / bs)] * bs + p % bs);

  if (prefix_caching_enabled()) {
    std::span<const int64_t> all(seq.tokens);
    for (int64_t i = held / bs; i < total / bs; ++i) {
      const uint64_t parent = i == 0 ? kRootHash : seq.block_hashes[static_cast<size_t>(i - 1)];
      auto block_tokens = all.subspan(static_cast<size_t>(i * bs), static_cast<size_t>(bs));
      const uint64_t hash = HashBlock(parent, block_tokens);
      seq.block_hashes.push_back(hash);
      Register(seq.block_table[static_cast<size_t>(i)], hash, parent, block_tokens);
    }
  }
  return out;
}

Status KvBlockManager::Fork(int64_t parent_id, int64_t child_id) {
  auto it = sequences_.find(parent_id);
  if (it == sequences_.end()) return NotFoundError(StrCat("kv cache: no sequence ", parent_id, " to fork"));
  if (sequences_.contains(child_id))
    return AlreadyExistsError(StrCat("kv cache: sequence ", child_id, " already has blocks"));
  Sequence child = it->second;  // copied before emplace may rehash
  for (int64_t id : child.block_table) ++blocks_[static_cast<size_t>(id)].ref_count;
  sequences_.emplace(child_id, std::move(child));
  return OkStatus();
}

Status KvBlockManager::Free(int64_t seq_id) {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) return NotFoundError(StrCat("kv cache: no sequence ", seq_id, " to free"));
  // Last block first: the tail of a prefix goes to the LRU list before its
  // head, so it is evicted first and the shorter prefix keeps hitting.
  const std::vector<int64_t>& table = it->second.block_table;
  for (auto block = table.rbegin(); block != table.rend(); ++block) Release(*block);
  sequences_.erase(it);
  return OkStatus();
}

Status KvBlockManager::Truncate(int64_t seq_id, int64_t num_tokens) {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) return NotFoundError(StrCat("kv cache: no sequence ", seq_id, " to truncate"));
  Sequence& seq = it->second;
  const int64_t held = static_cast<int64_t>(seq.tokens.size());
  if (num_tokens < 1)
    return InvalidArgumentError(StrCat("kv cache: sequence ", seq_id, " cannot be truncated to ", num_tokens,
                                       " tokens (free it instead)"));
  if (num_tokens > held)
    return OutOfRangeError(StrCat("kv cache: sequence ", seq_id, " holds ", held, " tokens, cannot keep ",
                                  num_tokens));
  if (num_tokens == held) return OkStatus();

  // Nothing fails from here on. Blocks past the cut, last first (as Free).
  const int64_t bs = block_size();
  const size_t keep_blocks = static_cast<size_t>(CeilDiv(num_tokens, bs));
  for (size_t i = seq.block_table.size(); i-- > keep_blocks;) {
    const int64_t id = seq.block_table[i];
    // Its last holder lets it go: forget the rolled-back content first, so
    // that Release makes it a plain free block rather than a cached free one.
    if (blocks_[static_cast<size_t>(id)].ref_count == 1) Unregister(id);
    Release(id);
  }
  seq.block_table.resize(keep_blocks);
  // The kept partial block was full (and perhaps registered) with tokens
  // past the cut; its slots from the cut on will be overwritten.
  if (num_tokens % bs != 0) Unregister(seq.block_table.back());
  seq.tokens.resize(static_cast<size_t>(num_tokens));
  seq.block_hashes.resize(std::min(seq.block_hashes.size(), static_cast<size_t>(num_tokens / bs)));
  return OkStatus();
}

void KvBlockManager::ResetPrefixCache() {
  for (int64_t id : lru_) {
    Unregister(id);
    free_uncached_.push_back(id);
  }
  lru_.clear();
  std::vector<int64_t> in_use;
  in_use.reserve(cache_.size());
  for (const auto& [hash, id] : cache_) in_use.push_back(id);
  for (int64_t id : in_use) Unregister(id);
}

StatusOr<std::span<const int64_t>> KvBlockManager::BlockTable(int64_t seq_id) const {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) return NotFoundError(StrCat("kv cache: no sequence ", seq_id));
  return std::span<const int64_t>(it->second.block_table);
}

StatusOr<int64_t> KvBlockManager::NumTokens(int64_t seq_id) const {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) return NotFoundError(StrCat("kv cache: no sequence ", seq_id));
  return static_cast<int64_t>(it->second.tokens.size());
}

int64_t KvBlockManager::NumFreeBlocks() const {
  return static_cast<int64_t>(free_uncached_.size() + lru_.size());
}

double KvBlockManager::UsageRatio() const {
  return static_cast<double>(NumBlocksInUse()) / static_cast<double>(num_blocks());
}

int64_t KvBlockManager::TakeFreeBlock() {
  int64_t id;
  if (!free_uncached_.empty()) {
    id = free_uncached_.back();
    free_uncached_.pop_back();
  } else {
    id = lru_.front();
    lru_.pop_front();
    Unregister(id);
  }
  blocks_[static_cast<size_t>(id)].ref_count = 1;
  return id;
}

void KvBlockManager::Release(int64_t id) {
  Block& block = blocks_[static_cast<size_t>(id)];
  if (--block.ref_count > 0) return;
  if (block.cached) {
    block.lru_pos = lru_.insert(lru_.end(), id);
  } else {
    free_uncached_.push_back(id);
  }
}

void KvBlockManager::Register(int64_t id, uint64_t hash, uint64_t parent_hash, std::span<const int64_t> tokens) {
  // Another block already holds this prefix (computed at the same time), or
  // a 64-bit collision: keep the first, this one stays uncached.
  if (!prefix_caching_enabled() || cache_.contains(hash)) return;
  Block& block = blocks_[static_cast<size_t>(id)];
  block.cached = true;
  block.hash = hash;
  block.parent_hash = parent_hash;
  block.tokens.assign(tokens.begin(), tokens.end());
  cache_.emplace(hash, id);
}

void KvBlockManager::Unregister(int64_t id) {
  Block& block = blocks_[static_cast<size_t>(id)];
  if (!block.cached) return;
  cache_.erase(block.hash);
  block.cached = false;
  block.hash = 0;
  block.parent_hash = 0;
  block.tokens.clear();
}

Status KvBlockManager::CheckInvariants() const {
  const int64_t n = num_blocks();
  const int64_t bs = block_size();
  auto broken = [](auto&&... parts) { return InternalError(StrCat("kv cache invariant: ", parts...)); };

  // Where each free block is listed: 0 = nowhere, 1 = free_uncached_, 2 = lru_.
  std::vector<int> listed(static_cast<size_t>(n), 0);
  for (int64_t id : free_uncached_) {
    if (id < 0 || id >= n) return broken("free list holds id ", id);
    if (listed[static_cast<size_t>(id)] != 0) return broken("block ", id, " is listed free twice");
    listed[static_cast<size_t>(id)] = 1;
  }
  for (auto pos = lru_.begin(); pos != lru_.end(); ++pos) {
    const int64_t id = *pos;
    if (id < 0 || id >= n) return broken("LRU list holds id ", id);
    if (listed[static_cast<size_t>(id)] != 0) return broken("block ", id, " is listed free twice");
    listed[static_cast<size_t>(id)] = 2;
    if (blocks_[static_cast<size_t>(id)].lru_pos != pos) return broken("block ", id, " has a stale LRU position");
  }

  std::vector<int64_t> refs(static_cast<size_t>(n), 0);
  for (const auto& [seq_id, seq] : sequences_) {
    const int64_t tokens = static_cast<int64_t>(seq.tokens.size());
    if (tokens == 0) return broken("sequence ", seq_id, " has no tokens");
    if (static_cast<int64_t>(seq.block_table.size()) != CeilDiv(tokens, bs))
      return broken("sequence ", seq_id, " has ", seq.block_table.size(), " blocks for ", tokens, " tokens");
    std::vector<uint64_t> hashes = FullBlockHashes(seq.tokens);
    if (seq.block_hashes != hashes) return broken("sequence ", seq_id, " has stale block hashes");
    for (size_t i = 0; i < seq.block_table.size(); ++i) {
      const int64_t id = seq.block_table[i];
      if (id < 0 || id >= n) return broken("sequence ", seq_id, " names block ", id);
      ++refs[static_cast<size_t>(id)];
      const Block& block = blocks_[static_cast<size_t>(id)];
      if (!block.cached) continue;
      if (i >= hashes.size()) return broken("sequence ", seq_id, " has its partial block ", id, " cached");
      if (block.hash != hashes[i])
        return broken("sequence ", seq_id, " block ", i, " (", id, ") is cached with other content");
    }
  }

  int64_t in_use = 0;
  for (int64_t id = 0; id < n; ++id) {
    const Block& block = blocks_[static_cast<size_t>(id)];
    const int where = listed[static_cast<size_t>(id)];
    if (block.ref_count != refs[static_cast<size_t>(id)])
      return broken("block ", id, " counts ", block.ref_count, " references, tables name it ",
                    refs[static_cast<size_t>(id)], " times");
    if (block.ref_count > 0) {
      ++in_use;
      if (where != 0) return broken("block ", id, " is in use and listed free");
    } else if (where == 0) {
      return broken("block ", id, " is neither in use nor free");
    } else if ((where == 2) != block.cached) {
      return broken("block ", id,
                    block.cached ? " is cached but on the plain free list" : " is uncached in the LRU list");
    }
    if (block.cached) {
      if (!prefix_caching_enabled()) return broken("block ", id, " is cached with prefix caching off");
      auto entry = cache_.find(block.hash);
      if (entry == cache_.end() || entry->second != id) return broken("cached block ", id, " is not in the map");
      if (static_cast<int64_t>(block.tokens.size()) != bs || HashBlock(block.parent_hash, block.tokens) != block.hash)
        return broken("cached block ", id, " does not hash to its key");
    } else if (!block.tokens.empty()) {
      return broken("uncached block ", id, " keeps tokens");
    }
  }
  for (const auto& [hash, id] : cache_) {
    if (id < 0 || id >= n) return broken("cache maps to id ", id);
    const Block& block = blocks_[static_cast<size_t>(id)];
    if (!block.cached || block.hash != hash) return broken("cache entry names block ", id, " which holds another hash");
  }
  if (in_use + NumFreeBlocks() != n)
    return broken(in_use, " blocks in use and ", NumFreeBlocks(), " free make no ", n);
  return OkStatus();
}

}  // namespace kiln::llm
