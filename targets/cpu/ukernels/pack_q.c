/*===- pack_q.c - Quantized weights into 16-column panels ------------------===*
 *
 * The compiler packs quantized weights at compile time with this code (it
 * is part of kiln_ukernels_packing). Layout: ukernels.h and README.md.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_quant.h"

int64_t kiln_uk_packed_q_size(int64_t K, int64_t N, int32_t bits, int64_t group,
                              int32_t has_zp) {
  if (!uq_valid(K, N, bits, group)) return 0;
  if (has_zp && K / group > UQ_ASUM_MAX) return 0;
  const int64_t panels = uk_ceil_div(N, UK_W);
  return panels * (uq_panel_bytes(K, bits) + (K / group) * uq_param_bytes(has_zp));
}

int32_t kiln_uk_qa8_fits(int64_t K, int64_t group) {
  return group > 0 && K % group == 0 && uq_a8_fits(K, group);
}

void kiln_uk_pack_q(const int8_t *q, const uint16_t *scales, const int8_t *zero_points,
                    int64_t K, int64_t N, int32_t bits, int64_t group, uint8_t *packed) {
  if (!uq_valid(K, N, bits, group)) return;
  const int64_t panels = uk_ceil_div(N, UK_W), G = K / group;
  const int64_t pb = uq_panel_bytes(K, bits), prm = uq_param_bytes(zero_points != 0);
  for (int64_t p = 0; p < panels; ++p) {
    uint8_t *dst = packed + p * pb;
    for (int64_t j = 0; j < UK_W; ++j) {
      const int64_t n = p * UK_W + j;
      for (int64_t k = 0; k < K; ++k) {
        const int8_t v = n < N ? q[k * N + n] : 0;
        if (bits == 8) {
          dst[k * UK_W + j] = (uint8_t)v;
        } else {
          /* block k / 8, word j (little endian), nibble k % 8 */
          uint8_t *b = dst + (k / 8) * 4 * UK_W + 4 * j + (k % 8) / 2;
          if (k % 2 == 0)
            *b = (uint8_t)(v & 15);
          else
            *b = (uint8_t)(*b | ((v & 15) << 4));
        }
      }
    }
    for (int64_t g = 0; g < G; ++g) {
      uint8_t *par = packed + panels * pb + (p * G + g) * prm;
      for (int64_t j = 0; j < UK_W; ++j) {
        const int64_t n = p * UK_W + j;
        const uint16_t s = n < N ? scales[g * N + n] : 0;
        par[2 * j] = (uint8_t)(s & 0xff);
        par[2 * j + 1] = (uint8_t)(s >> 8);
        if (zero_points) par[32 + j] = (uint8_t)(n < N ? zero_points[g * N + n] : 0);
      }
    }
  }
}
