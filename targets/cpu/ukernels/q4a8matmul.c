/*===- q4a8matmul.c - int4 weights x int8 activations, per group ----------===*
 *
 * y = act(x @ W + bias) + residual (and the GLU form) with W packed as for
 * kiln_uk_matmul_q_f32 (int4, W[k, n] = (q[k, n] - z[g, n]) * s[g, n],
 * g = k / group) and each group of `group` inputs of a row quantized to
 * int8 at run time, as llama.cpp's Q4 x Q8 products do (ukernels.h):
 *
 *   s_a[g] = max |x[k in g]| / 127         (uk_act8.h: 1 for an all-zero group)
 *   qa[k]  = round half away from zero (x[k] * 127 / max), in [-127, 127]
 *   v[g, n] = sum_{k in g} qa[k] * q[k, n]  -  z[g, n] * sum_{k in g} qa[k]
 *                                                      (int32, exact)
 *   y[n]  = sum over g in order of  s[g, n] * ((float)v[g, n] * s_a[g])
 *
 * Why: on AVX2 the f32-activation int4 GEMV (qmatmul.c) spends one
 * int-to-float conversion per weight and is bound by that port, not by
 * memory; here 32 weights take two vpmaddubsw and the conversion happens
 * once per group. The integer sums are exact and everything after them is
 * one fixed f32 expression, so every schedule (any M, any workgroup count)
 * and both inner loops give bitwise the same result:
 *
 * - generic (kiln_uk_matmul_qa8_f32, ...): 16 int32 lanes (columns) per
 *   8-k block, nibble t shifted and masked, times qa.
 * - x86 AVX2 (..._avx2): a 32-byte load is 8 columns x 8 k; the low and
 *   high nibbles (k even / odd) are masked into bytes and vpmaddubsw'd
 *   against the row's 4 even / 4 odd int8 inputs broadcast to every 32-bit
 *   lane; int16 sums of up to 4 blocks (|sum| <= 4 * 2 * 2 * 15 * 127 <
 *   32767) are widened by vpmaddwd.
 *
 * The quantized row is stored with each 8-k block permuted to (k+0, k+2,
 * k+4, k+6, k+1, k+3, k+5, k+7), the order of the nibbles in a packed word's
 * low and high halves of its bytes. As in q8a8matmul.c, the integer tile is
 * a separate function with scalar and pointer arguments (the generic or the
 * AVX2 one, passed to the shared driver), so only the _avx2 entry points
 * reference AVX2 code.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_epilogue.h"
#include "uk_act8.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define Q4_MR 4              /* rows of a block (M >= 2) */
#define Q4_NP 4              /* panels of the GEMV (M == 1) */
#define Q4_GC 32             /* groups per integer tile */
#define Q4_ABUF (128 * 1024) /* bytes of quantized rows per chunk */
#define Q4_PMAX 4096         /* (row, group) scales and sums per chunk */

/* acc[(i * ng + gg) * 16 + lane] (int32) = v before the zero points, for
 * groups g0 + gg (gg < ng) of rows i < R of qa (row stride qs bytes) times
 * panels d, d + pb, ... (i < n panels); either R == 1 or n == 1. gb: 8-k
 * blocks per group. */
typedef void (*q4_tile_fn)(const int8_t *qa, int64_t qs, int R, const uint8_t *d, int64_t pb,
                           int n, int64_t g0, int64_t ng, int64_t gb, int32_t *acc);

/*===-- Activation quantization --------------------------------------------===*/

/* Quantizes row x (K inputs, G groups) into qa (K bytes, blocks permuted),
 * with each group's s_a and sum of qa. */
UK_INLINE void q4_quantize_row(const float *x, int64_t K, int64_t group, int8_t *qa, float *sa,
                               int32_t *sq) {
  int8_t tmp[8];
  for (int64_t g = 0; g * group < K; ++g) {
    const float *xg = x + g * group;
    int8_t *q = qa + g * group;
    float inv;
    sa[g] = a8_scale(a8_amax(xg, group), &inv);
    a8_round_block(xg, group, inv, q);
    int32_t s = 0;
    for (int64_t k = 0; k < group; k += 8) {
      for (int t = 0; t < 8; ++t) {
        tmp[t] = q[k + t];
        s += tmp[t];
      }
      for (int t = 0; t < 4; ++t) {
        q[k + t] = tmp[2 * t];
        q[k + 4 + t] = tmp[2 * t + 1];
      }
    }
    sq[g] = s;
  }
}

