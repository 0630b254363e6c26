/*===- q8a8matmul.c - int8 x int8 ("w8a8") matmuls -------------------------===*
 *
 * y = act(x @ W + bias) + residual (and the GLU form) where W[k, n] =
 * q[k, n] * s_w[n] (int8, one scale per column) and each row of x is
 * quantized to int8 at run time (ukernels.h):
 *
 *   amax = max_k |x[k]|;  s_a = amax / 127, inv = 127 / amax
 *                          (s_a = 1, inv = 0 when !(amax > 0): all zeros)
 *   qa[k] = round half away from zero (x[k] * inv), clamped to [-127, 127]
 *   acc[n] = sum_k qa[k] * q[k, n]               (int32, exact)
 *   y[n]   = ((float)acc[n] * s_a) * s_w[n]      then bias, act, residual
 *
 * The integer sums are exact and everything after them is one fixed f32
 * expression per element, so every schedule (any M, any workgroup count)
 * and both inner loops give bitwise the same result:
 *
 * - generic (kiln_uk_matmul_q8a8_f32, ...): a 64-byte block is 16 int32
 *   lanes of 4 k each; byte t is sign-extended with two shifts, multiplied
 *   by qa[4b + t] and added into a 16-lane int32 accumulator.
 * - aarch64 +dotprod (..._dotprod): the block is 4 q registers (columns
 *   4i..4i+3) and one sdot per register against qa[4b..4b+3] broadcast to
 *   every 32-bit lane (4 int32x4 accumulators per row and panel).
 * - x86 AVX2 (..._avx2): the block is 2 ymm registers (columns 8h..8h+7);
 *   vpmaddubsw takes |q| as its unsigned operand and qa[4b..4b+3], with
 *   q's signs moved onto it (vpsignb), as the signed one, so a weight of
 *   -128 is still exact (|pair sum| <= 2 * 128 * 127 < 32767); vpmaddwd
 *   widens the pairs to int32.
 * - x86 AVX-512 VNNI (..._vnni): the block is one zmm; vpdpbusd takes
 *   q + 128 as its unsigned operand and 128 * sum(qa) is taken off after.
 *
 * Work: workgroups split the panels (16 columns); each quantizes the rows
 * it needs itself, in chunks that fit a 128 KiB stack buffer. M == 1: a
 * GEMV over four panels at a time; M >= 2: per panel, blocks of <= 4 rows.
 * The accumulation of a (row block, panels) tile is a separate,
 * not-inlined function with scalar and pointer arguments only (the generic
 * or the dotprod one, passed to the shared driver), so no vector type
 * crosses a call and only the _dotprod entry points reference sdot code.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels.h"
#include "uk_epilogue.h"
#include "uk_act8.h"

#define Q8_K_MAX 32768      /* K of the packer's limit: int32 sums stay exact */
#define Q8_MR 4             /* rows of a block (M >= 2) */
#define Q8_NP 4             /* panels of the GEMV (M == 1) */
#define Q8_ABUF (128 * 1024) /* bytes of quantized rows per chunk */
#define Q8_MC_MAX 512       /* rows of a chunk (their s_a) */

/* acc[i * 16 + lane] (int32) = sum over the nblk blocks of rows i < R of qa
 * (row stride qs bytes) times panels d, d + pb, ... (n panels); either R == 1
 * (n panels) or n == 1 (R rows). */
typedef void (*q8_tile_fn)(const int8_t *qa, int64_t qs, int R, const uint8_t *d, int64_t pb,
                           int n, int64_t nblk, int32_t *acc);

/*===-- Activation quantization --------------------------------------------===*/

/* Quantizes x[0..K) into q[0..Kp) (zero past K); returns s_a. */
UK_INLINE float q8_quantize_row(const float *x, int64_t K, int64_t Kp, int8_t *q) {
  float inv;
  const float sa = a8_scale(a8_amax(x, K), &inv);
  a8_round_block(x, K, inv, q);
  for (int64_t k = K; k < Kp; ++k) q[k] = 0;
  return sa;
}

/*===-- Generic accumulation -----------------------------------------------===*/

/* Byte t (0..3, a constant after inlining) of each lane, sign-extended. */
UK_INLINE kiln_v16i q8_byte(kiln_v16u w, int t) {
  return (kiln_v16i)(w << (uint32_t)(24 - 8 * t)) >> 24;
}

