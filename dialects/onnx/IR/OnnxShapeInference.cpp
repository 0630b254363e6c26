//===- OnnxShapeInference.cpp - InferTypeOpInterface for onnx ops ---------===//
//
// The importer takes result types from ONNX's own shape inference; these
// implementations fill in what it could not and let passes create ops without
// spelling result types. Results are compatible (not equal) with imported
// types, so a less precise inference never rejects a valid model.
//
//===----------------------------------------------------------------------===//
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/TypeUtilities.h"

#include <cmath>

using namespace mlir;
using namespace kiln::onnx;

namespace kiln::onnx {
/// Shared with OnnxFolders.cpp.
int64_t slicedLength(int64_t dim, int64_t start, int64_t end, int64_t step);
} // namespace kiln::onnx

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

/// Shape comparison only, for ops whose result element type comes from an
/// attribute that may name a type kiln does not model.
static bool compatibleShapes(TypeRange l, TypeRange r) {
  if (l.size() != r.size())
    return false;
  for (auto [a, b] : llvm::zip(l, r))
    if (failed(verifyCompatibleShape(a, b)))
      return false;
  return true;
}

/// The op's properties, whether inference is called on an existing op
/// (properties set) or on an OperationState (attributes in `attrs` only).
template <typename OpT>
static typename OpT::Properties propsOf(DictionaryAttr attrs,
                                        OpaqueProperties properties) {
  if (properties)
    return *properties.as<typename OpT::Properties *>();
  typename OpT::Properties props;
  if (attrs)
    (void)OpT::setPropertiesFromAttr(props, attrs,
                                     [] { return InFlightDiagnostic(); });
  return props;
}

static int64_t intOr(Attribute a, int64_t dflt) {
  if (auto i = dyn_cast_or_null<IntegerAttr>(a))
    return i.getValue().getSExtValue();
  return dflt;
}

static constexpr int64_t kDyn = ShapedType::kDynamic;
using Shape = std::optional<SmallVector<int64_t>>;

static Shape shapeOf(Value v) {
  if (auto t = dyn_cast<RankedTensorType>(v.getType()))
    return SmallVector<int64_t>(t.getShape());
  return std::nullopt;
}

static Type makeType(const Shape &shape, Type element) {
  if (!shape)
    return UnrankedTensorType::get(element);
  return RankedTensorType::get(*shape, element);
}

static bool isAbsent(ValueRange operands, unsigned i) {
  return i >= operands.size() || isa<NoneType>(operands[i].getType());
}

/// The values of `v` when it is an onnx.Constant holding a small integer
/// tensor.
static std::optional<SmallVector<int64_t>> constInts(Value v) {
  auto c = v ? v.getDefiningOp<ConstantOp>() : ConstantOp();
  if (!c || !c.getValueAttr())
    return std::nullopt;
  auto d = dyn_cast<DenseIntElementsAttr>(c.getValueAttr());
  if (!d || d.getNumElements() > 4096)
    return std::nullopt;
  bool zext =
      d.getElementType().isUnsignedInteger() || d.getElementType().isInteger(1);
  SmallVector<int64_t> r;
  for (const APInt &x : d.getValues<APInt>())
    r.push_back(zext ? (int64_t)x.getZExtValue() : x.getSExtValue());
  return r;
}

/// A scalar (or one-element) constant as a double, for Range.
static std::optional<double> constScalar(Value v) {
  auto c = v.getDefiningOp<ConstantOp>();
  if (!c || !c.getValueAttr())
    return std::nullopt;
  auto d = dyn_cast<DenseElementsAttr>(c.getValueAttr());
  if (!d || d.getNumElements() != 1)
    return std::nullopt;
  if (auto f = dyn_cast<DenseFPElementsAttr>(d))
    return (*f.getValues<APFloat>().begin()).convertToDouble();
  if (auto i = dyn_cast<DenseIntElementsAttr>(d)) {
    APInt x = *i.getValues<APInt>().begin();
    return d.getElementType().isUnsignedInteger() ? (double)x.getZExtValue()
                                                  : (double)x.getSExtValue();
  }
  return std::nullopt;
}

