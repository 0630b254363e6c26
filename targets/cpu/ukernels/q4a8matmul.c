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
 *   32767) are widened by vpmaddwd; a group's sums stay in registers for
 *   the f32 part, whose scales F16C widens.
 * - aarch64 +dotprod (..._dotprod): a 16-byte load is 4 columns x 8 k; the
 *   low and high nibbles are masked / shifted into bytes and sdot'd against
 *   the row's 4 even / 4 odd int8 inputs in every 32-bit lane, straight
 *   into int32 (no int16 step), a group's sums in 4 q registers per panel.
 *
 * The quantized row is stored with each 8-k block permuted to (k+0, k+2,
 * k+4, k+6, k+1, k+3, k+5, k+7), the order of the nibbles in a packed word's
 * low and high halves of its bytes. As in q8a8matmul.c, the panels' loop is
 * a separate function with scalar and pointer arguments (the generic or the
 * AVX2 or the dotprod one, passed to the shared driver), so no vector type
 * crosses a call and only the _avx2 / _dotprod entry points reference that
 * code; all end in the same f32 expression (q4_combine).
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_epilogue.h"
#include "uk_act8.h"


#define Q4_MR 4              /* rows of a block */
#define Q4_ABUF UQ_A8_K_MAX  /* bytes of quantized rows per chunk */
#define Q4_PMAX UQ_A8_G_MAX  /* (row, group) scales and sums per chunk */

/* tot[i * 16 + lane] (f32) = y before the epilogue for rows i < R (1..4)
 * of qa (row stride qs bytes; their s_a and sums of qa at sa / sq + i * G)
 * times panel p of weight m.
 *
 * One panel at a time, the GEMV (M == 1) included: a panel is one
 * sequential stream of packed weights (and one of its parameters). The
 * GEMV used to interleave 4 panels to share each input broadcast; on a
 * 2-core Zen 5 that streamed 130 MiB at 18-26 GB/s against 29-35 GB/s
 * with one panel and a software prefetch Q4_PF bytes ahead (read
 * bandwidth 38 GB/s; bench/ukernels_bench.cc BM_QA8Matmul copies:80, the
 * AVX2 and the VNNI loops alike): more streams cost more than the shared
 * broadcasts save. */
typedef void (*q4_panels_fn)(const uq_weight *s, int m, const int8_t *qa, int64_t qs, int R,
                             int64_t p, const float *sa, const int32_t *sq, float *tot);

#define Q4_PF 2048 /* bytes the x86 loops prefetch ahead in a panel */

/* The f32 part of one (panel, group), the same expression in both loops:
 * v (the exact integer sum, zero points subtracted), the group's 16
 * scales s and the row's s_a. */
UK_INLINE kiln_v16f q4_combine(kiln_v16f tot, kiln_v16i v, kiln_v16f s, float sa) {
  return tot + s * (__builtin_convertvector(v, kiln_v16f) * sa);
}

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
    int32_t sum = 0;
    for (int64_t k = 0; k < group; k += 8) {
      for (int t = 0; t < 8; ++t) {
        tmp[t] = q[k + t];
        sum += tmp[t];
      }
      for (int t = 0; t < 4; ++t) {
        q[k + t] = tmp[2 * t];
        q[k + 4 + t] = tmp[2 * t + 1];
      }
    }
    sq[g] = sum;
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

static void q4_panels_generic(const uq_weight *s, int m, const int8_t *qa, int64_t qs, int R,
                              int64_t p, const float *sa, const int32_t *sq, float *tot) {
  const int64_t gb = s->group / 8; /* 8-k blocks per group */
  const uint8_t *d = uq_data(s, m, p);
  for (int row = 0; row < R; ++row) {
    const int8_t *x = qa + row * qs;
    kiln_v16f t = 0;
    for (int64_t g = 0; g < s->G; ++g) {
      kiln_v16i v = 0;
      for (int64_t b = g * gb; b < (g + 1) * gb; ++b) {
        kiln_v16u w;
        __builtin_memcpy(&w, d + b * 64, sizeof w);
        v += q4_dot8(w, x + b * 8);
      }
      const uint8_t *prm = uq_params(s, m, p, g);
      if (s->has_zp) {
        kiln_v16c z;
        __builtin_memcpy(&z, prm + 32, sizeof z);
        v -= __builtin_convertvector(z, kiln_v16i) * sq[row * s->G + g];
      }
      t = q4_combine(t, v, uq_half16(prm), sa[row * s->G + g]);
    }
    uk_store(tot + row * UK_W, t);
  }
}

