//===- index_arith.h - The Arith instruction's int64 semantics -------------===//
#ifndef KILN_RUNTIME_EXEC_INDEX_ARITH_H_
#define KILN_RUNTIME_EXEC_INDEX_ARITH_H_

#include <cstdint>

#include "runtime/artifact/kiln_generated.h"
#include "runtime/base/status.h"

namespace kiln::exec {

/// Evaluates `kind` on int64 operands like MLIR's arith/index ops (DivS and
/// RemS truncate, CeilDivS/FloorDivS round as named, comparisons yield 0/1,
/// Select is a ? b : c). Division by zero and int64 overflow are errors, not
/// undefined behaviour.
StatusOr<int64_t> EvalArith(fb::ArithKind kind, int64_t a, int64_t b, int64_t c = 0);

}  // namespace kiln::exec

#endif  // KILN_RUNTIME_EXEC_INDEX_ARITH_H_