/// Number of entries of a 1-D shape-like operand when its type says so.
static std::optional<int64_t> staticLength(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  if (!t || t.getRank() != 1 || t.isDynamicDim(0))
    return std::nullopt;
  return t.getDimSize(0);
}

static Shape dynamicShape(int64_t rank) {
  if (rank < 0)
    return std::nullopt;
  return SmallVector<int64_t>(rank, kDyn);
}

static int64_t product(ArrayRef<int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims) {
    if (ShapedType::isDynamic(d))
      return kDyn;
    p *= d;
  }
  return p;
}

/// The integer ONNX TensorProto data type `to` as an MLIR element type, or
/// null for types kiln does not model.
static Type onnxElementType(MLIRContext *ctx, int64_t to) {
  Builder b(ctx);
  switch (to) {
  case 1:
    return b.getF32Type();
  case 2:
    return b.getIntegerType(8, false);
  case 3:
    return b.getIntegerType(8);
  case 4:
    return b.getIntegerType(16, false);
  case 5:
    return b.getIntegerType(16);
  case 6:
    return b.getIntegerType(32);
  case 7:
    return b.getIntegerType(64);
  case 9:
    return b.getI1Type();
  case 10:
    return b.getF16Type();
  case 11:
    return b.getF64Type();
  case 12:
    return b.getIntegerType(32, false);
  case 13:
    return b.getIntegerType(64, false);
  case 16:
    return b.getBF16Type();
  default:
    return {};
  }
}

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
  LogicalResult OP::inferReturnTypes(MLIRContext *, std::optional<Location>,   \
                                     ValueRange operands, DictionaryAttr,      \
                                     OpaqueProperties, RegionRange,            \
                                     SmallVectorImpl<Type> &results) {         \
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
KILN_SAME_OP(CosOp)
KILN_SAME_OP(SinOp)
KILN_SAME_OP(TanOp)
KILN_SAME_OP(AcosOp)
KILN_SAME_OP(AsinOp)
KILN_SAME_OP(AtanOp)
KILN_SAME_OP(CoshOp)
KILN_SAME_OP(SinhOp)
KILN_SAME_OP(AcoshOp)
KILN_SAME_OP(AsinhOp)
KILN_SAME_OP(AtanhOp)
KILN_SAME_OP(FloorOp)
KILN_SAME_OP(CeilOp)
KILN_SAME_OP(RoundOp)
KILN_SAME_OP(SignOp)
KILN_SAME_OP(SoftplusOp)
KILN_SAME_OP(SoftsignOp)
KILN_SAME_OP(EluOp)
KILN_SAME_OP(SeluOp)
KILN_SAME_OP(CeluOp)
KILN_SAME_OP(LeakyReluOp)
KILN_SAME_OP(HardSigmoidOp)
KILN_SAME_OP(HardSwishOp)
KILN_SAME_OP(ThresholdedReluOp)
KILN_SAME_OP(ShrinkOp)
KILN_SAME_OP(ClipOp)
KILN_SAME_OP(TriluOp)
KILN_SAME_OP(CumSumOp)
KILN_SAME_OP(SoftmaxOp)
KILN_SAME_OP(LogSoftmaxOp)
KILN_SAME_OP(HardmaxOp)

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

/// x's shape; the zero point's element type (uint8 without one).
LogicalResult QuantizeLinearOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location>, ValueRange operands,
    DictionaryAttr, OpaqueProperties, RegionRange,
    SmallVectorImpl<Type> &results) {
  if (operands.size() < 2)
    return failure();
  Type element = IntegerType::get(ctx, 8, IntegerType::Unsigned);
  if (operands.size() > 2 && !isa<NoneType>(operands[2].getType()))
    element = elementTypeOf(operands[2]);
  if (auto t = dyn_cast<RankedTensorType>(operands[0].getType()))
    results.push_back(RankedTensorType::get(t.getShape(), element));
  else
    results.push_back(UnrankedTensorType::get(element));
  return success();
}
bool QuantizeLinearOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return compatibleTypes(l, r);
}

