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

  // A job's state in one word: its generation (bits 32-63, bumped per
  // ParallelFor), whether it is closed to workers (bit 31) and how many
  // workers have joined it and not yet left (bits 0-30). A worker joins
  // only an open job of the generation it woke for; the caller closes the
  // job once every item is claimed and then waits only for the workers
  // that joined. A worker the OS has not scheduled yet (a busy machine, a
  // server's I/O threads on the same cores) thus never holds up a
  // dispatch: the caller runs the items itself. Atomic so that workers
  // (and the caller waiting for them) can spin briefly before sleeping: a
  // decode step is many short dispatches, and a futex wake-up per dispatch
  // costs more than the work.
  static constexpr uint64_t kClosed = uint64_t{1} << 31;
  static constexpr uint64_t kJoinedMask = kClosed - 1;
  static constexpr uint64_t kGenerationOne = uint64_t{1} << 32;
  std::atomic<uint64_t> state_{kClosed};
  bool TryJoin(uint64_t generation);
  void Leave();

  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  bool stop_ = false;

  // The current job; stable while it is open or joined workers remain.
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t count_ = 0;
  std::atomic<int64_t> next_{0};
};

}  // namespace kiln::hal::cpu

#endif  // KILN_RUNTIME_HAL_CPU_THREAD_POOL_H_
