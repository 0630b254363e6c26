//===- kv_block_manager.h - Paged KV cache: which blocks each sequence owns -===//
//
// The paged KV cache keeps every layer's keys and values in pools shaped
// [num_blocks, block_size, kv_heads, head_dim]. A sequence owns a block table
// (logical block i -> physical block id), and the K/V of its token at
// position p lives in slot `table[p / block_size] * block_size +
// p % block_size` of every pool. KvBlockManager decides which physical blocks
// each sequence holds; it is bookkeeping over the ids 0..num_blocks-1 and
// knows nothing of tensors.
//
// Blocks are reference counted: a block is shared by the sequences whose
// tables name it. Sharing comes from two places:
//  - Fork (n > 1 completions of one prompt): the child names every block of
//    its parent. A shared block that is not yet full is copied before it is
//    written (copy-on-write): AppendSlots then reports a KvBlockCopy that the
//    caller performs on every pool before the forward.
//  - Prefix caching: a full block is registered under the hash of its whole
//    prefix (hash of the previous block chained with this block's token ids),
//    so a later prompt that starts with the same tokens names the cached
//    blocks instead of computing them again. A block whose last holder frees
//    it stays in the cache, "cached free", until a fresh block is needed and
//    no never-cached free block is left; cached free blocks are then evicted
//    least recently used first.
//
// Identity of cached content: a 64-bit XXH64 chain. Each cached block keeps
// its own token ids and its parent's hash, and a hit needs both to match, so
// two blocks with different tokens never alias; what remains is two
// different prefixes whose 64-bit hashes collide and which continue with the
// same block of tokens (about 2^-64 per pair of prefixes). vLLM accepts the
// same kind of risk.
//
// Contract with the caller: the slots that Allocate and AppendSlots hand out
// must be written by the next forward (after the copies AppendSlots reports)
// before any other forward reads them, because a block becomes reusable
// through the cache as soon as its slots are assigned. A request that hits
// such a block in the same forward is fine when, as in the compiled model,
// every layer writes the batch's new K/V before its attention reads. If a
// forward fails after slots were handed out, free the sequences and call
// ResetPrefixCache() so that no block with unwritten K/V is reused.
//
// Not thread-safe: the scheduler loop that owns the sequences calls it from
// one thread. Every operation is O(1) per block it touches (plus hashing the
// tokens it is given), except CheckInvariants.
#ifndef KILN_RUNTIME_LLM_KV_BLOCK_MANAGER_H_
#define KILN_RUNTIME_LLM_KV_BLOCK_MANAGER_H_

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/base/status.h"

namespace kiln::llm {

struct KvBlockManagerOptions {
  /// Physical blocks in each K/V pool, ids 0..num_blocks-1. Must be > 0.
  int64_t num_blocks = 0;
  /// Tokens per block. Must be > 0.
  int64_t block_size = 16;
  /// Reuse full blocks of earlier prompts with the same prefix. When off, no
  /// hash is computed or kept and freed blocks are plain free blocks.
  bool enable_prefix_caching = true;
};

/// Copy block `src` to block `dst` in every layer's K and V pools, before the
/// forward that writes the slots returned with it.
struct KvBlockCopy {
  int64_t src = 0;
  int64_t dst = 0;
  bool operator==(const KvBlockCopy&) const = default;
};

/// What Allocate gives a new sequence.
struct KvAllocation {
  /// Leading prompt tokens whose K/V is already in the sequence's blocks (a
  /// prefix cache hit): a multiple of block_size, always less than the prompt
  /// length so that the forward computes at least the last token's logits.
  int64_t num_cached_tokens = 0;
  /// Slot of each prompt token from num_cached_tokens on, in order: where the
  /// forward writes their K/V.
  std::vector<int64_t> slots;
};

/// What AppendSlots gives for the tokens it appends.
struct KvAppend {
  /// Slot of each appended token, in order.
  std::vector<int64_t> slots;
  /// Copy-on-write the caller performs before the forward (at most one: the
  /// sequence's last block, when it was shared and not full).
  std::vector<KvBlockCopy> copies;
};

class KvBlockManager {
 public:
  /// Checks the options (num_blocks > 0, block_size > 0, slots fit int64).
  static StatusOr<std::unique_ptr<KvBlockManager>> Create(const KvBlockManagerOptions& options);

  KvBlockManager(const KvBlockManager&) = delete;
  KvBlockManager& operator=(const KvBlockManager&) = delete;

