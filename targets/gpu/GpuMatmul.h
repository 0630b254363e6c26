//===- GpuMatmul.h - What the GPU matmul expanders share ---------*- C++ -*-===//
//
// GpuUkernelsMatmul.cpp expands the LLM matmuls (f32, half, bfloat16, int8
// and int4 weights in 16-column panels) into SIMT and tensor-core kernels;
// GpuUkernelsGemv.cpp holds the decode GEMV CUDA's workgroups take for few
// rows. Both read the weights through a WeightReader and end each output
// element in matmulEpilogue.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_GPU_GPUMATMUL_H
#define KILN_TARGETS_GPU_GPUMATMUL_H

#include "targets/gpu/GpuUkernelBuilder.h"
#include "targets/gpu/GpuWorkgroup.h"

#include <functional>

namespace kiln {

enum class WeightFormat { F32, Half, Bf16, Int8, Int4 };

/// How the packed weight(s) of a matmul are read. K is split into groups
/// (one group for f32 weights); `params` loads what one (panel, group) of a
/// column needs once (scales, zero points), `weight` one dequantized f32
/// weight of that column at k. Weights are packed in panels of 16 columns
/// (the last zero padded); f32: element (k, n) at (n / 16) * K * 16 + k *
/// 16 + n % 16.
struct WeightReader {
  mlir::Value group; // k per group, dividing K
  /// What the tensor cores may multiply: f16 for half and integer
  /// weights, bf16 for bfloat16 ones (the inputs are rounded to it too);
  /// null for f32 weights, which keep f32 products (an f32 model computes
  /// in f32).
  mlir::Type tileOperand;
  std::function<llvm::SmallVector<mlir::Value>(mlir::Value buf, mlir::Value panel, mlir::Value g,
                                               mlir::Value c)>
      params;
  std::function<mlir::Value(mlir::Value buf, mlir::Value panel, mlir::Value k, mlir::Value c,
                            llvm::ArrayRef<mlir::Value> params)>
      weight;

  // The layout, for readers of whole 16-byte pieces (panelGemv).
  WeightFormat format = WeightFormat::F32;
  mlir::Value K;
  /// Quantized: bytes of one panel's integers, where the (panel, group)
  /// parameters start (after every panel's integers), groups along K,
  /// bytes per (panel, group) (32 scales, 48 with zero points).
  mlir::Value panelBytes, paramsStart, groups;
  int64_t paramBytes = 0;
  bool hasZp = false;
};

/// The epilogue of one output element from its sums over k: act(acc +
/// bias) + residual, or act(acc) * accUp for a GLU.
mlir::Value matmulEpilogue(UkernelBuilder &e, mlir::Value acc, mlir::Value accUp, mlir::Value n,
                           mlir::Value out, mlir::Value bias, mlir::Value residual, int64_t act);

/// bfloat16 bits (an i16) as the f32 they stand for.
mlir::Value bf16BitsToFloat(UkernelBuilder &e, mlir::Value bits);

/// An unsigned byte of an i8 buffer as i32.
mlir::Value loadByte(UkernelBuilder &e, mlir::Value buf, mlir::Value at);

/// Rows per work item of the decode GEMV.
constexpr int64_t kGemvRows = 4;

/// Whether the workgroups take the decode GEMV: CUDA's blocks of 4 warps
/// (and the Vulkan test profile that emulates them).
bool usesPanelGemv(const GpuKernelConfig &cfg);

/// Workgroup memory for the GEMV's sums (size() * 16 floats).
mlir::Value panelGemvScratch(UkernelBuilder &e, const GpuKernelConfig &cfg);

/// C = act(A @ B + bias) + residual (Bu == null) or act(A @ Bg) * (A @ Bu)
/// for rows row0 .. end - 1 (at most kGemvRows) of one 16-column `panel`,
/// by the whole workgroup: the body of a work item. `scratch` holds at
/// least size() * (Bu ? 2 : 1) * 8 floats.
void panelGemvItem(UkernelBuilder &e, WorkgroupBuilder &wg, const WeightReader &r, mlir::Value A,
                   mlir::Value K, mlir::Value Bp, mlir::Value Bu, mlir::Value N, mlir::Value bias,
                   mlir::Value residual, int64_t act, mlir::Value C, mlir::Value panel,
                   mlir::Value row0, mlir::Value end, mlir::Value scratch);

} // namespace kiln

#endif