/*===-- Generic accumulation -----------------------------------------------===*/

UK_INLINE kiln_v16i q4_nib(kiln_v16u w, int t) {
  return __builtin_convertvector(t == 7 ? w >> 28 : (w >> (uint32_t)(4 * t)) & 15u, kiln_v16i);
}

/* sum_t x[t] * nibble t of w, with x in the permuted block order. */
UK_INLINE kiln_v16i q4_dot8(kiln_v16u w, const int8_t *x) {
  return x[0] * q4_nib(w, 0) + x[4] * q4_nib(w, 1) + x[1] * q4_nib(w, 2) + x[5] * q4_nib(w, 3) +
         x[2] * q4_nib(w, 4) + x[6] * q4_nib(w, 5) + x[3] * q4_nib(w, 6) + x[7] * q4_nib(w, 7);
}

static void q4_tile_generic(const int8_t *qa, int64_t qs, int R, const uint8_t *d, int64_t pb,
                            int n, int64_t g0, int64_t ng, int64_t gb, int32_t *acc) {
  const int rows = R > 1;
  const int m = rows ? R : n;
  for (int64_t gg = 0; gg < ng; ++gg) {
    const int64_t b0 = (g0 + gg) * gb;
    for (int i = 0; i < m; ++i) {
      const int8_t *x = qa + (rows ? i * qs : 0) + b0 * 8;
      const uint8_t *p = d + (rows ? 0 : i * pb) + b0 * 64;
      kiln_v16i s = 0;
      for (int64_t b = 0; b < gb; ++b) {
        kiln_v16u w;
        __builtin_memcpy(&w, p + b * 64, sizeof w);
        s += q4_dot8(w, x + b * 8);
      }
      __builtin_memcpy(acc + (i * ng + gg) * UK_W, &s, sizeof s);
    }
  }
}

/*===-- x86 AVX2 accumulation ----------------------------------------------===*/

#if defined(__x86_64__)
#define Q4_AVX2 __attribute__((target("avx2")))

Q4_AVX2 UK_INLINE __m256i q4_bcast4(const int8_t *x) {
  int32_t v;
  __builtin_memcpy(&v, x, sizeof v);
  return _mm256_set1_epi32(v);
}

/* Products of one 32-byte half block (8 columns x 8 k) with the row's
 * even / odd inputs, as int16 pairs. */
Q4_AVX2 UK_INLINE __m256i q4_avx2_pairs(__m256i w, __m256i xe, __m256i xo) {
  const __m256i m = _mm256_set1_epi8(15);
  const __m256i lo = _mm256_and_si256(w, m), hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m);
  return _mm256_add_epi16(_mm256_maddubs_epi16(lo, xe), _mm256_maddubs_epi16(hi, xo));
}

/* One row, n (1..4, constant) panels. */
Q4_AVX2 UK_INLINE void q4_avx2_gemv(const int8_t *qa, const uint8_t *d, int64_t pb, int n,
                                    int64_t g0, int64_t ng, int64_t gb, int32_t *acc) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t gg = 0; gg < ng; ++gg) {
    const int64_t b0 = (g0 + gg) * gb;
    __m256i s[Q4_NP][2];
    for (int j = 0; j < n; ++j) s[j][0] = s[j][1] = _mm256_setzero_si256();
    for (int64_t c = 0; c < gb; c += 4) {
      const int64_t ce = uk_min64(gb, c + 4);
      __m256i p[Q4_NP][2];
      for (int j = 0; j < n; ++j) p[j][0] = p[j][1] = _mm256_setzero_si256();
      for (int64_t b = b0 + c; b < b0 + ce; ++b) {
        const __m256i xe = q4_bcast4(qa + b * 8), xo = q4_bcast4(qa + b * 8 + 4);
        for (int j = 0; j < n; ++j)
          for (int h = 0; h < 2; ++h) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(d + j * pb + b * 64 + 32 * h));
            p[j][h] = _mm256_add_epi16(p[j][h], q4_avx2_pairs(w, xe, xo));
          }
      }
      for (int j = 0; j < n; ++j)
        for (int h = 0; h < 2; ++h) s[j][h] = _mm256_add_epi32(s[j][h], _mm256_madd_epi16(p[j][h], ones));
    }
    for (int j = 0; j < n; ++j)
      for (int h = 0; h < 2; ++h)
        _mm256_storeu_si256((__m256i *)(acc + (j * ng + gg) * UK_W + 8 * h), s[j][h]);
  }
}

