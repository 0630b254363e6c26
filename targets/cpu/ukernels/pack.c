/*===- pack.c - Weight packing into 16-column panels -----------------------===*
 *
 * The compiler packs constant weights at compile time (the native library
 * kiln_ukernels_packing); the same code is in the bitcode for weights that
 * are only known at run time. Layout: see ukernels.h and README.md.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_vec.h"

int64_t kiln_uk_packed_b_size(int64_t K, int64_t N) {
  if (K <= 0 || N <= 0) return 0;
  return K * uk_ceil_div(N, UK_W) * UK_W;
}

void kiln_uk_pack_b_f32(const float *B, int64_t K, int64_t N, float *packed) {
  if (K <= 0 || N <= 0) return;
  int64_t panels = uk_ceil_div(N, UK_W);
  for (int64_t p = 0; p < panels; ++p) {
    int64_t n0 = p * UK_W, nv = uk_min64(UK_W, N - n0);
    float *dst = packed + p * K * UK_W;
    if (nv == UK_W) {
      for (int64_t k = 0; k < K; ++k) uk_store(dst + k * UK_W, uk_load(B + k * N + n0));
    } else {
      for (int64_t k = 0; k < K; ++k)
        uk_store(dst + k * UK_W, uk_load_partial(B + k * N + n0, nv));
    }
  }
}

void kiln_uk_pack_bt_f32(const float *BT, int64_t K, int64_t N, float *packed) {
  if (K <= 0 || N <= 0) return;
  int64_t panels = uk_ceil_div(N, UK_W);
  /* Blocks of 16 k x 16 n: reads 16 rows of BT contiguously, writes 16 full
   * packed rows (one panel chunk of 1 KiB), so both sides stay in L1. */
  for (int64_t p = 0; p < panels; ++p) {
    int64_t n0 = p * UK_W, nv = uk_min64(UK_W, N - n0);
    float *dst = packed + p * K * UK_W;
    for (int64_t k0 = 0; k0 < K; k0 += UK_W) {
      int64_t kv = uk_min64(UK_W, K - k0);
      for (int64_t kk = 0; kk < kv; ++kk)
        for (int64_t j = 0; j < UK_W; ++j)
          dst[(k0 + kk) * UK_W + j] = j < nv ? BT[(n0 + j) * K + k0 + kk] : 0.0f;
    }
  }
}
