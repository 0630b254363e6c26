//===- OnnxShapeInference.cpp - InferTypeOpInterface for onnx ops ---------===//
//
// The importer takes result types from ONNX's own shape inference; these
// implementations fill in what it could not and let passes create ops without
// spelling result types. Results are compatible (not equal) with imported
// types, so a less precise inference never rejects a valid model.
//
//===----------------------------------------------------------------------===//
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/IR/TypeUtilities.h"

using namespace mlir;
using namespace kiln::onnx;

FailureOr<SmallVector<int64_t>>
kiln::onnx::broadcastShapes(ArrayRef<ArrayRef<int64_t>> shapes) {
  size_t rank = 0;
  for (auto s : shapes)
    rank = std::max(rank, s.size());
  SmallVector<int64_t> out(rank, 1);
  for (auto s : shapes) {
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t &o = out[rank - s.size() + i];
      int64_t d = s[i];
      if (d == 1)
        continue;
      if (o == 1) {
        o = d;
      } else if (ShapedType::isDynamic(o) || ShapedType::isDynamic(d)) {
        o = ShapedType::isDynamic(o) ? d : o;
      } else if (o != d) {
        return failure();
      }
    }
  }
  return out;
}

static bool compatibleTypes(TypeRange l, TypeRange r) {
  if (l.size() != r.size())
    return false;
  for (auto [a, b] : llvm::zip(l, r))
    if (failed(verifyCompatibleShape(a, b)) ||
        getElementTypeOrSelf(a) != getElementTypeOrSelf(b))
      return false;
  return true;
}

static LogicalResult inferBroadcast(ValueRange operands, Type elementType,
                                    SmallVectorImpl<Type> &results) {
  SmallVector<ArrayRef<int64_t>> shapes;
  for (Value v : operands) {
    auto t = dyn_cast<RankedTensorType>(v.getType());
    if (!t) {
      results.push_back(UnrankedTensorType::get(elementType));
      return success();
    }
    shapes.push_back(t.getShape());
  }
  auto shape = broadcastShapes(shapes);
  if (failed(shape))
    return failure();
  results.push_back(RankedTensorType::get(*shape, elementType));
  return success();
}

static Type elementTypeOf(Value v) { return getElementTypeOrSelf(v.getType()); }

#define KILN_BROADCAST_OP(OP, ELEMENT)                                         \
  LogicalResult OP::inferReturnTypes(                                          \
      MLIRContext *ctx, std::optional<Location>, ValueRange operands,          \
      DictionaryAttr, OpaqueProperties, RegionRange,                           \
      SmallVectorImpl<Type> &results) {                                        \
    if (operands.empty())                                                      \
      return failure();                                                        \
    return inferBroadcast(operands, ELEMENT, results);                         \
  }                                                                            \
  bool OP::isCompatibleReturnTypes(TypeRange l, TypeRange r) {                 \
    return compatibleTypes(l, r);                                              \
  }

#define KILN_SAME_OP(OP)                                                       \
  LogicalResult OP::inferReturnTypes(                                          \
      MLIRContext *, std::optional<Location>, ValueRange operands,             \
      DictionaryAttr, OpaqueProperties, RegionRange,                           \
      SmallVectorImpl<Type> &results) {                                        \
    if (operands.empty())                                                      \
      return failure();                                                        \
    results.push_back(operands[0].getType());                                  \
    return success();                                                          \
  }                                                                            \
  bool OP::isCompatibleReturnTypes(TypeRange l, TypeRange r) {                 \
    return compatibleTypes(l, r);                                              \
  }

#define FIRST elementTypeOf(operands[0])
#define BOOL IntegerType::get(ctx, 1)
KILN_BROADCAST_OP(AddOp, FIRST)
KILN_BROADCAST_OP(SubOp, FIRST)
KILN_BROADCAST_OP(MulOp, FIRST)
KILN_BROADCAST_OP(DivOp, FIRST)
KILN_BROADCAST_OP(PowOp, FIRST)
KILN_BROADCAST_OP(MaxOp, FIRST)
KILN_BROADCAST_OP(MinOp, FIRST)
KILN_BROADCAST_OP(SumOp, FIRST)
KILN_BROADCAST_OP(MeanOp, FIRST)
KILN_BROADCAST_OP(ModOp, FIRST)
KILN_BROADCAST_OP(BitShiftOp, FIRST)
KILN_BROADCAST_OP(PReluOp, FIRST)
KILN_BROADCAST_OP(AndOp, BOOL)
KILN_BROADCAST_OP(OrOp, BOOL)
KILN_BROADCAST_OP(XorOp, BOOL)
KILN_BROADCAST_OP(EqualOp, BOOL)
KILN_BROADCAST_OP(LessOp, BOOL)
KILN_BROADCAST_OP(GreaterOp, BOOL)
KILN_BROADCAST_OP(LessOrEqualOp, BOOL)
KILN_BROADCAST_OP(GreaterOrEqualOp, BOOL)
#undef FIRST
#undef BOOL

