//===- GraphMatch.h - Small structural matchers over onnx graphs --*- C++ -*-===//
//
// The raise pass recognizes transformer blocks by the shape of the graph:
// op kinds, how values flow, constants and static dims — never by node or
// tensor names. These helpers keep its patterns short.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_COMPILER_TRANSFORMS_GRAPHMATCH_H
#define KILN_COMPILER_TRANSFORMS_GRAPHMATCH_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallVector.h"

#include <optional>

namespace kiln::match {

/// The op defining `v` when it is the onnx op `name` (e.g. "MatMul").
mlir::Operation *def(mlir::Value v, llvm::StringRef name);
/// Looks through no-op casts (Cast to the same element type) and Identity.
mlir::Value skipNoops(mlir::Value v);

/// The ElementsAttr of an onnx.Constant (or arith.constant) defining `v`.
mlir::ElementsAttr constant(mlir::Value v);
/// A constant weight of the given rank (any element type).
mlir::ElementsAttr weight(mlir::Value v, int64_t rank);
/// A float32 view of a constant's data: the resource blob itself, or the
/// dense values copied into `storage`. None for other element types.
std::optional<llvm::ArrayRef<float>> floatData(mlir::ElementsAttr attr,
                                               llvm::SmallVectorImpl<float> &storage);
/// A constant holding one float (a scalar or any splat).
std::optional<double> scalarFloat(mlir::Value v);

/// Integer values of a small shape-arithmetic tensor when they can be worked
/// out at compile time from constants and static dims; an element that is
/// unknown is std::nullopt.
std::optional<llvm::SmallVector<std::optional<int64_t>>> evalInts(mlir::Value v);
/// evalInts of a one-element tensor, when known.
std::optional<int64_t> evalInt(mlir::Value v);

/// An integer attribute list (perm, axes).
llvm::SmallVector<int64_t> intList(mlir::Operation *op, llvm::StringRef name);
/// The `axes` of a reduction or (un)squeeze: the attribute (older opsets,
/// ReduceMean) or the known values of the axes operand (opset 13+).
llvm::SmallVector<int64_t> axesOf(mlir::Operation *op);
int64_t intAttr(mlir::Operation *op, llvm::StringRef name, int64_t dflt);
double floatAttr(mlir::Operation *op, llvm::StringRef name, double dflt);

/// For a commutative binary op: calls `f(a, b)` then `f(b, a)`; true when
/// one order matched.
template <typename F> bool eitherOrder(mlir::Operation *op, F &&f) {
  if (!op || op->getNumOperands() != 2)
    return false;
  return f(op->getOperand(0), op->getOperand(1)) ||
         f(op->getOperand(1), op->getOperand(0));
}

/// Ranked tensor type of `v`, or null.
mlir::RankedTensorType ranked(mlir::Value v);

} // namespace kiln::match

#endif