UK_INLINE kiln_v16u q8_block(const uint8_t *p) {
  kiln_v16u w;
  __builtin_memcpy(&w, p, sizeof w);
  return w;
}

/* One row, n (1..4, constant) panels. */
UK_INLINE void q8_gen_gemv(const int8_t *qa, const uint8_t *d, int64_t pb, int n, int64_t nblk,
                           int32_t *acc) {
  kiln_v16i s[Q8_NP];
  for (int j = 0; j < n; ++j) s[j] = 0;
  for (int64_t b = 0; b < nblk; ++b) {
    const int32_t a0 = qa[4 * b], a1 = qa[4 * b + 1], a2 = qa[4 * b + 2], a3 = qa[4 * b + 3];
    for (int j = 0; j < n; ++j) {
      const kiln_v16u w = q8_block(d + j * pb + b * 64);
      s[j] += a0 * q8_byte(w, 0) + a1 * q8_byte(w, 1) + a2 * q8_byte(w, 2) + a3 * q8_byte(w, 3);
    }
  }
  for (int j = 0; j < n; ++j) __builtin_memcpy(acc + j * UK_W, &s[j], sizeof s[j]);
}

/* R (1..4, constant) rows, one panel: the bytes are extracted once per
 * block for all rows. */
UK_INLINE void q8_gen_rows(const int8_t *qa, int64_t qs, int R, const uint8_t *d, int64_t nblk,
                           int32_t *acc) {
  kiln_v16i s[Q8_MR];
  for (int r = 0; r < R; ++r) s[r] = 0;
  for (int64_t b = 0; b < nblk; ++b) {
    const kiln_v16u w = q8_block(d + b * 64);
    const kiln_v16i w0 = q8_byte(w, 0), w1 = q8_byte(w, 1), w2 = q8_byte(w, 2),
                    w3 = q8_byte(w, 3);
    for (int r = 0; r < R; ++r) {
      const int8_t *a = qa + r * qs + 4 * b;
      s[r] += (int32_t)a[0] * w0 + (int32_t)a[1] * w1 + (int32_t)a[2] * w2 + (int32_t)a[3] * w3;
    }
  }
  for (int r = 0; r < R; ++r) __builtin_memcpy(acc + r * UK_W, &s[r], sizeof s[r]);
}

static void q8_tile_generic(const int8_t *qa, int64_t qs, int R, const uint8_t *d, int64_t pb,
                            int n, int64_t nblk, int32_t *acc) {
  if (R == 1) {
    switch (n) {
      case 4: q8_gen_gemv(qa, d, pb, 4, nblk, acc); return;
      case 3: q8_gen_gemv(qa, d, pb, 3, nblk, acc); return;
      case 2: q8_gen_gemv(qa, d, pb, 2, nblk, acc); return;
      default: q8_gen_gemv(qa, d, pb, 1, nblk, acc); return;
    }
  }
  switch (R) {
    case 4: q8_gen_rows(qa, qs, 4, d, nblk, acc); return;
    case 3: q8_gen_rows(qa, qs, 3, d, nblk, acc); return;
    default: q8_gen_rows(qa, qs, 2, d, nblk, acc); return;
  }
}

/*===-- aarch64 dot product accumulation -----------------------------------===*/

#if defined(__aarch64__)
#define Q8_DOTPROD __attribute__((target("dotprod")))

/* One row, n (1..4, constant) panels: 4 x n accumulators. */
Q8_DOTPROD UK_INLINE void q8_dot_gemv(const int8_t *qa, const uint8_t *d, int64_t pb, int n,
                                      int64_t nblk, int32_t *acc) {
  int32x4_t s[Q8_NP][4];
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < 4; ++i) s[j][i] = vdupq_n_s32(0);
  for (int64_t b = 0; b < nblk; ++b) {
    const int8x16_t a = a8_bcast4_neon(qa + 4 * b);
    for (int j = 0; j < n; ++j) {
      const int8_t *w = (const int8_t *)(d + j * pb + b * 64);
      for (int i = 0; i < 4; ++i) s[j][i] = vdotq_s32(s[j][i], vld1q_s8(w + 16 * i), a);
    }
  }
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < 4; ++i) vst1q_s32(acc + j * UK_W + 4 * i, s[j][i]);
}

