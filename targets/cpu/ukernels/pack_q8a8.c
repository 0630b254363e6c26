/*===- pack_q8a8.c - int8 weights for the w8a8 matmul ----------------------===*
 *
 * The compiler packs w8a8 weights at compile time with this code (it is
 * part of kiln_ukernels_packing). Layout (ukernels.h, README.md): per panel
 * of 16 columns, K4/4 blocks of 64 bytes, 32-bit lane j of block b holding
 * q[4b .. 4b+3, 16p + j] (the operand order of sdot and VNNI); then the
 * column scales as f32.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_vec.h"

#define Q8A8_K_MAX 32768

/* An IEEE half (bits) as f32, exactly (subnormals, infinities, NaN). */
static float q8a8_half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 31u, m = h & 1023u;
  uint32_t bits;
  if (e == 31) {
    bits = sign | 0x7f800000u | (m << 13);
  } else if (e == 0) {
    const float f = (float)m * 0x1p-24f; /* exact: m < 2^10 */
    __builtin_memcpy(&bits, &f, sizeof bits);
    bits |= sign;
  } else {
    bits = sign | ((e + 112u) << 23) | (m << 13);
  }
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
}

int64_t kiln_uk_packed_q8a8_size(int64_t K, int64_t N) {
  if (K <= 0 || N <= 0 || K > Q8A8_K_MAX) return 0;
  const int64_t K4 = (K + 3) / 4 * 4, panels = uk_ceil_div(N, UK_W);
  return panels * (K4 * UK_W + UK_W * (int64_t)sizeof(float));
}

void kiln_uk_pack_q8a8(const int8_t *q, const uint16_t *scales_f16, int64_t K, int64_t N,
                       uint8_t *packed) {
  if (kiln_uk_packed_q8a8_size(K, N) == 0) return;
  const int64_t K4 = (K + 3) / 4 * 4, panels = uk_ceil_div(N, UK_W), pb = K4 * UK_W;
  for (int64_t p = 0; p < panels; ++p) {
    uint8_t *dst = packed + p * pb;
    for (int64_t b = 0; b < K4 / 4; ++b)
      for (int64_t j = 0; j < UK_W; ++j) {
        const int64_t n = p * UK_W + j;
        for (int64_t t = 0; t < 4; ++t) {
          const int64_t k = 4 * b + t;
          dst[b * 64 + 4 * j + t] = (uint8_t)(k < K && n < N ? q[k * N + n] : 0);
        }
      }
    for (int64_t j = 0; j < UK_W; ++j) {
      const int64_t n = p * UK_W + j;
      const float s = n < N ? q8a8_half_to_float(scales_f16[n]) : 0.0f;
      __builtin_memcpy(packed + panels * pb + n * (int64_t)sizeof(float), &s, sizeof s);
    }
  }
}
