/*===- qmatmul.c - Matmuls whose weights are int8 / int4, unpacked in registers =*
 *
 * y = act(x @ W + bias) + residual (and the GLU form) where
 * W[k, n] = (q[k, n] - z[g, n]) * s[g, n], g = k / group: the weight stays
 * packed in memory (ukernels.h: 1 or 1/2 byte per weight plus f16 scales and
 * int8 zero points per group of 16 columns) and is turned into floats in
 * registers. The scale is applied once per group, not per weight:
 *
 *   tot[n] += s[g, n] * (sum_{k in g} x[k] * q[k, n]  -  z[g, n] * sum_{k in g} x[k])
 *
 * so the inner loop is one int-to-float conversion and one FMA per weight.
 * Every path computes each output element with exactly this sequence (the
 * group's k in order from 0, then the group update), and the row sums
 * x[k] over a group are taken in order by one function, so a row's result is
 * bitwise the same whatever M is (batch invariance, as in matmul.c).
 *
 * - M == 1 (decode): a GEMV over four panels at a time, straight from the
 *   packed bytes, group sums of the row computed once per workgroup. Four
 *   panels give four independent FMA chains (each panel's sum is in k
 *   order); each stream is prefetched UQ_PF bytes ahead, which took the
 *   200M LLaMA's w8 GLU matmuls from 274-294 to 243-263 us on a 2-core
 *   Zen 5 in one kiln-generate --profile pair (later whole-decode runs
 *   could not tell it, nor 2 or 8 panels, from the noise).
 * - M >= 2: workgroups split (row chunk, panel) items; per item each group is
 *   unpacked (in chunks of <= 256 k) into a float block on the stack once,
 *   and the rows run a 6x16 register-blocked microkernel over it, so the
 *   unpacking is shared by all the rows of the chunk.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_epilogue.h"
#include "uk_quant.h"

#define UQ_MR 6        /* rows of the register block */
#define UQ_KC 256      /* k unpacked at a time: 16 KiB of floats */
#define UQ_MC_MAX 96   /* rows of a chunk */
#define UQ_PF 2048     /* bytes the GEMV prefetches ahead in each panel */

/* x[0] + x[1] + ... in order: the one definition of a group's row sum. */
UK_INLINE float uq_sum(const float *x, int64_t n) {
  float t = 0.0f;
  for (int64_t i = 0; i < n; ++i) t += x[i];
  return t;
}

/* tot[i] += s * (acc[i] - z * asum_i) for R accumulators of one panel, with
 * the (panel, group) parameters at prm. */
UK_INLINE void uq_group_end(kiln_v16f *tot, const kiln_v16f *acc, int R, const uint8_t *prm,
                            int32_t has_zp, const float *asum, int64_t astride) {
  const kiln_v16f s = uq_half16(prm);
  if (has_zp) {
    const kiln_v16f z = uq_zero16(prm + 32);
    for (int i = 0; i < R; ++i) tot[i] += s * (acc[i] - z * asum[i * astride]);
  } else {
    for (int i = 0; i < R; ++i) tot[i] += s * acc[i];
  }
}

/*===-- M == 1 ------------------------------------------------------------===*/

/* n (1..4, a constant after inlining) panels p.. of weight m for one row:
 * tot[j] over all groups. */
UK_INLINE void uq_gemv_n(const float *a, const uq_weight *s, int m, int64_t p, int bits, int n,
                         const float *asum, kiln_v16f *tot) {
  const uint8_t *d[4];
  for (int j = 0; j < n; ++j) {
    d[j] = uq_data(s, m, p + j);
    tot[j] = 0;
  }
  for (int64_t g = 0; g < s->G; ++g) {
    const int64_t k0 = g * s->group, k1 = k0 + s->group;
    kiln_v16f acc[4];
    for (int j = 0; j < n; ++j) acc[j] = 0;
    if (bits == 8) {
      for (int64_t k = k0; k < k1; ++k) {
        const float x = a[k];
        if ((k & 3) == 0)
          for (int j = 0; j < n; ++j) __builtin_prefetch(d[j] + k * UK_W + UQ_PF, 0, 3);
        for (int j = 0; j < n; ++j) acc[j] += x * uq_row8(d[j] + k * UK_W);
      }
    } else {
      for (int64_t k = k0; k < k1; k += 8) {
        float xs[8]; /* x * 16^-t: see uq_row4_scaled */
        for (int t = 0; t < 7; ++t) xs[t] = a[k + t] * (1.0f / (float)(1u << (4 * t)));
        xs[7] = a[k + 7];
        for (int j = 0; j < n; ++j) {
          __builtin_prefetch(d[j] + (k / 8) * 4 * UK_W + UQ_PF, 0, 3);
          const kiln_v16u w = uq_load8x4(d[j] + (k / 8) * 4 * UK_W);
          for (int t = 0; t < 8; ++t) acc[j] += xs[t] * uq_row4_scaled(w, t);
        }
      }
    }
    const float as = s->has_zp ? asum[g] : 0.0f;
    for (int j = 0; j < n; ++j)
      uq_group_end(&tot[j], &acc[j], 1, uq_params(s, m, p + j, g), s->has_zp, &as, 0);
  }
}

