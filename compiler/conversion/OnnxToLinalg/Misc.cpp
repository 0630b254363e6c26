//===- Misc.cpp - onnx quantization and window ops -> linalg --------------===//
//
// QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul,
// QLinearConv (group 1, 2-D) and the Hann/Hamming/Blackman windows.
// Quantization parameters are linalg inputs broadcast with constant maps.
//
//===----------------------------------------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/AffineMap.h"

#include <cmath>

using namespace mlir;

namespace kiln {
namespace {

using BodyFn = GenericBodyFn;


/// Map of a quantization parameter (scalar, 1-element or 1-D per-axis) into
/// a domain of rank `rank`; `axis` is the per-axis dim.  Null when the
/// parameter's shape does not fit.
AffineMap paramMap(MLIRContext *ctx, Value param, int64_t rank,
                   std::optional<int64_t> axis, int64_t axisSize) {
  auto t = dyn_cast<RankedTensorType>(param.getType());
  if (!t)
    return {};
  if (t.getRank() == 0)
    return AffineMap::get(rank, 0, {}, ctx);
  if (t.getRank() != 1)
    return {};
  if (t.getDimSize(0) == 1 && (axisSize != 1 || !axis))
    return AffineMap::get(rank, 0, {getAffineConstantExpr(0, ctx)}, ctx);
  if (!axis || t.getDimSize(0) != axisSize)
    return {};
  return AffineMap::get(rank, 0, {getAffineDimExpr(*axis, ctx)}, ctx);
}

/// Whether a parameter is a single value (scalar or 1-element).
bool isScalarParam(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.hasStaticShape() && t.getNumElements() == 1 && t.getRank() <= 1;
}

AffineMap scalarParamMap(MLIRContext *ctx, Value v, int64_t rank) {
  auto t = cast<RankedTensorType>(v.getType());
  if (t.getRank() == 0)
    return AffineMap::get(rank, 0, {}, ctx);
  return AffineMap::get(rank, 0, {getAffineConstantExpr(0, ctx)}, ctx);
}

/// round-half-even(v) + zp, saturated to the integer type `q`, as `q`.
Value quantizeScalar(OpBuilder &b, Location loc, Value v, Value zpF, Type q,
                     bool isUnsigned) {
  Type ft = v.getType();
  Value r = math::RoundEvenOp::create(b, loc, v);
  if (zpF)
    r = arith::AddFOp::create(b, loc, r, zpF);
  unsigned w = q.getIntOrFloatBitWidth();
  double lo = isUnsigned ? 0.0 : -std::ldexp(1.0, w - 1);
  double hi = isUnsigned ? std::ldexp(1.0, w) - 1 : std::ldexp(1.0, w - 1) - 1;
  r = arith::MaximumFOp::create(b, loc, r, scalarConstant(b, loc, ft, lo));
  r = arith::MinimumFOp::create(b, loc, r, scalarConstant(b, loc, ft, hi));
  if (isUnsigned)
    return arith::FPToUIOp::create(b, loc, q, r);
  return arith::FPToSIOp::create(b, loc, q, r);
}

/// Float compute type of a quantization: f64 stays, everything else is f32.
Type floatCompute(OpBuilder &b, Type t) {
  return t.isF64() ? (Type)b.getF64Type() : (Type)b.getF32Type();
}

//===----------------------------------------------------------------------===//
// QuantizeLinear / DequantizeLinear
//===----------------------------------------------------------------------===//

struct QuantizeLinearLowering : OpConversionPattern<onnx::QuantizeLinearOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::QuantizeLinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    auto yType = resultType(*getTypeConverter(), op, 0);
    auto xType = dyn_cast<RankedTensorType>(adaptor.getX().getType());
    if (!yType || !xType || !isa<IntegerType>(yType.getElementType()) ||
        yType.getElementType().getIntOrFloatBitWidth() > 32)
      return rewriter.notifyMatchFailure(op, "integer result of <= 32 bits only");
    Value scale = adaptor.getYScale(), zp = adaptor.getYZeroPoint();
    auto sType = dyn_cast<RankedTensorType>(scale.getType());
    if (!sType || !isa<FloatType>(sType.getElementType()))
      return rewriter.notifyMatchFailure(op, "float scale only");
    int64_t rank = xType.getRank();
    std::optional<int64_t> axis = rank ? normalizeAxis(intAttrOr(op, "axis", 1), rank)
                                       : std::nullopt;
    int64_t axisSize = axis ? xType.getDimSize(*axis) : 1;
    AffineMap sMap = paramMap(ctx, scale, rank, axis, axisSize);
    bool hasZp = !isNone(zp);
    AffineMap zMap = hasZp ? paramMap(ctx, zp, rank, axis, axisSize) : AffineMap();
    if (!sMap || (hasZp && !zMap))
      return rewriter.notifyMatchFailure(op, "unsupported scale/zero-point shape");
    bool xUnsigned = isUnsignedOnnx(op.getX());
    bool yUnsigned = isUnsignedOnnx(op->getResult(0));
    bool zUnsigned = hasZp && isUnsignedOnnx(op.getYZeroPoint());
    Type ft = floatCompute(rewriter, sType.getElementType());
    Type q = yType.getElementType();
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    SmallVector<Value> ins{adaptor.getX(), scale};
    SmallVector<AffineMap> maps{id, sMap};
    if (hasZp) {
      ins.push_back(zp);
      maps.push_back(zMap);
    }
    Value init = emptyLike(rewriter, loc, yType, adaptor.getX());
    Value y = buildGeneric(rewriter, loc, rank, {}, ins, maps, {init}, {id},
                      [&](OpBuilder &b, Location l, ValueRange a) {
                        Value x = castScalar(b, l, a[0], ft, xUnsigned, false);
                        Value s = castScalar(b, l, a[1], ft, false, false);
                        Value v = arith::DivFOp::create(b, l, x, s);
                        Value z = hasZp ? castScalar(b, l, a[2], ft, zUnsigned, false)
                                        : Value();
                        return SmallVector<Value>{
                            quantizeScalar(b, l, v, z, q, yUnsigned)};
                      })[0];
    rewriter.replaceOp(op, y);
    return success();
  }
};

