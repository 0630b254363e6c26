//===- thread_pool.cc - Fixed pool that runs the workgroups of a dispatch --===//
#include "runtime/hal/cpu/thread_pool.h"

#include <system_error>

namespace kiln::hal::cpu {
namespace {
/// Spins this many rounds (about 0.2 ms) for the next dispatch or for the
/// workers to finish before blocking on a condition variable.
constexpr int kSpinRounds = 4000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
}  // namespace

StatusOr<std::unique_ptr<ThreadPool>> ThreadPool::Create(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (num_threads <= 0) num_threads = 1;
  if (num_threads > 4096) return InvalidArgumentError(StrCat("too many threads: ", num_threads));
  std::unique_ptr<ThreadPool> pool(new ThreadPool());
  // std::thread reports failure by exception; keep it inside this function.
  try {
    for (int i = 1; i < num_threads; ++i) pool->workers_.emplace_back([p = pool.get()] { p->WorkerLoop(); });
  } catch (const std::system_error& e) {
    return ResourceExhaustedError(StrCat("cannot start ", num_threads, " threads: ", e.what()));
  }
  return pool;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t count, const std::function<void(int64_t)>& fn) {
  if (count <= 0) return;
  // One item or no workers: waking threads would only cost time.
  if (count == 1 || workers_.empty()) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  {
    // The previous job is closed with nobody in it: nobody reads these.
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    count_ = count;
    next_.store(0, std::memory_order_relaxed);
    const uint64_t generation = (state_.load(std::memory_order_relaxed) >> 32) + 1;
    state_.store(generation << 32, std::memory_order_release);  // open, nobody joined
  }
  work_cv_.notify_all();
  RunItems();
  // Every item is claimed: close the job, then wait for those that joined.
  if ((state_.fetch_or(kClosed, std::memory_order_acq_rel) & kJoinedMask) != 0) {
    for (int i = 0; i < kSpinRounds && (state_.load(std::memory_order_acquire) & kJoinedMask) != 0; ++i)
      CpuRelax();
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [this] { return (state_.load(std::memory_order_acquire) & kJoinedMask) == 0; });
  }
  fn_ = nullptr;
}

bool ThreadPool::TryJoin(uint64_t generation) {
  uint64_t s = state_.load(std::memory_order_acquire);
  while ((s >> 32) == generation && !(s & kClosed)) {
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) return true;
  }
  return false;
}

void ThreadPool::Leave() {
  const uint64_t before = state_.fetch_sub(1, std::memory_order_acq_rel);
  if ((before & kClosed) && (before & kJoinedMask) == 1) {
    // The last one out of a closed job: the caller may be asleep.
    std::lock_guard<std::mutex> lock(mutex_);
    done_cv_.notify_one();
  }
}

void ThreadPool::RunItems() {
  for (int64_t i = next_.fetch_add(1); i < count_; i = next_.fetch_add(1)) (*fn_)(i);
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;  // the last generation this worker woke for
  auto current = [this] { return state_.load(std::memory_order_acquire) >> 32; };
  while (true) {
    for (int i = 0; i < kSpinRounds && current() == seen; ++i) CpuRelax();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stop_ || current() != seen; });
      if (stop_) return;
      seen = current();
    }
    // A job that closed while this worker slept is simply skipped.
    if (!TryJoin(seen)) continue;
    RunItems();
    Leave();
  }
}

}  // namespace kiln::hal::cpu
