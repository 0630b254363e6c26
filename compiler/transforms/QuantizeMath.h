//===- QuantizeMath.h - Dense float kernels for calibrated quantization -*- C++ -*-===//
//
// The little linear algebra that calibration and GPTQ/AWQ need, on the host,
// in float: a blocked A^T B product (AVX2/FMA when the CPU has it), an upper
// Cholesky factorization and a triangular inverse built on it. No MLIR here:
// the calibration runner and the quantizer both use it.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_COMPILER_TRANSFORMS_QUANTIZEMATH_H
#define KILN_COMPILER_TRANSFORMS_QUANTIZEMATH_H

#include <cstdint>

namespace kiln::qmath {

/// C[m, n] += alpha * sum_t A[t, m] * B[t, n] for m < M, n < N, t < T;
/// row-major with leading dimensions lda, ldb, ldc. With `upper`, only
/// the blocks of C on and above the diagonal (n >= m, by 16-wide tiles)
/// are written: enough for a symmetric result such as X^T X. Parallel
/// over tiles of C (llvm::parallelFor).
void gemmTN(int64_t T, int64_t M, int64_t N, float alpha, const float *A, int64_t lda,
            const float *B, int64_t ldb, float *C, int64_t ldc, bool upper = false);

/// In place: the upper triangle of the symmetric n x n matrix `a` (row
/// major; only the upper triangle is read) becomes U with a = U^T U; the
/// strict lower triangle is zeroed. False when `a` is not positive definite.
bool choleskyUpper(float *a, int64_t n);

/// y = (U^T)^-1 for the upper triangular U (n x n, row major): a lower
/// triangular matrix; the strict upper triangle of y is zeroed.
void invertUpperTransposed(const float *u, float *y, int64_t n);

} // namespace kiln::qmath

#endif