struct DequantizeLinearLowering
    : OpConversionPattern<onnx::DequantizeLinearOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::DequantizeLinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    auto yType = resultType(*getTypeConverter(), op, 0);
    auto xType = dyn_cast<RankedTensorType>(adaptor.getX().getType());
    if (!yType || !xType || !isa<FloatType>(yType.getElementType()) ||
        !isa<IntegerType>(xType.getElementType()))
      return rewriter.notifyMatchFailure(op, "integer -> float only");
    Value scale = adaptor.getXScale(), zp = adaptor.getXZeroPoint();
    int64_t rank = xType.getRank();
    std::optional<int64_t> axis = rank ? normalizeAxis(intAttrOr(op, "axis", 1), rank)
                                       : std::nullopt;
    int64_t axisSize = axis ? xType.getDimSize(*axis) : 1;
    AffineMap sMap = paramMap(ctx, scale, rank, axis, axisSize);
    bool hasZp = !isNone(zp);
    AffineMap zMap = hasZp ? paramMap(ctx, zp, rank, axis, axisSize) : AffineMap();
    if (!sMap || (hasZp && !zMap) ||
        !isa<FloatType>(getElementTypeOrSelf(scale.getType())))
      return rewriter.notifyMatchFailure(op, "unsupported scale/zero-point");
    bool xUnsigned = isUnsignedOnnx(op.getX());
    bool zUnsigned = hasZp && isUnsignedOnnx(op.getXZeroPoint());
    Type ft = floatCompute(rewriter, yType.getElementType());
    Type yElem = yType.getElementType();
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    SmallVector<Value> ins{adaptor.getX(), scale};
    SmallVector<AffineMap> maps{id, sMap};
    if (hasZp) {
      ins.push_back(zp);
      maps.push_back(zMap);
    }
    Value init = emptyLike(rewriter, loc, yType, adaptor.getX());
    Value y = buildGeneric(rewriter, loc, rank, {}, ins, maps, {init}, {id},
                      [&](OpBuilder &b, Location l, ValueRange a) {
                        Value x = castScalar(b, l, a[0], ft, xUnsigned, false);
                        if (hasZp)
                          x = arith::SubFOp::create(
                              b, l, x, castScalar(b, l, a[2], ft, zUnsigned, false));
                        Value r = arith::MulFOp::create(
                            b, l, x, castScalar(b, l, a[1], ft, false, false));
                        return SmallVector<Value>{
                            castScalar(b, l, r, yElem, false, false)};
                      })[0];
    rewriter.replaceOp(op, y);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// DynamicQuantizeLinear
