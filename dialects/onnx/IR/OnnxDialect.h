//===- OnnxDialect.h - The onnx dialect ---------------------------*- C++ -*-===//
#ifndef KILN_DIALECTS_ONNX_IR_ONNXDIALECT_H
#define KILN_DIALECTS_ONNX_IR_ONNXDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "OnnxDialect.h.inc"

#define GET_OP_CLASSES
#include "OnnxOps.h.inc"

namespace kiln::onnx {

/// Shape of numpy-style multidirectional broadcasting of `shapes`, with
/// ShapedType::kDynamic for unknown dims. Fails when two static dims clash.
mlir::FailureOr<llvm::SmallVector<int64_t>>
broadcastShapes(llvm::ArrayRef<llvm::ArrayRef<int64_t>> shapes);

} // namespace kiln::onnx

#endif // KILN_DIALECTS_ONNX_IR_ONNXDIALECT_H