/// x's shape; the scale's element type.
LogicalResult DequantizeLinearOp::inferReturnTypes(
    MLIRContext *, std::optional<Location>, ValueRange operands,
    DictionaryAttr, OpaqueProperties, RegionRange,
    SmallVectorImpl<Type> &results) {
  if (operands.size() < 2)
    return failure();
  Type element = elementTypeOf(operands[1]);
  if (auto t = dyn_cast<RankedTensorType>(operands[0].getType()))
    results.push_back(RankedTensorType::get(t.getShape(), element));
  else
    results.push_back(UnrankedTensorType::get(element));
  return success();
}
bool DequantizeLinearOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return compatibleTypes(l, r);
}

/// A's shape with the last dim (K) replaced by the attribute N.
LogicalResult MatMulNBitsOp::inferReturnTypes(
    MLIRContext *, std::optional<Location>, ValueRange operands,
    DictionaryAttr attrs, OpaqueProperties properties, RegionRange,
    SmallVectorImpl<Type> &results) {
  if (operands.empty())
    return failure();
  auto props = propsOf<MatMulNBitsOp>(attrs, properties);
  auto a = dyn_cast<RankedTensorType>(operands[0].getType());
  Type element = elementTypeOf(operands[0]);
  if (!a || !props.N) {
    results.push_back(UnrankedTensorType::get(element));
    return success();
  }
  if (a.getRank() == 0)
    return failure();
  SmallVector<int64_t> shape(a.getShape());
  shape.back() = props.N.getInt();
  results.push_back(RankedTensorType::get(shape, element));
  return success();
}
bool MatMulNBitsOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return compatibleTypes(l, r);
}

