//===- OnnxFolders.cpp - Folders for onnx ops -----------------------------===//
//
// LLM exports are mostly shape arithmetic (Shape -> Gather -> Concat ...).
// These folders collapse it when shapes are static so that later passes see
// plain constants.
//
//===----------------------------------------------------------------------===//
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/CommonFolders.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace kiln::onnx;

/// Folds an elementwise integer op on two same-typed dense constants.
template <typename Fn>
static OpFoldResult foldIntBinary(ArrayRef<Attribute> operands, Type result,
                                  Fn fn) {
  auto type = dyn_cast<RankedTensorType>(result);
  if (operands.size() != 2 || !type || !type.hasStaticShape() ||
      !isa<IntegerType>(type.getElementType()))
    return {};
  auto l = dyn_cast_or_null<DenseIntElementsAttr>(operands[0]);
  auto r = dyn_cast_or_null<DenseIntElementsAttr>(operands[1]);
  if (!l || !r || l.getType() != type || r.getType() != type)
    return {};
  return constFoldBinaryOp<IntegerAttr>(
      operands, [&](const APInt &a, const APInt &b) { return fn(a, b); });
}

OpFoldResult AddOp::fold(FoldAdaptor adaptor) {
  return foldIntBinary(adaptor.getOperands(), getType(),
                       [](const APInt &a, const APInt &b) { return a + b; });
}
OpFoldResult SubOp::fold(FoldAdaptor adaptor) {
  return foldIntBinary(adaptor.getOperands(), getType(),
                       [](const APInt &a, const APInt &b) { return a - b; });
}
OpFoldResult MulOp::fold(FoldAdaptor adaptor) {
  return foldIntBinary(adaptor.getOperands(), getType(),
                       [](const APInt &a, const APInt &b) { return a * b; });
}

OpFoldResult IdentityOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType())
    return getInput();
  return {};
}

OpFoldResult ShapeOp::fold(FoldAdaptor) {
  auto in = dyn_cast<RankedTensorType>(getData().getType());
  auto out = dyn_cast<RankedTensorType>(getType());
  if (!in || !out || !in.hasStaticShape() || !out.hasStaticShape())
    return {};
  int64_t rank = in.getRank();
  int64_t start = getStart(), end = getEnd() ? *getEnd() : rank;
  if (start < 0)
    start += rank;
  if (end < 0)
    end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  SmallVector<int64_t> dims;
  for (int64_t i = start; i < end; ++i)
    dims.push_back(in.getDimSize(i));
  if ((int64_t)dims.size() != out.getDimSize(0))
    return {};
  return DenseIntElementsAttr::get(out, dims);
}

OpFoldResult CastOp::fold(FoldAdaptor adaptor) {
  auto out = dyn_cast<RankedTensorType>(getType());
  auto in = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getInput());
  if (getInput().getType() == getType())
    return getInput();
  if (!in || !out || !isa<IntegerType>(out.getElementType()) ||
      in.getType().getShape() != out.getShape())
    return {};
  unsigned width = out.getElementType().getIntOrFloatBitWidth();
  bool isUnsigned = in.getType().getElementType().isUnsignedInteger();
  SmallVector<APInt> values;
  for (const APInt &v : in.getValues<APInt>())
    values.push_back(isUnsigned ? v.zextOrTrunc(width) : v.sextOrTrunc(width));
  return DenseIntElementsAttr::get(out, values);
}

OpFoldResult ConstantOp::fold(FoldAdaptor) {
  if (auto value = getValueAttr())
    return value;
  return {};
}
