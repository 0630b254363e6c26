/*===- norm.c - RMSNorm and LayerNorm over the last dimension --------------===*
 *
 * Rows are split across workgroups. Reductions run on four 16-lane
 * accumulators (64 partial sums), which keeps f32 rounding error far below
 * the test tolerance for any practical D; LayerNorm's variance is a second
 * pass over (x - mean)^2, which does not cancel as E[x^2] - mean^2 would.
 * Every pass reads a row element before the last pass writes it, so out may
 * alias x.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_vec.h"

/* sum(x[i] - c)^2 over a row. */
UK_INLINE float uk_sum_sq_dev(const float *x, int64_t D, float c) {
  kiln_v16f a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = 0;
  for (; i + 4 * UK_W <= D; i += 4 * UK_W) {
    kiln_v16f d0 = uk_load(x + i) - c, d1 = uk_load(x + i + UK_W) - c;
    kiln_v16f d2 = uk_load(x + i + 2 * UK_W) - c, d3 = uk_load(x + i + 3 * UK_W) - c;
    a0 += d0 * d0;
    a1 += d1 * d1;
    a2 += d2 * d2;
    a3 += d3 * d3;
  }
  for (; i + UK_W <= D; i += UK_W) {
    kiln_v16f d = uk_load(x + i) - c;
    a0 += d * d;
  }
  float s = uk_reduce_add((a0 + a1) + (a2 + a3));
  for (; i < D; ++i) s += (x[i] - c) * (x[i] - c);
  return s;
}

UK_INLINE float uk_sum(const float *x, int64_t D) {
  kiln_v16f a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = 0;
  for (; i + 4 * UK_W <= D; i += 4 * UK_W) {
    a0 += uk_load(x + i);
    a1 += uk_load(x + i + UK_W);
    a2 += uk_load(x + i + 2 * UK_W);
    a3 += uk_load(x + i + 3 * UK_W);
  }
  for (; i + UK_W <= D; i += UK_W) a0 += uk_load(x + i);
  float s = uk_reduce_add((a0 + a1) + (a2 + a3));
  for (; i < D; ++i) s += x[i];
  return s;
}

/* out = (x - shift) * scale * w (+ b). */
UK_INLINE void uk_norm_apply(const float *x, int64_t D, float shift, float scale, const float *w,
                             const float *b, float *out) {
  int64_t i = 0;
  for (; i + UK_W <= D; i += UK_W) {
    kiln_v16f y = (uk_load(x + i) - shift) * scale * uk_load(w + i);
    if (b) y += uk_load(b + i);
    uk_store(out + i, y);
  }
  for (; i < D; ++i) {
    float y = (x[i] - shift) * scale * w[i];
    if (b) y += b[i];
    out[i] = y;
  }
}

void kiln_uk_rms_norm_f32(const float *x, int64_t rows, int64_t D, const float *w, float eps,
                          float *out, int64_t wg, int64_t count) {
  int64_t r0, r1;
  if (D <= 0 || !uk_split(rows, wg, count, &r0, &r1)) return;
  for (int64_t r = r0; r < r1; ++r) {
    const float *xr = x + r * D;
    float ms = uk_sum_sq_dev(xr, D, 0.0f) / (float)D;
    float scale = 1.0f / __builtin_elementwise_sqrt(ms + eps);
    uk_norm_apply(xr, D, 0.0f, scale, w, (const float *)0, out + r * D);
  }
}

void kiln_uk_layer_norm_f32(const float *x, int64_t rows, int64_t D, const float *w, const float *b,
                            float eps, float *out, int64_t wg, int64_t count) {
  int64_t r0, r1;
  if (D <= 0 || !uk_split(rows, wg, count, &r0, &r1)) return;
  for (int64_t r = r0; r < r1; ++r) {
    const float *xr = x + r * D;
    float mean = uk_sum(xr, D) / (float)D;
    float var = uk_sum_sq_dev(xr, D, mean) / (float)D;
    float scale = 1.0f / __builtin_elementwise_sqrt(var + eps);
    uk_norm_apply(xr, D, mean, scale, w, b, out + r * D);
  }
}