/* R (1..4, constant) rows, one panel: 4 x R accumulators, the panel's 4
 * registers loaded once per block for all rows. */
Q8_DOTPROD UK_INLINE void q8_dot_rows(const int8_t *qa, int64_t qs, int R, const uint8_t *d,
                                      int64_t nblk, int32_t *acc) {
  int32x4_t s[Q8_MR][4];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) s[r][i] = vdupq_n_s32(0);
  for (int64_t b = 0; b < nblk; ++b) {
    const int8_t *w = (const int8_t *)(d + b * 64);
    const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16), w2 = vld1q_s8(w + 32),
                    w3 = vld1q_s8(w + 48);
    for (int r = 0; r < R; ++r) {
      const int8x16_t a = a8_bcast4_neon(qa + r * qs + 4 * b);
      s[r][0] = vdotq_s32(s[r][0], w0, a);
      s[r][1] = vdotq_s32(s[r][1], w1, a);
      s[r][2] = vdotq_s32(s[r][2], w2, a);
      s[r][3] = vdotq_s32(s[r][3], w3, a);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < 4; ++i) vst1q_s32(acc + r * UK_W + 4 * i, s[r][i]);
}

Q8_DOTPROD static void q8_tile_dotprod(const int8_t *qa, int64_t qs, int R, const uint8_t *d,
                                       int64_t pb, int n, int64_t nblk, int32_t *acc) {
  if (R == 1) {
    switch (n) {
      case 4: q8_dot_gemv(qa, d, pb, 4, nblk, acc); return;
      case 3: q8_dot_gemv(qa, d, pb, 3, nblk, acc); return;
      case 2: q8_dot_gemv(qa, d, pb, 2, nblk, acc); return;
      default: q8_dot_gemv(qa, d, pb, 1, nblk, acc); return;
    }
  }
  switch (R) {
    case 4: q8_dot_rows(qa, qs, 4, d, nblk, acc); return;
    case 3: q8_dot_rows(qa, qs, 3, d, nblk, acc); return;
    default: q8_dot_rows(qa, qs, 2, d, nblk, acc); return;
  }
}
#endif /* __aarch64__ */

/*===-- x86 AVX2 accumulation ----------------------------------------------===*/

#if defined(__x86_64__)
#define Q8_AVX2 __attribute__((target("avx2")))

/* sum over each 32-bit lane's 4 bytes of w * a, in int32; aw = |w|. */
Q8_AVX2 UK_INLINE __m256i q8_avx2_dot(__m256i w, __m256i aw, __m256i a) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(a, w)),
                           _mm256_set1_epi16(1));
}

/* One row, n (1..4, constant) panels. */
Q8_AVX2 UK_INLINE void q8_avx2_gemv(const int8_t *qa, const uint8_t *d, int64_t pb, int n,
                                    int64_t nblk, int32_t *acc) {
  __m256i s[Q8_NP][2];
  for (int j = 0; j < n; ++j) s[j][0] = s[j][1] = _mm256_setzero_si256();
  for (int64_t b = 0; b < nblk; ++b) {
    const __m256i a = a8_bcast4_avx2(qa + 4 * b);
    for (int j = 0; j < n; ++j)
      for (int h = 0; h < 2; ++h) {
        const __m256i w = _mm256_loadu_si256((const __m256i *)(d + j * pb + b * 64 + 32 * h));
        s[j][h] = _mm256_add_epi32(s[j][h], q8_avx2_dot(w, _mm256_abs_epi8(w), a));
      }
  }
  for (int j = 0; j < n; ++j)
    for (int h = 0; h < 2; ++h) _mm256_storeu_si256((__m256i *)(acc + j * UK_W + 8 * h), s[j][h]);
}

/* R (2..4, constant) rows, one panel: each register of the block is
 * loaded once for all rows. */
