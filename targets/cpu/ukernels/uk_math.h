/*===- uk_math.h - Inline exp, tanh, erfc and the activations, no libm -----===*
 *
 * The ukernels link into kernels that have no libm, and a libm call would
 * also stop vectorization. Every function comes in a scalar form (uk_expf)
 * and a 16-lane form (uk_exp_v) with the same algorithm, so they agree bit
 * for bit lane by lane. Only +, *, /, sqrt and integer bit tricks are used:
 * all of them are instructions on every target (no llvm.floor, no llvm.fma,
 * which would become libm calls on a target without SSE4.1 or FMA).
 *
 * Accuracy (measured by ukernels_test.cc against double precision):
 * exp <= 2 ulp (relative error <= 2.4e-7) over the whole float range, results
 * in the denormal range included; tanh and sigmoid ~3e-7; erfc ~1.2e-7
 * relative from the approximation plus rounding of the exponent argument.
 *
 *===----------------------------------------------------------------------===*/
#ifndef KILN_TARGETS_CPU_UKERNELS_UK_MATH_H_
#define KILN_TARGETS_CPU_UKERNELS_UK_MATH_H_

#include "uk_vec.h"

/* exp: x = n*ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), a degree-7
 * polynomial for exp(r) (Cephes expf coefficients), then 2^n applied as two
 * factors 2^(n/2) * 2^(n-n/2) so that n in [-150, 128] needs no special case:
 * overflow gives +inf and deep underflow 0 (also for x = -inf), by plain
 * float rounding. NaN stays NaN. */
#define UK_EXP_LO (-104.0f)
#define UK_EXP_HI (88.8f)
#define UK_LOG2E 1.44269504088896341f
#define UK_LN2_HI 0.693359375f
#define UK_LN2_LO (-2.12194440e-4f)
#define UK_ROUND_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
#define UK_EXP_P0 1.9875691500e-4f
#define UK_EXP_P1 1.3981999507e-3f
#define UK_EXP_P2 8.3334519073e-3f
#define UK_EXP_P3 4.1665795894e-2f
#define UK_EXP_P4 1.6666665459e-1f
#define UK_EXP_P5 5.0000001201e-1f

UK_INLINE float uk_bits_to_float(int32_t i) {
  float f;
  __builtin_memcpy(&f, &i, sizeof f);
  return f;
}

UK_INLINE int32_t uk_float_to_bits(float f) {
  int32_t i;
  __builtin_memcpy(&i, &f, sizeof i);
  return i;
}

UK_INLINE float uk_expf(float x) {
  x = x < UK_EXP_LO ? UK_EXP_LO : x;
  x = x > UK_EXP_HI ? UK_EXP_HI : x;
  float t = x * UK_LOG2E + UK_ROUND_MAGIC;
  int32_t n = uk_float_to_bits(t) - uk_float_to_bits(UK_ROUND_MAGIC);
  float nf = t - UK_ROUND_MAGIC;
  float r = x - nf * UK_LN2_HI;
  r = r - nf * UK_LN2_LO;
  float p = UK_EXP_P0;
  p = p * r + UK_EXP_P1;
  p = p * r + UK_EXP_P2;
  p = p * r + UK_EXP_P3;
  p = p * r + UK_EXP_P4;
  p = p * r + UK_EXP_P5;
  float y = p * (r * r) + r + 1.0f;
  int32_t n1 = n >> 1, n2 = n - n1;
  return y * uk_bits_to_float((n1 + 127) << 23) * uk_bits_to_float((n2 + 127) << 23);
}

UK_INLINE kiln_v16f uk_exp_v(kiln_v16f x) {
  x = x < UK_EXP_LO ? UK_EXP_LO : x;
  x = x > UK_EXP_HI ? UK_EXP_HI : x;
  kiln_v16f t = x * UK_LOG2E + UK_ROUND_MAGIC;
  kiln_v16i n = (kiln_v16i)t - uk_float_to_bits(UK_ROUND_MAGIC);
  kiln_v16f nf = t - UK_ROUND_MAGIC;
  kiln_v16f r = x - nf * UK_LN2_HI;
  r = r - nf * UK_LN2_LO;
  kiln_v16f p = uk_splat(UK_EXP_P0);
  p = p * r + UK_EXP_P1;
  p = p * r + UK_EXP_P2;
  p = p * r + UK_EXP_P3;
  p = p * r + UK_EXP_P4;
  p = p * r + UK_EXP_P5;
  kiln_v16f y = p * (r * r) + r + 1.0f;
  kiln_v16i n1 = n >> 1, n2 = n - n1;
  return y * (kiln_v16f)((n1 + 127) << 23) * (kiln_v16f)((n2 + 127) << 23);
}

/* tanh: Cephes' odd polynomial below |x| = 0.625 (where 1 - 2/(e^2x + 1)
 * would cancel), the exp form above it. */
#define UK_TANH_SMALL 0.625f
#define UK_TANH_P0 (-5.70498872745e-3f)
#define UK_TANH_P1 2.06390887954e-2f
#define UK_TANH_P2 (-5.37397155531e-2f)
#define UK_TANH_P3 1.33314422036e-1f
#define UK_TANH_P4 (-3.33332819422e-1f)

UK_INLINE float uk_tanhf(float x) {
  float ax = x < 0.0f ? -x : x;
  float z = x * x;
  float p = UK_TANH_P0;
  p = p * z + UK_TANH_P1;
  p = p * z + UK_TANH_P2;
  p = p * z + UK_TANH_P3;
  p = p * z + UK_TANH_P4;
  float small = p * z * x + x;
  float big = 1.0f - 2.0f / (uk_expf(2.0f * ax) + 1.0f);
  big = x < 0.0f ? -big : big;
  return ax < UK_TANH_SMALL ? small : big;
}