/*===-- x86 AVX2 accumulation ----------------------------------------------===*/

#if defined(__x86_64__)
/* F16C widens the scales (every AVX2 CPU has it; kiln-compile calls the
 * twins only where the target lists both). */
#define Q4_AVX2 __attribute__((target("avx2,f16c")))

/* v of one (panel, group) from its two int32 halves, zero points
 * subtracted, then q4_combine with the F16C-widened scales (the same
 * values as uq_half16's). */
Q4_AVX2 UK_INLINE kiln_v16f q4_avx2_combine(kiln_v16f tot, __m256i lo, __m256i hi,
                                            const uint8_t *prm, int32_t has_zp, float sa,
                                            int32_t sq) {
  if (has_zp) {
    const __m256i q = _mm256_set1_epi32(sq);
    const __m128i z = _mm_loadu_si128((const __m128i *)(prm + 32));
    lo = _mm256_sub_epi32(lo, _mm256_mullo_epi32(_mm256_cvtepi8_epi32(z), q));
    hi = _mm256_sub_epi32(hi, _mm256_mullo_epi32(_mm256_cvtepi8_epi32(_mm_srli_si128(z, 8)), q));
  }
  const __m256 s0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)prm));
  const __m256 s1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(prm + 16)));
  kiln_v16i v;
  kiln_v16f s;
  __builtin_memcpy(&v, &lo, 32);
  __builtin_memcpy((char *)&v + 32, &hi, 32);
  __builtin_memcpy(&s, &s0, 32);
  __builtin_memcpy((char *)&s + 32, &s1, 32);
  return q4_combine(tot, v, s, sa);
}

/* int16 pairs of one 32-byte half block (8 columns x 8 k) with the row's
 * even / odd inputs. */
Q4_AVX2 UK_INLINE __m256i q4_avx2_pairs(__m256i lo, __m256i hi, __m256i xe, __m256i xo) {
  return _mm256_add_epi16(_mm256_maddubs_epi16(lo, xe), _mm256_maddubs_epi16(hi, xo));
}

/* R (1..4, constant) rows, one panel: each half block is unpacked once for
 * all rows. */
Q4_AVX2 UK_INLINE void q4_avx2_rows(const uq_weight *s, int m, const int8_t *qa, int64_t qs, int R,
                                    int64_t p, const float *sa, const int32_t *sq, float *tot) {
  const __m256i ones = _mm256_set1_epi16(1), mask = _mm256_set1_epi8(15);
  const uint8_t *d = uq_data(s, m, p);
  const int64_t gb = s->group / 8;
  kiln_v16f t[Q4_MR];
  for (int r = 0; r < R; ++r) t[r] = 0;
  for (int64_t g = 0; g < s->G; ++g) {
    const int64_t b0 = g * gb;
    __m256i acc[Q4_MR][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int64_t c = 0; c < gb; c += 4) {
      const int64_t ce = uk_min64(gb, c + 4);
      __m256i pr[Q4_MR][2];
      for (int r = 0; r < R; ++r) pr[r][0] = pr[r][1] = _mm256_setzero_si256();
      for (int64_t b = b0 + c; b < b0 + ce; ++b) {
        __builtin_prefetch(d + b * 64 + Q4_PF, 0, 3);
        __m256i lo[2], hi[2];
        for (int h = 0; h < 2; ++h) {
          const __m256i w = _mm256_loadu_si256((const __m256i *)(d + b * 64 + 32 * h));
          lo[h] = _mm256_and_si256(w, mask);
          hi[h] = _mm256_and_si256(_mm256_srli_epi16(w, 4), mask);
        }
        for (int r = 0; r < R; ++r) {
          const __m256i xe = a8_bcast4_avx2(qa + r * qs + b * 8),
                        xo = a8_bcast4_avx2(qa + r * qs + b * 8 + 4);
          for (int h = 0; h < 2; ++h)
            pr[r][h] = _mm256_add_epi16(pr[r][h], q4_avx2_pairs(lo[h], hi[h], xe, xo));
        }
      }
      for (int r = 0; r < R; ++r)
        for (int h = 0; h < 2; ++h)
          acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(pr[r][h], ones));
    }
    const uint8_t *prm = uq_params(s, m, p, g);
    for (int r = 0; r < R; ++r)
      t[r] = q4_avx2_combine(t[r], acc[r][0], acc[r][1], prm, s->has_zp, sa[r * s->G + g],
                             sq[r * s->G + g]);
  }
  for (int r = 0; r < R; ++r) uk_store(tot + r * UK_W, t[r]);
}

