/*===- pack_s24.c - 2:4 sparse weights into 16-column panels ----------------===*
 *
 * The compiler packs pruned weights at compile time with this code (it is
 * part of kiln_ukernels_packing). Layout: ukernels.h.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_s24.h"

int64_t kiln_uk_packed_s24_size(int64_t K, int64_t N, int32_t bits) {
  if (!us24_valid(K, N, bits)) return 0;
  return uk_ceil_div(N, UK_W) * us24_panel_bytes(K, bits);
}

void kiln_uk_pack_s24(const void *values, const int8_t *indices, const uint16_t *scales,
                      int64_t K, int64_t N, int32_t bits, uint8_t *packed) {
  if (!us24_valid(K, N, bits)) return;
  const int64_t panels = uk_ceil_div(N, UK_W), G = K / 4, gb = us24_group_bytes(bits);
  const int64_t pb = us24_panel_bytes(K, bits), vb = bits == 8 ? 1 : 4;
  const float *vf = (const float *)values;
  const int8_t *vq = (const int8_t *)values;
  for (int64_t p = 0; p < panels; ++p) {
    uint8_t *dst = packed + p * pb;
    if (bits == 8) {
      for (int64_t j = 0; j < UK_W; ++j) {
        const int64_t n = p * UK_W + j;
        const uint16_t s = n < N && scales ? scales[n] : 0;
        dst[2 * j] = (uint8_t)(s & 0xff);
        dst[2 * j + 1] = (uint8_t)(s >> 8);
      }
      dst += 32;
    }
    for (int64_t g = 0; g < G; ++g) {
      uint8_t *grp = dst + g * gb;
      for (int64_t j = 0; j < UK_W; ++j) {
        const int64_t n = p * UK_W + j;
        /* Kept positions a, b (0..3) and their values; the kernel wants
         * a < b (a in 0..2, b in 1..3): sort, and merge a repeated
         * position into one value beside a zero. */
        int a = 0, b = 1;
        float fa = 0.0f, fb = 0.0f;
        int8_t qa = 0, qb = 0;
        if (n < N) {
          a = indices[(2 * g) * N + n] & 3;
          b = indices[(2 * g + 1) * N + n] & 3;
          if (bits == 8) {
            qa = vq[(2 * g) * N + n];
            qb = vq[(2 * g + 1) * N + n];
          } else {
            fa = vf[(2 * g) * N + n];
            fb = vf[(2 * g + 1) * N + n];
          }
          if (a > b) {
            int t = a; a = b; b = t;
            float tf = fa; fa = fb; fb = tf;
            int8_t tq = qa; qa = qb; qb = tq;
          } else if (a == b) {
            /* int8: the sum may not fit; keep it only when it does. */
            fb = fa + fb;
            int s = qa + qb;
            qb = (int8_t)(s > 127 ? 127 : (s < -128 ? -128 : s));
            fa = 0.0f;
            qa = 0;
            if (b == 0) { a = 0; b = 1; fa = fb; qa = qb; fb = 0.0f; qb = 0; }
            else a = b - 1;
          }
        }
        if (bits == 8) {
          grp[j] = (uint8_t)qa;
          grp[UK_W + j] = (uint8_t)qb;
        } else {
          __builtin_memcpy(grp + 4 * j, &fa, 4);
          __builtin_memcpy(grp + 4 * (UK_W + j), &fb, 4);
        }
        grp[2 * UK_W * vb + j] = (uint8_t)(a | (b << 2));
      }
    }
  }
}
