//===- QuantizeMath.cpp - Dense float kernels for calibrated quantization -===//
//
// gemmTN packs panels of A (MR columns) and B (NR columns) for a KC slice of
// T and runs an MR x NR register tile over them (GotoBLAS in miniature):
// 6 x 16 floats in twelve AVX2 registers when the CPU has AVX2 and FMA, a
// plain loop the compiler vectorizes otherwise. The factorizations are
// blocked so that nearly all of their work is gemmTN.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/QuantizeMath.h"

#include "llvm/Support/Parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kiln::qmath {
namespace {

constexpr int64_t MR = 6, NR = 16;
constexpr int64_t KC = 256, MC = 16 * MR, NC = 8 * NR;

/// acc[MR][NR] = sum_t a[t][0..MR) * b[t][0..NR) over packed panels.
void microGeneric(int64_t kc, const float *a, const float *b, float *acc) {
  float c[MR][NR] = {};
  for (int64_t t = 0; t < kc; ++t, a += MR, b += NR)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        c[i][j] += a[i] * b[j];
  std::memcpy(acc, c, sizeof(c));
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void microAvx2(int64_t kc, const float *a, const float *b,
                                                   float *acc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
         c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t t = 0; t < kc; ++t, a += MR, b += NR) {
    __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  _mm256_storeu_ps(acc + 0, c00), _mm256_storeu_ps(acc + 8, c01);
  _mm256_storeu_ps(acc + 16, c10), _mm256_storeu_ps(acc + 24, c11);
  _mm256_storeu_ps(acc + 32, c20), _mm256_storeu_ps(acc + 40, c21);
  _mm256_storeu_ps(acc + 48, c30), _mm256_storeu_ps(acc + 56, c31);
  _mm256_storeu_ps(acc + 64, c40), _mm256_storeu_ps(acc + 72, c41);
  _mm256_storeu_ps(acc + 80, c50), _mm256_storeu_ps(acc + 88, c51);
}
#endif

using Micro = void (*)(int64_t, const float *, const float *, float *);

Micro pickMicro() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return microAvx2;
#endif
  return microGeneric;
}

/// One MC x NC block of C over all of T.
void gemmBlock(Micro micro, int64_t T, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
               float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
               int64_t ldc, bool upper) {
  const int64_t mt = (m1 - m0 + MR - 1) / MR, nt = (n1 - n0 + NR - 1) / NR;
  std::vector<float> ap(mt * KC * MR), bp(nt * KC * NR);
  float acc[MR * NR];
  for (int64_t t0 = 0; t0 < T; t0 += KC) {
    const int64_t kc = std::min(KC, T - t0);
    for (int64_t i = 0; i < mt; ++i) {
      float *dst = &ap[i * KC * MR];
      const int64_t mb = m0 + i * MR, mw = std::min(MR, m1 - mb);
      for (int64_t t = 0; t < kc; ++t) {
        const float *src = A + (t0 + t) * lda + mb;
        for (int64_t r = 0; r < MR; ++r)
          dst[t * MR + r] = r < mw ? src[r] : 0.0f;
      }
    }
    for (int64_t j = 0; j < nt; ++j) {
      float *dst = &bp[j * KC * NR];
      const int64_t nb = n0 + j * NR, nw = std::min(NR, n1 - nb);
      for (int64_t t = 0; t < kc; ++t) {
        const float *src = B + (t0 + t) * ldb + nb;
        if (nw == NR) {
          std::memcpy(dst + t * NR, src, NR * sizeof(float));
        } else {
          for (int64_t c = 0; c < NR; ++c)
            dst[t * NR + c] = c < nw ? src[c] : 0.0f;
        }
      }
    }
    for (int64_t i = 0; i < mt; ++i) {
      const int64_t mb = m0 + i * MR, mw = std::min(MR, m1 - mb);
      for (int64_t j = 0; j < nt; ++j) {
        const int64_t nb = n0 + j * NR, nw = std::min(NR, n1 - nb);
        if (upper && nb + NR <= mb)
          continue;
        micro(kc, &ap[i * KC * MR], &bp[j * KC * NR], acc);
        for (int64_t r = 0; r < mw; ++r) {
          float *c = C + (mb + r) * ldc + nb;
          for (int64_t q = 0; q < nw; ++q)
            c[q] += alpha * acc[r * NR + q];
        }
      }
    }
  }
}

} // namespace

