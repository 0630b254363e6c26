//===- LlmDialect.h - The llm dialect -----------------------------*- C++ -*-===//
#ifndef KILN_DIALECTS_LLM_IR_LLMDIALECT_H
#define KILN_DIALECTS_LLM_IR_LLMDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "LlmDialect.h.inc"

#define GET_OP_CLASSES
#include "LlmOps.h.inc"

namespace mlir {
class DialectRegistry;
}

namespace kiln::llm {
/// Attaches bufferization to llm.ukernel (destination style: outs are written).
void registerBufferizableOpInterfaceExternalModels(mlir::DialectRegistry &registry);

/// Activations matmul/gated_mlp/gelu_mlp accept, in the ukernels' numbering.
std::optional<int32_t> activationCode(llvm::StringRef name);
} // namespace kiln::llm

#endif // KILN_DIALECTS_LLM_IR_LLMDIALECT_H