Q8_AVX2 UK_INLINE void q8_avx2_rows(const int8_t *qa, int64_t qs, int R, const uint8_t *d,
                                    int64_t nblk, int32_t *acc) {
  __m256i s[Q8_MR][2];
  for (int r = 0; r < R; ++r) s[r][0] = s[r][1] = _mm256_setzero_si256();
  for (int64_t b = 0; b < nblk; ++b) {
    __m256i w[2], aw[2];
    for (int h = 0; h < 2; ++h) {
      w[h] = _mm256_loadu_si256((const __m256i *)(d + b * 64 + 32 * h));
      aw[h] = _mm256_abs_epi8(w[h]);
    }
    for (int r = 0; r < R; ++r) {
      const __m256i a = a8_bcast4_avx2(qa + r * qs + 4 * b);
      for (int h = 0; h < 2; ++h) s[r][h] = _mm256_add_epi32(s[r][h], q8_avx2_dot(w[h], aw[h], a));
    }
  }
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h) _mm256_storeu_si256((__m256i *)(acc + r * UK_W + 8 * h), s[r][h]);
}

Q8_AVX2 static void q8_tile_avx2(const int8_t *qa, int64_t qs, int R, const uint8_t *d, int64_t pb,
                                 int n, int64_t nblk, int32_t *acc) {
  if (R == 1) {
    switch (n) {
      case 4: q8_avx2_gemv(qa, d, pb, 4, nblk, acc); return;
      case 3: q8_avx2_gemv(qa, d, pb, 3, nblk, acc); return;
      case 2: q8_avx2_gemv(qa, d, pb, 2, nblk, acc); return;
      default: q8_avx2_gemv(qa, d, pb, 1, nblk, acc); return;
    }
  }
  switch (R) {
    case 4: q8_avx2_rows(qa, qs, 4, d, nblk, acc); return;
    case 3: q8_avx2_rows(qa, qs, 3, d, nblk, acc); return;
    default: q8_avx2_rows(qa, qs, 2, d, nblk, acc); return;
  }
}
#endif /* __x86_64__ */

/*===-- x86 AVX-512 VNNI accumulation --------------------------------------===*/

#if defined(__x86_64__)
/* The block is one zmm (16 columns x 4 k). vpdpbusd wants an unsigned
 * operand: it takes q + 128 (q xor 0x80) against qa[4b..4b+3], and the
 * 128 * sum(qa) that adds to every column is taken off at the end
 * (|sums| <= 255 * 127 * 32768 < 2^31: exact). Built for UK_VNNI
 * (uk_act8.h); the accumulators cross no call (int32 arrays). */
UK_VNNI UK_INLINE kiln_v16i q8_vnni_block(kiln_v16i s, const uint8_t *d, const int8_t *qa,
                                          int64_t b) {
  kiln_v16u w;
  int32_t a;
  __builtin_memcpy(&w, d + b * 64, sizeof w);
  __builtin_memcpy(&a, qa + 4 * b, sizeof a);
  return a8_dpbusd16(s, w ^ 0x80808080u, a);
}

/* 128 * the sum of a row's nblk * 4 quantized inputs. */
UK_INLINE int32_t q8_bias(const int8_t *qa, int64_t nblk) {
  int32_t t = 0;
  for (int64_t k = 0; k < 4 * nblk; ++k) t += qa[k];
  return 128 * t;
}

/* One row, n (1..4, constant) panels. */
UK_VNNI UK_INLINE void q8_vnni_gemv(const int8_t *qa, const uint8_t *d, int64_t pb, int n,
                                    int64_t nblk, int32_t *acc) {
  kiln_v16i s[Q8_NP];
  for (int j = 0; j < n; ++j) s[j] = 0;
  for (int64_t b = 0; b < nblk; ++b)
    for (int j = 0; j < n; ++j) s[j] = q8_vnni_block(s[j], d + j * pb, qa, b);
  const int32_t bias = q8_bias(qa, nblk);
  for (int j = 0; j < n; ++j) {
    s[j] -= bias;
    __builtin_memcpy(acc + j * UK_W, &s[j], sizeof s[j]);
  }
}

/* R (2..4, constant) rows, one panel. */
UK_VNNI UK_INLINE void q8_vnni_rows(const int8_t *qa, int64_t qs, int R, const uint8_t *d,
                                    int64_t nblk, int32_t *acc) {
  kiln_v16i s[Q8_MR];
  for (int r = 0; r < R; ++r) s[r] = 0;
  for (int64_t b = 0; b < nblk; ++b)
    for (int r = 0; r < R; ++r) s[r] = q8_vnni_block(s[r], d, qa + r * qs, b);
  for (int r = 0; r < R; ++r) {
    s[r] -= q8_bias(qa + r * qs, nblk);
    __builtin_memcpy(acc + r * UK_W, &s[r], sizeof s[r]);
  }
}

