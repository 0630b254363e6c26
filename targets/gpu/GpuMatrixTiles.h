//===- GpuMatrixTiles.h - 16x16 tile products by a warp --------*- C++ -*-===//
//
// The tensor-core kernels (the LLM matmuls on rows in blocks of 16, see
// GpuUkernelsMatmul.cpp) multiply 16x16 tiles staged in workgroup memory,
// one warp of 32 invocations per product. On CUDA:
//   - f16 operands: the gpu dialect's subgroup MMA ops, which the NVVM
//     lowering turns into WMMA (PTX wmma.load / wmma.mma.sync / wmma.store,
//     f32 accumulators);
//   - bf16 operands: MLIR's WMMA has no bfloat16 fragments, so these take
//     PTX's mma.sync m16n8k16 (nvvm.mma.sync, two per 16x16 product), each
//     lane gathering its fragment registers from workgroup memory by the
//     layout the PTX ISA defines, and holding 8 f32 of the accumulator.
// GpuMatrixOps::Emulated builds the same kernels where no tensor cores
// exist, for kiln's own tests on lavapipe (a test profile sets
// "matrix_ops": "emulated"): f16 tile products (WMMA's fragments are
// opaque) are computed in full, in private memory, by every invocation of
// the warp; bf16 ones go through the very fragment code CUDA runs, with
// only the mma.sync instruction emulated -- each lane computes its own 8
// results from the registers the lanes holding its operands would gather
// (the same code, run for their lane numbers).
// Slow, but it tests the kernels' staging, indexing, fragments and
// epilogues.
//
// Every form reads the operands row-major: A (16 x 16) element (i, k) at
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

  /// `operand`: f16 or bf16, what the tensor cores multiply.
  MatrixTiles(mlir::RewriterBase &rw, mlir::Location loc, GpuMatrixOps kind, mlir::Type operand)
      : rw(rw), loc(loc), kind(kind), operand(operand) {}

  /// What A and B are staged as: the operand type for the tensor cores; f32
  /// emulated (no Float16 or bfloat16 needed on the test device).
  mlir::Type operandType() const;

  /// Whether accumulators are values the caller carries through its loops
  /// (tensor cores); emulated, an accumulator is a private buffer that
  /// multiplyAdd updates in place, and the caller must not carry it.
  bool carried() const { return kind == GpuMatrixOps::Wmma; }

  /// A zero 16x16 f32 accumulator (this invocation's share of it).
  mlir::Value zero();

  /// acc + A @ B; returns the new accumulator (emulated: `acc` itself).
  /// `tid` is the invocation's index in the workgroup.
  mlir::Value multiplyAdd(mlir::Value acc, mlir::Value a, mlir::Value aOff, int64_t lda,
                          mlir::Value b, mlir::Value bOff, int64_t ldb, mlir::Value tid);

  /// Stores `acc` row-major at c[off + i * ldc + j] (f32 workgroup memory).
  void store(mlir::Value acc, mlir::Value c, mlir::Value off, int64_t ldc, mlir::Value tid);

private:
  /// bf16 operands: mma.sync fragments (real or emulated), 8 accumulator
  /// elements per lane.
  bool mmaSync() const;
  mlir::Value mmaSyncProduct(mlir::Value acc, mlir::Value a, mlir::Value aOff, int64_t lda,
                             mlir::Value b, mlir::Value bOff, int64_t ldb, mlir::Value tid);
  /// A lane's group g = lane / 4 and 2t = 2 (lane % 4) in the mma.sync
  /// fragment layouts.
  std::pair<mlir::Value, mlir::Value> groupOf(mlir::Value lane);
  /// Lane `lane`'s 4 registers of A and its 2 of B for 8-column half h
  /// (the PTX ISA's m16n8k16 layout, see mmaSyncProduct).
  llvm::SmallVector<mlir::Value> fragmentA(mlir::Value a, mlir::Value aOff, int64_t lda,
                                           mlir::Value lane);
  llvm::SmallVector<mlir::Value> fragmentB(mlir::Value b, mlir::Value bOff, int64_t ldb,
                                           mlir::Value lane, int64_t h);
  /// Emulated mma.sync: this lane's 8 elements of acc + A B (both halves),
  /// updated in place.
  void emulateMmaSync(mlir::Value acc, mlir::Value a, mlir::Value aOff, int64_t lda,
                      mlir::Value b, mlir::Value bOff, int64_t ldb, mlir::Value lane);
  /// Accumulator element i (of this lane's 8) and its update.
  mlir::Value accAt(mlir::Value acc, int64_t i);
  mlir::Value accWith(mlir::Value acc, int64_t i, mlir::Value v);
  /// Two 16-bit operands of workgroup memory, at `at` and `at + step`, as
  /// the low and high halves of an i32 (f32 staging: rounded to bf16).
  mlir::Value pair(mlir::Value buf, mlir::Value at, mlir::Value step);

  /// Index and i32 constants, index + and * (a constant).
  mlir::Value idx(int64_t v);
  mlir::Value i32(int64_t v);
  mlir::Value add(mlir::Value x, mlir::Value y);
  mlir::Value mul(mlir::Value x, int64_t y);

  mlir::RewriterBase &rw;
  mlir::Location loc;
  GpuMatrixOps kind;
  mlir::Type operand;
};

} // namespace kiln

#endif