LogicalResult
TransposeOp::inferReturnTypes(MLIRContext *, std::optional<Location>,
                              ValueRange operands, DictionaryAttr attrs,
                              OpaqueProperties properties, RegionRange,
                              SmallVectorImpl<Type> &results) {
  if (operands.size() != 1)
    return failure();
  auto type = dyn_cast<RankedTensorType>(operands[0].getType());
  if (!type) {
    results.push_back(operands[0].getType());
    return success();
  }
  auto props = propsOf<TransposeOp>(attrs, properties);
  SmallVector<int64_t> perm;
  if (props.perm) {
    for (Attribute a : props.perm)
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

//===----------------------------------------------------------------------===//
// Ops whose result shape depends on attributes or on constant operands. When
// an operand that decides the shape is not a constant the result keeps what
// can be said without it (often the rank); inference only fails for models
// that are invalid whatever the input data.
//===----------------------------------------------------------------------===//

#define KILN_INFER(OP)                                                         \
  LogicalResult OP::inferReturnTypes(                                          \
      MLIRContext *ctx, std::optional<Location>, ValueRange operands,          \
      DictionaryAttr attrs, OpaqueProperties properties, RegionRange,          \
      SmallVectorImpl<Type> &results)
#define KILN_COMPATIBLE(OP)                                                    \
  bool OP::isCompatibleReturnTypes(TypeRange l, TypeRange r) {                 \
    return compatibleTypes(l, r);                                              \
  }

#define KILN_SAME_SHAPE_OP(OP, ELEMENT)                                        \
  KILN_INFER(OP) {                                                             \
    (void)attrs;                                                               \
    (void)properties;                                                          \
    if (operands.empty())                                                      \
      return failure();                                                        \
    results.push_back(makeType(shapeOf(operands[0]), ELEMENT));                \
    return success();                                                          \
  }                                                                            \
  KILN_COMPATIBLE(OP)

KILN_SAME_SHAPE_OP(IsNaNOp, IntegerType::get(ctx, 1))
KILN_SAME_SHAPE_OP(IsInfOp, IntegerType::get(ctx, 1))

KILN_INFER(CastOp) {
  if (operands.size() != 1)
    return failure();
  auto props = propsOf<CastOp>(attrs, properties);
  Type element = onnxElementType(ctx, intOr(props.to, 0));
  if (!element)
    element = elementTypeOf(operands[0]);
  results.push_back(makeType(shapeOf(operands[0]), element));
  return success();
}
bool CastOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return compatibleShapes(l, r);
}

KILN_INFER(CastLikeOp) {
  (void)attrs;
  (void)properties;
  (void)ctx;
  if (operands.size() != 2)
    return failure();
  results.push_back(makeType(shapeOf(operands[0]), elementTypeOf(operands[1])));
  return success();
}
bool CastLikeOp::isCompatibleReturnTypes(TypeRange l, TypeRange r) {
  return compatibleShapes(l, r);
}

KILN_INFER(ShapeOp) {
  if (operands.size() != 1)
    return failure();
  auto props = propsOf<ShapeOp>(attrs, properties);
  Type i64 = IntegerType::get(ctx, 64);
  auto in = shapeOf(operands[0]);
  if (!in) {
    results.push_back(RankedTensorType::get({kDyn}, i64));
    return success();
  }
  int64_t rank = in->size();
  int64_t start = intOr(props.start, 0), end = intOr(props.end, rank);
  if (start < 0)
    start += rank;
  if (end < 0)
    end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  results.push_back(
      RankedTensorType::get({std::max<int64_t>(end - start, 0)}, i64));
  return success();
}
KILN_COMPATIBLE(ShapeOp)

KILN_INFER(SizeOp) {
  (void)attrs;
  (void)properties;
  if (operands.size() != 1)
    return failure();
  results.push_back(RankedTensorType::get({}, IntegerType::get(ctx, 64)));
  return success();
}
KILN_COMPATIBLE(SizeOp)

/// A result whose dims are the values of the 1-D operand `shape`.
static Shape shapeFromOperand(Value shape) {
  if (auto values = constInts(shape)) {
    for (int64_t &d : *values)
      if (d < 0)
        d = kDyn;
    return values;
  }
  if (auto n = staticLength(shape))
    return dynamicShape(*n);
  return std::nullopt;
}

KILN_INFER(ReshapeOp) {
  if (operands.size() != 2)
    return failure();
  auto props = propsOf<ReshapeOp>(attrs, properties);
  bool allowzero = intOr(props.allowzero, 0) != 0;
  Type element = elementTypeOf(operands[0]);
  auto data = shapeOf(operands[0]);
  auto shape = constInts(operands[1]);
  if (!shape) {
    results.push_back(makeType(shapeFromOperand(operands[1]), element));
    return success();
  }
  SmallVector<int64_t> out;
  int64_t inferred = -1;
  for (auto [i, s] : llvm::enumerate(*shape)) {
    if (s == 0 && !allowzero) {
      out.push_back(data && i < data->size() ? (*data)[i] : kDyn);
    } else if (s == -1 && inferred < 0) {
      inferred = i;
      out.push_back(kDyn);
    } else {
      out.push_back(s < 0 ? kDyn : s);
    }
  }
  if (inferred >= 0 && data) {
    int64_t total = product(*data);
    SmallVector<int64_t> others(out);
    others.erase(others.begin() + inferred);
    int64_t known = product(others);
    if (!ShapedType::isDynamic(total) && !ShapedType::isDynamic(known) &&
        known != 0 && total % known == 0)
      out[inferred] = total / known;
  }
  results.push_back(RankedTensorType::get(out, element));
  return success();
}
KILN_COMPATIBLE(ReshapeOp)

KILN_INFER(ConstantOfShapeOp) {
  if (operands.size() != 1)
    return failure();
  auto props = propsOf<ConstantOfShapeOp>(attrs, properties);
  Type element = Float32Type::get(ctx);
  if (auto value = dyn_cast_or_null<ElementsAttr>(props.value))
    element = value.getElementType();
  results.push_back(makeType(shapeFromOperand(operands[0]), element));
  return success();
}
KILN_COMPATIBLE(ConstantOfShapeOp)

KILN_INFER(ExpandOp) {
  (void)attrs;
  (void)properties;
  if (operands.size() != 2)
    return failure();
  Type element = elementTypeOf(operands[0]);
  auto in = shapeOf(operands[0]);
  auto shape = constInts(operands[1]);
  if (in && shape) {
    SmallVector<int64_t> target(*shape);
    for (int64_t &d : target)
      if (d < 0)
        d = kDyn;
    auto out = broadcastShapes({*in, target});
    if (failed(out))
      return failure();
    results.push_back(RankedTensorType::get(*out, element));
    return success();
  }
  auto n =
      shape ? std::optional<int64_t>(shape->size()) : staticLength(operands[1]);
  if (in && n) {
    results.push_back(RankedTensorType::get(
        SmallVector<int64_t>(std::max<int64_t>(in->size(), *n), kDyn),
        element));
    return success();
  }
  results.push_back(UnrankedTensorType::get(element));
  return success();
}
KILN_COMPATIBLE(ExpandOp)

KILN_INFER(RangeOp) {
  (void)attrs;
  (void)properties;
  (void)ctx;
  if (operands.size() != 3)
    return failure();
  Type element = elementTypeOf(operands[0]);
  int64_t n = kDyn;
  auto start = constScalar(operands[0]), limit = constScalar(operands[1]),
       delta = constScalar(operands[2]);
  if (start && limit && delta && *delta != 0) {
    double count = -1;
    if (isa<IntegerType>(element)) {
      count = std::ceil((*limit - *start) / *delta);
    } else if (element.isF32()) {
      count = std::ceil(((float)*limit - (float)*start) / (float)*delta);
    } else if (element.isF64()) {
      count = std::ceil((*limit - *start) / *delta);
    }
    if (std::isfinite(count) && count < (double)(1ll << 40))
      n = std::max<int64_t>((int64_t)std::max(count, 0.0), 0);
  }
  results.push_back(RankedTensorType::get({n}, element));
  return success();
}
KILN_COMPATIBLE(RangeOp)

KILN_INFER(UnsqueezeOp) {
  (void)attrs;
  (void)properties;
  (void)ctx;
  if (operands.size() != 2)
    return failure();
  Type element = elementTypeOf(operands[0]);
  auto in = shapeOf(operands[0]);
  auto axes = constInts(operands[1]);
  if (!in) {
    results.push_back(UnrankedTensorType::get(element));
    return success();
  }
  if (!axes) {
    auto n = staticLength(operands[1]);
    results.push_back(
        makeType(n ? dynamicShape(in->size() + *n) : Shape(), element));
    return success();
  }
  int64_t rank = in->size() + axes->size();
  SmallVector<bool> inserted(rank, false);
  for (int64_t a : *axes) {
    if (a < 0)
      a += rank;
    if (a < 0 || a >= rank || inserted[a])
      return failure();
    inserted[a] = true;
  }
  SmallVector<int64_t> out;
  unsigned next = 0;
  for (int64_t i = 0; i < rank; ++i)
    out.push_back(inserted[i] ? 1 : (*in)[next++]);
  results.push_back(RankedTensorType::get(out, element));
  return success();
}
KILN_COMPATIBLE(UnsqueezeOp)

KILN_INFER(SqueezeOp) {
  (void)attrs;
  (void)properties;
  (void)ctx;
  if (operands.empty())
    return failure();
  Type element = elementTypeOf(operands[0]);
  auto in = shapeOf(operands[0]);
  if (!in) {
    results.push_back(UnrankedTensorType::get(element));
    return success();
  }
  int64_t rank = in->size();
  SmallVector<bool> removed(rank, false);
  if (isAbsent(operands, 1)) {
    for (int64_t i = 0; i < rank; ++i) {
      if (ShapedType::isDynamic((*in)[i])) {
        results.push_back(UnrankedTensorType::get(element));
        return success();
      }
      removed[i] = (*in)[i] == 1;
    }
  } else if (auto axes = constInts(operands[1])) {
    for (int64_t a : *axes) {
      if (a < 0)
        a += rank;
      if (a < 0 || a >= rank)
        return failure();
      removed[a] = true;
    }
  } else {
    auto n = staticLength(operands[1]);
    results.push_back(
        makeType(n && *n <= rank ? dynamicShape(rank - *n) : Shape(), element));
    return success();
  }
  SmallVector<int64_t> out;
  for (int64_t i = 0; i < rank; ++i)
    if (!removed[i])
      out.push_back((*in)[i]);
  results.push_back(RankedTensorType::get(out, element));
  return success();
}
KILN_COMPATIBLE(SqueezeOp)

KILN_INFER(ConcatOp) {
  (void)ctx;
  if (operands.empty())
    return failure();
  auto props = propsOf<ConcatOp>(attrs, properties);
  Type element = elementTypeOf(operands[0]);
  int64_t rank = -1;
  for (Value v : operands)
    if (auto s = shapeOf(v))
      rank = s->size();
  if (rank < 0) {
    results.push_back(UnrankedTensorType::get(element));
    return success();
  }
  int64_t axis = intOr(props.axis, 0);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank)
    return failure();
  SmallVector<int64_t> out(rank, kDyn);
  int64_t sum = 0;
  for (Value v : operands) {
    auto s = shapeOf(v);
    if (!s) {
      sum = kDyn;
      continue;
    }
    if ((int64_t)s->size() != rank)
      return failure();
    for (int64_t i = 0; i < rank; ++i) {
      if (i == axis)
        continue;
      if (ShapedType::isDynamic(out[i]))
        out[i] = (*s)[i];
    }
    if (!ShapedType::isDynamic(sum))
      sum = ShapedType::isDynamic((*s)[axis]) ? kDyn : sum + (*s)[axis];
  }
  out[axis] = sum;
  results.push_back(RankedTensorType::get(out, element));
  return success();
}
KILN_COMPATIBLE(ConcatOp)