UK_VNNI static void q8_tile_vnni(const int8_t *qa, int64_t qs, int R, const uint8_t *d, int64_t pb,
                                 int n, int64_t nblk, int32_t *acc) {
  if (R == 1) {
    switch (n) {
      case 4: q8_vnni_gemv(qa, d, pb, 4, nblk, acc); return;
      case 3: q8_vnni_gemv(qa, d, pb, 3, nblk, acc); return;
      case 2: q8_vnni_gemv(qa, d, pb, 2, nblk, acc); return;
      default: q8_vnni_gemv(qa, d, pb, 1, nblk, acc); return;
    }
  }
  switch (R) {
    case 4: q8_vnni_rows(qa, qs, 4, d, nblk, acc); return;
    case 3: q8_vnni_rows(qa, qs, 3, d, nblk, acc); return;
    default: q8_vnni_rows(qa, qs, 2, d, nblk, acc); return;
  }
}
#endif /* __x86_64__ */

/*===-- The driver ---------------------------------------------------------===*/

/* ((float)acc * s_a) * s_w, then the shared epilogue. */
UK_INLINE kiln_v16f q8_dequant(const int32_t *acc, float sa, const float *sw) {
  kiln_v16i a;
  __builtin_memcpy(&a, acc, sizeof a);
  return __builtin_convertvector(a, kiln_v16f) * sa * uk_load(sw);
}

UK_INLINE void q8_matmul(const float *A, int64_t M, int64_t K, const uint8_t *Bg,
                         const uint8_t *Bu, int64_t N, const float *bias, const float *residual,
                         int32_t act, float *C, int64_t wg, int64_t count, q8_tile_fn tile) {
  if (M <= 0 || K <= 0 || N <= 0 || K > Q8_K_MAX) return;
  const int64_t P = uk_ceil_div(N, UK_W), K4 = (K + 3) / 4 * 4, nblk = K4 / 4;
  const int64_t pb = K4 * UK_W, Kp = (K + 15) / 16 * 16;
  int64_t b, e;
  if (!uk_split(P, wg, count, &b, &e)) return;
  /* the column scales, 16 floats per panel after all panels' integers */
  const float *sg = (const float *)(Bg + P * pb), *su = Bu ? (const float *)(Bu + P * pb) : 0;
  int8_t qbuf[Q8_ABUF] UK_ALIGN64;
  float sa[Q8_MC_MAX];
  int32_t accg[Q8_NP * UK_W] UK_ALIGN64, accu[Q8_NP * UK_W] UK_ALIGN64;
  const int64_t mc = uk_min64(uk_min64(Q8_ABUF / Kp, Q8_MC_MAX), M);
  for (int64_t m0 = 0; m0 < M; m0 += mc) {
    const int64_t mr = uk_min64(mc, M - m0);
    for (int64_t i = 0; i < mr; ++i) sa[i] = q8_quantize_row(A + (m0 + i) * K, K, Kp, qbuf + i * Kp);
    if (mr == 1) { /* GEMV: Q8_NP panels at a time */
      for (int64_t p = b; p < e; p += Q8_NP) {
        const int n = (int)uk_min64(Q8_NP, e - p);
        tile(qbuf, Kp, 1, Bg + p * pb, pb, n, nblk, accg);
        if (Bu) tile(qbuf, Kp, 1, Bu + p * pb, pb, n, nblk, accu);
        for (int j = 0; j < n; ++j) {
          const int64_t n0 = (p + j) * UK_W, nv = uk_min64(UK_W, N - n0);
          const kiln_v16f g = q8_dequant(accg + j * UK_W, sa[0], sg + n0);
          if (Bu)
            uk_store_glu(g, q8_dequant(accu + j * UK_W, sa[0], su + n0), m0, n0, nv, N, act, C);
          else
            uk_store_out(g, m0, n0, nv, N, bias, residual, act, C);
        }
      }
      continue;
    }
    const int64_t nrb = uk_ceil_div(mr, Q8_MR);
    for (int64_t p = b; p < e; ++p) {
      const int64_t n0 = p * UK_W, nv = uk_min64(UK_W, N - n0);
      /* row blocks of balanced height (>= 2 rows each: 5 = 3 + 2) */
      for (int64_t r0 = 0, rb = 0; r0 < mr; ++rb) {
        const int64_t R = (mr - r0) / (nrb - rb) + ((mr - r0) % (nrb - rb) != 0);
        tile(qbuf + r0 * Kp, Kp, (int)R, Bg + p * pb, pb, 1, nblk, accg);
        if (Bu) tile(qbuf + r0 * Kp, Kp, (int)R, Bu + p * pb, pb, 1, nblk, accu);
        for (int64_t i = 0; i < R; ++i) {
          const int64_t row = m0 + r0 + i;
          const kiln_v16f g = q8_dequant(accg + i * UK_W, sa[r0 + i], sg + n0);
          if (Bu)
            uk_store_glu(g, q8_dequant(accu + i * UK_W, sa[r0 + i], su + n0), row, n0, nv, N, act,
                         C);
          else
            uk_store_out(g, row, n0, nv, N, bias, residual, act, C);
        }
        r0 += R;
      }
    }
  }
}