/* R (2..4, constant) rows, one panel: each half block is unpacked once for
 * all rows. */
Q4_AVX2 UK_INLINE void q4_avx2_rows(const int8_t *qa, int64_t qs, int R, const uint8_t *d,
                                    int64_t g0, int64_t ng, int64_t gb, int32_t *acc) {
  const __m256i ones = _mm256_set1_epi16(1), m = _mm256_set1_epi8(15);
  for (int64_t gg = 0; gg < ng; ++gg) {
    const int64_t b0 = (g0 + gg) * gb;
    __m256i s[Q4_MR][2];
    for (int r = 0; r < R; ++r) s[r][0] = s[r][1] = _mm256_setzero_si256();
    for (int64_t c = 0; c < gb; c += 4) {
      const int64_t ce = uk_min64(gb, c + 4);
      __m256i p[Q4_MR][2];
      for (int r = 0; r < R; ++r) p[r][0] = p[r][1] = _mm256_setzero_si256();
      for (int64_t b = b0 + c; b < b0 + ce; ++b) {
        __m256i lo[2], hi[2];
        for (int h = 0; h < 2; ++h) {
          const __m256i w = _mm256_loadu_si256((const __m256i *)(d + b * 64 + 32 * h));
          lo[h] = _mm256_and_si256(w, m);
          hi[h] = _mm256_and_si256(_mm256_srli_epi16(w, 4), m);
        }
        for (int r = 0; r < R; ++r) {
          const __m256i xe = q4_bcast4(qa + r * qs + b * 8), xo = q4_bcast4(qa + r * qs + b * 8 + 4);
          for (int h = 0; h < 2; ++h)
            p[r][h] = _mm256_add_epi16(p[r][h], _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], xe),
                                                                 _mm256_maddubs_epi16(hi[h], xo)));
        }
      }
      for (int r = 0; r < R; ++r)
        for (int h = 0; h < 2; ++h) s[r][h] = _mm256_add_epi32(s[r][h], _mm256_madd_epi16(p[r][h], ones));
    }
    for (int r = 0; r < R; ++r)
      for (int h = 0; h < 2; ++h)
        _mm256_storeu_si256((__m256i *)(acc + (r * ng + gg) * UK_W + 8 * h), s[r][h]);
  }
}

Q4_AVX2 static void q4_tile_avx2(const int8_t *qa, int64_t qs, int R, const uint8_t *d, int64_t pb,
                                 int n, int64_t g0, int64_t ng, int64_t gb, int32_t *acc) {
  if (R == 1) {
    switch (n) {
      case 4: q4_avx2_gemv(qa, d, pb, 4, g0, ng, gb, acc); return;
      case 3: q4_avx2_gemv(qa, d, pb, 3, g0, ng, gb, acc); return;
      case 2: q4_avx2_gemv(qa, d, pb, 2, g0, ng, gb, acc); return;
      default: q4_avx2_gemv(qa, d, pb, 1, g0, ng, gb, acc); return;
    }
  }
  switch (R) {
    case 4: q4_avx2_rows(qa, qs, 4, d, g0, ng, gb, acc); return;
    case 3: q4_avx2_rows(qa, qs, 3, d, g0, ng, gb, acc); return;
    default: q4_avx2_rows(qa, qs, 2, d, g0, ng, gb, acc); return;
  }
}
#endif /* __x86_64__ */