/// Length of `dim` sliced by start/end/step as ONNX defines it.
int64_t kiln::onnx::slicedLength(int64_t dim, int64_t start, int64_t end,
                                 int64_t step) {
  if (ShapedType::isDynamic(dim) || step == 0)
    return kDyn;
  if (start < 0)
    start += dim;
  if (end < 0)
    end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  return start > end ? (start - end + (-step) - 1) / (-step) : 0;
}

KILN_INFER(SliceOp) {
  (void)attrs;
  (void)properties;
  (void)ctx;
  if (operands.size() < 3)
    return failure();
  Type element = elementTypeOf(operands[0]);
  auto in = shapeOf(operands[0]);
  if (!in) {
    results.push_back(UnrankedTensorType::get(element));
    return success();
  }
  int64_t rank = in->size();
  auto starts = constInts(operands[1]), ends = constInts(operands[2]);
  std::optional<SmallVector<int64_t>> axes, steps;
  if (isAbsent(operands, 3)) {
    int64_t n = starts ? starts->size() : ends ? ends->size() : -1;
    if (auto len = staticLength(operands[1]))
      n = *len;
    if (n >= 0 && n <= rank)
      axes = llvm::to_vector(llvm::seq<int64_t>(0, n));
  } else {
    axes = constInts(operands[3]);
  }
  if (!axes) {
    results.push_back(
        RankedTensorType::get(dynamicShape(rank).value(), element));
    return success();
  }
  if (isAbsent(operands, 4))
    steps = SmallVector<int64_t>(axes->size(), 1);
  else
    steps = constInts(operands[4]);
  SmallVector<int64_t> out(*in);
  bool known = starts && ends && steps && starts->size() == axes->size() &&
               ends->size() == axes->size() && steps->size() == axes->size();
  for (auto [i, a] : llvm::enumerate(*axes)) {
    if (a < 0)
      a += rank;
    if (a < 0 || a >= rank)
      return failure();
    out[a] = known
                 ? slicedLength((*in)[a], (*starts)[i], (*ends)[i], (*steps)[i])
                 : kDyn;
  }
  results.push_back(RankedTensorType::get(out, element));
  return success();
}
KILN_COMPATIBLE(SliceOp)

