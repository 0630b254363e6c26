//===- Utils.cpp - Helpers shared by the onnx -> linalg patterns ----------===//
#include "compiler/conversion/OnnxToLinalg/Utils.h"

#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;

namespace kiln {

SmallVector<Value> dynamicSizes(OpBuilder &b, Location loc, Value like) {
  SmallVector<Value> sizes;
  auto type = cast<RankedTensorType>(like.getType());
  for (int64_t i = 0; i < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      sizes.push_back(tensor::DimOp::create(b, loc, like, i));
  return sizes;
}

Value emptyLike(OpBuilder &b, Location loc, RankedTensorType type, Value like) {
  SmallVector<Value> sizes;
  if (like) {
    auto likeType = cast<RankedTensorType>(like.getType());
    for (int64_t i = 0; i < type.getRank(); ++i)
      if (type.isDynamicDim(i))
        sizes.push_back(tensor::DimOp::create(b, loc, like, i));
    (void)likeType;
  } else {
    for (int64_t i = 0; i < type.getRank(); ++i)
      if (type.isDynamicDim(i))
        sizes.push_back(arith::ConstantIndexOp::create(b, loc, 1));
  }
  return tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType(),
                                 sizes);
}

static AffineMap broadcastMap(MLIRContext *ctx, RankedTensorType in,
                              RankedTensorType out) {
  int64_t rank = out.getRank();
  int64_t offset = rank - in.getRank();
  SmallVector<AffineExpr> exprs;
  for (int64_t j = 0; j < in.getRank(); ++j) {
    int64_t d = in.getDimSize(j);
    if (d == 1 && out.getDimSize(offset + j) != 1)
      exprs.push_back(getAffineConstantExpr(0, ctx));
    else
      exprs.push_back(getAffineDimExpr(offset + j, ctx));
  }
  return AffineMap::get(rank, 0, exprs, ctx);
}

Value buildElementwise(OpBuilder &b, Location loc, RankedTensorType resultType,
                       ValueRange inputs, const ScalarFn &fn) {
  MLIRContext *ctx = b.getContext();
  int64_t rank = resultType.getRank();
  // Dynamic result dims come from an input that has that dim unbroadcast.
  SmallVector<Value> sizes;
  for (int64_t i = 0; i < rank; ++i) {
    if (!resultType.isDynamicDim(i))
      continue;
    Value size;
    for (Value in : inputs) {
      auto t = cast<RankedTensorType>(in.getType());
      int64_t j = i - (rank - t.getRank());
      if (j >= 0 && t.getDimSize(j) != 1) {
        size = tensor::DimOp::create(b, loc, in, j);
        break;
      }
    }
    if (!size)
      size = arith::ConstantIndexOp::create(b, loc, 1);
    sizes.push_back(size);
  }
  Value init = tensor::EmptyOp::create(b, loc, resultType.getShape(),
                                       resultType.getElementType(), sizes);
  SmallVector<AffineMap> maps;
  for (Value in : inputs)
    maps.push_back(
        broadcastMap(ctx, cast<RankedTensorType>(in.getType()), resultType));
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, ctx));
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{resultType}, inputs, ValueRange{init}, maps, iterators,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value r = fn(nb, nloc, args.drop_back());
        linalg::YieldOp::create(nb, nloc, r);
      });
  return generic.getResult(0);
}

Value broadcastTo(OpBuilder &b, Location loc, Value input,
                  RankedTensorType resultType) {
  if (input.getType() == resultType)
    return input;
  return buildElementwise(b, loc, resultType, {input},
                          [](OpBuilder &, Location, ValueRange a) { return a[0]; });
}

Value scalarConstant(OpBuilder &b, Location loc, Type type, double value) {
  if (auto ft = dyn_cast<FloatType>(type))
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(ft, value));
  if (type.isIndex())
    return arith::ConstantIndexOp::create(b, loc, (int64_t)value);
  return arith::ConstantOp::create(b, loc,
                                   b.getIntegerAttr(type, (int64_t)value));
}