//===----------------------------------------------------------------------===//

struct DynamicQuantizeLinearLowering
    : OpConversionPattern<onnx::DynamicQuantizeLinearOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::DynamicQuantizeLinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    Value x = adaptor.getX();
    auto xType = dyn_cast<RankedTensorType>(x.getType());
    auto yType = resultType(*getTypeConverter(), op, 0);
    auto sType = resultType(*getTypeConverter(), op, 1);
    auto zType = resultType(*getTypeConverter(), op, 2);
    if (!xType || !yType || !sType || !zType ||
        !xType.getElementType().isF32() || !yType.getElementType().isInteger(8) ||
        sType.getRank() != 0 || zType.getRank() != 0)
      return rewriter.notifyMatchFailure(op, "f32 -> u8 only");
    Type f32 = rewriter.getF32Type(), i8 = rewriter.getIntegerType(8);
    int64_t rank = xType.getRank();
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    AffineMap scalar = AffineMap::get(rank, 0, {}, ctx);
    SmallVector<bool> all(rank, true);
    auto filled = [&]() {
      return tensor::EmptyOp::create(rewriter, loc, ArrayRef<int64_t>{}, f32)
          .getResult();
    };
    // min(0, min(x)) and max(0, max(x)).
    SmallVector<Value> mm = buildGeneric(
        rewriter, loc, rank, all, {x}, {id}, {filled(), filled()},
        {scalar, scalar}, [](OpBuilder &b, Location l, ValueRange a) {
          return SmallVector<Value>{arith::MinimumFOp::create(b, l, a[1], a[0]),
                                    arith::MaximumFOp::create(b, l, a[2], a[0])};
        },
        {0.0, 0.0});
    auto scaleOf = [](OpBuilder &b, Location l, Value mn, Value mx) -> Value {
      return arith::DivFOp::create(b, l, arith::SubFOp::create(b, l, mx, mn),
                                   scalarConstant(b, l, mx.getType(), 255.0));
    };
    auto zpOf = [&](OpBuilder &b, Location l, Value mn, Value s) -> Value {
      Value z = arith::SubFOp::create(b, l, scalarConstant(b, l, f32, 0.0),
                                      arith::DivFOp::create(b, l, mn, s));
      z = arith::MaximumFOp::create(b, l, z, scalarConstant(b, l, f32, 0.0));
      z = arith::MinimumFOp::create(b, l, z, scalarConstant(b, l, f32, 255.0));
      return math::RoundEvenOp::create(b, l, z);
    };
    auto scalarT = RankedTensorType::get({}, f32);
    Value scale = buildElementwise(rewriter, loc, scalarT, mm,
                                   [&](OpBuilder &b, Location l, ValueRange a) {
                                     return scaleOf(b, l, a[0], a[1]);
                                   });
    Value zpF = buildElementwise(rewriter, loc, scalarT, {mm[0], scale},
                                 [&](OpBuilder &b, Location l, ValueRange a) {
                                   return zpOf(b, l, a[0], a[1]);
                                 });
    Value zp = buildElementwise(rewriter, loc, zType, {zpF},
                                [&](OpBuilder &b, Location l, ValueRange a) -> Value {
                                  return arith::FPToUIOp::create(b, l, i8, a[0]);
                                });
    Value init = emptyLike(rewriter, loc, yType, x);
    Value y = buildGeneric(rewriter, loc, rank, {}, {x, scale, zpF},
                      {id, scalar, scalar}, {init}, {id},
                      [&](OpBuilder &b, Location l, ValueRange a) {
                        Value v = arith::DivFOp::create(b, l, a[0], a[1]);
                        return SmallVector<Value>{
                            quantizeScalar(b, l, v, a[2], i8, true)};
                      })[0];
    rewriter.replaceOp(op, {y, scale, zp});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// QLinearMatMul / QLinearConv