Q4_AVX2 static void q4_panels_avx2(const uq_weight *s, int m, const int8_t *qa, int64_t qs, int R,
                                   int64_t p, const float *sa, const int32_t *sq, float *tot) {
  switch (R) {
    case 4: q4_avx2_rows(s, m, qa, qs, 4, p, sa, sq, tot); return;
    case 3: q4_avx2_rows(s, m, qa, qs, 3, p, sa, sq, tot); return;
    case 2: q4_avx2_rows(s, m, qa, qs, 2, p, sa, sq, tot); return;
    default: q4_avx2_rows(s, m, qa, qs, 1, p, sa, sq, tot); return;
  }
}
#endif /* __x86_64__ */

/*===-- x86 AVX-512 VNNI accumulation --------------------------------------===*/

#if defined(__x86_64__)
/* One zmm is a whole 64-byte block: 16 columns (its 32-bit lanes) x 8 k,
 * each byte's low / high nibble an even / odd k; vpdpbusd adds their
 * products with the 4 even / 4 odd inputs straight into the columns' int32
 * sums, so a block is 2 instructions for 16 columns (AVX2: 4 vpmaddubsw and
 * the widening, for 2 x 8). The f32 part is the generic expression. All of
 * it is built for AVX-512 (UK_VNNI, uk_act8.h) and the helpers are written
 * out: a 64-byte vector passed to code built for another ISA changes its
 * ABI. */
#if defined(KILN_UK_EMULATE_VNNI)
UK_INLINE kiln_v16f q4_vnni_scales(const uint8_t *prm) { return uq_half16(prm); }
#else
/* The 16 f16 scales (the same values as uq_half16's). */
UK_VNNI UK_INLINE kiln_v16f q4_vnni_scales(const uint8_t *prm) {
  return (kiln_v16f)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)prm));
}
#endif

/* tot plus one (panel, group): zero points subtracted, then q4_combine's
 * expression. */
UK_VNNI UK_INLINE kiln_v16f q4_vnni_combine(kiln_v16f tot, kiln_v16i v, const uint8_t *prm,
                                            int32_t has_zp, float sa, int32_t sq) {
  if (has_zp) {
    kiln_v16c z;
    __builtin_memcpy(&z, prm + 32, sizeof z);
    v -= __builtin_convertvector(z, kiln_v16i) * sq;
  }
  return tot + q4_vnni_scales(prm) * (__builtin_convertvector(v, kiln_v16f) * sa);
}

/* acc plus block b of a panel's data d against a row's inputs qa. */
UK_VNNI UK_INLINE kiln_v16i q4_vnni_block(kiln_v16i acc, const uint8_t *d, int64_t b,
                                          const int8_t *qa) {
  kiln_v16u w;
  int32_t xe, xo;
  __builtin_memcpy(&w, d + b * 64, sizeof w);
  __builtin_memcpy(&xe, qa + b * 8, sizeof xe);
  __builtin_memcpy(&xo, qa + b * 8 + 4, sizeof xo);
  return a8_dpbusd16(a8_dpbusd16(acc, w & 0x0F0F0F0Fu, xe), (w >> 4) & 0x0F0F0F0Fu, xo);
}

