//===- Normalization.cpp - onnx normalization and loss ops -> linalg ------===//
//
// LayerNormalization, BatchNormalization, InstanceNormalization,
// MeanVarianceNormalization, SoftmaxCrossEntropyLoss and
// NegativeLogLikelihoodLoss.  Statistics are linalg.generic reductions over
// the normalized dimensions into tensors of the kept dimensions; the final
// result is one linalg.generic over the input.  f16/bf16 inputs are computed
// in f32.
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

/// f16/bf16 are computed in f32; f32/f64 natively.
Type computeType(OpBuilder &b, Type elem) {
  if (auto ft = dyn_cast<FloatType>(elem); ft && ft.getWidth() < 32)
    return b.getF32Type();
  return elem;
}

/// Map from a rank-`rank` domain to the listed dims.
AffineMap dimsMap(MLIRContext *ctx, int64_t rank, ArrayRef<int64_t> dims) {
  SmallVector<AffineExpr> exprs;
  for (int64_t d : dims)
    exprs.push_back(getAffineDimExpr(d, ctx));
  return AffineMap::get(rank, 0, exprs, ctx);
}

/// Numpy-broadcast map of `in` into a domain of shape `domain`.
AffineMap bcastMap(MLIRContext *ctx, RankedTensorType in,
                   ArrayRef<int64_t> domain) {
  int64_t rank = domain.size();
  int64_t offset = rank - in.getRank();
  SmallVector<AffineExpr> exprs;
  for (int64_t j = 0; j < in.getRank(); ++j) {
    if (in.getDimSize(j) == 1 && domain[offset + j] != 1)
      exprs.push_back(getAffineConstantExpr(0, ctx));
    else
      exprs.push_back(getAffineDimExpr(offset + j, ctx));
  }
  return AffineMap::get(rank, 0, exprs, ctx);
}

/// Numpy broadcast of `in` into `domain` is valid (static shapes).
bool broadcastable(RankedTensorType in, ArrayRef<int64_t> domain) {
  if (in.getRank() > (int64_t)domain.size())
    return false;
  int64_t offset = domain.size() - in.getRank();
  for (int64_t j = 0; j < in.getRank(); ++j) {
    int64_t d = in.getDimSize(j), o = domain[offset + j];
    if (d != 1 && d != o)
      return false;
  }
  return true;
}

/// tensor.empty holding dims `dims` of `src`, filled with `value` when given.
Value emptyOfDims(OpBuilder &b, Location loc, Value src, ArrayRef<int64_t> dims,
                  Type elem, std::optional<double> value = std::nullopt) {
  auto t = cast<RankedTensorType>(src.getType());
  SmallVector<int64_t> shape;
  SmallVector<Value> dyn;
  for (int64_t d : dims) {
    shape.push_back(t.getDimSize(d));
    if (t.isDynamicDim(d))
      dyn.push_back(tensor::DimOp::create(b, loc, src, d));
  }
  Value e = tensor::EmptyOp::create(b, loc, shape, elem, dyn);
  if (!value)
    return e;
  Value c = scalarConstant(b, loc, elem, *value);
  return linalg::FillOp::create(b, loc, c, e).getResult(0);
}