//===----------------------------------------------------------------------===//

/// Requantizes an i32 accumulator tensor: round(acc * sa * sb / sy) + zy,
/// saturated to the result type.  `sb` may be per-output-channel along
/// `chanDim` of the accumulator.
FailureOr<Value> requantize(OpBuilder &b, Location loc, Value acc,
                            RankedTensorType yType, bool yUnsigned, Value sa,
                            Value sb, int64_t chanDim, Value sy, Value zy,
                            bool zyUnsigned) {
  MLIRContext *ctx = b.getContext();
  auto accT = cast<RankedTensorType>(acc.getType());
  int64_t rank = accT.getRank();
  AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
  AffineMap sbMap = isScalarParam(sb) ? scalarParamMap(ctx, sb, rank)
                                      : paramMap(ctx, sb, rank, chanDim,
                                                 accT.getDimSize(chanDim));
  if (!sbMap)
    return failure();
  bool hasZ = !isNone(zy);
  SmallVector<Value> ins{acc, sa, sb, sy};
  SmallVector<AffineMap> maps{id, scalarParamMap(ctx, sa, rank), sbMap,
                              scalarParamMap(ctx, sy, rank)};
  if (hasZ) {
    ins.push_back(zy);
    maps.push_back(scalarParamMap(ctx, zy, rank));
  }
  Type f32 = b.getF32Type();
  Type q = yType.getElementType();
  Value init = emptyLike(b, loc, yType, acc);
  return buildGeneric(b, loc, rank, {}, ins, maps, {init}, {id},
                 [&](OpBuilder &nb, Location l, ValueRange a) {
                   auto f = [&](Value v) {
                     return castScalar(nb, l, v, f32, false, false);
                   };
                   Value v = arith::SIToFPOp::create(nb, l, f32, a[0]);
                   Value m = arith::DivFOp::create(
                       nb, l, arith::MulFOp::create(nb, l, f(a[1]), f(a[2])),
                       f(a[3]));
                   v = arith::MulFOp::create(nb, l, v, m);
                   Value z = hasZ ? castScalar(nb, l, a[4], f32, zyUnsigned, false)
                                  : Value();
                   return SmallVector<Value>{
                       quantizeScalar(nb, l, v, z, q, yUnsigned)};
                 })[0];
}

bool quantType(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.getElementType().isInteger(8);
}