KILN_INFER(GatherOp) {
  (void)ctx;
  if (operands.size() != 2)
    return failure();
  auto props = propsOf<GatherOp>(attrs, properties);
  Type element = elementTypeOf(operands[0]);
  auto data = shapeOf(operands[0]), indices = shapeOf(operands[1]);
  if (!data || !indices) {
    results.push_back(UnrankedTensorType::get(element));
    return success();
  }
  int64_t rank = data->size();
  int64_t axis = intOr(props.axis, 0);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank)
    return failure();
  SmallVector<int64_t> out(data->begin(), data->begin() + axis);
  out.append(indices->begin(), indices->end());
  out.append(data->begin() + axis + 1, data->end());
  results.push_back(RankedTensorType::get(out, element));
  return success();
}
KILN_COMPATIBLE(GatherOp)

KILN_INFER(FlattenOp) {
  (void)ctx;
  if (operands.size() != 1)
    return failure();
  auto props = propsOf<FlattenOp>(attrs, properties);
  Type element = elementTypeOf(operands[0]);
  auto in = shapeOf(operands[0]);
  if (!in) {
    results.push_back(RankedTensorType::get({kDyn, kDyn}, element));
    return success();
  }
  int64_t rank = in->size();
  int64_t axis = intOr(props.axis, 1);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis > rank)
    return failure();
  ArrayRef<int64_t> dims(*in);
  results.push_back(RankedTensorType::get(
      {product(dims.take_front(axis)), product(dims.drop_front(axis))},
      element));
  return success();
}
KILN_COMPATIBLE(FlattenOp)