/// Sum, over the `reduced` dims of `x`'s domain, of `fn(x scalar, extra
/// scalars)`; `extra` are inputs with maps `extraMaps`.  Returns a tensor of
/// the kept dims of `x` in type `elem`.
Value reduceSum(OpBuilder &b, Location loc, Value x, ArrayRef<bool> reduced,
                Type elem, ValueRange extra, ArrayRef<AffineMap> extraMaps,
                const std::function<Value(OpBuilder &, Location, ValueRange)> &fn) {
  MLIRContext *ctx = b.getContext();
  auto t = cast<RankedTensorType>(x.getType());
  int64_t rank = t.getRank();
  SmallVector<int64_t> kept;
  for (int64_t i = 0; i < rank; ++i)
    if (!reduced[i])
      kept.push_back(i);
  Value init = emptyOfDims(b, loc, x, kept, elem);
  SmallVector<Value> ins{x};
  ins.append(extra.begin(), extra.end());
  SmallVector<AffineMap> maps{AffineMap::getMultiDimIdentityMap(rank, ctx)};
  maps.append(extraMaps.begin(), extraMaps.end());
  return buildGeneric(b, loc, rank, reduced, ins, maps, {init},
                 {dimsMap(ctx, rank, kept)},
                 [&](OpBuilder &nb, Location nloc, ValueRange a) {
                   Value v = fn(nb, nloc, a.drop_back());
                   return SmallVector<Value>{
                       arith::AddFOp::create(nb, nloc, a.back(), v)};
                 },
                 {0.0})[0];
}

/// Elementwise map over a tensor of the same shape as `like`.
Value mapLike(OpBuilder &b, Location loc, Value like, Type elem,
              ValueRange inputs, const ScalarFn &fn) {
  auto t = cast<RankedTensorType>(like.getType());
  return buildElementwise(b, loc, RankedTensorType::get(t.getShape(), elem),
                          inputs, fn);
}

struct Stats {
  Value mean, var; // tensors of the kept dims, compute type
  AffineMap map;   // x domain -> kept dims
};

/// Mean and (population) variance of `x` over the `reduced` dims (static).
FailureOr<Stats> meanVar(OpBuilder &b, Location loc, Value x,
                         ArrayRef<bool> reduced) {
  auto t = cast<RankedTensorType>(x.getType());
  Type ct = t.getElementType();
  int64_t rank = t.getRank();
  double count = 1;
  SmallVector<int64_t> kept;
  for (int64_t i = 0; i < rank; ++i) {
    if (!reduced[i]) {
      kept.push_back(i);
      continue;
    }
    if (t.isDynamicDim(i))
      return failure();
    count *= t.getDimSize(i);
  }
  AffineMap keptMap = dimsMap(b.getContext(), rank, kept);
  Value sum = reduceSum(b, loc, x, reduced, ct, {}, {},
                        [](OpBuilder &, Location, ValueRange a) { return a[0]; });
  Value mean = mapLike(b, loc, sum, ct, {sum},
                       [&](OpBuilder &nb, Location nloc, ValueRange a) -> Value {
                         return arith::DivFOp::create(nb, nloc, a[0],
                                                      scalarConstant(nb, nloc, ct, count));
                       });
  Value sq = reduceSum(b, loc, x, reduced, ct, {mean}, {keptMap},
                       [](OpBuilder &nb, Location nloc, ValueRange a) -> Value {
                         Value d = arith::SubFOp::create(nb, nloc, a[0], a[1]);
                         return arith::MulFOp::create(nb, nloc, d, d);
                       });
  Value var = mapLike(b, loc, sq, ct, {sq},
                      [&](OpBuilder &nb, Location nloc, ValueRange a) -> Value {
                        return arith::DivFOp::create(nb, nloc, a[0],
                                                     scalarConstant(nb, nloc, ct, count));
                      });
  return Stats{mean, var, keptMap};
}

/// `x` converted to `ct` elementwise (a no-op when it already is).
Value toCompute(OpBuilder &b, Location loc, Value x, Type ct) {
  auto t = cast<RankedTensorType>(x.getType());
  if (t.getElementType() == ct)
    return x;
  return mapLike(b, loc, x, ct, {x},
                 [&](OpBuilder &nb, Location nloc, ValueRange a) {
                   return castScalar(nb, nloc, a[0], ct, false, false);
                 });
}

Value invStd(OpBuilder &b, Location loc, Value var, double eps) {
  Type ct = cast<RankedTensorType>(var.getType()).getElementType();
  return mapLike(b, loc, var, ct, {var},
                 [&](OpBuilder &nb, Location nloc, ValueRange a) -> Value {
                   Value v = arith::AddFOp::create(nb, nloc, a[0],
                                                   scalarConstant(nb, nloc, ct, eps));
                   return arith::DivFOp::create(nb, nloc, scalarConstant(nb, nloc, ct, 1.0),
                                                math::SqrtOp::create(nb, nloc, v));
                 });
}

