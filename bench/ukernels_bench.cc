//===- ukernels_bench.cc - Throughput of the CPU microkernels -------------===//
//
// Google Benchmark: GFLOP/s of matmul (M = 1, 16, 128, 512 on the LLaMA-ish
// shapes (K, N) = (256, 768), (1024, 2816), (2816, 1024)), GB/s of the M = 1
// GEMV (in cache, and streaming weights several times larger than L3),
// attention for decode (S = 1, T = 512) and prefill (S = T = 256), and two
// yardsticks: the machine's read bandwidth (a plain vector sum) and its FMA
// peak (independent FMA chains in registers). Every case runs on 1 and 2
// threads: workgroups on a small pool of persistent threads, so thread
// start-up is not timed. Correctness is ukernels_test.cc's job.
//
//   build/targets/cpu/ukernels/kiln-ukernels-bench [--benchmark_filter=...]
//
//===----------------------------------------------------------------------===//
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "ukernels.h"

namespace {

using std::int64_t;

// Runs fn(wg) for wg = 0..n-1, wg 0 on the caller and the others on n-1
// workers. Workers spin briefly between calls, then sleep on the atomic
// (futex): spinning alone collapses when the machine is shared and a
// spinning worker loses its core for a whole time slice.
class SpinPool {
 public:
  explicit SpinPool(int n) : n_(n) {
    for (int t = 1; t < n; ++t) workers_.emplace_back([this, t] { Work(t); });
  }
  ~SpinPool() {
    stop_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();
    for (auto &w : workers_) w.join();
  }
  void Run(const std::function<void(int64_t)> &fn) {
    fn_ = &fn;
    pending_.store(n_ - 1);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    fn(0);
    for (int spins = 0;; ++spins) {
      int left = pending_.load(std::memory_order_acquire);
      if (left == 0) break;
      if (spins > kSpins) pending_.wait(left, std::memory_order_acquire);
    }
  }
  int size() const { return n_; }

 private:
  static constexpr int kSpins = 20000;
  void Work(int t) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t g;
      for (int spins = 0; (g = generation_.load(std::memory_order_acquire)) == seen; ++spins)
        if (spins > kSpins) generation_.wait(seen, std::memory_order_acquire);
      seen = g;
      if (stop_.load()) return;
      (*fn_)(t);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
    }
  }
  const int n_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int64_t)> *fn_ = nullptr;
};

SpinPool &Pool(int threads) {
  static std::unique_ptr<SpinPool> pool;
  if (!pool || pool->size() != threads) {
    pool.reset();
    pool = std::make_unique<SpinPool>(threads);
  }
  return *pool;
}

// 64-byte aligned floats (packed weights must be).
struct Buffer {
  explicit Buffer(size_t n, float fill = 0.0f)
      : p(static_cast<float *>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64))), n(n) {
    for (size_t i = 0; i < n; ++i) p[i] = fill;
  }
  ~Buffer() { std::free(p); }
  Buffer(const Buffer &) = delete;
  Buffer(Buffer &&o) noexcept : p(o.p), n(o.n) { o.p = nullptr; }
  float *p;
  size_t n;
};

