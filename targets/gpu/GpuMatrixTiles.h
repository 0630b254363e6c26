//===- GpuMatrixTiles.h - 16x16 tile products by a warp --------*- C++ -*-===//
//
// The tensor-core kernels (the LLM matmuls on rows in blocks of 16, see
// GpuUkernelsMatmul.cpp) multiply 16x16 tiles staged in workgroup memory,
// one warp of 32 invocations per product. On CUDA these are the gpu
// dialect's subgroup MMA ops, which the NVVM lowering turns into WMMA
// (PTX wmma.load / wmma.mma.sync / wmma.store: f16 operands, f32
// accumulators, run by the tensor cores). GpuMatrixOps::Emulated builds
// the same kernels with each tile product computed in full, in private
// memory, by every invocation of the warp: slow, but it runs anywhere, so
// the kernels' staging, indexing and epilogues are tested on lavapipe (a
// test profile sets "matrix_ops": "emulated").
//
// Both forms read the operands row-major: A (16 x 16) element (i, k) at
// a[aOff + i * lda + k], B element (k, j) at b[bOff + k * ldb + j]. The
// warp must execute every call together (uniform control flow), and the
// caller separates staging and use with barriers.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_GPU_GPUMATRIXTILES_H
#define KILN_TARGETS_GPU_GPUMATRIXTILES_H

#include "targets/TargetRegistry.h"

#include "mlir/IR/PatternMatch.h"

namespace kiln {

class MatrixTiles {
public:
  static constexpr int64_t kTile = 16;
  static constexpr int64_t kWarp = 32;

  MatrixTiles(mlir::RewriterBase &rw, mlir::Location loc, GpuMatrixOps kind)
      : rw(rw), loc(loc), kind(kind) {}

  /// What A and B are staged as: f16 for the tensor cores; f32 emulated
  /// (no Float16 needed on the test device).
  mlir::Type operandType() const;

  /// Whether accumulators are values the caller carries through its loops
  /// (tensor cores); emulated, an accumulator is a private buffer that
  /// multiplyAdd updates in place, and the caller must not carry it.
  bool carried() const { return kind == GpuMatrixOps::Wmma; }

  /// A zero 16x16 f32 accumulator.
  mlir::Value zero();

  /// acc + A @ B; returns the new accumulator (emulated: `acc` itself).
  mlir::Value multiplyAdd(mlir::Value acc, mlir::Value a, mlir::Value aOff, int64_t lda,
                          mlir::Value b, mlir::Value bOff, int64_t ldb);

  /// Stores `acc` row-major at c[off + i * ldc + j] (f32 workgroup memory);
  /// `lane` is the invocation's index in its warp.
  void store(mlir::Value acc, mlir::Value c, mlir::Value off, int64_t ldc, mlir::Value lane);

private:
  mlir::RewriterBase &rw;
  mlir::Location loc;
  GpuMatrixOps kind;
};

} // namespace kiln

#endif
