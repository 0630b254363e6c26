//===- buffer_pool.h - Reuse of freed host allocations --------------------===//
//
// An LLM forward allocates ~70 intermediate buffers and frees them again,
// every step. Straight from the C allocator, each large one is a fresh mmap
// whose pages fault in (and are zeroed by the kernel) on first touch, and is
// unmapped again on free. The pool keeps freed blocks by size class and hands
// them out again, so steady-state steps touch warm memory and make no system
// calls. Cached memory is bounded; beyond the bound blocks go back to libc.
#ifndef KILN_RUNTIME_HAL_CPU_BUFFER_POOL_H_
#define KILN_RUNTIME_HAL_CPU_BUFFER_POOL_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace kiln::hal::cpu {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  static constexpr uint64_t kAlignment = 64;

  /// `max_cached_bytes`: most bytes kept in free lists.
  static std::shared_ptr<BufferPool> Create(uint64_t max_cached_bytes);
  ~BufferPool();

  /// The size actually allocated for `size` bytes: small sizes round up to
  /// the alignment, larger ones to one of 8 classes per power of two
  /// (at most 12.5% slack), so that buffers of nearby sizes (a KV cache one
  /// token longer than last step's) share a class.
  static uint64_t SizeClass(uint64_t size);

  /// A block of SizeClass(size) bytes, 64-byte aligned, or null when memory
  /// is exhausted. Contents are unspecified.
  void* Take(uint64_t size);
  /// Returns a block from Take(size) (same `size`).
  void Give(void* block, uint64_t size);

  uint64_t cached_bytes() const;
  /// Takes served from a free list / from libc.
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  explicit BufferPool(uint64_t max_cached_bytes) : max_cached_bytes_(max_cached_bytes) {}

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::vector<void*>> free_;  // size class -> blocks
  uint64_t cached_bytes_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
  const uint64_t max_cached_bytes_;
};

}  // namespace kiln::hal::cpu

#endif  // KILN_RUNTIME_HAL_CPU_BUFFER_POOL_H_