UK_INLINE kiln_v16f uk_tanh_v(kiln_v16f x) {
  kiln_v16f ax = x < 0.0f ? -x : x;
  kiln_v16f z = x * x;
  kiln_v16f p = uk_splat(UK_TANH_P0);
  p = p * z + UK_TANH_P1;
  p = p * z + UK_TANH_P2;
  p = p * z + UK_TANH_P3;
  p = p * z + UK_TANH_P4;
  kiln_v16f small = p * z * x + x;
  kiln_v16f big = 1.0f - 2.0f / (uk_exp_v(2.0f * ax) + 1.0f);
  big = x < 0.0f ? -big : big;
  return ax < UK_TANH_SMALL ? small : big;
}

/* sigmoid(x) = 1 / (1 + e^-x); e^-x = +inf gives exactly 0. */
UK_INLINE float uk_sigmoidf(float x) { return 1.0f / (1.0f + uk_expf(-x)); }
UK_INLINE kiln_v16f uk_sigmoid_v(kiln_v16f x) { return 1.0f / (1.0f + uk_exp_v(-x)); }

/* erfc(z) = t * exp(-z^2 - 1.26551223 + t * P(t)), t = 1 / (1 + |z|/2)
 * (Numerical Recipes' erfcc, fractional error < 1.2e-7 everywhere), and
 * erfc(-z) = 2 - erfc(z). Relative accuracy holds in the far tail, which is
 * what gelu_erf needs for negative inputs. */
#define UK_ERFC_C0 (-1.26551223f)
#define UK_ERFC_C1 1.00002368f
#define UK_ERFC_C2 0.37409196f
#define UK_ERFC_C3 0.09678418f
#define UK_ERFC_C4 (-0.18628806f)
#define UK_ERFC_C5 0.27886807f
#define UK_ERFC_C6 (-1.13520398f)
#define UK_ERFC_C7 1.48851587f
#define UK_ERFC_C8 (-0.82215223f)
#define UK_ERFC_C9 0.17087277f

UK_INLINE float uk_erfcf(float z) {
  float az = z < 0.0f ? -z : z;
  float t = 1.0f / (1.0f + 0.5f * az);
  float p = UK_ERFC_C9;
  p = p * t + UK_ERFC_C8;
  p = p * t + UK_ERFC_C7;
  p = p * t + UK_ERFC_C6;
  p = p * t + UK_ERFC_C5;
  p = p * t + UK_ERFC_C4;
  p = p * t + UK_ERFC_C3;
  p = p * t + UK_ERFC_C2;
  p = p * t + UK_ERFC_C1;
  p = p * t + UK_ERFC_C0;
  float r = t * uk_expf(p - az * az);
  return z < 0.0f ? 2.0f - r : r;
}

UK_INLINE kiln_v16f uk_erfc_v(kiln_v16f z) {
  kiln_v16f az = z < 0.0f ? -z : z;
  kiln_v16f t = 1.0f / (1.0f + 0.5f * az);
  kiln_v16f p = uk_splat(UK_ERFC_C9);
  p = p * t + UK_ERFC_C8;
  p = p * t + UK_ERFC_C7;
  p = p * t + UK_ERFC_C6;
  p = p * t + UK_ERFC_C5;
  p = p * t + UK_ERFC_C4;
  p = p * t + UK_ERFC_C3;
  p = p * t + UK_ERFC_C2;
  p = p * t + UK_ERFC_C1;
  p = p * t + UK_ERFC_C0;
  kiln_v16f r = t * uk_exp_v(p - az * az);
  return z < 0.0f ? 2.0f - r : r;
}

/* Activations. gelu_tanh(x) = 0.5 x (1 + tanh(y)) = x * sigmoid(2y): the
 * sigmoid form has no cancellation for negative x. */
#define UK_SQRT_2_OVER_PI 0.79788456080286536f
#define UK_GELU_C 0.044715f
#define UK_INV_SQRT2 0.70710678118654752f

UK_INLINE float uk_siluf(float x) { return x / (1.0f + uk_expf(-x)); }
UK_INLINE kiln_v16f uk_silu_v(kiln_v16f x) { return x / (1.0f + uk_exp_v(-x)); }

UK_INLINE float uk_gelu_tanhf(float x) {
  float y = UK_SQRT_2_OVER_PI * (x + UK_GELU_C * x * x * x);
  return x / (1.0f + uk_expf(-2.0f * y));
}
UK_INLINE kiln_v16f uk_gelu_tanh_v(kiln_v16f x) {
  kiln_v16f y = UK_SQRT_2_OVER_PI * (x + UK_GELU_C * x * x * x);
  return x / (1.0f + uk_exp_v(-2.0f * y));
}

UK_INLINE float uk_gelu_erff(float x) { return 0.5f * x * uk_erfcf(-x * UK_INV_SQRT2); }
UK_INLINE kiln_v16f uk_gelu_erf_v(kiln_v16f x) { return 0.5f * x * uk_erfc_v(-x * UK_INV_SQRT2); }

/* act codes of ukernels.h (KILN_UK_ACT_*); an unknown code is the identity. */
UK_INLINE kiln_v16f uk_act_v(kiln_v16f x, int32_t act) {
  switch (act) {
    case 1: return uk_gelu_tanh_v(x);
    case 2: return uk_silu_v(x);
    case 3: return uk_gelu_erf_v(x);
    default: return x;
  }
}

#endif /* KILN_TARGETS_CPU_UKERNELS_UK_MATH_H_ */