KILN_INFER(TileOp) {
  (void)attrs;
  (void)properties;
  (void)ctx;
  if (operands.size() != 2)
    return failure();
  Type element = elementTypeOf(operands[0]);
  auto in = shapeOf(operands[0]);
  if (!in) {
    results.push_back(UnrankedTensorType::get(element));
    return success();
  }
  SmallVector<int64_t> out(in->size(), kDyn);
  auto repeats = constInts(operands[1]);
  if (repeats && repeats->size() == in->size()) {
    for (size_t i = 0; i < out.size(); ++i)
      if (!ShapedType::isDynamic((*in)[i]) && (*repeats)[i] >= 0)
        out[i] = (*in)[i] * (*repeats)[i];
  }
  results.push_back(RankedTensorType::get(out, element));
  return success();
}
KILN_COMPATIBLE(TileOp)

KILN_INFER(PadOp) {
  (void)attrs;
  (void)properties;
  (void)ctx;
  if (operands.size() < 2)
    return failure();
  Type element = elementTypeOf(operands[0]);
  auto in = shapeOf(operands[0]);
  if (!in) {
    results.push_back(UnrankedTensorType::get(element));
    return success();
  }
  int64_t rank = in->size();
  SmallVector<int64_t> out(rank, kDyn);
  auto pads = constInts(operands[1]);
  if (pads && (int64_t)pads->size() == 2 * rank && isAbsent(operands, 3)) {
    for (int64_t i = 0; i < rank; ++i) {
      int64_t d = (*in)[i];
      if (!ShapedType::isDynamic(d) && d + (*pads)[i] + (*pads)[i + rank] >= 0)
        out[i] = d + (*pads)[i] + (*pads)[i + rank];
    }
  }
  results.push_back(RankedTensorType::get(out, element));
  return success();
}
KILN_COMPATIBLE(PadOp)