bool isFloatTensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && isa<FloatType>(t.getElementType());
}

//===----------------------------------------------------------------------===//
// LayerNormalization
//===----------------------------------------------------------------------===//

struct LayerNormLowering : OpConversionPattern<onnx::LayerNormalizationOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::LayerNormalizationOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    Value x = adaptor.getX(), scale = adaptor.getScale(), bias = adaptor.getB();
    auto yType = resultType(*getTypeConverter(), op, 0);
    if (!yType || !isFloatTensor(x) || !isFloatTensor(scale) ||
        (!isNone(bias) && !isFloatTensor(bias)))
      return rewriter.notifyMatchFailure(op, "float ranked tensors only");
    auto xType = cast<RankedTensorType>(x.getType());
    if (!xType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    int64_t rank = xType.getRank();
    auto axis = normalizeAxis(intAttrOr(op, "axis", -1), rank);
    if (!axis)
      return rewriter.notifyMatchFailure(op, "axis out of range");
    ArrayRef<int64_t> shape = xType.getShape();
    if (!broadcastable(cast<RankedTensorType>(scale.getType()), shape) ||
        (!isNone(bias) &&
         !broadcastable(cast<RankedTensorType>(bias.getType()), shape)))
      return rewriter.notifyMatchFailure(op, "scale/bias not broadcastable");
    double eps = floatAttrOr(op, "epsilon", 1e-5f);
    Type ct = computeType(rewriter, xType.getElementType());

    SmallVector<bool> reduced(rank, false);
    for (int64_t i = *axis; i < rank; ++i)
      reduced[i] = true;
    Value xc = toCompute(rewriter, loc, x, ct);
    auto stats = meanVar(rewriter, loc, xc, reduced);
    if (failed(stats))
      return rewriter.notifyMatchFailure(op, "dynamic normalized dims");
    Value inv = invStd(rewriter, loc, stats->var, eps);

    SmallVector<Value> ins{xc, stats->mean, inv, scale};
    SmallVector<AffineMap> maps{AffineMap::getMultiDimIdentityMap(rank, ctx),
                                stats->map, stats->map,
                                bcastMap(ctx, cast<RankedTensorType>(scale.getType()), shape)};
    bool hasBias = !isNone(bias);
    if (hasBias) {
      ins.push_back(bias);
      maps.push_back(bcastMap(ctx, cast<RankedTensorType>(bias.getType()), shape));
    }
    Value init = emptyLike(rewriter, loc, yType);
    Type yElem = yType.getElementType();
    Value y = buildGeneric(rewriter, loc, rank, {}, ins, maps, {init},
                      {AffineMap::getMultiDimIdentityMap(rank, ctx)},
                      [&](OpBuilder &b, Location l, ValueRange a) {
                        Value d = arith::SubFOp::create(b, l, a[0], a[1]);
                        Value n = arith::MulFOp::create(b, l, d, a[2]);
                        Value s = castScalar(b, l, a[3], ct, false, false);
                        Value r = arith::MulFOp::create(b, l, n, s);
                        if (hasBias)
                          r = arith::AddFOp::create(
                              b, l, r, castScalar(b, l, a[4], ct, false, false));
                        return SmallVector<Value>{
                            castScalar(b, l, r, yElem, false, false)};
                      })[0];

    SmallVector<Value> results{y};
    for (unsigned i = 1; i < 3; ++i) {
      auto rt = resultType(*getTypeConverter(), op, i);
      if (!rt || op->getResult(i).use_empty()) {
        results.push_back(Value());
        continue;
      }
      Value v = i == 1 ? stats->mean : inv;
      auto vt = cast<RankedTensorType>(v.getType());
      if (rt.getElementType() != ct)
        v = mapLike(rewriter, loc, v, rt.getElementType(), {v},
                    [&](OpBuilder &b, Location l, ValueRange a) {
                      return castScalar(b, l, a[0], rt.getElementType(), false,
                                        false);
                    });
      vt = cast<RankedTensorType>(v.getType());
      // Kept dims [d0..d(axis-1)] -> [d0..d(axis-1), 1, ..., 1].
      if (rt.getRank() != rank || vt.getNumElements() != rt.getNumElements())
        return rewriter.notifyMatchFailure(op, "unexpected Mean shape");
      SmallVector<ReassociationIndices> reassoc;
      for (int64_t k = 0; k < *axis; ++k)
        reassoc.push_back({k});
      if (*axis > 0)
        for (int64_t k = *axis; k < rank; ++k)
          reassoc.back().push_back(k);
      v = tensor::ExpandShapeOp::create(rewriter, loc, rt, v, reassoc);
      results.push_back(v);
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// BatchNormalization
//===----------------------------------------------------------------------===//

struct BatchNormLowering : OpConversionPattern<onnx::BatchNormalizationOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::BatchNormalizationOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    Value x = adaptor.getX();
    SmallVector<Value> params{adaptor.getScale(), adaptor.getB(),
                              adaptor.getInputMean(), adaptor.getInputVar()};
    auto yType = resultType(*getTypeConverter(), op, 0);
    if (!yType || !isFloatTensor(x))
      return rewriter.notifyMatchFailure(op, "float ranked tensors only");
    for (Value p : params)
      if (!isFloatTensor(p) || cast<RankedTensorType>(p.getType()).getRank() != 1)
        return rewriter.notifyMatchFailure(op, "1-D float parameters only");
    auto xType = cast<RankedTensorType>(x.getType());
    int64_t rank = xType.getRank();
    if (rank < 2)
      return rewriter.notifyMatchFailure(op, "input rank < 2");
    double eps = floatAttrOr(op, "epsilon", 1e-5f);
    double momentum = floatAttrOr(op, "momentum", 0.9f);
    bool training = intAttrOr(op, "training_mode", 0) != 0;
    Type ct = computeType(rewriter, xType.getElementType());
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    AffineMap chan = dimsMap(ctx, rank, {1});

    Value xc = x;
    Value mean = params[2], var = params[3];
    std::optional<Stats> stats;
    if (training) {
      SmallVector<bool> reduced(rank, true);
      reduced[1] = false;
      xc = toCompute(rewriter, loc, x, ct);
      auto s = meanVar(rewriter, loc, xc, reduced);
      if (failed(s))
        return rewriter.notifyMatchFailure(op, "dynamic reduced dims");
      stats = *s;
      mean = stats->mean;
      var = stats->var;
    }
    Type yElem = yType.getElementType();
    Value init = emptyLike(rewriter, loc, yType, x);
    Value y = buildGeneric(rewriter, loc, rank, {},
                      {xc, params[0], params[1], mean, var},
                      {id, chan, chan, chan, chan}, {init}, {id},
                      [&](OpBuilder &b, Location l, ValueRange a) {
                        auto c = [&](Value v) {
                          return castScalar(b, l, v, ct, false, false);
                        };
                        Value d = arith::SubFOp::create(b, l, c(a[0]), c(a[3]));
                        Value v = arith::AddFOp::create(b, l, c(a[4]),
                                                        scalarConstant(b, l, ct, eps));
                        Value n = arith::DivFOp::create(
                            b, l, d, math::SqrtOp::create(b, l, v));
                        Value r = arith::AddFOp::create(
                            b, l, arith::MulFOp::create(b, l, n, c(a[1])),
                            c(a[2]));
                        return SmallVector<Value>{
                            castScalar(b, l, r, yElem, false, false)};
                      })[0];
    SmallVector<Value> results{y};
    for (unsigned i = 1; i < op->getNumResults(); ++i) {
      auto rt = resultType(*getTypeConverter(), op, i);
      if (!rt || op->getResult(i).use_empty()) {
        results.push_back(Value());
        continue;
      }
      if (!training)
        return rewriter.notifyMatchFailure(op, "running stats need training_mode");
      Value cur = i == 1 ? stats->mean : stats->var;
      Value prev = i == 1 ? params[2] : params[3];
      Type re = rt.getElementType();
      results.push_back(buildElementwise(
          rewriter, loc, rt, {prev, cur},
          [&](OpBuilder &b, Location l, ValueRange a) -> Value {
            Value p = castScalar(b, l, a[0], ct, false, false);
            Value r = arith::AddFOp::create(
                b, l, arith::MulFOp::create(b, l, p, scalarConstant(b, l, ct, momentum)),
                arith::MulFOp::create(b, l, a[1], scalarConstant(b, l, ct, 1.0 - momentum)));
            return castScalar(b, l, r, re, false, false);
          }));
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// InstanceNormalization
//===----------------------------------------------------------------------===//

struct InstanceNormLowering
    : OpConversionPattern<onnx::InstanceNormalizationOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::InstanceNormalizationOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    Value x = adaptor.getInput(), scale = adaptor.getScale(),
          bias = adaptor.getB();
    auto yType = resultType(*getTypeConverter(), op, 0);
    if (!yType || !isFloatTensor(x) || !isFloatTensor(scale) ||
        !isFloatTensor(bias))
      return rewriter.notifyMatchFailure(op, "float ranked tensors only");
    auto xType = cast<RankedTensorType>(x.getType());
    int64_t rank = xType.getRank();
    if (rank < 3 || cast<RankedTensorType>(scale.getType()).getRank() != 1 ||
        cast<RankedTensorType>(bias.getType()).getRank() != 1)
      return rewriter.notifyMatchFailure(op, "expects N x C x D... and 1-D scale/B");
    double eps = floatAttrOr(op, "epsilon", 1e-5f);
    Type ct = computeType(rewriter, xType.getElementType());
    SmallVector<bool> reduced(rank, true);
    reduced[0] = reduced[1] = false;
    Value xc = toCompute(rewriter, loc, x, ct);
    auto stats = meanVar(rewriter, loc, xc, reduced);
    if (failed(stats))
      return rewriter.notifyMatchFailure(op, "dynamic spatial dims");
    Value inv = invStd(rewriter, loc, stats->var, eps);
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    AffineMap chan = dimsMap(ctx, rank, {1});
    Type yElem = yType.getElementType();
    Value init = emptyLike(rewriter, loc, yType, x);
    Value y = buildGeneric(rewriter, loc, rank, {},
                      {xc, stats->mean, inv, scale, bias},
                      {id, stats->map, stats->map, chan, chan}, {init}, {id},
                      [&](OpBuilder &b, Location l, ValueRange a) {
                        Value d = arith::SubFOp::create(b, l, a[0], a[1]);
                        Value n = arith::MulFOp::create(b, l, d, a[2]);
                        Value r = arith::AddFOp::create(
                            b, l,
                            arith::MulFOp::create(
                                b, l, n, castScalar(b, l, a[3], ct, false, false)),
                            castScalar(b, l, a[4], ct, false, false));
                        return SmallVector<Value>{
                            castScalar(b, l, r, yElem, false, false)};
                      })[0];
    rewriter.replaceOp(op, y);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// MeanVarianceNormalization
//===----------------------------------------------------------------------===//

struct MVNLowering : OpConversionPattern<onnx::MeanVarianceNormalizationOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::MeanVarianceNormalizationOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    Value x = adaptor.getX();
    auto yType = resultType(*getTypeConverter(), op, 0);
    if (!yType || !isFloatTensor(x))
      return rewriter.notifyMatchFailure(op, "float ranked tensors only");
    auto xType = cast<RankedTensorType>(x.getType());
    int64_t rank = xType.getRank();
    SmallVector<int64_t> axes = op->getAttr("axes")
                                    ? intsAttr(op, "axes")
                                    : SmallVector<int64_t>{0, 2, 3};
    SmallVector<bool> reduced(rank, false);
    for (int64_t a : axes) {
      auto n = normalizeAxis(a, rank);
      if (!n)
        return rewriter.notifyMatchFailure(op, "axis out of range");
      reduced[*n] = true;
    }
    Type ct = computeType(rewriter, xType.getElementType());
    Value xc = toCompute(rewriter, loc, x, ct);
    auto stats = meanVar(rewriter, loc, xc, reduced);
    if (failed(stats))
      return rewriter.notifyMatchFailure(op, "dynamic reduced dims");
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    Type yElem = yType.getElementType();
    Value init = emptyLike(rewriter, loc, yType, x);
    Value y = buildGeneric(rewriter, loc, rank, {}, {xc, stats->mean, stats->var},
                      {id, stats->map, stats->map}, {init}, {id},
                      [&](OpBuilder &b, Location l, ValueRange a) {
                        Value d = arith::SubFOp::create(b, l, a[0], a[1]);
                        Value sd = arith::AddFOp::create(
                            b, l, math::SqrtOp::create(b, l, a[2]),
                            scalarConstant(b, l, ct, 1e-9));
                        Value r = arith::DivFOp::create(b, l, d, sd);
                        return SmallVector<Value>{
                            castScalar(b, l, r, yElem, false, false)};
                      })[0];
    rewriter.replaceOp(op, y);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss
//===----------------------------------------------------------------------===//

/// The loss of log-probabilities `logp` (N x C x D...) against integer
/// `target` (N x D...): per-element -logp[n, t, d] * w[t] (0 where t is
/// ignore_index), reduced per `reduction`.
FailureOr<Value> nllLoss(OpBuilder &b, Location loc, Operation *op,
                         Value logp, Value target, Value weight,
                         RankedTensorType outType) {
  MLIRContext *ctx = b.getContext();
  auto lt = cast<RankedTensorType>(logp.getType());
  auto tt = dyn_cast<RankedTensorType>(target.getType());
  if (!tt || !isa<IntegerType>(tt.getElementType()))
    return failure();
  int64_t rank = lt.getRank();
  if (rank < 2 || tt.getRank() != rank - 1)
    return failure();
  bool hasWeight = !isNone(weight);
  if (hasWeight) {
    auto wt = dyn_cast<RankedTensorType>(weight.getType());
    if (!wt || wt.getRank() != 1 || !isa<FloatType>(wt.getElementType()))
      return failure();
  }
  std::optional<int64_t> ignore;
  if (auto a = op->getAttrOfType<IntegerAttr>("ignore_index"))
    ignore = a.getInt();
  StringRef reduction = "mean";
  if (auto s = op->getAttrOfType<StringAttr>("reduction"))
    reduction = s.getValue();
  if (reduction != "none" && reduction != "sum" && reduction != "mean")
    return failure();

  Type ct = lt.getElementType();
  Type tElem = tt.getElementType();
  SmallVector<int64_t> kept{0};
  for (int64_t i = 2; i < rank; ++i)
    kept.push_back(i);
  SmallVector<bool> reduced(rank, false);
  reduced[1] = true;
  AffineMap keptMap = dimsMap(ctx, rank, kept);
  SmallVector<Value> ins{logp, target};
  SmallVector<AffineMap> maps{AffineMap::getMultiDimIdentityMap(rank, ctx),
                              keptMap};
  if (hasWeight) {
    ins.push_back(weight);
    maps.push_back(dimsMap(ctx, rank, {1}));
  }
  Value lossInit = emptyOfDims(b, loc, logp, kept, ct);
  Value wInit = emptyOfDims(b, loc, logp, kept, ct);
  bool needW = reduction == "mean";
  SmallVector<Value> inits{lossInit};
  SmallVector<AffineMap> outMaps{keptMap};
  if (needW) {
    inits.push_back(wInit);
    outMaps.push_back(keptMap);
  }
  SmallVector<Value> r = buildGeneric(
      b, loc, rank, reduced, ins, maps, inits, outMaps,
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value x = a[0], t = a[1];
        Value w = hasWeight ? castScalar(nb, l, a[2], ct, false, false)
                            : scalarConstant(nb, l, ct, 1.0);
        Value c = linalg::IndexOp::create(nb, l, 1);
        Value ci = arith::IndexCastOp::create(nb, l, tElem, c);
        Value sel = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, ci, t);
        if (ignore) {
          Value ig = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ne, t,
                                           scalarConstant(nb, l, tElem, (double)*ignore));
          sel = arith::AndIOp::create(nb, l, sel, ig);
        }
        Value zero = scalarConstant(nb, l, ct, 0.0);
        Value term = arith::NegFOp::create(nb, l, arith::MulFOp::create(nb, l, x, w));
        unsigned base = hasWeight ? 3 : 2;
        SmallVector<Value> outs{arith::SelectOp::create(
            nb, l, sel, arith::AddFOp::create(nb, l, a[base], term), a[base])};
        if (needW)
          outs.push_back(arith::SelectOp::create(
              nb, l, sel, arith::AddFOp::create(nb, l, a[base + 1], w),
              a[base + 1]));
        return outs;
      },
      SmallVector<double>(inits.size(), 0.0));
  Type oElem = outType.getElementType();
  if (reduction == "none") {
    if (outType.getShape() != cast<RankedTensorType>(r[0].getType()).getShape())
      return failure();
    if (oElem == ct)
      return r[0];
    return mapLike(b, loc, r[0], oElem, {r[0]},
                   [&](OpBuilder &nb, Location l, ValueRange a) {
                     return castScalar(nb, l, a[0], oElem, false, false);
                   });
  }
  if (outType.getRank() != 0)
    return failure();
  // Sum everything (and the weights for the mean) into scalars.
  auto kt = cast<RankedTensorType>(r[0].getType());
  int64_t krank = kt.getRank();
  SmallVector<bool> all(krank, true);
  AffineMap kid = AffineMap::getMultiDimIdentityMap(krank, ctx);
  AffineMap scalarMap = AffineMap::get(krank, 0, {}, ctx);
  SmallVector<Value> s0;
  for (size_t i = 0; i < r.size(); ++i)
    s0.push_back(emptyOfDims(b, loc, r[0], {}, ct));
  SmallVector<Value> sums = buildGeneric(
      b, loc, krank, all, r, SmallVector<AffineMap>(r.size(), kid),
      s0,
      SmallVector<AffineMap>(r.size(), scalarMap),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        SmallVector<Value> outs;
        size_t n = a.size() / 2;
        for (size_t i = 0; i < n; ++i)
          outs.push_back(arith::AddFOp::create(nb, l, a[n + i], a[i]));
        return outs;
      },
      SmallVector<double>(r.size(), 0.0));
  return buildElementwise(b, loc, outType, sums,
                          [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
                            Value v = a[0];
                            if (a.size() > 1)
                              v = arith::DivFOp::create(nb, l, v, a[1]);
                            return castScalar(nb, l, v, oElem, false, false);
                          });
}

