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

/// Replaces every llm op of `fn` by llm.ukernel calls (see LowerLlm.cpp).
/// Pass one `cache` to every function of a module.
mlir::LogicalResult lowerLlmToUkernels(mlir::func::FuncOp fn, PackCache *cache = nullptr);
} // namespace kiln

#endif
