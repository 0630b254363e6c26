//===- thread_pool_test.cc - Every workgroup runs exactly once --------------===//
#include "runtime/hal/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace kiln::hal::cpu {
namespace {

TEST(ThreadPoolTest, RunsEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 4, 8}) {
    std::unique_ptr<ThreadPool> pool = *ThreadPool::Create(threads);
    EXPECT_EQ(pool->num_threads(), threads);
    for (int64_t count : {0, 1, 2, 3, 7, 64, 1000}) {
      for (int repeat = 0; repeat < 20; ++repeat) {
        std::vector<std::atomic<int>> hits(count);
        pool->ParallelFor(count, [&](int64_t i) { hits[i].fetch_add(1); });
        for (int64_t i = 0; i < count; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " " << count << " " << i;
      }
    }
  }
}

TEST(ThreadPoolTest, ManyShortDispatchesNeverMixJobs) {
  // Dispatches of two or three items follow each other faster than sleeping
  // workers wake: a worker that wakes late for a job must not run items of
  // it, nor of the next one under the old job's function (each job's
  // function and counters die when its ParallelFor returns).
  std::unique_ptr<ThreadPool> pool = *ThreadPool::Create(4);
  for (int job = 0; job < 20000; ++job) {
    const int64_t count = 2 + job % 2;
    std::vector<int> hits(count, 0);
    std::atomic<int> calls{0};
    pool->ParallelFor(count, [&hits, &calls, job](int64_t i) {
      ++hits[i];  // each index once: no race if exactly-once holds
      calls.fetch_add(1);
      if (job % 1000 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    });
    ASSERT_EQ(calls.load(), count) << "job " << job;
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(hits[i], 1) << "job " << job << " index " << i;
  }
}

TEST(ThreadPoolTest, UsesSeveralThreads) {
  std::unique_ptr<ThreadPool> pool = *ThreadPool::Create(4);
  std::mutex m;
  std::set<std::thread::id> ids;
  std::atomic<int> arrived{0};
  // Each item waits briefly so that the work spreads over the workers.
  pool->ParallelFor(4, [&](int64_t) {
    arrived.fetch_add(1);
    for (int spin = 0; spin < 2000 && arrived.load() < 4; ++spin) std::this_thread::sleep_for(std::chrono::microseconds(100));
    std::lock_guard<std::mutex> lock(m);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_GT(ids.size(), 1u);
}

TEST(ThreadPoolTest, ConcurrentCallersAreSerialized) {
  std::unique_ptr<ThreadPool> pool = *ThreadPool::Create(3);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int r = 0; r < 50; ++r) pool->ParallelFor(10, [&](int64_t i) { total.fetch_add(i + 1); });
    });
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(total.load(), 4 * 50 * 55);
}

TEST(ThreadPoolTest, DefaultIsHardwareConcurrency) {
  std::unique_ptr<ThreadPool> pool = *ThreadPool::Create(0);
  EXPECT_GE(pool->num_threads(), 1);
  EXPECT_FALSE(ThreadPool::Create(100000).ok());
}

}  // namespace
}  // namespace kiln::hal::cpu