/* R (1..4, constant) rows, one panel. */
UK_VNNI UK_INLINE void q4_vnni_rows(const uq_weight *s, int m, const int8_t *qa, int64_t qs, int R,
                                    int64_t p, const float *sa, const int32_t *sq, float *tot) {
  const uint8_t *d = uq_data(s, m, p);
  const int64_t gb = s->group / 8;
  kiln_v16f t[Q4_MR];
  for (int r = 0; r < R; ++r) t[r] = 0;
  for (int64_t g = 0; g < s->G; ++g) {
    kiln_v16i acc[Q4_MR];
    for (int r = 0; r < R; ++r) acc[r] = 0;
    for (int64_t b = g * gb; b < (g + 1) * gb; ++b) {
      __builtin_prefetch(d + b * 64 + Q4_PF, 0, 3);
      for (int r = 0; r < R; ++r) acc[r] = q4_vnni_block(acc[r], d, b, qa + r * qs);
    }
    const uint8_t *prm = uq_params(s, m, p, g);
    for (int r = 0; r < R; ++r)
      t[r] = q4_vnni_combine(t[r], acc[r], prm, s->has_zp, sa[r * s->G + g], sq[r * s->G + g]);
  }
  for (int r = 0; r < R; ++r) __builtin_memcpy(tot + r * UK_W, &t[r], sizeof t[r]);
}

UK_VNNI static void q4_panels_vnni(const uq_weight *s, int m, const int8_t *qa, int64_t qs, int R,
                                   int64_t p, const float *sa, const int32_t *sq, float *tot) {
  switch (R) {
    case 4: q4_vnni_rows(s, m, qa, qs, 4, p, sa, sq, tot); return;
    case 3: q4_vnni_rows(s, m, qa, qs, 3, p, sa, sq, tot); return;
    case 2: q4_vnni_rows(s, m, qa, qs, 2, p, sa, sq, tot); return;
    default: q4_vnni_rows(s, m, qa, qs, 1, p, sa, sq, tot); return;
  }
}
#endif /* __x86_64__ */

/*===-- aarch64 dot product accumulation -----------------------------------===*/

#if defined(__aarch64__)
#define Q4_DOTPROD __attribute__((target("dotprod")))

/* acc (columns 4i .. 4i+3 in acc[i]) += one 16-byte quarter block w times
 * the block's even (xe) and odd (xo) inputs. */
Q4_DOTPROD UK_INLINE int32x4_t q4_dot_quarter(int32x4_t acc, uint8x16_t w, int8x16_t xe,
                                              int8x16_t xo) {
  acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(w, vdupq_n_u8(15))), xe);
  return vdotq_s32(acc, vreinterpretq_s8_u8(vshrq_n_u8(w, 4)), xo);
}

/* The f32 part of one (panel, group) from its exact sums, as in the
 * generic loop (zero points, then q4_combine). */
Q4_DOTPROD UK_INLINE kiln_v16f q4_dot_combine(kiln_v16f tot, const int32x4_t *acc,
                                              const uint8_t *prm, int32_t has_zp, float sa,
                                              int32_t sq) {
  int32_t lanes[UK_W];
  for (int i = 0; i < 4; ++i) vst1q_s32(lanes + 4 * i, acc[i]);
  kiln_v16i v;
  __builtin_memcpy(&v, lanes, sizeof v);
  if (has_zp) {
    kiln_v16c z;
    __builtin_memcpy(&z, prm + 32, sizeof z);
    v -= __builtin_convertvector(z, kiln_v16i) * sq;
  }
  return q4_combine(tot, v, uq_half16(prm), sa);
}

/* R (1..4, constant) rows, one panel: each block is loaded once for all
 * rows. */
