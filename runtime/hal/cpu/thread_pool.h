//===- thread_pool.h - Fixed pool that runs the workgroups of a dispatch ---===//
#ifndef KILN_RUNTIME_HAL_CPU_THREAD_POOL_H_
#define KILN_RUNTIME_HAL_CPU_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/base/status.h"

namespace kiln::hal::cpu {

/// `num_threads` threads in all: the caller of ParallelFor works too, so the
/// pool starts num_threads - 1 workers.
class ThreadPool {
 public:
  /// num_threads <= 0 means std::thread::hardware_concurrency().
  static StatusOr<std::unique_ptr<ThreadPool>> Create(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  /// Calls fn(i) exactly once for every i in [0, count), spread over the
  /// threads, and returns when all calls have returned. Concurrent callers
  /// are serialized.
  void ParallelFor(int64_t count, const std::function<void(int64_t)>& fn);

 private:
  ThreadPool() = default;
  void WorkerLoop();
  void RunItems();

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one ParallelFor at a time

  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  // Bumped per ParallelFor; workers wake on change. Atomic so that a worker
  // (and the caller waiting for it) can spin briefly before sleeping: a
  // decode step is many short dispatches, and a futex wake-up per dispatch
  // costs more than the work on a busy machine.
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  std::atomic<int> pending_workers_{0};  // workers still inside the current generation

  // The current job; stable while pending_workers_ > 0.
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t count_ = 0;
  std::atomic<int64_t> next_{0};
};

}  // namespace kiln::hal::cpu

#endif  // KILN_RUNTIME_HAL_CPU_THREAD_POOL_H_
