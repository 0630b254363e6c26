//===- ExecDialect.h - The exec dialect ---------------------------*- C++ -*-===//
#ifndef KILN_DIALECTS_EXEC_IR_EXECDIALECT_H
#define KILN_DIALECTS_EXEC_IR_EXECDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "ExecDialect.h.inc"

#define GET_OP_CLASSES
#include "ExecOps.h.inc"

namespace kiln::exec {
/// Attribute names on func.func ops.
inline constexpr llvm::StringLiteral kEntryAttr = "exec.entry";
inline constexpr llvm::StringLiteral kKernelAttr = "exec.kernel";
/// On an entry argument: kernels may update its buffer in place (the
/// runtime hands in a writable buffer it keeps, e.g. a paged KV pool).
inline constexpr llvm::StringLiteral kInplaceAttr = "exec.inplace";
/// Number of leading kernel arguments that are workgroup id and count.
inline constexpr unsigned kNumWorkgroupArgs = 2;
} // namespace kiln::exec

#endif // KILN_DIALECTS_EXEC_IR_EXECDIALECT_H