bool isNone(Value v) { return !v || isa<NoneType>(v.getType()); }

int64_t intAttrOr(Operation *op, StringRef name, int64_t dflt) {
  if (auto a = op->getAttrOfType<IntegerAttr>(name))
    return a.getInt();
  return dflt;
}

double floatAttrOr(Operation *op, StringRef name, double dflt) {
  if (auto a = op->getAttrOfType<FloatAttr>(name))
    return a.getValueAsDouble();
  return dflt;
}

bool isUnsignedOnnx(Value v) {
  return getElementTypeOrSelf(v.getType()).isUnsignedInteger();
}

static ElementsAttr constantAttr(Value v) {
  if (!v)
    return {};
  Operation *def = v.getDefiningOp();
  while (def && isa<UnrealizedConversionCastOp>(def) && def->getNumOperands() == 1)
    def = def->getOperand(0).getDefiningOp();
  if (!def)
    return {};
  if (auto c = dyn_cast<onnx::ConstantOp>(def))
    return c.getValueAttr() ? c.getValueAttr() : ElementsAttr();
  if (auto c = dyn_cast<arith::ConstantOp>(def))
    return dyn_cast<ElementsAttr>(c.getValue());
  return {};
}

std::optional<SmallVector<int64_t>> constantInts(Value v) {
  auto attr = dyn_cast_or_null<DenseIntElementsAttr>(constantAttr(v));
  if (!attr)
    return std::nullopt;
  SmallVector<int64_t> out;
  bool isUnsigned = attr.getElementType().isUnsignedInteger();
  for (const APInt &x : attr.getValues<APInt>())
    out.push_back(isUnsigned ? (int64_t)x.getZExtValue() : x.getSExtValue());
  return out;
}

std::optional<SmallVector<double>> constantFloats(Value v) {
  auto attr = dyn_cast_or_null<DenseFPElementsAttr>(constantAttr(v));
  if (!attr)
    return std::nullopt;
  SmallVector<double> out;
  for (const APFloat &x : attr.getValues<APFloat>())
    out.push_back(x.convertToDouble());
  return out;
}

std::optional<int64_t> normalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    return std::nullopt;
  return axis < 0 ? axis + rank : axis;
}

Value castScalar(OpBuilder &b, Location loc, Value v, Type to,
                 bool fromUnsigned, bool toUnsigned) {
  Type from = v.getType();
  if (from == to)
    return v;
  auto fromF = dyn_cast<FloatType>(from);
  auto toF = dyn_cast<FloatType>(to);
  if (fromF && toF) {
    if (fromF.getWidth() < toF.getWidth())
      return arith::ExtFOp::create(b, loc, to, v);
    if (fromF.getWidth() > toF.getWidth())
      return arith::TruncFOp::create(b, loc, to, v);
    // f16 <-> bf16 go through f32.
    Value wide = arith::ExtFOp::create(b, loc, b.getF32Type(), v);
    return arith::TruncFOp::create(b, loc, to, wide);
  }
  if (fromF) {
    if (to.isInteger(1)) {
      Value zero = scalarConstant(b, loc, from, 0.0);
      return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, v, zero);
    }
    if (toUnsigned)
      return arith::FPToUIOp::create(b, loc, to, v);
    return arith::FPToSIOp::create(b, loc, to, v);
  }
  if (toF) {
    if (fromUnsigned || from.isInteger(1))
      return arith::UIToFPOp::create(b, loc, to, v);
    return arith::SIToFPOp::create(b, loc, to, v);
  }
  unsigned fw = from.getIntOrFloatBitWidth(), tw = to.getIntOrFloatBitWidth();
  if (to.isInteger(1)) {
    Value zero = scalarConstant(b, loc, from, 0);
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, v, zero);
  }
  if (fw < tw) {
    if (fromUnsigned || from.isInteger(1))
      return arith::ExtUIOp::create(b, loc, to, v);
    return arith::ExtSIOp::create(b, loc, to, v);
  }
  if (fw > tw)
    return arith::TruncIOp::create(b, loc, to, v);
  return v;
}

