/*===- ukernels_math_probe.c - uk_math.h's inline functions, callable ------===*
 *
 * uk_math.h is static inline C with vector extensions; the test (C++) calls
 * its functions through this wrapper, lane by lane (scalar form) and 16 lanes
 * at a time (vector form), so that both forms are checked.
 *
 *===----------------------------------------------------------------------===*/
#include "ukernels_math_probe.h"

#include "uk_math.h"

UK_INLINE float uk_probe_scalar(int32_t fn, float x) {
  switch (fn) {
    case KILN_UK_PROBE_EXP: return uk_expf(x);
    case KILN_UK_PROBE_TANH: return uk_tanhf(x);
    case KILN_UK_PROBE_SIGMOID: return uk_sigmoidf(x);
    case KILN_UK_PROBE_ERFC: return uk_erfcf(x);
    case KILN_UK_PROBE_SILU: return uk_siluf(x);
    case KILN_UK_PROBE_GELU_TANH: return uk_gelu_tanhf(x);
    default: return uk_gelu_erff(x);
  }
}

UK_INLINE kiln_v16f uk_probe_vector(int32_t fn, kiln_v16f x) {
  switch (fn) {
    case KILN_UK_PROBE_EXP: return uk_exp_v(x);
    case KILN_UK_PROBE_TANH: return uk_tanh_v(x);
    case KILN_UK_PROBE_SIGMOID: return uk_sigmoid_v(x);
    case KILN_UK_PROBE_ERFC: return uk_erfc_v(x);
    case KILN_UK_PROBE_SILU: return uk_silu_v(x);
    case KILN_UK_PROBE_GELU_TANH: return uk_gelu_tanh_v(x);
    default: return uk_gelu_erf_v(x);
  }
}

void kiln_uk_probe_math(int32_t fn, const float *x, int64_t n, float *scalar_out,
                        float *vector_out) {
  for (int64_t i = 0; i < n; ++i) scalar_out[i] = uk_probe_scalar(fn, x[i]);
  int64_t i = 0;
  for (; i + UK_W <= n; i += UK_W) uk_store(vector_out + i, uk_probe_vector(fn, uk_load(x + i)));
  if (i < n) uk_store_partial(vector_out + i, uk_probe_vector(fn, uk_load_partial(x + i, n - i)), n - i);
}