UK_INLINE void uq_gemv_range(const float *a, const uq_weight *s, int bits, int64_t pb, int64_t pe,
                             const float *asum, const float *bias, const float *residual,
                             int32_t act, float *C) {
  for (int64_t p = pb; p < pe; p += 4) {
    const int n = (int)uk_min64(4, pe - p);
    kiln_v16f tg[4], tu[4];
#define UQ_GEMV_CASE(nn)                                          \
  uq_gemv_n(a, s, 0, p, bits, nn, asum, tg);                      \
  if (s->nb == 2) uq_gemv_n(a, s, 1, p, bits, nn, asum, tu);      \
  break;
    switch (n) {
      case 4: UQ_GEMV_CASE(4)
      case 3: UQ_GEMV_CASE(3)
      case 2: UQ_GEMV_CASE(2)
      default: UQ_GEMV_CASE(1)
    }
#undef UQ_GEMV_CASE
    for (int j = 0; j < n; ++j) {
      const int64_t n0 = (p + j) * UK_W, nv = uk_min64(UK_W, s->N - n0);
      if (s->nb == 2)
        uk_store_glu(tg[j], tu[j], 0, n0, nv, s->N, act, C);
      else
        uk_store_out(tg[j], 0, n0, nv, s->N, bias, residual, act, C);
    }
  }
}

static void uq_gemv8(const float *a, const uq_weight *s, int64_t pb, int64_t pe, const float *asum,
                     const float *bias, const float *residual, int32_t act, float *C) {
  uq_gemv_range(a, s, 8, pb, pe, asum, bias, residual, act, C);
}

static void uq_gemv4(const float *a, const uq_weight *s, int64_t pb, int64_t pe, const float *asum,
                     const float *bias, const float *residual, int32_t act, float *C) {
  uq_gemv_range(a, s, 4, pb, pe, asum, bias, residual, act, C);
}

/*===-- M >= 2 ------------------------------------------------------------===*/

/* c[R x 16] (row stride 16) = (first ? 0 : c) + a (R rows, stride lda) @
 * bq ([kc][16]); R (1..6) a constant after inlining. */
UK_INLINE void uq_micro(const float *a, int64_t lda, const float *bq, int64_t kc, float *c,
                        int first, int R) {
  kiln_v16f acc[UQ_MR];
  for (int i = 0; i < R; ++i) acc[i] = first ? uk_splat(0.0f) : uk_load(c + i * UK_W);
  for (int64_t k = 0; k < kc; ++k) {
    const kiln_v16f b = uk_load(bq + k * UK_W);
    for (int i = 0; i < R; ++i) acc[i] += a[i * lda + k] * b;
  }
  for (int i = 0; i < R; ++i) uk_store(c + i * UK_W, acc[i]);
}

UK_INLINE void uq_micro_any(const float *a, int64_t lda, const float *bq, int64_t kc, float *c,
                            int first, int R) {
  switch (R) {
    case 1: uq_micro(a, lda, bq, kc, c, first, 1); break;
    case 2: uq_micro(a, lda, bq, kc, c, first, 2); break;
    case 3: uq_micro(a, lda, bq, kc, c, first, 3); break;
    case 4: uq_micro(a, lda, bq, kc, c, first, 4); break;
    case 5: uq_micro(a, lda, bq, kc, c, first, 5); break;
    default: uq_micro(a, lda, bq, kc, c, first, 6); break;
  }
}

/* Rows k0 .. k0+kc-1 of panel data d as floats into bq ([kc][16]). */
UK_INLINE void uq_unpack(const uint8_t *d, int bits, int64_t k0, int64_t kc, float *bq) {
  if (bits == 8) {
    for (int64_t k = 0; k < kc; ++k) uk_store(bq + k * UK_W, uq_row8(d + (k0 + k) * UK_W));
  } else {
    for (int64_t k = 0; k < kc; k += 8) {
      const kiln_v16u w = uq_load8x4(d + ((k0 + k) / 8) * 4 * UK_W);
      for (int t = 0; t < 8; ++t) uk_store(bq + (k + t) * UK_W, uq_row4(w, t));
    }
  }
}

/* Rows [m0, m0+mr) of A times panel p of weight m, every group: tot
 * ([mr][16]). asum: the chunk's group sums, [mr][G]. */
