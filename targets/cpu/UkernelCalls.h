//===- UkernelCalls.h - llm.ukernel -> calls into the linked ukernels -*- C++ -*-===//
#ifndef KILN_TARGETS_CPU_UKERNELCALLS_H
#define KILN_TARGETS_CPU_UKERNELCALLS_H

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace llvm {
class Module;
}

namespace kiln {
/// Marks a kernel whose work a microkernel splits over workgroups (the
/// others run as one workgroup).
inline constexpr llvm::StringLiteral kUkernelKernelAttr = "kiln.ukernel";

/// Replaces buffer-level llm.ukernel ops by func.call of their microkernel.
mlir::LogicalResult lowerUkernelCalls(mlir::ModuleOp module, std::string &error);

/// Links the microkernels `m` calls into it (no-op when it calls none);
/// `features` (the target's) picks the `_dotprod` twins where it has +dotprod.
mlir::LogicalResult linkUkernels(llvm::Module &m, llvm::StringRef features,
                                 std::string &error);
} // namespace kiln

#endif
