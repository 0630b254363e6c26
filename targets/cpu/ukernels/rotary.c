/*===- rotary.c - Rotary position embedding, rotate_half (LLaMA/NeoX) ------===*
 *
 * For i < h = hd/2:
 *   out[i]     = x[i]     * cos[i]     - x[i + h] * sin[i]
 *   out[i + h] = x[i + h] * cos[i + h] + x[i]     * sin[i + h]
 * Both halves are loaded before either is stored, so out may alias x. Rows
 * (b, h, s) are split across workgroups.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_vec.h"

void kiln_uk_rotary_f32(const float *x, int64_t B, int64_t H, int64_t S, int64_t hd,
                        const float *cos_table, const float *sin_table, int64_t max_pos,
                        const int64_t *positions, float *out, int64_t wg, int64_t count) {
  if (B <= 0 || H <= 0 || S <= 0 || hd <= 0) return;
  int64_t r0, r1;
  if (!uk_split(B * H * S, wg, count, &r0, &r1)) return;
  const int64_t half = hd / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const float *xr = x + r * hd;
    float *o = out + r * hd;
    if (max_pos <= 0) { /* no table to read: leave the row unrotated */
      uk_copy(o, xr, hd);
      continue;
    }
    int64_t b = r / (H * S), s = r % S;
    int64_t pos = uk_clamp64(positions ? positions[b * S + s] : s, 0, max_pos - 1);
    const float *c = cos_table + pos * hd, *sn = sin_table + pos * hd;
    int64_t i = 0;
    for (; i + UK_W <= half; i += UK_W) {
      kiln_v16f x1 = uk_load(xr + i), x2 = uk_load(xr + half + i);
      kiln_v16f y1 = x1 * uk_load(c + i) - x2 * uk_load(sn + i);
      kiln_v16f y2 = x2 * uk_load(c + half + i) + x1 * uk_load(sn + half + i);
      uk_store(o + i, y1);
      uk_store(o + half + i, y2);
    }
    for (; i < half; ++i) {
      float x1 = xr[i], x2 = xr[half + i];
      o[i] = x1 * c[i] - x2 * sn[i];
      o[half + i] = x2 * c[half + i] + x1 * sn[half + i];
    }
    if (hd & 1) o[hd - 1] = xr[hd - 1] * c[hd - 1];
  }
}
