//===- ukernels_math_probe.h - Calls into uk_math.h for the tests ----------===//
#ifndef KILN_TEST_UNIT_UKERNELS_MATH_PROBE_H_
#define KILN_TEST_UNIT_UKERNELS_MATH_PROBE_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  KILN_UK_PROBE_EXP = 0,
  KILN_UK_PROBE_TANH = 1,
  KILN_UK_PROBE_SIGMOID = 2,
  KILN_UK_PROBE_ERFC = 3,
  KILN_UK_PROBE_SILU = 4,
  KILN_UK_PROBE_GELU_TANH = 5,
  KILN_UK_PROBE_GELU_ERF = 6,
};

/// Applies function `fn` to x[0..n): the scalar form into scalar_out, the
/// 16-lane form into vector_out.
void kiln_uk_probe_math(int32_t fn, const float *x, int64_t n, float *scalar_out,
                        float *vector_out);

#ifdef __cplusplus
}
#endif

#endif  // KILN_TEST_UNIT_UKERNELS_MATH_PROBE_H_
