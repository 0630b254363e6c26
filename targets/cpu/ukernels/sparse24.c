/*===- sparse24.c - Matmuls with 2:4 sparse weights (kiln-llm-prune) --------===*
 *
 * y = act(x @ W + bias) + residual (and the GLU form) where W [K, N] keeps
 * two weights of each group of 4 consecutive k per column. Only the kept half
 * is stored and read (ukernels.h: per group and 16-column panel, two rows of
 * 16 values, f32 or int8 with one f16 scale per column, and 16 index bytes
 * a | b << 2 with a < b the kept positions). Per group and row the kernel
 * broadcasts x[4g .. 4g+3] and picks, per lane, x[4g + a] and x[4g + b] by
 * masks computed once per group (shared by the rows of a block): two
 * selects and one FMA per kept weight, no multiply for a pruned one.
 *
 * Work: panels are split across workgroups; each runs blocks of <= 4 rows
 * over 1 or 2 panels at a time. Each output element is the same two chains
 * (even and odd kept weights, groups in order, summed at the end, then the
 * int8 column scale), whatever M or the block: a row's result is bitwise the
 * same for any M (batch invariance, as in matmul.c).
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_epilogue.h"
#include "uk_quant.h"
#include "uk_s24.h"

typedef struct {
  const uint8_t *w[2]; /* the weight (or the GLU's gate), the GLU's up */
  int nb;              /* 1, or 2 for the GLU */
  int64_t K, N, G, pb;
  int32_t bits;
} us24_weight;

UK_INLINE kiln_v16f us24_sel(kiln_v16i m, kiln_v16f x, kiln_v16f y) {
  return (kiln_v16f)(((kiln_v16i)x & m) | ((kiln_v16i)y & ~m));
}

/* The kept values of a group (row 0 or 1) as floats. */
UK_INLINE kiln_v16f us24_values(const uint8_t *grp, int row, int32_t bits) {
  if (bits == 8) return uq_row8(grp + row * UK_W);
  return uk_load((const float *)(const void *)(grp + row * 4 * UK_W));
}

/* R rows (1..4) x P panels (1..2) of weight(s) s from panel p, rows of A
 * starting at a (stride K): the accumulated sums per (row, panel, weight),
 * scaled for int8. out[(r * P + j) * nb + m]. */
UK_INLINE void us24_tile(const float *a, const us24_weight *s, int64_t p, int R, int P,
                         kiln_v16f *out) {
  const int32_t bits = s->bits;
  const int64_t gb = us24_group_bytes(bits), voff = 2 * UK_W * (bits == 8 ? 1 : 4);
  const int hdr = bits == 8 ? 32 : 0;
  const int nb = s->nb;
  kiln_v16f acc0[16], acc1[16];
  const uint8_t *base[4];
  for (int j = 0; j < P; ++j)
    for (int m = 0; m < nb; ++m) base[j * nb + m] = s->w[m] + (p + j) * s->pb + hdr;
  for (int i = 0; i < R * P * nb; ++i) {
    acc0[i] = 0;
    acc1[i] = 0;
  }
  for (int64_t g = 0; g < s->G; ++g) {
    for (int j = 0; j < P; ++j)
      for (int m = 0; m < nb; ++m) {
        const uint8_t *grp = base[j * nb + m] + g * gb;
        kiln_v16uc ib;
        __builtin_memcpy(&ib, grp + voff, sizeof ib);
        const kiln_v16i ix = __builtin_convertvector(ib, kiln_v16i);
        const kiln_v16i ia = ix & 3, ibb = ix >> 2;
        const kiln_v16i ma1 = ia == 1, ma2 = ia == 2, mb2 = ibb == 2, mb3 = ibb == 3;
        const kiln_v16f v0 = us24_values(grp, 0, bits), v1 = us24_values(grp, 1, bits);
        for (int r = 0; r < R; ++r) {
          const float *x = a + r * s->K + 4 * g;
          const kiln_v16f x0 = uk_splat(x[0]), x1 = uk_splat(x[1]);
          const kiln_v16f x2 = uk_splat(x[2]), x3 = uk_splat(x[3]);
          const kiln_v16f xa = us24_sel(ma2, x2, us24_sel(ma1, x1, x0));
          const kiln_v16f xb = us24_sel(mb3, x3, us24_sel(mb2, x2, x1));
          const int i = (r * P + j) * nb + m;
          acc0[i] += v0 * xa;
          acc1[i] += v1 * xb;
        }
      }
  }
  for (int j = 0; j < P; ++j)
    for (int m = 0; m < nb; ++m) {
      const kiln_v16f sc = bits == 8 ? uq_half16(s->w[m] + (p + j) * s->pb) : uk_splat(1.0f);
      for (int r = 0; r < R; ++r) {
        const int i = (r * P + j) * nb + m;
        kiln_v16f t = acc0[i] + acc1[i];
        out[i] = bits == 8 ? t * sc : t;
      }
    }
}

/* One workgroup's panels [p0, p1) for all M rows; glu: C = act(g) * u. */
UK_INLINE void us24_run(const float *A, int64_t M, const us24_weight *s, int64_t p0, int64_t p1,
                        const float *bias, const float *residual, int32_t act, float *C) {
  const int64_t N = s->N;
  for (int64_t r0 = 0; r0 < M; r0 += 4) {
    const int R = (int)uk_min64(4, M - r0);
    for (int64_t p = p0; p < p1;) {
      const int P = (R == 1 && p + 1 < p1) ? 2 : 1;
      kiln_v16f out[16];
      const float *a = A + r0 * s->K;
      /* Constant R and P after inlining: one specialized loop each. */
      if (P == 2) us24_tile(a, s, p, 1, 2, out);
      else if (R == 1) us24_tile(a, s, p, 1, 1, out);
      else if (R == 2) us24_tile(a, s, p, 2, 1, out);
      else if (R == 3) us24_tile(a, s, p, 3, 1, out);
      else us24_tile(a, s, p, 4, 1, out);
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < P; ++j) {
          const int64_t n0 = (p + j) * UK_W, nv = uk_min64(UK_W, N - n0);
          const int i = (r * P + j) * s->nb;
          if (s->nb == 2)
            uk_store_glu(out[i], out[i + 1], r0 + r, n0, nv, N, act, C);
          else
            uk_store_out(out[i], r0 + r, n0, nv, N, bias, residual, act, C);
        }
      p += P;
    }
  }
}

void kiln_uk_matmul_s24_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bs, int64_t N,
                            int32_t bits, const float *bias, const float *residual, int32_t act,
                            float *C, int64_t wg, int64_t count) {
  if (M <= 0 || N <= 0 || !us24_valid(K, N, bits)) return;
  us24_weight s = {{Bs, 0}, 1, K, N, K / 4, us24_panel_bytes(K, bits), bits};
  int64_t p0, p1;
  if (!uk_split(uk_ceil_div(N, UK_W), wg, count, &p0, &p1)) return;
  us24_run(A, M, &s, p0, p1, bias, residual, act, C);
}

void kiln_uk_matmul_glu_s24_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bg_s,
                                const uint8_t *Bu_s, int64_t N, int32_t bits, int32_t act,
                                float *C, int64_t wg, int64_t count) {
  if (M <= 0 || N <= 0 || !us24_valid(K, N, bits)) return;
  us24_weight s = {{Bg_s, Bu_s}, 2, K, N, K / 4, us24_panel_bytes(K, bits), bits};
  int64_t p0, p1;
  if (!uk_split(uk_ceil_div(N, UK_W), wg, count, &p0, &p1)) return;
  us24_run(A, M, &s, p0, p1, 0, 0, act, C);
}
