//===- buffer_pool.cc - Reuse of freed host allocations -------------------===//
#include "runtime/hal/cpu/buffer_pool.h"

#include <bit>
#include <cstdlib>

namespace kiln::hal::cpu {

std::shared_ptr<BufferPool> BufferPool::Create(uint64_t max_cached_bytes) {
  return std::shared_ptr<BufferPool>(new BufferPool(max_cached_bytes));
}

BufferPool::~BufferPool() {
  for (auto& [size_class, blocks] : free_)
    for (void* block : blocks) std::free(block);
}

uint64_t BufferPool::SizeClass(uint64_t size) {
  if (size <= 4096) return size == 0 ? kAlignment : (size + kAlignment - 1) / kAlignment * kAlignment;
  // 8 classes between 2^(b-1) and 2^b: steps of 2^(b-4).
  const int bits = std::bit_width(size - 1);
  const uint64_t step = uint64_t{1} << (bits - 4);
  return (size + step - 1) / step * step;
}

void* BufferPool::Take(uint64_t size) {
  const uint64_t size_class = SizeClass(size);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size_class);
    if (it != free_.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= size_class;
      ++hits_;
      return block;
    }
    ++misses_;
  }
  return std::aligned_alloc(kAlignment, size_class);
}

void BufferPool::Give(void* block, uint64_t size) {
  if (!block) return;
  const uint64_t size_class = SizeClass(size);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_bytes_ + size_class <= max_cached_bytes_) {
      free_[size_class].push_back(block);
      cached_bytes_ += size_class;
      return;
    }
  }
  std::free(block);
}

uint64_t BufferPool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_bytes_;
}
uint64_t BufferPool::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}
uint64_t BufferPool::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

}  // namespace kiln::hal::cpu