Q4_DOTPROD UK_INLINE void q4_dot_rows(const uq_weight *s, int m, const int8_t *qa, int64_t qs,
                                      int R, int64_t p, const float *sa, const int32_t *sq,
                                      float *tot) {
  const uint8_t *d = uq_data(s, m, p);
  const int64_t gb = s->group / 8;
  kiln_v16f t[Q4_MR];
  for (int r = 0; r < R; ++r) t[r] = 0;
  for (int64_t g = 0; g < s->G; ++g) {
    int32x4_t acc[Q4_MR][4];
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < 4; ++i) acc[r][i] = vdupq_n_s32(0);
    for (int64_t b = g * gb; b < (g + 1) * gb; ++b) {
      uint8x16_t w[4];
      for (int i = 0; i < 4; ++i) w[i] = vld1q_u8(d + b * 64 + 16 * i);
      for (int r = 0; r < R; ++r) {
        const int8x16_t xe = a8_bcast4_neon(qa + r * qs + b * 8),
                        xo = a8_bcast4_neon(qa + r * qs + b * 8 + 4);
        for (int i = 0; i < 4; ++i) acc[r][i] = q4_dot_quarter(acc[r][i], w[i], xe, xo);
      }
    }
    const uint8_t *prm = uq_params(s, m, p, g);
    for (int r = 0; r < R; ++r)
      t[r] = q4_dot_combine(t[r], acc[r], prm, s->has_zp, sa[r * s->G + g], sq[r * s->G + g]);
  }
  for (int r = 0; r < R; ++r) uk_store(tot + r * UK_W, t[r]);
}

Q4_DOTPROD static void q4_panels_dotprod(const uq_weight *s, int m, const int8_t *qa, int64_t qs,
                                         int R, int64_t p, const float *sa, const int32_t *sq,
                                         float *tot) {
  switch (R) {
    case 4: q4_dot_rows(s, m, qa, qs, 4, p, sa, sq, tot); return;
    case 3: q4_dot_rows(s, m, qa, qs, 3, p, sa, sq, tot); return;
    case 2: q4_dot_rows(s, m, qa, qs, 2, p, sa, sq, tot); return;
    default: q4_dot_rows(s, m, qa, qs, 1, p, sa, sq, tot); return;
  }
}
#endif /* __aarch64__ */

/*===-- The driver ---------------------------------------------------------===*/