/*===-- The driver ---------------------------------------------------------===*/

/* tot + s * ((float)(acc - z * sq) * sa): one group of one panel. */
UK_INLINE kiln_v16f q4_group(kiln_v16f tot, const int32_t *acc, const uint8_t *prm,
                             int32_t has_zp, float sa, int32_t sq) {
  kiln_v16i v;
  __builtin_memcpy(&v, acc, sizeof v);
  if (has_zp) {
    kiln_v16c z;
    __builtin_memcpy(&z, prm + 32, sizeof z);
    v -= __builtin_convertvector(z, kiln_v16i) * sq;
  }
  return tot + uq_half16(prm) * (__builtin_convertvector(v, kiln_v16f) * sa);
}

typedef struct {
  const uint8_t *w[2]; /* the weight (or the GLU's gate), the GLU's up */
  int nb;
  int64_t K, N, P, G, group, gb, pb, prm;
  int32_t has_zp;
} q4_weight;

UK_INLINE const uint8_t *q4_params(const q4_weight *s, int m, int64_t p, int64_t g) {
  return s->w[m] + s->P * s->pb + (p * s->G + g) * s->prm;
}

/* tot[i] (i < R rows, or i < n panels p..) over every group of weight m. */
UK_INLINE void q4_accumulate(const q4_weight *s, int m, const int8_t *qa, int64_t qs, int R,
                             int64_t p, int n, const float *sa, const int32_t *sq,
                             q4_tile_fn tile, kiln_v16f *tot) {
  int32_t acc[Q4_MR * Q4_GC * UK_W] UK_ALIGN64;
  const int cnt = R > 1 ? R : n;
  for (int i = 0; i < cnt; ++i) tot[i] = 0;
  for (int64_t g0 = 0; g0 < s->G; g0 += Q4_GC) {
    const int64_t ng = uk_min64(Q4_GC, s->G - g0);
    tile(qa, qs, R, s->w[m] + p * s->pb, s->pb, n, g0, ng, s->gb, acc);
    for (int i = 0; i < cnt; ++i) {
      const int64_t row = R > 1 ? i : 0, panel = R > 1 ? p : p + i;
      for (int64_t gg = 0; gg < ng; ++gg)
        tot[i] = q4_group(tot[i], acc + (i * ng + gg) * UK_W, q4_params(s, m, panel, g0 + gg),
                          s->has_zp, sa[row * s->G + g0 + gg], sq[row * s->G + g0 + gg]);
    }
  }
}