UK_INLINE void uq_rows_panel(const float *A, const uq_weight *s, int m, int64_t p, int bits,
                             int64_t m0, int64_t mr, const float *asum, float *tot) {
  float bq[UQ_KC * UK_W] UK_ALIGN64;
  float at[UQ_MC_MAX * UK_W] UK_ALIGN64;
  const uint8_t *d = uq_data(s, m, p);
  const int64_t nrb = uk_ceil_div(mr, UQ_MR);
  for (int64_t i = 0; i < mr * UK_W; ++i) tot[i] = 0.0f;
  for (int64_t g = 0; g < s->G; ++g) {
    const int64_t g0 = g * s->group, g1 = g0 + s->group;
    for (int64_t c0 = g0; c0 < g1; c0 += UQ_KC) {
      const int64_t kc = uk_min64(UQ_KC, g1 - c0);
      uq_unpack(d, bits, c0, kc, bq);
      /* row blocks of balanced height (7 rows: 4 + 3, not 6 + 1) */
      for (int64_t r0 = 0, rb = 0; r0 < mr; ++rb) {
        const int64_t R = (mr - r0) / (nrb - rb) + ((mr - r0) % (nrb - rb) != 0);
        uq_micro_any(A + (m0 + r0) * s->K + c0, s->K, bq, kc, at + r0 * UK_W, c0 == g0, (int)R);
        r0 += R;
      }
    }
    const uint8_t *prm = uq_params(s, m, p, g);
    for (int64_t i = 0; i < mr; ++i) {
      kiln_v16f t = uk_load(tot + i * UK_W), acc = uk_load(at + i * UK_W);
      uq_group_end(&t, &acc, 1, prm, s->has_zp, asum + i * s->G + g, 0);
      uk_store(tot + i * UK_W, t);
    }
  }
}

static void uq_rows_panel8(const float *A, const uq_weight *s, int m, int64_t p, int64_t m0,
                           int64_t mr, const float *asum, float *tot) {
  uq_rows_panel(A, s, m, p, 8, m0, mr, asum, tot);
}

static void uq_rows_panel4(const float *A, const uq_weight *s, int m, int64_t p, int64_t m0,
                           int64_t mr, const float *asum, float *tot) {
  uq_rows_panel(A, s, m, p, 4, m0, mr, asum, tot);
}

/*===-- Entry points ------------------------------------------------------===*/

static void uq_matmul(const float *A, int64_t M, int64_t K, const uint8_t *Bg, const uint8_t *Bu,
                      int64_t N, int32_t bits, int64_t group, int32_t has_zp, const float *bias,
                      const float *residual, int32_t act, float *C, int64_t wg, int64_t count) {
  if (M <= 0 || !uq_valid(K, N, bits, group)) return;
  uq_weight s = uq_weight_of(Bg, Bu, K, N, bits, group, has_zp);
  if (s.has_zp && s.G > UQ_ASUM_MAX) return; /* refused by the packer too */
  float asum[UQ_ASUM_MAX] UK_ALIGN64;
  int64_t b, e;
  if (M == 1) {
    if (!uk_split(s.P, wg, count, &b, &e)) return;
    if (s.has_zp)
      for (int64_t g = 0; g < s.G; ++g) asum[g] = uq_sum(A + g * group, group);
    if (bits == 8)
      uq_gemv8(A, &s, b, e, asum, bias, residual, act, C);
    else
      uq_gemv4(A, &s, b, e, asum, bias, residual, act, C);
    return;
  }
  /* Row chunks of about equal height, small enough for their group sums. */
  int64_t mc = UQ_MC_MAX;
  if (s.has_zp && mc * s.G > UQ_ASUM_MAX) mc = UQ_ASUM_MAX / s.G;
  int64_t mt = uk_ceil_div(M, mc);
  mc = uk_ceil_div(M, mt);
  if (!uk_split(mt * s.P, wg, count, &b, &e)) return;
  float tot[2][UQ_MC_MAX * UK_W] UK_ALIGN64;
  int64_t chunk = -1;
  for (int64_t t = b; t < e; ++t) {
    const int64_t ci = t / s.P, p = t % s.P, m0 = ci * mc, mr = uk_min64(mc, M - m0);
    if (s.has_zp && ci != chunk)
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t g = 0; g < s.G; ++g)
          asum[i * s.G + g] = uq_sum(A + (m0 + i) * K + g * group, group);
    chunk = ci;
    for (int m = 0; m < s.nb; ++m) {
      if (bits == 8)
        uq_rows_panel8(A, &s, m, p, m0, mr, asum, tot[m]);
      else
        uq_rows_panel4(A, &s, m, p, m0, mr, asum, tot[m]);
    }
    const int64_t n0 = p * UK_W, nv = uk_min64(UK_W, N - n0);
    for (int64_t i = 0; i < mr; ++i) {
      const kiln_v16f y = uk_load(tot[0] + i * UK_W);
      if (Bu)
        uk_store_glu(y, uk_load(tot[1] + i * UK_W), m0 + i, n0, nv, N, act, C);
      else
        uk_store_out(y, m0 + i, n0, nv, N, bias, residual, act, C);
    }
  }
}

void kiln_uk_matmul_q_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bq, int64_t N,
                          int32_t bits, int64_t group, int32_t has_zp, const float *bias,
                          const float *residual, int32_t act, float *C, int64_t wg,
                          int64_t count) {
  uq_matmul(A, M, K, Bq, (const uint8_t *)0, N, bits, group, has_zp, bias, residual, act, C, wg,
            count);
}

void kiln_uk_matmul_glu_q_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                              const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                              int32_t has_zp, int32_t act, float *C, int64_t wg, int64_t count) {
  uq_matmul(A, M, K, Bg_q, Bu_q, N, bits, group, has_zp, (const float *)0, (const float *)0, act,
            C, wg, count);
}