struct NLLLossLowering : OpConversionPattern<onnx::NegativeLogLikelihoodLossOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::NegativeLogLikelihoodLossOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto outType = resultType(*getTypeConverter(), op, 0);
    Value input = adaptor.getInput();
    if (!outType || !isFloatTensor(input))
      return rewriter.notifyMatchFailure(op, "float ranked tensors only");
    Type ct = computeType(rewriter, cast<RankedTensorType>(input.getType()).getElementType());
    Value x = toCompute(rewriter, op.getLoc(), input, ct);
    auto loss = nllLoss(rewriter, op.getLoc(), op, x, adaptor.getTarget(),
                        adaptor.getWeight(), outType);
    if (failed(loss))
      return rewriter.notifyMatchFailure(op, "unsupported loss configuration");
    rewriter.replaceOp(op, *loss);
    return success();
  }
};

struct SCELossLowering : OpConversionPattern<onnx::SoftmaxCrossEntropyLossOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::SoftmaxCrossEntropyLossOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    auto outType = resultType(*getTypeConverter(), op, 0);
    Value scores = adaptor.getScores();
    if (!outType || !isFloatTensor(scores))
      return rewriter.notifyMatchFailure(op, "float ranked tensors only");
    auto st = cast<RankedTensorType>(scores.getType());
    int64_t rank = st.getRank();
    if (rank < 2)
      return rewriter.notifyMatchFailure(op, "scores rank < 2");
    Type ct = computeType(rewriter, st.getElementType());
    Value x = toCompute(rewriter, loc, scores, ct);
    // log_softmax over dim 1.
    SmallVector<int64_t> kept{0};
    for (int64_t i = 2; i < rank; ++i)
      kept.push_back(i);
    SmallVector<bool> reduced(rank, false);
    reduced[1] = true;
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    AffineMap keptMap = dimsMap(ctx, rank, kept);
    Value mInit = emptyOfDims(rewriter, loc, x, kept, ct);
    Value mx = buildGeneric(rewriter, loc, rank, reduced, {x}, {id}, {mInit},
                       {keptMap},
                       [](OpBuilder &b, Location l, ValueRange a) {
                         return SmallVector<Value>{
                             arith::MaximumFOp::create(b, l, a[0], a[1])};
                       },
                       {-INFINITY})[0];
    Value se = reduceSum(rewriter, loc, x, reduced, ct, {mx}, {keptMap},
                         [](OpBuilder &b, Location l, ValueRange a) -> Value {
                           return math::ExpOp::create(
                               b, l, arith::SubFOp::create(b, l, a[0], a[1]));
                         });
    Value lse = mapLike(rewriter, loc, se, ct, {mx, se},
                        [](OpBuilder &b, Location l, ValueRange a) -> Value {
                          return arith::AddFOp::create(
                              b, l, a[0], math::LogOp::create(b, l, a[1]));
                        });
    Value lpInit = emptyOfDims(rewriter, loc, x, llvm::to_vector(llvm::seq<int64_t>(0, rank)), ct);
    Value logp = buildGeneric(rewriter, loc, rank, {}, {x, lse}, {id, keptMap},
                         {lpInit}, {id},
                         [](OpBuilder &b, Location l, ValueRange a) {
                           return SmallVector<Value>{
                               arith::SubFOp::create(b, l, a[0], a[1])};
                         })[0];
    auto loss = nllLoss(rewriter, loc, op, logp, adaptor.getLabels(),
                        adaptor.getWeights(), outType);
    if (failed(loss))
      return rewriter.notifyMatchFailure(op, "unsupported loss configuration");
    SmallVector<Value> results{*loss};
    auto lpType = resultType(*getTypeConverter(), op, 1);
    if (!lpType || op->getResult(1).use_empty()) {
      results.push_back(Value());
    } else {
      if (lpType.getShape() != st.getShape())
        return rewriter.notifyMatchFailure(op, "unexpected log_prob shape");
      Type le = lpType.getElementType();
      results.push_back(le == ct ? logp
                                 : mapLike(rewriter, loc, logp, le, {logp},
                                           [&](OpBuilder &b, Location l,
                                               ValueRange a) {
                                             return castScalar(b, l, a[0], le,
                                                               false, false);
                                           }));
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

} // namespace

void populateOnnxNormalizationPatterns(RewritePatternSet &patterns,
                                       const TypeConverter &converter) {
  patterns.add<LayerNormLowering, BatchNormLowering, InstanceNormLowering,
               MVNLowering, NLLLossLowering, SCELossLowering>(
      converter, patterns.getContext());
}

} // namespace kiln