SmallVector<int64_t> intsAttr(Operation *op, StringRef name) {
  SmallVector<int64_t> out;
  if (auto arr = op->getAttrOfType<ArrayAttr>(name))
    for (Attribute a : arr)
      out.push_back(cast<IntegerAttr>(a).getInt());
  return out;
}

SmallVector<float> floatsAttr(Operation *op, StringRef name) {
  SmallVector<float> out;
  if (auto arr = op->getAttrOfType<ArrayAttr>(name))
    for (Attribute a : arr)
      out.push_back(cast<FloatAttr>(a).getValueAsDouble());
  return out;
}

RankedTensorType resultType(const TypeConverter &tc, Operation *op, unsigned i) {
  return dyn_cast_or_null<RankedTensorType>(
      tc.convertType(op->getResult(i).getType()));
}

SmallVector<Value> buildGeneric(OpBuilder &b, Location loc, int64_t rank,
                           ArrayRef<bool> reduced, ValueRange inputs,
                           ArrayRef<AffineMap> inMaps, ValueRange inits,
                           ArrayRef<AffineMap> outMaps, const GenericBodyFn &body,
                           ArrayRef<double> firstInit) {
  SmallVector<AffineMap> maps(inMaps.begin(), inMaps.end());
  maps.append(outMaps.begin(), outMaps.end());
  SmallVector<utils::IteratorType> iters;
  for (int64_t i = 0; i < rank; ++i)
    iters.push_back(reduced.empty() || !reduced[i]
                        ? utils::IteratorType::parallel
                        : utils::IteratorType::reduction);
  auto g = linalg::GenericOp::create(
      b, loc, TypeRange(inits), inputs, inits, maps, iters,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        SmallVector<Value> a(args.begin(), args.end());
        if (!firstInit.empty()) {
          Value first;
          for (int64_t i = 0; i < rank; ++i) {
            if (reduced.empty() || !reduced[i])
              continue;
            Value idx = linalg::IndexOp::create(nb, nloc, i);
            Value z = arith::CmpIOp::create(
                nb, nloc, arith::CmpIPredicate::eq, idx,
                arith::ConstantIndexOp::create(nb, nloc, 0));
            first = first ? arith::AndIOp::create(nb, nloc, first, z) : z;
          }
          if (!first)
            first = arith::ConstantIntOp::create(nb, nloc, nb.getI1Type(), 1);
          size_t base = inputs.size();
          for (size_t k = 0; k < firstInit.size(); ++k) {
            Value c = scalarConstant(nb, nloc, a[base + k].getType(),
                                     firstInit[k]);
            a[base + k] = arith::SelectOp::create(nb, nloc, first, c, a[base + k]);
          }
        }
        linalg::YieldOp::create(nb, nloc, body(nb, nloc, a));
      });
  return SmallVector<Value>(g.getResults());
}

Value addOf(OpBuilder &b, Location loc, Value x, Value y) {
  if (isa<FloatType>(x.getType()))
    return arith::AddFOp::create(b, loc, x, y);
  return arith::AddIOp::create(b, loc, x, y);
}

Value subOf(OpBuilder &b, Location loc, Value x, Value y) {
  if (isa<FloatType>(x.getType()))
    return arith::SubFOp::create(b, loc, x, y);
  return arith::SubIOp::create(b, loc, x, y);
}

Value mulOf(OpBuilder &b, Location loc, Value x, Value y) {
  if (isa<FloatType>(x.getType()))
    return arith::MulFOp::create(b, loc, x, y);
  return arith::MulIOp::create(b, loc, x, y);
}

} // namespace kiln