LogicalResult WhereOp::inferReturnTypes(MLIRContext *, std::optional<Location>,
                                        ValueRange operands, DictionaryAttr,
                                        OpaqueProperties, RegionRange,
                                        SmallVectorImpl<Type> &results) {
  if (operands.size() != 3)
    return failure();
  return inferBroadcast(operands, elementTypeOf(operands[1]), results);
}
bool WhereOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return compatibleTypes(l, r);
}

KILN_SAME_OP(ReluOp)
KILN_SAME_OP(SigmoidOp)
KILN_SAME_OP(TanhOp)
KILN_SAME_OP(ExpOp)
KILN_SAME_OP(LogOp)
KILN_SAME_OP(SqrtOp)
KILN_SAME_OP(NegOp)
KILN_SAME_OP(AbsOp)
KILN_SAME_OP(ErfOp)
KILN_SAME_OP(ReciprocalOp)
KILN_SAME_OP(NotOp)
KILN_SAME_OP(IdentityOp)

LogicalResult MatMulOp::inferReturnTypes(MLIRContext *, std::optional<Location>,
                                         ValueRange operands, DictionaryAttr,
                                         OpaqueProperties, RegionRange,
                                         SmallVectorImpl<Type> &results) {
  if (operands.size() != 2)
    return failure();
  auto a = dyn_cast<RankedTensorType>(operands[0].getType());
  auto b = dyn_cast<RankedTensorType>(operands[1].getType());
  Type element = elementTypeOf(operands[0]);
  if (!a || !b) {
    results.push_back(UnrankedTensorType::get(element));
    return success();
  }
  if (a.getRank() == 0 || b.getRank() == 0)
    return failure();
  SmallVector<int64_t> as(a.getShape()), bs(b.getShape());
  bool aVec = as.size() == 1, bVec = bs.size() == 1;
  if (aVec)
    as.insert(as.begin(), 1);
  if (bVec)
    bs.push_back(1);
  ArrayRef<int64_t> aBatch = ArrayRef<int64_t>(as).drop_back(2);
  ArrayRef<int64_t> bBatch = ArrayRef<int64_t>(bs).drop_back(2);
  auto batch = broadcastShapes({aBatch, bBatch});
  if (failed(batch))
    return failure();
  SmallVector<int64_t> shape(*batch);
  if (!aVec)
    shape.push_back(as[as.size() - 2]);
  if (!bVec)
    shape.push_back(bs.back());
  results.push_back(RankedTensorType::get(shape, element));
  return success();
}
bool MatMulOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return compatibleTypes(l, r);
}

LogicalResult TransposeOp::inferReturnTypes(
    MLIRContext *, std::optional<Location>, ValueRange operands,
    DictionaryAttr attrs, OpaqueProperties properties, RegionRange,
    SmallVectorImpl<Type> &results) {
  if (operands.size() != 1)
    return failure();
  auto type = dyn_cast<RankedTensorType>(operands[0].getType());
  if (!type) {
    results.push_back(operands[0].getType());
    return success();
  }
  auto *props = properties.as<TransposeOp::Properties *>();
  SmallVector<int64_t> perm;
  if (props && props->perm) {
    for (Attribute a : props->perm)
      perm.push_back(cast<IntegerAttr>(a).getInt());
  } else {
    for (int64_t i = type.getRank() - 1; i >= 0; --i)
      perm.push_back(i);
  }
  if ((int64_t)perm.size() != type.getRank())
    return failure();
  SmallVector<int64_t> shape;
  for (int64_t p : perm) {
    if (p < 0 || p >= type.getRank())
      return failure();
    shape.push_back(type.getDimSize(p));
  }
  results.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}
bool TransposeOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return compatibleTypes(l, r);
}