  // --- Sequences ------------------------------------------------------------

  /// Whether Allocate(prompt) would succeed now for a new id: the blocks it
  /// needs beyond its prefix cache hits are free (a hit on a cached free
  /// block takes that block out of the free ones).
  bool CanAllocate(std::span<const int64_t> prompt) const;

  /// Leading tokens of `prompt` that Allocate would find cached now (the
  /// num_cached_tokens it would return). Changes nothing, counts nothing.
  int64_t NumCachedTokens(std::span<const int64_t> prompt) const;

  /// Gives new sequence `seq_id` the blocks for `prompt`: cached blocks for
  /// its longest cached prefix of full blocks, fresh blocks for the rest.
  /// Full blocks of the prompt that were not hits are registered in the
  /// prefix cache. Errors, which change nothing: AlreadyExists (id in use),
  /// InvalidArgument (empty prompt), OutOfRange (needs more blocks than the
  /// cache has: it can never fit), ResourceExhausted (not enough free blocks
  /// now: free or preempt a sequence and retry).
  StatusOr<KvAllocation> Allocate(int64_t seq_id, std::span<const int64_t> prompt);

  /// Whether AppendSlots(seq_id, <n tokens>) would succeed now (counting the
  /// copy-on-write block). False for an unknown id.
  bool CanAppendSlots(int64_t seq_id, int64_t num_tokens) const;

  /// Appends `tokens` (the ids the next forward feeds for this sequence) and
  /// returns their slots, taking a fresh block whenever the last one is full.
  /// When the last block is shared and not full, the sequence gets a fresh
  /// copy of it first (reported in `copies`); the other holders keep the
  /// original. Blocks that become full are registered in the prefix cache.
  /// Errors, which change nothing: NotFound (unknown id), OutOfRange (the
  /// sequence would need more blocks than the cache has), ResourceExhausted
  /// (not enough free blocks now). Appending no token is a no-op.
  StatusOr<KvAppend> AppendSlots(int64_t seq_id, std::span<const int64_t> tokens);

  /// New sequence `child_id` sharing every block and token of `parent_id`
  /// (n > 1 completions of one prompt); takes no block. Errors: NotFound
  /// (unknown parent), AlreadyExists (child id in use).
  Status Fork(int64_t parent_id, int64_t child_id);

  /// Rolls the sequence back to its first `num_tokens` tokens (speculative
  /// decoding: the K/V of rejected draft tokens). Blocks that no longer hold
  /// any of its tokens are released like Free releases them, except that a
  /// block which becomes free leaves the prefix cache: its registered content
  /// held rolled-back tokens, which must never be served as a hit. A shared
  /// block only loses this holder and keeps its registration (its content is
  /// the other holders' own tokens). The partially kept last block stays in
  /// the table (its later slots are overwritten by the next AppendSlots, after
  /// a copy if it is shared) and leaves the prefix cache if it was there,
  /// whoever else holds it, since a partial block is never cached. Full blocks
  /// before the cut keep their registration. Keeping every token is a no-op.
  /// Errors, which change nothing: NotFound (unknown id), InvalidArgument
  /// (num_tokens < 1: Free the sequence instead), OutOfRange (num_tokens is
  /// more than the sequence holds).
  Status Truncate(int64_t seq_id, int64_t num_tokens);

  /// Releases the sequence (finished, cancelled or preempted). A block no
  /// longer named by any sequence becomes free; if it is in the prefix cache
  /// it stays there as cached free (its last block is the first to be
  /// evicted). Error: NotFound (unknown id).
  Status Free(int64_t seq_id);

  /// Forgets every cached prefix: cached free blocks become plain free
  /// blocks and blocks in use are no longer found by lookups (sequences keep
  /// them). For use after a failed forward, or when the weights change.
  void ResetPrefixCache();

  // --- Queries --------------------------------------------------------------

  /// Physical block ids of the sequence, logical order. The span is valid
  /// until the next call that changes this manager. NotFound for an unknown id.
  StatusOr<std::span<const int64_t>> BlockTable(int64_t seq_id) const;
  /// Tokens the sequence holds slots for. NotFound for an unknown id.
  StatusOr<int64_t> NumTokens(int64_t seq_id) const;
  bool HasSequence(int64_t seq_id) const { return sequences_.contains(seq_id); }
  int64_t NumSequences() const { return static_cast<int64_t>(sequences_.size()); }

