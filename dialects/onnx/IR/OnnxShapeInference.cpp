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
  bool zext = d.getElementType().isUnsignedInteger() ||
              d.getElementType().isInteger(1);
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
  case 1: return b.getF32Type();
  case 2: return b.getIntegerType(8, false);
  case 3: return b.getIntegerType(8);
  case 4: return b.getIntegerType(16, false);
  case 5: return b.getIntegerType(16);
  case 6: return b.getIntegerType(32);
  case 7: return b.getIntegerType(64);
  case 9: return b.getI1Type();
  case 10: return b.getF16Type();
  case 11: return b.getF64Type();
  case 12: return b.getIntegerType(32, false);
  case 13: return b.getIntegerType(64, false);
  case 16: return b.getBF16Type();
  default: return {};
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