Buffer RandomBuffer(size_t n, uint32_t seed) {
  Buffer b(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (size_t i = 0; i < n; ++i) b.p[i] = d(rng);
  return b;
}

// args: M, K, N, threads, copies of the weights cycled through (1 = in cache).
void BM_Matmul(benchmark::State &state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const int threads = static_cast<int>(state.range(3)), copies = static_cast<int>(state.range(4));
  Buffer A = RandomBuffer(M * K, 1), C(M * N);
  std::vector<Buffer> packed;
  {
    Buffer B = RandomBuffer(K * N, 2);
    for (int c = 0; c < copies; ++c) {
      packed.emplace_back(kiln_uk_packed_b_size(K, N));
      kiln_uk_pack_b_f32(B.p, K, N, packed.back().p);
    }
  }
  SpinPool &pool = Pool(threads);
  int which = 0;
  for (auto _ : state) {
    const float *w = packed[which].p;
    which = (which + 1) % copies;
    pool.Run([&](int64_t wg) {
      kiln_uk_matmul_f32(A.p, M, K, w, N, nullptr, nullptr, KILN_UK_ACT_NONE, C.p, wg, threads);
    });
    benchmark::ClobberMemory();
  }
  const double weight_bytes = 4.0 * kiln_uk_packed_b_size(K, N);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * K * N * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weights_GB/s"] =
      benchmark::Counter(weight_bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weights_MiB"] = weight_bytes * copies / (1 << 20);
}

void MatmulArgs(benchmark::internal::Benchmark *b) {
  b->ArgNames({"M", "K", "N", "threads", "copies"});
  for (int threads : {1, 2})
    for (int64_t M : {1, 16, 32, 128, 512})
      for (auto [K, N] : {std::pair<int64_t, int64_t>{256, 768}, {1024, 2816}, {2816, 1024}})
        b->Args({M, K, N, threads, 1});
  // Small M with weights far larger than L3 (8 x 11 MiB cycled): memory
  // bound, as decode (M = 1), speculative verification (M = k + 1) and
  // small batches are; each should cost about what M = 1 costs.
  for (int threads : {1, 2})
    for (int64_t M : {1, 2, 3, 4, 5, 8}) b->Args({M, 1024, 2816, threads, 8});
}
BENCHMARK(BM_Matmul)->Apply(MatmulArgs)->UseRealTime();

// The quantized matmul. args: M, K, N, bits, group (0 = K), threads, copies.
// weights_GB/s counts the packed bytes (integers + scales + zero points),
// the bytes the kernel actually reads.
/// The timed part every packed-weight matmul benchmark shares: each
/// iteration runs `matmul(weights, wg)` on the next of the `copies` packings
/// (copies > 1 streams weights from memory rather than cache) across
/// `threads` workgroups, then reports the rate of 2*M*K*N operations under
/// `rate_name`, the weight bytes read per second and the weights' footprint.
template <typename MatmulFn>
void RunPackedMatmul(benchmark::State &state, const std::vector<Buffer> &packed, int64_t size,
                     int threads, int64_t M, int64_t K, int64_t N, const char *rate_name,
                     MatmulFn matmul) {
  const int copies = static_cast<int>(packed.size());
  SpinPool &pool = Pool(threads);
  int which = 0;
  for (auto _ : state) {
    const auto *w = reinterpret_cast<const uint8_t *>(packed[which].p);
    which = (which + 1) % copies;
    pool.Run([&](int64_t wg) { matmul(w, wg); });
    benchmark::ClobberMemory();
  }
  state.counters[rate_name] = benchmark::Counter(2.0 * M * K * N * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weights_GB/s"] =
      benchmark::Counter(size * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weights_MiB"] = double(size) * copies / (1 << 20);
}

void BM_QMatmul(benchmark::State &state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const int32_t bits = static_cast<int32_t>(state.range(3));
  const int64_t group = state.range(4) ? state.range(4) : K;
  const int threads = static_cast<int>(state.range(5)), copies = static_cast<int>(state.range(6));
  const int32_t has_zp = bits == 4;
  Buffer A = RandomBuffer(M * K, 1), C(M * N);
  const int64_t size = kiln_uk_packed_q_size(K, N, bits, group, has_zp);
  std::vector<Buffer> packed;
  {
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> qd(bits == 8 ? -127 : 0, bits == 8 ? 127 : 15);
    std::vector<int8_t> q(K * N), zp((K / group) * N, 8);
    for (auto &x : q) x = static_cast<int8_t>(qd(rng));
    std::vector<uint16_t> scales((K / group) * N, 0x2000);  // 2^-7
    for (int c = 0; c < copies; ++c) {
      packed.emplace_back(size / sizeof(float) + 1);
      kiln_uk_pack_q(q.data(), scales.data(), has_zp ? zp.data() : nullptr, K, N, bits, group,
                     reinterpret_cast<uint8_t *>(packed.back().p));
    }
  }
  RunPackedMatmul(state, packed, size, threads, M, K, N, "GFLOP/s",
                  [&](const uint8_t *w, int64_t wg) {
                    kiln_uk_matmul_q_f32(A.p, M, K, w, N, bits, group, has_zp, nullptr, nullptr,
                                         KILN_UK_ACT_NONE, C.p, wg, threads);
                  });
}

void QMatmulArgs(benchmark::internal::Benchmark *b) {
  b->ArgNames({"M", "K", "N", "bits", "group", "threads", "copies"});
  for (int threads : {1, 2})
    for (auto [bits, group] : {std::pair<int64_t, int64_t>{8, 0}, {4, 32}, {4, 128}}) {
      for (int64_t M : {1, 16, 128}) b->Args({M, 1024, 2816, bits, group, threads, 1});
      // M = 1 streaming weights far larger than L3.
      b->Args({1, 1024, 2816, bits, group, threads, 24});
    }
}
BENCHMARK(BM_QMatmul)->Apply(QMatmulArgs)->UseRealTime();

// args: M, K, N, group, threads, copies. int4 weights (zero points) x
// int8 activations per group (w4gNa8), the AVX2 kernel where this CPU has it.
void BM_QA8Matmul(benchmark::State &state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2), group = state.range(3);
  const int threads = static_cast<int>(state.range(4)), copies = static_cast<int>(state.range(5));
  Buffer A = RandomBuffer(M * K, 1), C(M * N);
  const int64_t size = kiln_uk_packed_q_size(K, N, 4, group, 1);
  std::vector<Buffer> packed;
  {
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> qd(0, 15);
    std::vector<int8_t> q(K * N), zp((K / group) * N, 8);
    for (auto &x : q) x = static_cast<int8_t>(qd(rng));
    std::vector<uint16_t> scales((K / group) * N, 0x2000);  // 2^-7
    for (int c = 0; c < copies; ++c) {
      packed.emplace_back(size / sizeof(float) + 1);
      kiln_uk_pack_q(q.data(), scales.data(), zp.data(), K, N, 4, group,
                     reinterpret_cast<uint8_t *>(packed.back().p));
    }
  }
  auto fn = kiln_uk_matmul_qa8_f32;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"))
    fn = kiln_uk_matmul_qa8_f32_avx2;
  if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"))
    fn = kiln_uk_matmul_qa8_f32_vnni;
#endif
  RunPackedMatmul(state, packed, size, threads, M, K, N, "GOP/s",
                  [&](const uint8_t *w, int64_t wg) {
                    fn(A.p, M, K, w, N, 4, group, 1, nullptr, nullptr, KILN_UK_ACT_NONE, C.p, wg,
                       threads);
                  });
}

void QA8MatmulArgs(benchmark::internal::Benchmark *b) {
  b->ArgNames({"M", "K", "N", "group", "threads", "copies"});
  for (int threads : {1, 2})
    for (int64_t group : {32, 128}) {
      for (int64_t M : {1, 16, 128}) b->Args({M, 1024, 2816, group, threads, 1});
      b->Args({1, 1024, 2816, group, threads, 80});
    }
  // The 200M LLaMA's decode shapes (q/k/v/o; down), streamed.
  for (int threads : {1, 2}) {
    b->Args({1, 1024, 1024, 32, threads, 64});
    b->Args({1, 3072, 1024, 32, threads, 24});
  }
}
BENCHMARK(BM_QA8Matmul)->Apply(QA8MatmulArgs)->UseRealTime();

// args: M, K, N, threads, copies. w8a8: int8 weights, rows of A quantized
// to int8 inside the kernel (the AVX2 accumulation where this CPU has it).
void BM_Q8A8Matmul(benchmark::State &state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const int threads = static_cast<int>(state.range(3)), copies = static_cast<int>(state.range(4));
  Buffer A = RandomBuffer(M * K, 1), C(M * N);
  const int64_t size = kiln_uk_packed_q8a8_size(K, N);
  std::vector<Buffer> packed;
  {
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> qd(-127, 127);
    std::vector<int8_t> q(K * N);
    for (auto &x : q) x = static_cast<int8_t>(qd(rng));
    std::vector<uint16_t> scales(N, 0x2000);  // 2^-7
    for (int c = 0; c < copies; ++c) {
      packed.emplace_back(size / sizeof(float) + 1);
      kiln_uk_pack_q8a8(q.data(), scales.data(), K, N, reinterpret_cast<uint8_t *>(packed.back().p));
    }
  }
  auto fn = kiln_uk_matmul_q8a8_f32;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) fn = kiln_uk_matmul_q8a8_f32_avx2;
  if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"))
    fn = kiln_uk_matmul_q8a8_f32_vnni;
#endif
  RunPackedMatmul(state, packed, size, threads, M, K, N, "GOP/s",
                  [&](const uint8_t *w, int64_t wg) {
                    fn(A.p, M, K, w, N, nullptr, nullptr, KILN_UK_ACT_NONE, C.p, wg, threads);
                  });
}
BENCHMARK(BM_Q8A8Matmul)
    ->ArgNames({"M", "K", "N", "threads", "copies"})
    ->Args({1, 1024, 2816, 1, 1})
    ->Args({16, 1024, 2816, 1, 1})
    ->Args({128, 1024, 2816, 1, 1})
    ->Args({1, 1024, 2816, 1, 24})
    ->Args({1, 1024, 2816, 2, 24})
    ->UseRealTime();

// args: S, T, threads. LLaMA-200M-like heads: H 16, KVH 4, hd 64, causal.
void BM_Attention(benchmark::State &state) {
  const int64_t S = state.range(0), T = state.range(1), B = 1, H = 16, KVH = 4, hd = 64;
  const int threads = static_cast<int>(state.range(2));
  Buffer q = RandomBuffer(B * H * S * hd, 3), k = RandomBuffer(B * KVH * T * hd, 4),
         v = RandomBuffer(B * KVH * T * hd, 5), out(B * H * S * hd);
  SpinPool &pool = Pool(threads);
  for (auto _ : state) {
    pool.Run([&](int64_t wg) {
      kiln_uk_attention_f32(q.p, k.p, v.p, nullptr, B, H, KVH, S, T, hd, 0.125f, 1, out.p, wg,
                            threads);
    });
    benchmark::ClobberMemory();
  }
  double pairs = 0;  // (query, visible key) pairs under the causal mask
  for (int64_t s = 0; s < S; ++s) pairs += static_cast<double>(T - S + s + 1);
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * B * H * hd * pairs * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Attention)
    ->ArgNames({"S", "T", "threads"})
    ->Args({1, 512, 1})
    ->Args({1, 512, 2})
    ->Args({256, 256, 1})
    ->Args({256, 256, 2})
    ->UseRealTime();

// Paged attention as continuous batching runs it: B sequences of T tokens
// of context in shuffled 16-token blocks, S new rows each (S = 1: a decode
// step of B sequences). Heads: llama-s's (8 query, 2 kv, hd 32), or with
// wide = 1 the 200M LLaMA's (16 query, 4 kv, hd 64). cold = 1 evicts the
// pools from the caches before every call (untimed), as a decode step does
// by streaming the weights of every layer between two visits of a layer's
// K/V (one thread: a pool's worker would fall asleep during the eviction).
void BM_PagedAttention(benchmark::State &state) {
  const int64_t B = state.range(0), S = state.range(1), T = state.range(2), bs = 16;
  const int threads = static_cast<int>(state.range(3));
  const bool wide = state.range(4) != 0, cold = state.range(5) != 0;
  const int64_t H = wide ? 16 : 8, KVH = wide ? 4 : 2, hd = wide ? 64 : 32;
  const int64_t M = (T + bs - 1) / bs, num_blocks = B * M, N = B * S;
  Buffer q = RandomBuffer(H * N * hd, 3), kp = RandomBuffer(num_blocks * bs * KVH * hd, 4),
         vp = RandomBuffer(num_blocks * bs * KVH * hd, 5), out(H * N * hd);
  Buffer evict(cold ? size_t{64} << 18 : 1, 1.0f);  // 64 MiB: twice the L3
  std::vector<int32_t> tables(B * M), lens(B, static_cast<int32_t>(T)), starts(B + 1);
  for (int64_t i = 0; i < B * M; ++i) tables[i] = static_cast<int32_t>((i * 7919) % num_blocks);
  for (int64_t b = 0; b <= B; ++b) starts[b] = static_cast<int32_t>(b * S);
  SpinPool &pool = Pool(threads);
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      float sink = 0.0f;  // reads only: dirty lines would be written back in the timed call
      for (size_t i = 0; i < evict.n; i += 16) sink += evict.p[i];
      benchmark::DoNotOptimize(sink);
      state.ResumeTiming();
    }
    pool.Run([&](int64_t wg) {
      kiln_uk_paged_attention_f32(q.p, kp.p, vp.p, tables.data(), lens.data(), starts.data(), B, M, H, KVH, N, hd,
                                  num_blocks, bs, 0.17f, 1, out.p, wg, threads);
    });
    benchmark::ClobberMemory();
  }
  double pairs = 0;
  for (int64_t s = 0; s < S; ++s) pairs += static_cast<double>(T - S + s + 1);
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * B * H * hd * pairs * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PagedAttention)
    ->ArgNames({"B", "S", "T", "threads", "wide", "cold"})
    ->Args({32, 1, 256, 2, 0, 0})
    ->Args({1, 1, 256, 1, 0, 0})
    ->Args({1, 128, 128, 2, 0, 0})
    ->Args({1, 1, 192, 1, 1, 0})
    ->Args({1, 1, 192, 1, 1, 1})
    ->UseRealTime();

