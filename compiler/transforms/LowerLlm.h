//===- LowerLlm.h - llm ops -> CPU microkernel calls ---------------*- C++ -*-===//
#ifndef KILN_COMPILER_TRANSFORMS_LOWERLLM_H
#define KILN_COMPILER_TRANSFORMS_LOWERLLM_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace kiln {
/// Replaces every llm op of `fn` by llm.ukernel calls (see LowerLlm.cpp).
mlir::LogicalResult lowerLlmToUkernels(mlir::func::FuncOp fn);
} // namespace kiln

#endif
