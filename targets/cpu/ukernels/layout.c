/*===- layout.c - Data movement: KV append, head split/merge, embedding ----===*
 *
 * All of these copy rows of hd (or D) floats; workgroups split the output
 * rows, so writes never overlap. Copies are 16-wide vector loops (there is
 * no libc to call memcpy from).
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_vec.h"

void kiln_uk_kv_append_f32(const float *past, const float *cur, int64_t B, int64_t KVH, int64_t P,
                           int64_t S, int64_t hd, float *out, int64_t wg, int64_t count) {
  if (P < 0) P = 0;
  if (S < 0) S = 0;
  const int64_t L = P + S;
  if (B <= 0 || KVH <= 0 || L <= 0 || hd <= 0) return;
  int64_t r0, r1;
  if (!uk_split(B * KVH * L, wg, count, &r0, &r1)) return;
  /* Copy maximal runs that come from one source tensor and one (b, kv head),
   * since those are contiguous on both sides. */
  int64_t r = r0;
  while (r < r1) {
    int64_t bk = r / L, t = r % L;
    int64_t run_end = uk_min64(r1, bk * L + (t < P ? P : L));
    int64_t n = run_end - r;
    const float *src = t < P ? past + (bk * P + t) * hd : cur + (bk * S + (t - P)) * hd;
    uk_copy(out + r * hd, src, n * hd);
    r = run_end;
  }
}

void kiln_uk_split_heads_f32(const float *x, int64_t B, int64_t S, int64_t H, int64_t hd, float *out,
                             int64_t wg, int64_t count) {
  if (B <= 0 || S <= 0 || H <= 0 || hd <= 0) return;
  int64_t r0, r1;
  if (!uk_split(B * H * S, wg, count, &r0, &r1)) return;
  for (int64_t r = r0; r < r1; ++r) { /* r = (b, h, s) */
    int64_t b = r / (H * S), h = (r / S) % H, s = r % S;
    uk_copy(out + r * hd, x + ((b * S + s) * H + h) * hd, hd);
  }
}

void kiln_uk_merge_heads_f32(const float *x, int64_t B, int64_t H, int64_t S, int64_t hd, float *out,
                             int64_t wg, int64_t count) {
  if (B <= 0 || S <= 0 || H <= 0 || hd <= 0) return;
  int64_t r0, r1;
  if (!uk_split(B * S * H, wg, count, &r0, &r1)) return;
  for (int64_t r = r0; r < r1; ++r) { /* r = (b, s, h) */
    int64_t b = r / (S * H), s = (r / H) % S, h = r % H;
    uk_copy(out + r * hd, x + ((b * H + h) * S + s) * hd, hd);
  }
}

void kiln_uk_embedding_f32(const float *table, int64_t V, int64_t D, const int64_t *ids, int64_t N,
                           const float *pos_table, int64_t max_pos, const int64_t *pos, float *out,
                           int64_t wg, int64_t count) {
  if (D <= 0 || N <= 0) return;
  int64_t r0, r1;
  if (!uk_split(N, wg, count, &r0, &r1)) return;
  const int use_pos = pos_table && max_pos > 0;
  for (int64_t r = r0; r < r1; ++r) {
    float *o = out + r * D;
    const float *t = V > 0 ? table + uk_clamp64(ids[r], 0, V - 1) * D : (const float *)0;
    const float *p = use_pos ? pos_table + uk_clamp64(pos ? pos[r] : r, 0, max_pos - 1) * D
                             : (const float *)0;
    int64_t i = 0;
    for (; i + UK_W <= D; i += UK_W) {
      kiln_v16f y = t ? uk_load(t + i) : uk_splat(0.0f);
      if (p) y += uk_load(p + i);
      uk_store(o + i, y);
    }
    for (; i < D; ++i) o[i] = (t ? t[i] : 0.0f) + (p ? p[i] : 0.0f);
  }
}