void gemmTN(int64_t T, int64_t M, int64_t N, float alpha, const float *A, int64_t lda,
            const float *B, int64_t ldb, float *C, int64_t ldc, bool upper) {
  if (T <= 0 || M <= 0 || N <= 0)
    return;
  static const Micro micro = pickMicro();
  struct Job {
    int64_t m0, m1, n0, n1;
  };
  std::vector<Job> jobs;
  for (int64_t m0 = 0; m0 < M; m0 += MC)
    for (int64_t n0 = 0; n0 < N; n0 += NC) {
      Job j{m0, std::min(M, m0 + MC), n0, std::min(N, n0 + NC)};
      if (upper && j.n1 <= j.m0)
        continue;
      jobs.push_back(j);
    }
  auto run = [&](size_t i) {
    const Job &j = jobs[i];
    gemmBlock(micro, T, j.m0, j.m1, j.n0, j.n1, alpha, A, lda, B, ldb, C, ldc, upper);
  };
  // Small products are not worth the thread handoff.
  if ((double)T * M * N < 4e6)
    for (size_t i = 0; i < jobs.size(); ++i)
      run(i);
  else
    llvm::parallelFor(0, jobs.size(), run);
}

bool choleskyUpper(float *a, int64_t n) {
  constexpr int64_t NB = 64;
  for (int64_t k0 = 0; k0 < n; k0 += NB) {
    const int64_t k1 = std::min(n, k0 + NB);
    // The diagonal block, unblocked, accumulating in double: a = U^T U
    // within it (the trailing updates of earlier blocks are already in).
    for (int64_t j = k0; j < k1; ++j) {
      double d = a[j * n + j];
      for (int64_t t = k0; t < j; ++t)
        d -= double(a[t * n + j]) * a[t * n + j];
      if (!(d > 0.0) || !std::isfinite(d))
        return false;
      const double r = std::sqrt(d);
      a[j * n + j] = (float)r;
      // Row j of U right of the diagonal, inside the block and beyond it.
      for (int64_t c = j + 1; c < n; ++c) {
        double s = a[j * n + c];
        for (int64_t t = k0; t < j; ++t)
          s -= double(a[t * n + j]) * a[t * n + c];
        a[j * n + c] = (float)(s / r);
      }
    }
    // Trailing matrix: a22 -= U12^T U12 (upper triangle).
    if (k1 < n)
      gemmTN(k1 - k0, n - k1, n - k1, -1.0f, a + k0 * n + k1, n, a + k0 * n + k1, n,
             a + k1 * n + k1, n, /*upper=*/true);
  }
  for (int64_t i = 0; i < n; ++i)
    std::fill(a + i * n, a + i * n + i, 0.0f);
  return true;
}

void invertUpperTransposed(const float *u, float *y, int64_t n) {
  // L = U^T is lower triangular; solve L Y = I one block row of Y at a
  // time: Y[i, :] = L[i, i]^-1 (I[i, :] - sum_{t < i0} L[i, t] Y[t, :]),
  // where L[i, t] = U[t, i], so the sum is gemmTN over U's rows.
  constexpr int64_t NB = 64;
  std::fill(y, y + n * n, 0.0f);
  for (int64_t i0 = 0; i0 < n; i0 += NB) {
    const int64_t i1 = std::min(n, i0 + NB);
    // Rows i0..i1 of Y, columns 0..i1: first the identity part, then the
    // contribution of the rows solved before.
    for (int64_t i = i0; i < i1; ++i)
      y[i * n + i] = 1.0f;
    if (i0 > 0)
      gemmTN(i0, i1 - i0, i0, -1.0f, u + i0, n, y, n, y + i0 * n, n);
    // Forward substitution inside the diagonal block (double accumulation).
    for (int64_t i = i0; i < i1; ++i) {
      const double d = u[i * n + i];
      for (int64_t c = 0; c <= i; ++c) {
        double s = y[i * n + c];
        for (int64_t t = std::max(i0, c); t < i; ++t)
          s -= double(u[t * n + i]) * y[t * n + c];
        y[i * n + c] = (float)(s / d);
      }
    }
  }
}

} // namespace kiln::qmath
