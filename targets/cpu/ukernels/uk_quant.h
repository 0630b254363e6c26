/*===- uk_quant.h - The quantized weight layout and its in-register unpacking =*
 *
 * Internal to the ukernels (pack_q.c writes the layout, qmatmul.c reads it);
 * the layout itself is documented in ukernels.h and README.md.
 *
 *===----------------------------------------------------------------------===*/
#ifndef KILN_TARGETS_CPU_UKERNELS_UK_QUANT_H_
#define KILN_TARGETS_CPU_UKERNELS_UK_QUANT_H_

#include "uk_vec.h"

typedef int8_t kiln_v16c __attribute__((ext_vector_type(16)));
typedef uint8_t kiln_v16uc __attribute__((ext_vector_type(16)));
typedef uint16_t kiln_v16us __attribute__((ext_vector_type(16)));
typedef uint32_t kiln_v16u __attribute__((ext_vector_type(16)));

/* Floats of group sums that a quantized matmul keeps on the stack: weights
 * with zero points have at most this many groups along K. */
#define UQ_ASUM_MAX 16384

/* Bytes of one panel's integers: 16 per k (int8) or 16 per pair of k (int4). */
UK_INLINE int64_t uq_panel_bytes(int64_t K, int32_t bits) { return bits == 4 ? K * 8 : K * 16; }

/* Bytes of one (panel, group)'s parameters: 16 f16 scales, then 16 int8
 * zero points when the weight has them. */
UK_INLINE int64_t uq_param_bytes(int32_t has_zp) { return has_zp ? 48 : 32; }

/* Whether (K, bits, group) is a layout the kernels take. */
UK_INLINE int uq_valid(int64_t K, int64_t N, int32_t bits, int64_t group) {
  if (K <= 0 || N <= 0 || group <= 0 || K % group != 0) return 0;
  if (bits == 8) return 1;
  return bits == 4 && group % 2 == 0;
}

/* The int8 row of one panel at k (16 bytes) as floats. */
UK_INLINE kiln_v16f uq_row8(const uint8_t *p) {
  kiln_v16c v;
  __builtin_memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, kiln_v16f);
}

/* The int4 rows k (low nibbles) and k+1 (high nibbles) of one panel. */
UK_INLINE void uq_pair4(const uint8_t *p, kiln_v16f *lo, kiln_v16f *hi) {
  kiln_v16uc v;
  __builtin_memcpy(&v, p, sizeof v);
  *lo = __builtin_convertvector(v & (uint8_t)15, kiln_v16f);
  *hi = __builtin_convertvector(v >> (uint8_t)4, kiln_v16f);
}

/* 16 IEEE half floats to f32 with integer operations only (no F16C needed,
 * so the generic build has no libcall): the half's exponent and mantissa
 * are moved into place and rescaled by 2^112, which also gets subnormals
 * right. Infinities and NaNs are not expected (scales are finite). */
UK_INLINE kiln_v16f uq_half16(const uint8_t *p) {
  kiln_v16us h;
  __builtin_memcpy(&h, p, sizeof h);
  kiln_v16u w = __builtin_convertvector(h, kiln_v16u);
  kiln_v16u sign = (w & 0x8000u) << 16;
  kiln_v16u mag = (w & 0x7fffu) << 13;
  kiln_v16f f;
  __builtin_memcpy(&f, &mag, sizeof f);
  f = f * 0x1p112f;
  kiln_v16u bits;
  __builtin_memcpy(&bits, &f, sizeof bits);
  bits |= sign;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
}

/* The zero points of one (panel, group) as floats. */
UK_INLINE kiln_v16f uq_zero16(const uint8_t *p) {
  kiln_v16c v;
  __builtin_memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, kiln_v16f);
}

#endif /* KILN_TARGETS_CPU_UKERNELS_UK_QUANT_H_ */