// The yardstick: a 16-lane sum over 512 MiB, split across the threads.
void BM_ReadBandwidth(benchmark::State &state) {
  const int threads = static_cast<int>(state.range(0));
  const size_t n = size_t{128} << 20;
  Buffer buf(n, 1.0f);
  std::vector<float> sums(threads * 16);
  SpinPool &pool = Pool(threads);
  for (auto _ : state) {
    pool.Run([&](int64_t wg) {
      typedef float v16 __attribute__((ext_vector_type(16)));
      const size_t chunk = n / threads, begin = wg * chunk;
      v16 a = 0, b = 0, c = 0, d = 0;
      for (size_t i = begin; i < begin + chunk; i += 64) {
        a += *reinterpret_cast<const v16 *>(buf.p + i);
        b += *reinterpret_cast<const v16 *>(buf.p + i + 16);
        c += *reinterpret_cast<const v16 *>(buf.p + i + 32);
        d += *reinterpret_cast<const v16 *>(buf.p + i + 48);
      }
      v16 s = a + b + c + d;
      for (int j = 0; j < 16; ++j) sums[wg * 16 + j] = s[j];
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(n * 4.0 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ReadBandwidth)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

// The other yardstick: 6 independent 16-lane FMA chains per thread (12 ymm on
// AVX2, enough to cover FMA latency x 2 pipes), no memory traffic.
void BM_FmaPeak(benchmark::State &state) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t iters = 1 << 20;
  std::vector<float> sums(threads);
  SpinPool &pool = Pool(threads);
  for (auto _ : state) {
    pool.Run([&](int64_t wg) {
      typedef float v16 __attribute__((ext_vector_type(16)));
      v16 a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0;
      v16 b = 0.999f, c = 1e-3f;
      for (int64_t i = 0; i < iters; ++i) {
        a0 = a0 * b + c;
        a1 = a1 * b + c;
        a2 = a2 * b + c;
        a3 = a3 * b + c;
        a4 = a4 * b + c;
        a5 = a5 * b + c;
      }
      v16 s = a0 + a1 + a2 + a3 + a4 + a5;
      sums[wg] = s[0];
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      threads * iters * 6.0 * 16 * 2 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_FmaPeak)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

// The 2:4 sparse matmul (kiln-llm-prune). args: M, K, N, bits (32: f32
// values, 8: int8 + column scales), threads, copies. GFLOP/s counts the
// dense product's 2MKN (compare with BM_Matmul / BM_QMatmul at the same
// shape: the speed-up over dense); weights_GB/s counts the packed bytes.
void BM_S24Matmul(benchmark::State &state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const int32_t bits = static_cast<int32_t>(state.range(3));
  const int threads = static_cast<int>(state.range(4)), copies = static_cast<int>(state.range(5));
  Buffer A = RandomBuffer(M * K, 1), C(M * N);
  const int64_t size = kiln_uk_packed_s24_size(K, N, bits);
  std::vector<Buffer> packed;
  {
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> qd(-127, 127), pos(0, 2);
    std::vector<float> vf(K / 2 * N);
    std::vector<int8_t> vq(K / 2 * N), idx(K / 2 * N);
    for (auto &x : vq) x = static_cast<int8_t>(qd(rng));
    for (size_t i = 0; i < vf.size(); ++i) vf[i] = vq[i] * 0.01f;
    for (int64_t g = 0; g < K / 4; ++g)
      for (int64_t n = 0; n < N; ++n) {
        int a = pos(rng);
        idx[(2 * g) * N + n] = static_cast<int8_t>(a);
        idx[(2 * g + 1) * N + n] = static_cast<int8_t>(a + 1 + (n % (3 - a)));
      }
    std::vector<uint16_t> scales(N, 0x2000);
    for (int c = 0; c < copies; ++c) {
      packed.emplace_back(size / sizeof(float) + 1);
      kiln_uk_pack_s24(bits == 8 ? static_cast<const void *>(vq.data()) : vf.data(), idx.data(),
                       scales.data(), K, N, bits, reinterpret_cast<uint8_t *>(packed.back().p));
    }
  }
  RunPackedMatmul(state, packed, size, threads, M, K, N, "GFLOP/s",
                  [&](const uint8_t *w, int64_t wg) {
                    kiln_uk_matmul_s24_f32(A.p, M, K, w, N, bits, nullptr, nullptr,
                                           KILN_UK_ACT_NONE, C.p, wg, threads);
                  });
}

void S24MatmulArgs(benchmark::internal::Benchmark *b) {
  b->ArgNames({"M", "K", "N", "bits", "threads", "copies"});
  for (int threads : {1, 2})
    for (int64_t bits : {32, 8}) {
      for (int64_t M : {1, 16, 128}) b->Args({M, 1024, 2816, bits, threads, 1});
      b->Args({1, 1024, 2816, bits, threads, 24});  // streaming, far larger than L3
    }
}
BENCHMARK(BM_S24Matmul)->Apply(S24MatmulArgs)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
