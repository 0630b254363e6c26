//===- LowerLlm.h - llm ops -> CPU microkernel calls ---------------*- C++ -*-===//
#ifndef KILN_COMPILER_TRANSFORMS_LOWERLLM_H
#define KILN_COMPILER_TRANSFORMS_LOWERLLM_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "llvm/ADT/DenseMap.h"

namespace kiln {
/// Packed weights by their unpacked constant: functions of one module that
/// read the same weight (a speculative draft sharing the target's layers)
/// share one packed copy, which the artifact then stores once.
using PackCache = llvm::DenseMap<mlir::Attribute, mlir::Attribute>;

struct LowerLlmOptions {
  /// The f32 weights of linear layers stored as IEEE half (--quantize=f16):
  /// the same 16-column panels, 2 bytes a weight, read by the
  /// kiln_uk_matmul_h_f32 / kiln_uk_matmul_glu_h_f32 kernels (GPU targets
  /// only: no CPU microkernel takes them).
  bool halfWeights = false;
};

/// Replaces every llm op of `fn` by llm.ukernel calls (see LowerLlm.cpp).
/// Pass one `cache` to every function of a module.
mlir::LogicalResult lowerLlmToUkernels(mlir::func::FuncOp fn, PackCache *cache = nullptr,
                                       const LowerLlmOptions &options = {});
} // namespace kiln

#endif