struct QLinearMatMulLowering : OpConversionPattern<onnx::QLinearMatMulOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::QLinearMatMulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    auto yType = resultType(*getTypeConverter(), op, 0);
    Value a = adaptor.getA(), bm = adaptor.getB();
    if (!yType || !quantType(a) || !quantType(bm) ||
        !yType.getElementType().isInteger(8) || !yType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static 8-bit operands only");
    auto aT = cast<RankedTensorType>(a.getType());
    auto bT = cast<RankedTensorType>(bm.getType());
    if (aT.getRank() < 2 || bT.getRank() < 2 || !aT.hasStaticShape() ||
        !bT.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static rank >= 2 operands only");
    Value azp = adaptor.getAZeroPoint(), bzp = adaptor.getBZeroPoint();
    Value sa = adaptor.getAScale(), sb = adaptor.getBScale(),
          sy = adaptor.getYScale(), zy = adaptor.getYZeroPoint();
    for (Value v : {azp, bzp, zy})
      if (!isNone(v) && !isScalarParam(v))
        return rewriter.notifyMatchFailure(op, "per-tensor zero points only");
    for (Value v : {sa, sb, sy})
      if (isNone(v) || !isScalarParam(v))
        return rewriter.notifyMatchFailure(op, "per-tensor scales only");
    int64_t rank = yType.getRank();
    if (rank != std::max(aT.getRank(), bT.getRank()))
      return rewriter.notifyMatchFailure(op, "unexpected result rank");
    int64_t K = aT.getShape().back();
    if (bT.getDimSize(bT.getRank() - 2) != K)
      return rewriter.notifyMatchFailure(op, "contraction size mismatch");
    // Domain: result dims + k.
    int64_t dom = rank + 1;
    auto operandMap = [&](RankedTensorType t, bool isA) -> AffineMap {
      SmallVector<AffineExpr> exprs;
      int64_t batch = t.getRank() - 2, off = (rank - 2) - batch;
      for (int64_t i = 0; i < batch; ++i) {
        if (t.getDimSize(i) == 1 && yType.getDimSize(off + i) != 1)
          exprs.push_back(getAffineConstantExpr(0, ctx));
        else
          exprs.push_back(getAffineDimExpr(off + i, ctx));
      }
      if (isA) {
        exprs.push_back(getAffineDimExpr(rank - 2, ctx));
        exprs.push_back(getAffineDimExpr(rank, ctx));
      } else {
        exprs.push_back(getAffineDimExpr(rank, ctx));
        exprs.push_back(getAffineDimExpr(rank - 1, ctx));
      }
      return AffineMap::get(dom, 0, exprs, ctx);
    };
    bool aU = isUnsignedOnnx(op.getA()), bU = isUnsignedOnnx(op.getB());
    bool yU = isUnsignedOnnx(op->getResult(0));
    bool zyU = !isNone(zy) && isUnsignedOnnx(op.getYZeroPoint());
    Type i32 = rewriter.getI32Type();
    SmallVector<Value> ins{a, bm};
    SmallVector<AffineMap> maps{operandMap(aT, true), operandMap(bT, false)};
    bool hasAz = !isNone(azp), hasBz = !isNone(bzp);
    if (hasAz) {
      ins.push_back(azp);
      maps.push_back(scalarParamMap(ctx, azp, dom));
    }
    if (hasBz) {
      ins.push_back(bzp);
      maps.push_back(scalarParamMap(ctx, bzp, dom));
    }
    auto accT = RankedTensorType::get(yType.getShape(), i32);
    Value init = tensor::EmptyOp::create(rewriter, loc, accT.getShape(), i32);
    SmallVector<bool> reduced(dom, false);
    reduced[rank] = true;
    SmallVector<AffineExpr> outExprs;
    for (int64_t i = 0; i < rank; ++i)
      outExprs.push_back(getAffineDimExpr(i, ctx));
    Value acc = buildGeneric(
        rewriter, loc, dom, reduced, ins, maps, {init},
        {AffineMap::get(dom, 0, outExprs, ctx)},
        [&](OpBuilder &b, Location l, ValueRange v) {
          Value x = castScalar(b, l, v[0], i32, aU, false);
          Value y = castScalar(b, l, v[1], i32, bU, false);
          unsigned k = 2;
          if (hasAz)
            x = arith::SubIOp::create(b, l, x, castScalar(b, l, v[k++], i32, aU, false));
          if (hasBz)
            y = arith::SubIOp::create(b, l, y, castScalar(b, l, v[k++], i32, bU, false));
          return SmallVector<Value>{arith::AddIOp::create(
              b, l, v.back(), arith::MulIOp::create(b, l, x, y))};
        },
        {0.0})[0];
    auto y = requantize(rewriter, loc, acc, yType, yU, sa, sb, rank - 1, sy, zy,
                        zyU);
    if (failed(y))
      return rewriter.notifyMatchFailure(op, "unsupported scales");
    rewriter.replaceOp(op, *y);
    return success();
  }
};

