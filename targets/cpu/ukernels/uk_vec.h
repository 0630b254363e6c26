/*===- uk_vec.h - 16-wide vectors and work splitting for the ukernels ------===*
 *
 * Internal to the ukernels. Everything here is `static inline always_inline`:
 * vector types must never cross a non-inlined call, because their calling
 * convention changes with the target features that kiln-compile sets later
 * (one zmm on AVX-512, two ymm on AVX2, four q registers on NEON).
 *
 *===----------------------------------------------------------------------===*/
#ifndef KILN_TARGETS_CPU_UKERNELS_UK_VEC_H_
#define KILN_TARGETS_CPU_UKERNELS_UK_VEC_H_

#include <stddef.h>
#include <stdint.h>

#define UK_INLINE static inline __attribute__((always_inline))
#define UK_ALIGN64 __attribute__((aligned(64)))

/* 16 lanes: one zmm (AVX-512), two ymm (AVX2), four q registers (NEON). */
typedef float kiln_v16f __attribute__((ext_vector_type(16)));
typedef int32_t kiln_v16i __attribute__((ext_vector_type(16)));
typedef float kiln_v8f __attribute__((ext_vector_type(8)));
typedef float kiln_v4f __attribute__((ext_vector_type(4)));
typedef float kiln_v2f __attribute__((ext_vector_type(2)));

#define UK_W 16 /* lanes of kiln_v16f */

/* Unaligned load/store: a constant-size __builtin_memcpy is one vector move,
 * never a call. */
UK_INLINE kiln_v16f uk_load(const float *p) {
  kiln_v16f v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

UK_INLINE void uk_store(float *p, kiln_v16f v) { __builtin_memcpy(p, &v, sizeof v); }

UK_INLINE kiln_v16f uk_splat(float x) { return (kiln_v16f)x; }

/* First n (0..16) lanes from p, the rest 0. For tails only: lane-by-lane. */
UK_INLINE kiln_v16f uk_load_partial(const float *p, int64_t n) {
  float tmp[UK_W] UK_ALIGN64;
  for (int i = 0; i < UK_W; ++i) tmp[i] = i < n ? p[i] : 0.0f;
  return uk_load(tmp);
}

/* Stores the first n (0..16) lanes of v to p. */
UK_INLINE void uk_store_partial(float *p, kiln_v16f v, int64_t n) {
  float tmp[UK_W] UK_ALIGN64;
  uk_store(tmp, v);
  for (int64_t i = 0; i < n; ++i) p[i] = tmp[i];
}

UK_INLINE float uk_reduce_add(kiln_v16f v) {
  kiln_v8f a = v.lo + v.hi;
  kiln_v4f b = a.lo + a.hi;
  kiln_v2f c = b.lo + b.hi;
  return c.x + c.y;
}

UK_INLINE float uk_reduce_max(kiln_v16f v) {
  kiln_v8f a = __builtin_elementwise_max(v.lo, v.hi);
  kiln_v4f b = __builtin_elementwise_max(a.lo, a.hi);
  kiln_v2f c = __builtin_elementwise_max(b.lo, b.hi);
  return c.x > c.y ? c.x : c.y;
}

UK_INLINE int64_t uk_min64(int64_t a, int64_t b) { return a < b ? a : b; }
UK_INLINE int64_t uk_max64(int64_t a, int64_t b) { return a > b ? a : b; }
UK_INLINE int64_t uk_clamp64(int64_t x, int64_t lo, int64_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}
UK_INLINE int64_t uk_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The share of workgroup wg among count of `total` equal items: a contiguous
 * range, sizes differing by at most one, empty for a wg outside [0, count).
 * Returns 0 when the range is empty. */
UK_INLINE int uk_split(int64_t total, int64_t wg, int64_t count, int64_t *begin, int64_t *end) {
  *begin = 0;
  *end = 0;
  if (total <= 0) return 0;
  if (count < 1) count = 1;
  if (wg < 0 || wg >= count) return 0;
  int64_t q = total / count, r = total % count;
  *begin = wg * q + (wg < r ? wg : r);
  *end = *begin + q + (wg < r ? 1 : 0);
  return *end > *begin;
}

/* Copies n floats, 16 at a time; loops instead of memcpy (no libc). */
UK_INLINE void uk_copy(float *dst, const float *src, int64_t n) {
  int64_t i = 0;
  for (; i + 4 * UK_W <= n; i += 4 * UK_W) {
    kiln_v16f a = uk_load(src + i), b = uk_load(src + i + UK_W);
    kiln_v16f c = uk_load(src + i + 2 * UK_W), d = uk_load(src + i + 3 * UK_W);
    uk_store(dst + i, a);
    uk_store(dst + i + UK_W, b);
    uk_store(dst + i + 2 * UK_W, c);
    uk_store(dst + i + 3 * UK_W, d);
  }
  for (; i + UK_W <= n; i += UK_W) uk_store(dst + i, uk_load(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}

#endif /* KILN_TARGETS_CPU_UKERNELS_UK_VEC_H_ */
