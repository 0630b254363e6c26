//===- buffer_pool_test.cc - The cpu driver's pool of freed buffers ---------===//
#include "runtime/hal/cpu/buffer_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "runtime/hal/registry.h"

namespace kiln::hal::cpu {
namespace {

TEST(BufferPoolTest, SizeClassesBoundTheSlack) {
  EXPECT_EQ(BufferPool::SizeClass(0), 64u);
  EXPECT_EQ(BufferPool::SizeClass(1), 64u);
  EXPECT_EQ(BufferPool::SizeClass(64), 64u);
  EXPECT_EQ(BufferPool::SizeClass(65), 128u);
  EXPECT_EQ(BufferPool::SizeClass(4096), 4096u);
  EXPECT_EQ(BufferPool::SizeClass(4097), 4608u);
  for (uint64_t size = 1; size < (uint64_t{1} << 30); size = size * 3 / 2 + 7) {
    const uint64_t c = BufferPool::SizeClass(size);
    EXPECT_GE(c, size);
    EXPECT_EQ(c % 64, 0u) << size;
    if (size > 4096) EXPECT_LE(c - size, size / 8) << size;  // at most 12.5% slack
    EXPECT_EQ(BufferPool::SizeClass(c), c) << "a class is its own class";
  }
}

TEST(BufferPoolTest, ReusesFreedBlocksOfTheSameClass) {
  auto pool = BufferPool::Create(1 << 20);
  void* a = pool->Take(10000);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  std::memset(a, 1, BufferPool::SizeClass(10000));  // the whole class is usable
  pool->Give(a, 10000);
  EXPECT_EQ(pool->cached_bytes(), BufferPool::SizeClass(10000));
  void* b = pool->Take(10100);  // same class
  EXPECT_EQ(b, a);
  EXPECT_EQ(pool->hits(), 1u);
  EXPECT_EQ(pool->cached_bytes(), 0u);
  void* c = pool->Take(20000);  // another class: fresh memory
  EXPECT_NE(c, a);
  EXPECT_EQ(pool->misses(), 2u);
  pool->Give(b, 10100);
  pool->Give(c, 20000);
}

TEST(BufferPoolTest, CachesNoMoreThanItsBound) {
  auto pool = BufferPool::Create(100000);
  void* blocks[4];
  for (void*& b : blocks) b = pool->Take(40000);
  for (void* b : blocks) pool->Give(b, 40000);
  EXPECT_LE(pool->cached_bytes(), 100000u);
  EXPECT_EQ(pool->cached_bytes(), 2 * BufferPool::SizeClass(40000));
}

TEST(BufferPoolTest, DeviceBuffersOutliveTheDevice) {
  DeviceOptions options;
  options.threads = 1;
  StatusOr<std::unique_ptr<Device>> device = CreateDevice("cpu", options);
  ASSERT_TRUE(device.ok()) << device.status().message();
  StatusOr<std::shared_ptr<Buffer>> kept = (*device)->Allocate(1 << 16);
  ASSERT_TRUE(kept.ok());
  {
    // Freed and allocated again: the same memory comes back.
    StatusOr<std::shared_ptr<Buffer>> first = (*device)->Allocate(5000);
    ASSERT_TRUE(first.ok());
    void* where = (*first)->host_ptr();
    first->reset();
    StatusOr<std::shared_ptr<Buffer>> again = (*device)->Allocate(5000);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ((*again)->host_ptr(), where);
    EXPECT_EQ((*again)->size(), 5000u);
  }
  device->reset();  // the pool goes; the buffer still owns its memory
  std::memset((*kept)->host_ptr(), 7, (*kept)->size());
  kept->reset();  // freed to libc, not to the dead pool (ASan/valgrind clean)
}

}  // namespace
}  // namespace kiln::hal::cpu