struct QLinearConvLowering : OpConversionPattern<onnx::QLinearConvOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::QLinearConvOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    auto yType = resultType(*getTypeConverter(), op, 0);
    Value x = adaptor.getX(), w = adaptor.getW();
    if (!yType || !quantType(x) || !quantType(w) ||
        !yType.getElementType().isInteger(8) || !yType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static 8-bit operands only");
    auto xT = cast<RankedTensorType>(x.getType());
    auto wT = cast<RankedTensorType>(w.getType());
    if (xT.getRank() != 4 || wT.getRank() != 4 || yType.getRank() != 4 ||
        !xT.hasStaticShape() || !wT.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static 2-D convolution only");
    if (intAttrOr(op, "group", 1) != 1)
      return rewriter.notifyMatchFailure(op, "group != 1");
    StringRef autoPad = "NOTSET";
    if (auto s = op->getAttrOfType<StringAttr>("auto_pad"))
      autoPad = s.getValue();
    if (autoPad != "NOTSET" && autoPad != "VALID")
      return rewriter.notifyMatchFailure(op, "SAME auto_pad unsupported");
    SmallVector<int64_t> strides = intsAttr(op, "strides"),
                         dil = intsAttr(op, "dilations"),
                         pads = intsAttr(op, "pads");
    if (strides.empty())
      strides = {1, 1};
    if (dil.empty())
      dil = {1, 1};
    if (pads.empty() || autoPad == "VALID")
      pads = {0, 0, 0, 0};
    if (strides.size() != 2 || dil.size() != 2 || pads.size() != 4)
      return rewriter.notifyMatchFailure(op, "bad conv attributes");
    int64_t N = xT.getDimSize(0), C = xT.getDimSize(1);
    int64_t M = wT.getDimSize(0), KH = wT.getDimSize(2), KW = wT.getDimSize(3);
    if (wT.getDimSize(1) != C || yType.getDimSize(0) != N ||
        yType.getDimSize(1) != M)
      return rewriter.notifyMatchFailure(op, "shape mismatch");
    int64_t OH = yType.getDimSize(2), OW = yType.getDimSize(3);
    int64_t H = xT.getDimSize(2) + pads[0] + pads[2];
    int64_t W = xT.getDimSize(3) + pads[1] + pads[3];
    if ((H - dil[0] * (KH - 1) - 1) / strides[0] + 1 != OH ||
        (W - dil[1] * (KW - 1) - 1) / strides[1] + 1 != OW)
      return rewriter.notifyMatchFailure(op, "output shape mismatch");
    Value xzp = adaptor.getXZeroPoint(), wzp = adaptor.getWZeroPoint();
    Value sx = adaptor.getXScale(), sw = adaptor.getWScale(),
          sy = adaptor.getYScale(), zy = adaptor.getYZeroPoint();
    for (Value v : {xzp, wzp, zy})
      if (!isNone(v) && !isScalarParam(v))
        return rewriter.notifyMatchFailure(op, "per-tensor zero points only");
    for (Value v : {sx, sy})
      if (isNone(v) || !isScalarParam(v))
        return rewriter.notifyMatchFailure(op, "per-tensor x/y scales only");
    if (isNone(sw))
      return rewriter.notifyMatchFailure(op, "missing w_scale");
    bool xU = isUnsignedOnnx(op.getX()), wU = isUnsignedOnnx(op.getW());
    bool yU = isUnsignedOnnx(op->getResult(0));
    bool zyU = !isNone(zy) && isUnsignedOnnx(op.getYZeroPoint());
    Type i32 = rewriter.getI32Type();
    // x - x_zero_point in i32, zero-padded.
    auto xs32T = RankedTensorType::get(xT.getShape(), i32);
    SmallVector<Value> xin{x};
    bool hasXz = !isNone(xzp);
    if (hasXz)
      xin.push_back(xzp);
    Value xs = buildElementwise(rewriter, loc, xs32T, xin,
                                [&](OpBuilder &b, Location l, ValueRange a) -> Value {
                                  Value v = castScalar(b, l, a[0], i32, xU, false);
                                  if (a.size() > 1)
                                    v = arith::SubIOp::create(
                                        b, l, v, castScalar(b, l, a[1], i32, xU, false));
                                  return v;
                                });
    if (llvm::any_of(pads, [](int64_t p) { return p != 0; })) {
      auto padT = RankedTensorType::get({N, C, H, W}, i32);
      SmallVector<OpFoldResult> lo{rewriter.getIndexAttr(0), rewriter.getIndexAttr(0),
                                   rewriter.getIndexAttr(pads[0]),
                                   rewriter.getIndexAttr(pads[1])};
      SmallVector<OpFoldResult> hi{rewriter.getIndexAttr(0), rewriter.getIndexAttr(0),
                                   rewriter.getIndexAttr(pads[2]),
                                   rewriter.getIndexAttr(pads[3])};
      xs = tensor::PadOp::create(rewriter, loc, padT, xs, lo, hi,
                                 scalarConstant(rewriter, loc, i32, 0));
    }
    // Domain (n, m, oh, ow, c, kh, kw).
    auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
    AffineMap xMap = AffineMap::get(
        7, 0,
        {d(0), d(4), d(2) * strides[0] + d(5) * dil[0],
         d(3) * strides[1] + d(6) * dil[1]},
        ctx);
    AffineMap wMap = AffineMap::get(7, 0, {d(1), d(4), d(5), d(6)}, ctx);
    AffineMap outMap = AffineMap::get(7, 0, {d(0), d(1), d(2), d(3)}, ctx);
    SmallVector<Value> ins{xs, w};
    SmallVector<AffineMap> maps{xMap, wMap};
    bool hasWz = !isNone(wzp);
    if (hasWz) {
      ins.push_back(wzp);
      maps.push_back(scalarParamMap(ctx, wzp, 7));
    }
    auto accT = RankedTensorType::get(yType.getShape(), i32);
    Value init = tensor::EmptyOp::create(rewriter, loc, accT.getShape(), i32);
    SmallVector<bool> reduced{false, false, false, false, true, true, true};
    Value acc = buildGeneric(rewriter, loc, 7, reduced, ins, maps, {init}, {outMap},
                        [&](OpBuilder &b, Location l, ValueRange v) {
                          Value wv = castScalar(b, l, v[1], i32, wU, false);
                          if (hasWz)
                            wv = arith::SubIOp::create(
                                b, l, wv, castScalar(b, l, v[2], i32, wU, false));
                          return SmallVector<Value>{arith::AddIOp::create(
                              b, l, v.back(), arith::MulIOp::create(b, l, v[0], wv))};
                        },
                        {0.0})[0];
    // Optional i32 bias per output channel.
    Value bias = adaptor.getB();
    if (!isNone(bias)) {
      auto bT = dyn_cast<RankedTensorType>(bias.getType());
      if (!bT || bT.getRank() != 1 || !bT.getElementType().isInteger(32))
        return rewriter.notifyMatchFailure(op, "bias must be 1-D i32");
      AffineMap id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
      acc = buildGeneric(rewriter, loc, 4, {}, {acc, bias},
                    {id4, AffineMap::get(4, 0, {d(1)}, ctx)},
                    {tensor::EmptyOp::create(rewriter, loc, accT.getShape(), i32)},
                    {id4}, [](OpBuilder &b, Location l, ValueRange v) {
                      return SmallVector<Value>{
                          arith::AddIOp::create(b, l, v[0], v[1])};
                    })[0];
    }
    auto y = requantize(rewriter, loc, acc, yType, yU, sx, sw, 1, sy, zy, zyU);
    if (failed(y))
      return rewriter.notifyMatchFailure(op, "unsupported w_scale");
    rewriter.replaceOp(op, *y);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Hann / Hamming / Blackman windows
//===----------------------------------------------------------------------===//

enum class Window { Hann, Hamming, Blackman };

template <typename OpTy, Window kind>
struct WindowLowering : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = this->getContext();
    auto yType = resultType(*this->getTypeConverter(), op, 0);
    if (!yType || yType.getRank() != 1 || !yType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static 1-D result only");
    int64_t size = yType.getDimSize(0);
    if (auto c = constantInts(adaptor.getSize()))
      if (c->size() == 1 && (*c)[0] != size)
        return rewriter.notifyMatchFailure(op, "size disagrees with result");
    bool periodic = intAttrOr(op, "periodic", 1) != 0;
    double denom = periodic ? size : size - 1;
    Type f64 = rewriter.getF64Type();
    Type yElem = yType.getElementType();
    bool yU = isUnsignedOnnx(op->getResult(0));
    Value init = emptyLike(rewriter, loc, yType);
    AffineMap id = AffineMap::getMultiDimIdentityMap(1, ctx);
    Value y = buildGeneric(
        rewriter, loc, 1, {}, {}, {}, {init}, {id},
        [&](OpBuilder &b, Location l, ValueRange) {
          Value i = linalg::IndexOp::create(b, l, 0);
          Value n = arith::SIToFPOp::create(
              b, l, f64, arith::IndexCastOp::create(b, l, b.getI64Type(), i));
          // angle = 2 pi n / denom
          Value t = arith::DivFOp::create(
              b, l, arith::MulFOp::create(b, l, n, scalarConstant(b, l, f64, 2 * M_PI)),
              scalarConstant(b, l, f64, denom));
          Value c1 = math::CosOp::create(b, l, t);
          Value r;
          if (kind == Window::Blackman) {
            Value c2 = math::CosOp::create(
                b, l, arith::MulFOp::create(b, l, t, scalarConstant(b, l, f64, 2.0)));
            r = arith::AddFOp::create(
                b, l,
                arith::SubFOp::create(
                    b, l, scalarConstant(b, l, f64, 0.42),
                    arith::MulFOp::create(b, l, c1, scalarConstant(b, l, f64, 0.5))),
                arith::MulFOp::create(b, l, c2, scalarConstant(b, l, f64, 0.08)));
          } else {
            double alpha = kind == Window::Hann ? 0.5 : 25.0 / 46.0;
            r = arith::SubFOp::create(
                b, l, scalarConstant(b, l, f64, alpha),
                arith::MulFOp::create(b, l, c1, scalarConstant(b, l, f64, 1.0 - alpha)));
          }
          return SmallVector<Value>{castScalar(b, l, r, yElem, false, yU)};
        })[0];
    rewriter.replaceOp(op, y);
    return success();
  }
};

} // namespace

void populateOnnxMiscPatterns(RewritePatternSet &patterns,
                              const TypeConverter &converter) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<QuantizeLinearLowering, DequantizeLinearLowering,
               DynamicQuantizeLinearLowering, QLinearMatMulLowering,
               QLinearConvLowering>(converter, ctx);
  patterns.add<WindowLowering<onnx::HannWindowOp, Window::Hann>,
               WindowLowering<onnx::HammingWindowOp, Window::Hamming>,
               WindowLowering<onnx::BlackmanWindowOp, Window::Blackman>>(
      converter, ctx);
}

} // namespace kiln