/// Result of reducing `in` over `axes` (all axes when empty).
static Shape reducedShape(const Shape &in,
                          std::optional<ArrayRef<int64_t>> axes,
                          bool keepdims) {
  if (!in)
    return std::nullopt;
  int64_t rank = in->size();
  if (!axes)
    return keepdims ? dynamicShape(rank) : std::nullopt;
  SmallVector<bool> reduced(rank, axes->empty());
  for (int64_t a : *axes) {
    if (a < 0)
      a += rank;
    if (a < 0 || a >= rank)
      return std::nullopt;
    reduced[a] = true;
  }
  SmallVector<int64_t> out;
  for (int64_t i = 0; i < rank; ++i) {
    if (!reduced[i])
      out.push_back((*in)[i]);
    else if (keepdims)
      out.push_back(1);
  }
  return out;
}

#define KILN_REDUCE_ATTR_OP(OP)                                                \
  KILN_INFER(OP) {                                                             \
    (void)ctx;                                                                 \
    if (operands.empty())                                                      \
      return failure();                                                        \
    auto props = propsOf<OP>(attrs, properties);                               \
    SmallVector<int64_t> axes;                                                 \
    if (auto a = dyn_cast_or_null<ArrayAttr>(props.axes))                      \
      for (Attribute x : a)                                                    \
        axes.push_back(intOr(x, 0));                                           \
    results.push_back(                                                         \
        makeType(reducedShape(shapeOf(operands[0]), ArrayRef<int64_t>(axes),   \
                              intOr(props.keepdims, 1) != 0),                  \
                 elementTypeOf(operands[0])));                                 \
    return success();                                                          \
  }                                                                            \
  KILN_COMPATIBLE(OP)

KILN_REDUCE_ATTR_OP(ReduceMeanOp)
KILN_REDUCE_ATTR_OP(ReduceMaxOp)
KILN_REDUCE_ATTR_OP(ReduceMinOp)
KILN_REDUCE_ATTR_OP(ReduceProdOp)
KILN_REDUCE_ATTR_OP(ReduceL1Op)
KILN_REDUCE_ATTR_OP(ReduceL2Op)
KILN_REDUCE_ATTR_OP(ReduceLogSumOp)
KILN_REDUCE_ATTR_OP(ReduceLogSumExpOp)
KILN_REDUCE_ATTR_OP(ReduceSumSquareOp)

KILN_INFER(ReduceSumOp) {
  (void)ctx;
  if (operands.empty())
    return failure();
  auto props = propsOf<ReduceSumOp>(attrs, properties);
  bool keepdims = intOr(props.keepdims, 1) != 0;
  bool noop = intOr(props.noop_with_empty_axes, 0) != 0;
  Type element = elementTypeOf(operands[0]);
  auto in = shapeOf(operands[0]);
  std::optional<SmallVector<int64_t>> axes;
  if (isAbsent(operands, 1)) {
    axes.emplace();
  } else {
    axes = constInts(operands[1]);
    if (!axes && staticLength(operands[1]) == 0)
      axes.emplace();
  }
  if (axes && axes->empty() && noop) {
    results.push_back(makeType(in, element));
    return success();
  }
  results.push_back(makeType(
      reducedShape(
          in, axes ? std::optional<ArrayRef<int64_t>>(*axes) : std::nullopt,
          keepdims),
      element));
  return success();
}
KILN_COMPATIBLE(ReduceSumOp)

#define KILN_ARG_OP(OP)                                                        \
  KILN_INFER(OP) {                                                             \
    if (operands.size() != 1)                                                  \
      return failure();                                                        \
    auto props = propsOf<OP>(attrs, properties);                               \
    int64_t axis = intOr(props.axis, 0);                                       \
    results.push_back(                                                         \
        makeType(reducedShape(shapeOf(operands[0]), ArrayRef<int64_t>(axis),   \
                              intOr(props.keepdims, 1) != 0),                  \
                 IntegerType::get(ctx, 64)));                                  \
    return success();                                                          \
  }                                                                            \
  KILN_COMPATIBLE(OP)

KILN_ARG_OP(ArgMaxOp)
KILN_ARG_OP(ArgMinOp)