UK_INLINE void q4_matmul(const float *A, int64_t M, int64_t K, const uint8_t *Bg,
                         const uint8_t *Bu, int64_t N, int32_t bits, int64_t group,
                         int32_t has_zp, const float *bias, const float *residual, int32_t act,
                         float *C, int64_t wg, int64_t count, q4_panels_fn panels) {
  if (M <= 0 || bits != 4 || !uq_valid(K, N, bits, group) || !uq_a8_fits(K, group))
    return;
  uq_weight s = uq_weight_of(Bg, Bu, K, N, 4, group, has_zp);
  int64_t b, e;
  if (!uk_split(s.P, wg, count, &b, &e)) return;
  int8_t qbuf[Q4_ABUF] UK_ALIGN64;
  float sa[Q4_PMAX];
  int32_t sq[Q4_PMAX];
  float tg[Q4_MR * UK_W] UK_ALIGN64, tu[Q4_MR * UK_W] UK_ALIGN64;
  const int64_t mc = uk_min64(uk_min64(Q4_ABUF / K, Q4_PMAX / s.G), M);
  for (int64_t m0 = 0; m0 < M; m0 += mc) {
    const int64_t mr = uk_min64(mc, M - m0);
    for (int64_t i = 0; i < mr; ++i)
      q4_quantize_row(A + (m0 + i) * K, K, group, qbuf + i * K, sa + i * s.G, sq + i * s.G);
    const int64_t nrb = uk_ceil_div(mr, Q4_MR);
    for (int64_t p = b; p < e; ++p) {
      const int64_t n0 = p * UK_W, nv = uk_min64(UK_W, N - n0);
      /* row blocks of balanced height (5 = 3 + 2) */
      for (int64_t r0 = 0, rb = 0; r0 < mr; ++rb) {
        const int64_t R = (mr - r0) / (nrb - rb) + ((mr - r0) % (nrb - rb) != 0);
        const int8_t *qa = qbuf + r0 * K;
        panels(&s, 0, qa, K, (int)R, p, sa + r0 * s.G, sq + r0 * s.G, tg);
        if (Bu) panels(&s, 1, qa, K, (int)R, p, sa + r0 * s.G, sq + r0 * s.G, tu);
        for (int64_t i = 0; i < R; ++i) {
          if (Bu)
            uk_store_glu(uk_load(tg + i * UK_W), uk_load(tu + i * UK_W), m0 + r0 + i, n0, nv, N,
                         act, C);
          else
            uk_store_out(uk_load(tg + i * UK_W), m0 + r0 + i, n0, nv, N, bias, residual, act, C);
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
            count, q4_panels_generic);
}

void kiln_uk_matmul_glu_qa8_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                                int32_t has_zp, int32_t act, float *C, int64_t wg,
                                int64_t count) {
  q4_matmul(A, M, K, Bg_q, Bu_q, N, bits, group, has_zp, (const float *)0, (const float *)0, act,
            C, wg, count, q4_panels_generic);
}

#if defined(__x86_64__)
void kiln_uk_matmul_qa8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                 int64_t N, int32_t bits, int64_t group, int32_t has_zp,
                                 const float *bias, const float *residual, int32_t act, float *C,
                                 int64_t wg, int64_t count) {
  q4_matmul(A, M, K, Bq, (const uint8_t *)0, N, bits, group, has_zp, bias, residual, act, C, wg,
            count, q4_panels_avx2);
}

void kiln_uk_matmul_glu_qa8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                     const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                                     int32_t has_zp, int32_t act, float *C, int64_t wg,
                                     int64_t count) {
  q4_matmul(A, M, K, Bg_q, Bu_q, N, bits, group, has_zp, (const float *)0, (const float *)0, act,
            C, wg, count, q4_panels_avx2);
}

void kiln_uk_matmul_qa8_f32_vnni(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                 int64_t N, int32_t bits, int64_t group, int32_t has_zp,
                                 const float *bias, const float *residual, int32_t act, float *C,
                                 int64_t wg, int64_t count) {
  q4_matmul(A, M, K, Bq, (const uint8_t *)0, N, bits, group, has_zp, bias, residual, act, C, wg,
            count, q4_panels_vnni);
}

void kiln_uk_matmul_glu_qa8_f32_vnni(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                     const uint8_t *Bu_q, int64_t N, int32_t bits, int64_t group,
                                     int32_t has_zp, int32_t act, float *C, int64_t wg,
                                     int64_t count) {
  q4_matmul(A, M, K, Bg_q, Bu_q, N, bits, group, has_zp, (const float *)0, (const float *)0, act,
            C, wg, count, q4_panels_vnni);
}
#endif /* __x86_64__ */

#if defined(__aarch64__)
Q4_DOTPROD void kiln_uk_matmul_qa8_f32_dotprod(const float *A, int64_t M, int64_t K,
                                               const uint8_t *Bq, int64_t N, int32_t bits,
                                               int64_t group, int32_t has_zp, const float *bias,
                                               const float *residual, int32_t act, float *C,
                                               int64_t wg, int64_t count) {
  q4_matmul(A, M, K, Bq, (const uint8_t *)0, N, bits, group, has_zp, bias, residual, act, C, wg,
            count, q4_panels_dotprod);
}

Q4_DOTPROD void kiln_uk_matmul_glu_qa8_f32_dotprod(const float *A, int64_t M, int64_t K,
                                                   const uint8_t *Bg_q, const uint8_t *Bu_q,
                                                   int64_t N, int32_t bits, int64_t group,
                                                   int32_t has_zp, int32_t act, float *C,
                                                   int64_t wg, int64_t count) {
  q4_matmul(A, M, K, Bg_q, Bu_q, N, bits, group, has_zp, (const float *)0, (const float *)0, act,
            C, wg, count, q4_panels_dotprod);
}
#endif /* __aarch64__ */
