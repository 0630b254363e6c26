/*===- uk_act8.h - Activations quantized to int8 at run time ---------------===*
 *
 * Internal to the ukernels: the one rounding that every int8-activation
 * kernel uses (q8a8matmul.c per row, q4a8matmul.c per group), so the same
 * input gives the same integers whichever kernel or schedule reads it.
 *
 *===----------------------------------------------------------------------===*/
#ifndef KILN_TARGETS_CPU_UKERNELS_UK_ACT8_H_
#define KILN_TARGETS_CPU_UKERNELS_UK_ACT8_H_

#include "uk_quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

UK_INLINE kiln_v16f a8_abs(kiln_v16f v) {
  kiln_v16u u;
  __builtin_memcpy(&u, &v, sizeof u);
  u &= 0x7fffffffu;
  __builtin_memcpy(&v, &u, sizeof v);
  return v;
}

/* round half away from zero (v), clamped to [-127, 127], as int8. The
 * magnitude is clamped first (it then fits an int32 exactly), truncated,
 * and rounded up when its exact fraction is >= 0.5. */
UK_INLINE kiln_v16c a8_round16(kiln_v16f v) {
  kiln_v16i bits;
  __builtin_memcpy(&bits, &v, sizeof bits);
  const kiln_v16i neg = bits >> 31; /* -1 where the sign bit is set */
  const kiln_v16f a = __builtin_elementwise_min(a8_abs(v), (kiln_v16f)127.0f);
  kiln_v16i t = __builtin_convertvector(a, kiln_v16i);
  const kiln_v16f frac = a - __builtin_convertvector(t, kiln_v16f);
  t -= (frac >= 0.5f); /* true is -1 */
  t = (t ^ neg) - neg;
  return __builtin_convertvector(t, kiln_v16c);
}

/* max |x[0..n)| (0 for n == 0). */
UK_INLINE float a8_amax(const float *x, int64_t n) {
  kiln_v16f m = 0.0f;
  int64_t k = 0;
  for (; k + UK_W <= n; k += UK_W) m = __builtin_elementwise_max(m, a8_abs(uk_load(x + k)));
  if (k < n) m = __builtin_elementwise_max(m, a8_abs(uk_load_partial(x + k, n - k)));
  return uk_reduce_max(m);
}

/* The scale of a block whose largest magnitude is amax (1 for an all-zero
 * block) and its inverse (0 then). */
UK_INLINE float a8_scale(float amax, float *inv) {
  if (amax > 0.0f) {
    *inv = 127.0f / amax;
    return amax / 127.0f;
  }
  *inv = 0.0f;
  return 1.0f;
}

/* q[0..n) = a8_round16(x[0..n) * inv). */
UK_INLINE void a8_round_block(const float *x, int64_t n, float inv, int8_t *q) {
  int64_t k = 0;
  for (; k + UK_W <= n; k += UK_W) {
    const kiln_v16c c = a8_round16(uk_load(x + k) * inv);
    __builtin_memcpy(q + k, &c, sizeof c);
  }
  if (k < n) {
    int8_t tmp[UK_W];
    const kiln_v16c c = a8_round16(uk_load_partial(x + k, n - k) * inv);
    __builtin_memcpy(tmp, &c, sizeof c);
    for (int64_t i = 0; i < n - k; ++i) q[k + i] = tmp[i];
  }
}

/* Four quantized inputs a[0..3] in every 32-bit lane: the operand of a
 * 4-way int8 dot product (vpmaddubsw + vpmaddwd, sdot). */
#if defined(__x86_64__)
__attribute__((target("avx2"))) UK_INLINE __m256i a8_bcast4_avx2(const int8_t *a) {
  int32_t v;
  __builtin_memcpy(&v, a, sizeof v);
  return _mm256_set1_epi32(v);
}

/* The AVX-512 VNNI twins (..._vnni): code built for UK_VNNI, vpdpbusd on
 * 16 int32 lanes. a8_dpbusd16(acc, u, s4) adds to each lane the 4-way
 * product of its 4 bytes of u (unsigned) with the 4 bytes of s4 (signed).
 * KILN_UK_EMULATE_VNNI (a test build) makes the same loops without AVX-512,
 * the product in plain vector code, so they are checked on CPUs without
 * it. */
#if defined(KILN_UK_EMULATE_VNNI)
#define UK_VNNI
UK_INLINE kiln_v16i a8_dpbusd16(kiln_v16i acc, kiln_v16u u, int32_t s4) {
  for (int t = 0; t < 4; ++t)
    acc += __builtin_convertvector((u >> (uint32_t)(8 * t)) & 255u, kiln_v16i) *
           (int32_t)(int8_t)(s4 >> (8 * t));
  return acc;
}
#else
#define UK_VNNI __attribute__((target("avx2,f16c,avx512f,avx512bw,avx512vnni")))
UK_VNNI UK_INLINE kiln_v16i a8_dpbusd16(kiln_v16i acc, kiln_v16u u, int32_t s4) {
  return (kiln_v16i)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)u, _mm512_set1_epi32(s4));
}
#endif
#endif
#if defined(__aarch64__)
UK_INLINE int8x16_t a8_bcast4_neon(const int8_t *a) {
  int32_t v;
  __builtin_memcpy(&v, a, sizeof v);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}
#endif

#endif /* KILN_TARGETS_CPU_UKERNELS_UK_ACT8_H_ */
