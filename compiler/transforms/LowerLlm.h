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

/// How the f32 weights of linear layers are stored (--quantize=f16 /
/// bf16): the same 16-column panels, 2 bytes a weight, read by the
/// kiln_uk_matmul_h_f32 / _glu_h_f32 (IEEE half) or kiln_uk_matmul_bf16_f32
/// / _glu_bf16_f32 (bfloat16, as i16 bits) kernels. GPU targets only: no
/// CPU microkernel takes them.
enum class FloatWeights { F32, F16, BF16 };

struct LowerLlmOptions {
  FloatWeights floatWeights = FloatWeights::F32;
};

/// Replaces every llm op of `fn` by llm.ukernel calls (see LowerLlm.cpp).
/// Pass one `cache` to every function of a module.
mlir::LogicalResult lowerLlmToUkernels(mlir::func::FuncOp fn, PackCache *cache = nullptr,
                                       const LowerLlmOptions &options = {});
} // namespace kiln

#endif
