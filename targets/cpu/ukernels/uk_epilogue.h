/*===- uk_epilogue.h - Stores of matmul results: bias, activation, residual ===*
 *
 * Internal to the ukernels; shared by the f32 (matmul.c) and the quantized
 * (qmatmul.c) matmuls, so that both apply the epilogue the same way.
 *
 *===----------------------------------------------------------------------===*/
#ifndef KILN_TARGETS_CPU_UKERNELS_UK_EPILOGUE_H_
#define KILN_TARGETS_CPU_UKERNELS_UK_EPILOGUE_H_

#include "uk_math.h"

/* One 16-wide piece of row `row`, columns n0 .. n0+nv-1 (nv <= 16). */
UK_INLINE void uk_store_out(kiln_v16f acc, int64_t row, int64_t n0, int64_t nv, int64_t N,
                            const float *bias, const float *residual, int32_t act, float *C) {
  if (nv == UK_W) {
    if (bias) acc += uk_load(bias + n0);
    acc = uk_act_v(acc, act);
    if (residual) acc += uk_load(residual + row * N + n0);
    uk_store(C + row * N + n0, acc);
  } else {
    if (bias) acc += uk_load_partial(bias + n0, nv);
    acc = uk_act_v(acc, act);
    if (residual) acc += uk_load_partial(residual + row * N + n0, nv);
    uk_store_partial(C + row * N + n0, acc, nv);
  }
}

UK_INLINE void uk_store_glu(kiln_v16f g, kiln_v16f u, int64_t row, int64_t n0, int64_t nv, int64_t N,
                            int32_t act, float *C) {
  kiln_v16f y = uk_act_v(g, act) * u;
  if (nv == UK_W)
    uk_store(C + row * N + n0, y);
  else
    uk_store_partial(C + row * N + n0, y, nv);
}

#endif /* KILN_TARGETS_CPU_UKERNELS_UK_EPILOGUE_H_ */