/*===-- Entry points -------------------------------------------------------===*/

void kiln_uk_matmul_q8a8_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bq, int64_t N,
                             const float *bias, const float *residual, int32_t act, float *C,
                             int64_t wg, int64_t count) {
  q8_matmul(A, M, K, Bq, (const uint8_t *)0, N, bias, residual, act, C, wg, count,
            q8_tile_generic);
}

void kiln_uk_matmul_glu_q8a8_f32(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                 const uint8_t *Bu_q, int64_t N, int32_t act, float *C,
                                 int64_t wg, int64_t count) {
  q8_matmul(A, M, K, Bg_q, Bu_q, N, (const float *)0, (const float *)0, act, C, wg, count,
            q8_tile_generic);
}

#if defined(__aarch64__)
Q8_DOTPROD void kiln_uk_matmul_q8a8_f32_dotprod(const float *A, int64_t M, int64_t K,
                                                const uint8_t *Bq, int64_t N, const float *bias,
                                                const float *residual, int32_t act, float *C,
                                                int64_t wg, int64_t count) {
  q8_matmul(A, M, K, Bq, (const uint8_t *)0, N, bias, residual, act, C, wg, count,
            q8_tile_dotprod);
}

Q8_DOTPROD void kiln_uk_matmul_glu_q8a8_f32_dotprod(const float *A, int64_t M, int64_t K,
                                                    const uint8_t *Bg_q, const uint8_t *Bu_q,
                                                    int64_t N, int32_t act, float *C, int64_t wg,
                                                    int64_t count) {
  q8_matmul(A, M, K, Bg_q, Bu_q, N, (const float *)0, (const float *)0, act, C, wg, count,
            q8_tile_dotprod);
}
#endif /* __aarch64__ */

#if defined(__x86_64__)
void kiln_uk_matmul_q8a8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                  int64_t N, const float *bias, const float *residual, int32_t act,
                                  float *C, int64_t wg, int64_t count) {
  q8_matmul(A, M, K, Bq, (const uint8_t *)0, N, bias, residual, act, C, wg, count, q8_tile_avx2);
}

void kiln_uk_matmul_glu_q8a8_f32_avx2(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                      const uint8_t *Bu_q, int64_t N, int32_t act, float *C,
                                      int64_t wg, int64_t count) {
  q8_matmul(A, M, K, Bg_q, Bu_q, N, (const float *)0, (const float *)0, act, C, wg, count,
            q8_tile_avx2);
}

void kiln_uk_matmul_q8a8_f32_vnni(const float *A, int64_t M, int64_t K, const uint8_t *Bq,
                                  int64_t N, const float *bias, const float *residual, int32_t act,
                                  float *C, int64_t wg, int64_t count) {
  q8_matmul(A, M, K, Bq, (const uint8_t *)0, N, bias, residual, act, C, wg, count, q8_tile_vnni);
}

void kiln_uk_matmul_glu_q8a8_f32_vnni(const float *A, int64_t M, int64_t K, const uint8_t *Bg_q,
                                      const uint8_t *Bu_q, int64_t N, int32_t act, float *C,
                                      int64_t wg, int64_t count) {
  q8_matmul(A, M, K, Bg_q, Bu_q, N, (const float *)0, (const float *)0, act, C, wg, count,
            q8_tile_vnni);
}
#endif /* __x86_64__ */
