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

/* Bytes of one panel's integers: 16 per k (int8) or 64 per 8 k (int4). */
UK_INLINE int64_t uq_panel_bytes(int64_t K, int32_t bits) { return bits == 4 ? K * 8 : K * 16; }

/* Bytes of one (panel, group)'s parameters: 16 f16 scales, then 16 int8
 * zero points when the weight has them. */
UK_INLINE int64_t uq_param_bytes(int32_t has_zp) { return has_zp ? 48 : 32; }

/* The int4 x int8 kernel's bounds (q4a8matmul.c): its row of quantized
 * inputs and its (row, group) scales live on the stack. */
#define UQ_A8_K_MAX (128 * 1024)
#define UQ_A8_G_MAX 4096

/* Whether (K, bits, group) is a layout the kernels take. */
UK_INLINE int uq_valid(int64_t K, int64_t N, int32_t bits, int64_t group) {
  if (K <= 0 || N <= 0 || group <= 0 || K % group != 0) return 0;
  if (bits == 8) return 1;
  return bits == 4 && group % 8 == 0;
}

/* Whether the int4 x int8 kernel takes a weight of K rows in groups of
 * `group` (a layout uq_valid takes). */
UK_INLINE int uq_a8_fits(int64_t K, int64_t group) {
  return K <= UQ_A8_K_MAX && K / group <= UQ_A8_G_MAX;
}

/* A packed quantized weight as the kernels read it (qmatmul.c,
 * q4a8matmul.c): the weight or a GLU's gate and up, alike. */
typedef struct {
  const uint8_t *w[2]; /* the weight (or the GLU's gate), the GLU's up */
  int nb;              /* 1, or 2 for the GLU */
  int64_t K, N, P, G, group, pb, prm;
  int32_t has_zp;
} uq_weight;

UK_INLINE uq_weight uq_weight_of(const uint8_t *Bg, const uint8_t *Bu, int64_t K, int64_t N,
                                 int32_t bits, int64_t group, int32_t has_zp) {
  uq_weight s;
  s.w[0] = Bg;
  s.w[1] = Bu;
  s.nb = Bu ? 2 : 1;
  s.K = K;
  s.N = N;
  s.P = uk_ceil_div(N, UK_W);
  s.G = K / group;
  s.group = group;
  s.pb = uq_panel_bytes(K, bits);
  s.prm = uq_param_bytes(has_zp);
  s.has_zp = has_zp ? 1 : 0;
  return s;
}

/* Panel p's integers of weight m (0, or 1: the GLU's up). */
UK_INLINE const uint8_t *uq_data(const uq_weight *s, int m, int64_t p) {
  return s->w[m] + p * s->pb;
}

/* The parameters of (panel p, group g) of weight m. */
UK_INLINE const uint8_t *uq_params(const uq_weight *s, int m, int64_t p, int64_t g) {
  return s->w[m] + s->P * s->pb + (p * s->G + g) * s->prm;
}

/* The int8 row of one panel at k (16 bytes) as floats. */
UK_INLINE kiln_v16f uq_row8(const uint8_t *p) {
  kiln_v16c v;
  __builtin_memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, kiln_v16f);
}

/* Eight int4 rows k..k+7 of one panel: 16 words, word j holding
 * q[k + t, j] in bits 4t..4t+3. Row t is then (w >> 4t) & 15: shifts and
 * masks on 32-bit lanes, no byte shuffles (which AVX2 issues on one port
 * and which bound an unpacking that widens bytes). */
UK_INLINE kiln_v16u uq_load8x4(const uint8_t *p) {
  kiln_v16u w;
  __builtin_memcpy(&w, p, sizeof w);
  return w;
}

/* Row t (0..7, a constant after inlining) of a uq_load8x4 block as floats. */
UK_INLINE kiln_v16f uq_row4(kiln_v16u w, int t) {
  kiln_v16u v = t == 7 ? w >> 28 : (t == 0 ? w : w >> (uint32_t)(4 * t)) & 15u;
  return __builtin_convertvector(__builtin_convertvector(v, kiln_v16i), kiln_v16f);
}

/* Row t of a uq_load8x4 block as floats times 16^t (times 1 for t = 7): a
 * mask without the shift. The GEMV multiplies it by x * 16^-t, which gives
 * exactly the product x * q (powers of two scale exactly), one integer op
 * fewer per 8 lanes. */
UK_INLINE kiln_v16f uq_row4_scaled(kiln_v16u w, int t) {
  kiln_v16u v = t == 7 ? w >> 28 : w & (15u << (uint32_t)(4 * t));
  return __builtin_convertvector(__builtin_convertvector(v, kiln_v16i), kiln_v16f);
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