UK_INLINE void q4_matmul(const float *A, int64_t M, int64_t K, const uint8_t *Bg,
                         const uint8_t *Bu, int64_t N, int32_t bits, int64_t group,
                         int32_t has_zp, const float *bias, const float *residual, int32_t act,
                         float *C, int64_t wg, int64_t count, q4_tile_fn tile) {
  if (M <= 0 || bits != 4 || !uq_valid(K, N, bits, group) || K > Q4_ABUF || K / group > Q4_PMAX)
    return;
  q4_weight s;
  s.w[0] = Bg;
  s.w[1] = Bu;
  s.nb = Bu ? 2 : 1;
  s.K = K;
  s.N = N;
  s.P = uk_ceil_div(N, UK_W);
  s.G = K / group;
  s.group = group;
  s.gb = group / 8;
  s.pb = uq_panel_bytes(K, 4);
  s.prm = uq_param_bytes(has_zp);
  s.has_zp = has_zp ? 1 : 0;
  int64_t b, e;
  if (!uk_split(s.P, wg, count, &b, &e)) return;
  int8_t qbuf[Q4_ABUF] UK_ALIGN64;
  float sa[Q4_PMAX];
  int32_t sq[Q4_PMAX];
  const int64_t mc = uk_min64(uk_min64(Q4_ABUF / K, Q4_PMAX / s.G), M);
  for (int64_t m0 = 0; m0 < M; m0 += mc) {
    const int64_t mr = uk_min64(mc, M - m0);
    for (int64_t i = 0; i < mr; ++i)
      q4_quantize_row(A + (m0 + i) * K, K, group, qbuf + i * K, sa + i * s.G, sq + i * s.G);
    if (mr == 1) { /* GEMV: Q4_NP panels at a time */
      for (int64_t p = b; p < e; p += Q4_NP) {
        const int n = (int)uk_min64(Q4_NP, e - p);
        kiln_v16f tg[Q4_NP], tu[Q4_NP];
        q4_accumulate(&s, 0, qbuf, K, 1, p, n, sa, sq, tile, tg);
        if (Bu) q4_accumulate(&s, 1, qbuf, K, 1, p, n, sa, sq, tile, tu);
        for (int j = 0; j < n; ++j) {
          const int64_t n0 = (p + j) * UK_W, nv = uk_min64(UK_W, N - n0);
          if (Bu)
            uk_store_glu(tg[j], tu[j], m0, n0, nv, N, act, C);
          else
            uk_store_out(tg[j], m0, n0, nv, N, bias, residual, act, C);
        }
      }
      continue;
    }
    const int64_t nrb = uk_ceil_div(mr, Q4_MR);
    for (int64_t p = b; p < e; ++p) {
      const int64_t n0 = p * UK_W, nv = uk_min64(UK_W, N - n0);
      /* row blocks of balanced height (>= 2 rows each: 5 = 3 + 2) */
      for (int64_t r0 = 0, rb = 0; r0 < mr; ++rb) {
        const int64_t R = (mr - r0) / (nrb - rb) + ((mr - r0) % (nrb - rb) != 0);
        kiln_v16f tg[Q4_MR], tu[Q4_MR];
        const float *sar = sa + r0 * s.G;
        const int32_t *sqr = sq + r0 * s.G;
        q4_accumulate(&s, 0, qbuf + r0 * K, K, (int)R, p, 1, sar, sqr, tile, tg);
        if (Bu) q4_accumulate(&s, 1, qbuf + r0 * K, K, (int)R, p, 1, sar, sqr, tile, tu);
        for (int64_t i = 0; i < R; ++i) {
          if (Bu)
            uk_store_glu(tg[i], tu[i], m0 + r0 + i, n0, nv, N, act, C);
          else
            uk_store_out(tg[i], m0 + r0 + i, n0, nv, N, bias, residual, act, C);
        }
        r0 += R;
      }
    }
  }
}

/*===-- Entry points -------------------------------------------------------===*/

void kiln_uk_matmul_qa8_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bq, int64_t N,
                            int32_t bits, int64_t group, int32_t has_zp, const float *bias,
                            const float *residual, int32_t act, float *C, int64_t wg,
                            int64_t count) {
  q4_matmul(A, M, K, Bq, (const uint8_t *)0, N, bits, group, has_zp, bias, residual, act, C, wg,
            count, q4_tile_generic);
}

void kiln_uk_matmul_glu_qa8_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                                int32_t has_zp, int32_t act, float *C, int64_t wg,
                                int64_t count) {
  q4_matmul(A, M, K, Bg_q, Bu_q, N, bits, group, has_zp, (const float *)0, (const float *)0, act,
            C, wg, count, q4_tile_generic);
}

#if defined(__x86_64__)
void kiln_uk_matmul_qa8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                 int64_t N, int32_t bits, int64_t group, int32_t has_zp,
                                 const float *bias, const float *residual, int32_t act, float *C,
                                 int64_t wg, int64_t count) {
  q4_matmul(A, M, K, Bq, (const uint8_t *)0, N, bits, group, has_zp, bias, residual, act, C, wg,
            count, q4_tile_avx2);
}

void kiln_uk_matmul_glu_qa8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                     const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                                     int32_t has_zp, int32_t act, float *C, int64_t wg,
                                     int64_t count) {
  q4_matmul(A, M, K, Bg_q, Bu_q, N, bits, group, has_zp, (const float *)0, (const float *)0, act,
            C, wg, count, q4_tile_avx2);
}
#endif /* __x86_64__ */