  /// Blocks no sequence names, cached free ones included.
  int64_t NumFreeBlocks() const;
  /// Blocks named by at least one sequence.
  int64_t NumBlocksInUse() const { return num_blocks() - NumFreeBlocks(); }
  /// NumBlocksInUse() / num_blocks(): the cache usage a server reports.
  double UsageRatio() const;
  /// Blocks registered in the prefix cache (in use or cached free).
  int64_t NumCachedBlocks() const { return static_cast<int64_t>(cache_.size()); }

  /// Prefix cache counters, in tokens, counted by successful Allocate calls
  /// while prefix caching is on: queries add the prompt length, hits add
  /// num_cached_tokens (vLLM counts the same way). hits / queries is the hit
  /// rate (kiln_prefix_cache_hits_total / kiln_prefix_cache_queries_total).
  int64_t prefix_cache_queries() const { return prefix_cache_queries_; }
  int64_t prefix_cache_hits() const { return prefix_cache_hits_; }

  int64_t num_blocks() const { return options_.num_blocks; }
  int64_t block_size() const { return options_.block_size; }
  bool prefix_caching_enabled() const { return options_.enable_prefix_caching; }

  /// Internal error naming the first broken invariant: each block is exactly
  /// one of free, cached free (reference count 0, in the LRU list) or in use
  /// (count > 0); counts equal the number of block table entries naming the
  /// block; every cache entry names a block registered under that hash whose
  /// hash matches its parent hash and tokens; a sequence's cached blocks hold
  /// its own tokens; tables fit the token counts. O(blocks + tokens): for
  /// tests and debugging.
  Status CheckInvariants() const;

 private:
  struct Block {
    /// Block table entries naming this block.
    int64_t ref_count = 0;
    /// Registered in cache_ under `hash` (only full blocks are).
    bool cached = false;
    uint64_t hash = 0;
    /// Hash of the block before it in the prefix (a fixed root for the first).
    uint64_t parent_hash = 0;
    /// The block's token ids while cached, to rule out collisions.
    std::vector<int64_t> tokens;
    /// Position in lru_ while cached and free.
    std::list<int64_t>::iterator lru_pos;
  };
  struct Sequence {
    std::vector<int64_t> block_table;
    std::vector<int64_t> tokens;
    /// Chained hash of each full block (empty when prefix caching is off).
    std::vector<uint64_t> block_hashes;
  };

  explicit KvBlockManager(const KvBlockManagerOptions& options);

  /// Hashes of the full blocks of `tokens` (none when caching is off).
  std::vector<uint64_t> FullBlockHashes(std::span<const int64_t> tokens) const;
  /// Cached blocks holding the longest prefix of full blocks of `prompt`
  /// that may be reused (never the whole prompt).
  std::vector<int64_t> FindCachedPrefix(std::span<const int64_t> prompt,
                                        std::span<const uint64_t> hashes) const;
  /// Free blocks AppendSlots would need, copy-on-write included.
  int64_t BlocksToAppend(const Sequence& seq, int64_t num_tokens) const;
  /// Takes a free block (never-cached first, else evicts the least recently
  /// used cached free one) with reference count 1. Callers check first that
  /// one is free.
  int64_t TakeFreeBlock();
  /// Drops one reference; at zero the block becomes (cached) free.
  void Release(int64_t block);
  /// Registers full block `block` holding `tokens` after the prefix hashed
  /// `parent_hash`, unless another block already holds that hash.
  void Register(int64_t block, uint64_t hash, uint64_t parent_hash, std::span<const int64_t> tokens);
  /// Removes the block from the prefix cache.
  void Unregister(int64_t block);

  KvBlockManagerOptions options_;
  std::vector<Block> blocks_;
  /// Free blocks not in the prefix cache, used as a stack (lowest id on top
  /// at first, so a fresh manager hands out 0, 1, 2, ...).
  std::vector<int64_t> free_uncached_;
  /// Cached free blocks, least recently used (first to evict) at the front.
  std::list<int64_t> lru_;
  /// Prefix hash -> the block registered under it.
  std::unordered_map<uint64_t, int64_t> cache_;
  std::unordered_map<int64_t, Sequence> sequences_;
  int64_t prefix_cache_queries_ = 0;
  int64_t prefix_cache_hits_ = 0;
};

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_KV_BLOCK_MANAGER_H_
