//===- Reduction.cpp - onnx reduction ops -> linalg -------------------------===//
//
// Reduce*, ArgMax/ArgMin and Softmax/LogSoftmax/Hardmax. Every reduction is a
// linalg.generic with reduction iterators over the reduced dims, writing into
// a linalg.fill of the identity; keepdims is a tensor.expand_shape after it.
// Half floats accumulate in f32.
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

/// The ai.onnx opset the enclosing function was imported at (0 if unknown).
int64_t opsetOf(Operation *op) {
  for (Operation *p = op->getParentOp(); p; p = p->getParentOp())
    if (auto a = p->getAttrOfType<IntegerAttr>("onnx.opset"))
      return a.getInt();
  return 0;
}

bool isHalf(Type t) {
  auto f = dyn_cast<FloatType>(t);
  return f && f.getWidth() < 32;
}

Type accumulatorType(OpBuilder &b, Type elem) {
  return isHalf(elem) ? (Type)b.getF32Type() : elem;
}

Value extremeInt(OpBuilder &b, Location loc, Type t, bool isMax, bool isUnsigned) {
  unsigned w = t.getIntOrFloatBitWidth();
  APInt v = isUnsigned ? (isMax ? APInt::getMaxValue(w) : APInt::getMinValue(w))
                       : (isMax ? APInt::getSignedMaxValue(w)
                                : APInt::getSignedMinValue(w));
  return arith::ConstantOp::create(b, loc, IntegerAttr::get(t, v));
}

/// Identity of max (lowest value) or min (highest value).
Value lowest(OpBuilder &b, Location loc, Type t, bool isUnsigned) {
  if (isa<FloatType>(t))
    return scalarConstant(b, loc, t, -INFINITY);
  return extremeInt(b, loc, t, /*isMax=*/false, isUnsigned);
}
Value highest(OpBuilder &b, Location loc, Type t, bool isUnsigned) {
  if (isa<FloatType>(t))
    return scalarConstant(b, loc, t, INFINITY);
  return extremeInt(b, loc, t, /*isMax=*/true, isUnsigned);
}

Value maxOf(OpBuilder &b, Location loc, Value x, Value y, bool isUnsigned) {
  if (isa<FloatType>(x.getType()))
    return arith::MaximumFOp::create(b, loc, x, y);
  if (isUnsigned)
    return arith::MaxUIOp::create(b, loc, x, y);
  return arith::MaxSIOp::create(b, loc, x, y);
}
Value minOf(OpBuilder &b, Location loc, Value x, Value y, bool isUnsigned) {
  if (isa<FloatType>(x.getType()))
    return arith::MinimumFOp::create(b, loc, x, y);
  if (isUnsigned)
    return arith::MinUIOp::create(b, loc, x, y);
  return arith::MinSIOp::create(b, loc, x, y);
}

/// A max that is finite: -inf/+inf/nan shifts become 0 so that x - shift
/// stays meaningful when a whole slice is infinite.
Value finiteShift(OpBuilder &b, Location loc, Value m) {
  Type t = m.getType();
  Value absM = math::AbsFOp::create(b, loc, m);
  Value finite = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT, absM,
                                       scalarConstant(b, loc, t, INFINITY));
  return arith::SelectOp::create(b, loc, finite, m, scalarConstant(b, loc, t, 0));
}

/// An operand of a generic over the full iteration space: either indexed by
/// all dims (`kept` false) or only by the non-reduced ones.
struct Operand {
  Value value;
  bool kept;
};

using BodyFn = std::function<SmallVector<Value>(OpBuilder &, Location,
                                                ValueRange ins, ValueRange outs)>;

/// linalg.generic over the iteration space of `reduced.size()` dims. Outputs
/// are kept-shaped (reduction iterators on reduced dims) when `outputsKept`,
/// otherwise full-shaped (all parallel).
SmallVector<Value> genericOver(OpBuilder &b, Location loc, ArrayRef<bool> reduced,
                               ArrayRef<Operand> ins, ValueRange inits,
                               bool outputsKept, const BodyFn &body) {
  MLIRContext *ctx = b.getContext();
  int64_t rank = reduced.size();
  AffineMap full = AffineMap::getMultiDimIdentityMap(rank, ctx);
  SmallVector<AffineExpr> keptExprs;
  for (int64_t i = 0; i < rank; ++i)
    if (!reduced[i])
      keptExprs.push_back(getAffineDimExpr(i, ctx));
  AffineMap kept = AffineMap::get(rank, 0, keptExprs, ctx);
  SmallVector<AffineMap> maps;
  SmallVector<Value> inputs;
  for (const Operand &o : ins) {
    inputs.push_back(o.value);
    maps.push_back(o.kept ? kept : full);
  }
  for (size_t i = 0; i < inits.size(); ++i)
    maps.push_back(outputsKept ? kept : full);
  SmallVector<utils::IteratorType> iterators;
  for (int64_t i = 0; i < rank; ++i)
    iterators.push_back(outputsKept && reduced[i] ? utils::IteratorType::reduction
                                                  : utils::IteratorType::parallel);
  SmallVector<Type> types;
  for (Value v : inits)
    types.push_back(v.getType());
  auto generic = linalg::GenericOp::create(
      b, loc, types, inputs, inits, maps, iterators,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        SmallVector<Value> r = body(nb, nloc, args.take_front(inputs.size()),
                                    args.drop_front(inputs.size()));
        linalg::YieldOp::create(nb, nloc, r);
      });
  return SmallVector<Value>(generic.getResults());
}

/// tensor.empty (filled with `identity` when given) with the non-reduced dims
/// of `input`.
Value keptTensor(OpBuilder &b, Location loc, Value input, ArrayRef<bool> reduced,
                 Type elem, Value identity) {
  auto t = cast<RankedTensorType>(input.getType());
  SmallVector<int64_t> shape;
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < t.getRank(); ++i) {
    if (reduced[i])
      continue;
    shape.push_back(t.getDimSize(i));
    if (t.isDynamicDim(i))
      dyn.push_back(tensor::DimOp::create(b, loc, input, i));
  }
  Value empty = tensor::EmptyOp::create(b, loc, shape, elem, dyn);
  if (!identity)
    return empty;
  return linalg::FillOp::create(b, loc, ValueRange{identity}, ValueRange{empty})
      .getResult(0);
}

Value fullTensor(OpBuilder &b, Location loc, Value input, Type elem) {
  auto t = cast<RankedTensorType>(input.getType());
  return tensor::EmptyOp::create(b, loc, t.getShape(), elem,
                                 dynamicSizes(b, loc, input));
}

/// The kept shape of `inT`, with reduced dims as 1 when `keepdims`.
SmallVector<int64_t> reducedShape(RankedTensorType inT, ArrayRef<bool> reduced,
                                  bool keepdims) {
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < inT.getRank(); ++i) {
    if (!reduced[i])
      shape.push_back(inT.getDimSize(i));
    else if (keepdims)
      shape.push_back(1);
  }
  return shape;
}

bool compatibleShape(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!ShapedType::isDynamic(a[i]) && !ShapedType::isDynamic(b[i]) && a[i] != b[i])
      return false;
  return true;
}

/// Reinserts the reduced dims as size-1 dims when the result keeps them.
Value expandKept(OpBuilder &b, Location loc, Value v, ArrayRef<bool> reduced,
                 RankedTensorType target) {
  auto vt = cast<RankedTensorType>(v.getType());
  if (vt.getRank() == target.getRank())
    return v;
  SmallVector<ReassociationIndices> groups;
  ReassociationIndices pending;
  for (int64_t i = 0; i < (int64_t)reduced.size(); ++i) {
    pending.push_back(i);
    if (!reduced[i]) {
      groups.push_back(pending);
      pending.clear();
    }
  }
  if (!pending.empty() && !groups.empty())
    groups.back().append(pending.begin(), pending.end());
  auto type = RankedTensorType::get(target.getShape(), vt.getElementType());
  return tensor::ExpandShapeOp::create(b, loc, type, v, groups);
}

/// Number of elements reduced per output, as a scalar of `t`.
Value reducedCount(OpBuilder &b, Location loc, Value input, ArrayRef<bool> reduced,
                   Type t) {
  auto inT = cast<RankedTensorType>(input.getType());
  int64_t staticCount = 1;
  Value dyn;
  for (int64_t i = 0; i < inT.getRank(); ++i) {
    if (!reduced[i])
      continue;
    if (!inT.isDynamicDim(i)) {
      staticCount *= inT.getDimSize(i);
      continue;
    }
    Value d = tensor::DimOp::create(b, loc, input, i);
    dyn = dyn ? (Value)arith::MulIOp::create(b, loc, dyn, d) : d;
  }
  Value count = scalarConstant(b, loc, t, (double)staticCount);
  if (!dyn)
    return count;
  Value asInt = arith::IndexCastOp::create(b, loc, b.getI64Type(), dyn);
  Value dynT = castScalar(b, loc, asInt, t, false, false);
  return mulOf(b, loc, count, dynT);
}

/// Which dims of `inT` a reduction with the given axes reduces. `noop` is set
/// when the op is the identity (noop_with_empty_axes and no axes). Runtime
/// axes that the static shapes leave ambiguous give several candidates (the
/// caller picks one at run time from the axes values).
FailureOr<SmallVector<SmallVector<bool>>>
reducedDims(Operation *op, Value axesOperand, RankedTensorType inT,
            RankedTensorType outT, bool keepdims, bool noopWithEmptyAxes,
            bool &noop) {
  int64_t rank = inT.getRank();
  noop = false;
  std::optional<SmallVector<int64_t>> axes;
  if (op->hasAttr("axes"))
    axes = intsAttr(op, "axes");
  else if (axesOperand && !isa<NoneType>(axesOperand.getType()))
    axes = constantInts(axesOperand);
  else
    axes = SmallVector<int64_t>();

  SmallVector<bool> reduced(rank, false);
  if (axes) {
    if (axes->empty()) {
      if (noopWithEmptyAxes) {
        noop = true;
        return SmallVector<SmallVector<bool>>{reduced};
      }
      reduced.assign(rank, true);
      return SmallVector<SmallVector<bool>>{reduced};
    }
    for (int64_t a : *axes) {
      auto n = normalizeAxis(a, rank);
      if (!n)
        return failure();
      reduced[*n] = true;
    }
    return SmallVector<SmallVector<bool>>{reduced};
  }

  // Runtime axes: infer them from the static shapes.
  if (!inT.hasStaticShape() || !outT.hasStaticShape())
    return failure();
  if (keepdims) {
    if (outT.getRank() != rank)
      return failure();
    // A reduced size-1 dim and a kept one give the same result.
    bool any = false;
    for (int64_t i = 0; i < rank; ++i) {
      if (outT.getDimSize(i) == inT.getDimSize(i))
        continue;
      if (outT.getDimSize(i) != 1)
        return failure();
      reduced[i] = true;
      any = true;
    }
    // Nothing but size-1 dims (if anything) is reduced: the values are the
    // input's, whatever the axes were.
    if (!any && noopWithEmptyAxes)
      noop = true;
    return SmallVector<SmallVector<bool>>{reduced};
  }
  int64_t outRank = outT.getRank();
  if (rank == 0)
    return SmallVector<SmallVector<bool>>{reduced};
  if (outRank == rank) {
    if (!noopWithEmptyAxes)
      return failure();
    noop = true;
    return SmallVector<SmallVector<bool>>{reduced};
  }
  if (outRank > rank || rank > 16)
    return failure();
  // Enumerate the subsets of kept dims matching the output shape.
  SmallVector<SmallVector<bool>> candidates;
  for (uint32_t mask = 0; mask < (1u << rank); ++mask) {
    if ((int64_t)llvm::popcount(mask) != outRank)
      continue;
    SmallVector<int64_t> shape;
    for (int64_t i = 0; i < rank; ++i)
      if (mask & (1u << i))
        shape.push_back(inT.getDimSize(i));
    if (ArrayRef<int64_t>(shape) != outT.getShape())
      continue;
    SmallVector<bool> r(rank);
    for (int64_t i = 0; i < rank; ++i)
      r[i] = !(mask & (1u << i));
    candidates.push_back(r);
  }
  if (candidates.empty())
    return failure();
  return candidates;
}

enum class Kind { Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare };

template <typename OpTy>
struct ReduceLowering : OpConversionPattern<OpTy> {
  ReduceLowering(const TypeConverter &tc, MLIRContext *ctx, Kind kind)
      : OpConversionPattern<OpTy>(tc, ctx), kind(kind) {}

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    ValueRange operands = adaptor.getOperands();
    if (operands.empty())
      return rewriter.notifyMatchFailure(op, "no data");
    Value data = operands[0];
    auto inT = dyn_cast<RankedTensorType>(data.getType());
    auto outT = resultType(*this->getTypeConverter(), op);
    if (!inT || !outT)
      return rewriter.notifyMatchFailure(op, "unranked");
    Type elem = inT.getElementType();
    if (elem != outT.getElementType())
      return rewriter.notifyMatchFailure(op, "element type mismatch");
    bool isF = isa<FloatType>(elem);
    bool isUnsigned = isUnsignedOnnx(op->getOperand(0)) || elem.isInteger(1);
    if (!isF && (kind == Kind::L2 || kind == Kind::LogSum ||
                 kind == Kind::LogSumExp))
      return rewriter.notifyMatchFailure(op, "float element types only");
    if (!isF && !isa<IntegerType>(elem))
      return rewriter.notifyMatchFailure(op, "unsupported element type");
    if (elem.isInteger(1) && kind != Kind::Max && kind != Kind::Min)
      return rewriter.notifyMatchFailure(op, "bool only for max/min");

    bool keepdims = intAttrOr(op, "keepdims", 1) != 0;
    bool noopEmpty = intAttrOr(op, "noop_with_empty_axes", 0) != 0;
    Value axes = operands.size() > 1 ? operands[1] : Value();
    bool noop = false;
    auto reducedOr =
        reducedDims(op, axes, inT, outT, keepdims, noopEmpty, noop);
    if (failed(reducedOr))
      return rewriter.notifyMatchFailure(op, "cannot determine the axes");
    SmallVector<SmallVector<bool>> candidates = *reducedOr;
    auto axesT = axes ? dyn_cast<RankedTensorType>(axes.getType()) : RankedTensorType();
    if (candidates.size() > 1 &&
        (candidates.size() > 4 || !axesT || axesT.getRank() != 1 ||
         axesT.isDynamicDim(0) || !isa<IntegerType>(axesT.getElementType())))
      return rewriter.notifyMatchFailure(op, "ambiguous runtime axes");
    if (noop) {
      if (kind != Kind::Sum && kind != Kind::Mean && kind != Kind::Max &&
          kind != Kind::Min && kind != Kind::Prod)
        return rewriter.notifyMatchFailure(op, "noop_with_empty_axes");
      if (data.getType() != outT)
        return rewriter.notifyMatchFailure(op, "noop with a reshaped result");
      rewriter.replaceOp(op, data);
      return success();
    }
    for (auto &reduced : candidates)
      if (!compatibleShape(reducedShape(inT, reduced, keepdims), outT.getShape()))
        return rewriter.notifyMatchFailure(op, "result shape does not match axes");

    SmallVector<Value> results;
    for (auto &reduced : candidates)
      results.push_back(lower(rewriter, loc, data, reduced, outT, keepdims,
                              isUnsigned));
    if (results.size() == 1) {
      rewriter.replaceOp(op, results[0]);
      return success();
    }
    // Ambiguous runtime axes: compute every candidate, pick by the bit mask
    // of the axes read at run time.
    int64_t rank = inT.getRank(), numAxes = axesT.getDimSize(0);
    Value picked = buildElementwise(
        rewriter, loc, outT, results,
        [&](OpBuilder &nb, Location nl, ValueRange vals) {
          Type i64 = nb.getI64Type();
          Value mask = scalarConstant(nb, nl, i64, 0);
          Value one = scalarConstant(nb, nl, i64, 1);
          Value zero = scalarConstant(nb, nl, i64, 0);
          Value r64 = scalarConstant(nb, nl, i64, (double)rank);
          for (int64_t j = 0; j < numAxes; ++j) {
            Value idx = arith::ConstantIndexOp::create(nb, nl, j);
            Value a = tensor::ExtractOp::create(nb, nl, axes, ValueRange{idx});
            a = castScalar(nb, nl, a, i64, false, false);
            Value neg = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt, a, zero);
            a = arith::SelectOp::create(nb, nl, neg, arith::AddIOp::create(nb, nl, a, r64), a);
            mask = arith::OrIOp::create(nb, nl, mask, arith::ShLIOp::create(nb, nl, one, a));
          }
          Value r = vals.back();
          for (size_t c = 0; c + 1 < candidates.size(); ++c) {
            int64_t bits = 0;
            for (int64_t i = 0; i < rank; ++i)
              if (candidates[c][i])
                bits |= int64_t(1) << i;
            Value is = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, mask,
                                             scalarConstant(nb, nl, i64, (double)bits));
            r = arith::SelectOp::create(nb, nl, is, vals[c], r);
          }
          return r;
        });
    rewriter.replaceOp(op, picked);
    return success();
  }

  /// The reduction over `reduced`, shaped like `outT`.
  Value lower(OpBuilder &b, Location loc, Value data, ArrayRef<bool> reduced,
              RankedTensorType outT, bool keepdims, bool isUnsigned) const {
    Type elem = outT.getElementType();
    bool isF = isa<FloatType>(elem);
    Type acc = accumulatorType(b, elem);
    auto ext = [&](OpBuilder &nb, Location nl, Value x) {
      return castScalar(nb, nl, x, acc, isUnsigned, false);
    };
    Value result;
    if (kind == Kind::LogSumExp) {
      Value mInit = keptTensor(b, loc, data, reduced, acc, lowest(b, loc, acc, false));
      Value m = genericOver(b, loc, reduced, {{data, false}}, {mInit}, true,
                            [&](OpBuilder &nb, Location nl, ValueRange in, ValueRange out) {
                              return SmallVector<Value>{maxOf(nb, nl, ext(nb, nl, in[0]), out[0], false)};
                            })[0];
      Value sInit = keptTensor(b, loc, data, reduced, acc, scalarConstant(b, loc, acc, 0));
      Value s = genericOver(b, loc, reduced, {{data, false}, {m, true}}, {sInit}, true,
                            [&](OpBuilder &nb, Location nl, ValueRange in, ValueRange out) {
                              Value shift = finiteShift(nb, nl, in[1]);
                              Value d = arith::SubFOp::create(nb, nl, ext(nb, nl, in[0]), shift);
                              Value e = math::ExpOp::create(nb, nl, d);
                              return SmallVector<Value>{arith::AddFOp::create(nb, nl, out[0], e)};
                            })[0];
      auto sT = cast<RankedTensorType>(s.getType());
      result = buildElementwise(
          b, loc, RankedTensorType::get(sT.getShape(), elem), {s, m},
          [&](OpBuilder &nb, Location nl, ValueRange in) {
            Value shift = finiteShift(nb, nl, in[1]);
            Value r = arith::AddFOp::create(nb, nl, math::LogOp::create(nb, nl, in[0]), shift);
            return castScalar(nb, nl, r, elem, false, false);
          });
    } else {
      Value identity;
      switch (kind) {
      case Kind::Max:
        identity = lowest(b, loc, acc, isUnsigned);
        break;
      case Kind::Min:
        identity = highest(b, loc, acc, isUnsigned);
        break;
      case Kind::Prod:
        identity = scalarConstant(b, loc, acc, 1);
        break;
      default:
        identity = scalarConstant(b, loc, acc, 0);
      }
      Value init = keptTensor(b, loc, data, reduced, acc, identity);
      Kind k = kind;
      Value red = genericOver(
          b, loc, reduced, {{data, false}}, {init}, true,
          [&](OpBuilder &nb, Location nl, ValueRange in, ValueRange out) {
            Value x = ext(nb, nl, in[0]), a = out[0];
            Value r;
            switch (k) {
            case Kind::Max:
              r = maxOf(nb, nl, x, a, isUnsigned);
              break;
            case Kind::Min:
              r = minOf(nb, nl, x, a, isUnsigned);
              break;
            case Kind::Prod:
              r = mulOf(nb, nl, x, a);
              break;
            case Kind::L1: {
              Value ax = x;
              if (isF)
                ax = math::AbsFOp::create(nb, nl, x);
              else if (!isUnsigned)
                ax = math::AbsIOp::create(nb, nl, x);
              r = addOf(nb, nl, a, ax);
              break;
            }
            case Kind::L2:
            case Kind::SumSquare:
              r = addOf(nb, nl, a, mulOf(nb, nl, x, x));
              break;
            default:
              r = addOf(nb, nl, a, x);
            }
            return SmallVector<Value>{r};
          })[0];
      bool needPost = acc != elem || kind == Kind::Mean || kind == Kind::L2 ||
                      kind == Kind::LogSum;
      result = red;
      if (needPost) {
        Value count;
        if (kind == Kind::Mean)
          count = reducedCount(b, loc, data, reduced, acc);
        auto redT = cast<RankedTensorType>(red.getType());
        auto postT = RankedTensorType::get(redT.getShape(), elem);
        result = buildElementwise(
            b, loc, postT, {red}, [&](OpBuilder &nb, Location nl, ValueRange a) {
              Value r = a[0];
              if (k == Kind::Mean) {
                if (isF)
                  r = arith::DivFOp::create(nb, nl, r, count);
                else if (isUnsigned)
                  r = arith::DivUIOp::create(nb, nl, r, count);
                else
                  r = arith::DivSIOp::create(nb, nl, r, count);
              } else if (k == Kind::L2) {
                r = math::SqrtOp::create(nb, nl, r);
              } else if (k == Kind::LogSum) {
                r = math::LogOp::create(nb, nl, r);
              }
              return castScalar(nb, nl, r, elem, false, false);
            });
      }
    }
    return expandKept(b, loc, result, reduced, outT);
  }
  Kind kind;
};

/// Arg{Max,Min} along `axis` of `data`: the i64 indices, kept-shaped.
Value argReduce(OpBuilder &b, Location loc, Value data, int64_t axis, bool isMax,
                bool selectLast, bool isUnsigned) {
  auto inT = cast<RankedTensorType>(data.getType());
  Type elem = inT.getElementType();
  SmallVector<bool> reduced(inT.getRank(), false);
  reduced[axis] = true;
  Value vInit = keptTensor(b, loc, data, reduced, elem,
                           isMax ? lowest(b, loc, elem, isUnsigned)
                                 : highest(b, loc, elem, isUnsigned));
  Value iInit = keptTensor(b, loc, data, reduced, b.getI64Type(),
                           scalarConstant(b, loc, b.getI64Type(), 0));
  bool isF = isa<FloatType>(elem);
  return genericOver(
      b, loc, reduced, {{data, false}}, {vInit, iInit}, true,
      [&](OpBuilder &nb, Location nl, ValueRange in, ValueRange out) {
        Value x = in[0], best = out[0];
        Value better;
        if (isF) {
          arith::CmpFPredicate p =
              isMax ? (selectLast ? arith::CmpFPredicate::OGE : arith::CmpFPredicate::OGT)
                    : (selectLast ? arith::CmpFPredicate::OLE : arith::CmpFPredicate::OLT);
          better = arith::CmpFOp::create(nb, nl, p, x, best);
        } else {
          arith::CmpIPredicate p;
          if (isUnsigned)
            p = isMax ? (selectLast ? arith::CmpIPredicate::uge : arith::CmpIPredicate::ugt)
                      : (selectLast ? arith::CmpIPredicate::ule : arith::CmpIPredicate::ult);
          else
            p = isMax ? (selectLast ? arith::CmpIPredicate::sge : arith::CmpIPredicate::sgt)
                      : (selectLast ? arith::CmpIPredicate::sle : arith::CmpIPredicate::slt);
          better = arith::CmpIOp::create(nb, nl, p, x, best);
        }
        Value idx = linalg::IndexOp::create(nb, nl, axis);
        Value idx64 = arith::IndexCastOp::create(nb, nl, nb.getI64Type(), idx);
        return SmallVector<Value>{
            arith::SelectOp::create(nb, nl, better, x, best),
            arith::SelectOp::create(nb, nl, better, idx64, out[1])};
      })[1];
}

template <typename OpTy>
struct ArgLowering : OpConversionPattern<OpTy> {
  ArgLowering(const TypeConverter &tc, MLIRContext *ctx, bool isMax)
      : OpConversionPattern<OpTy>(tc, ctx), isMax(isMax) {}

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value data = adaptor.getOperands()[0];
    auto inT = dyn_cast<RankedTensorType>(data.getType());
    auto outT = resultType(*this->getTypeConverter(), op);
    if (!inT || !outT || !outT.getElementType().isInteger(64))
      return rewriter.notifyMatchFailure(op, "unranked or non-i64 result");
    Type elem = inT.getElementType();
    if (!isa<FloatType>(elem) && !isa<IntegerType>(elem))
      return rewriter.notifyMatchFailure(op, "unsupported element type");
    if (inT.getRank() == 0)
      return rewriter.notifyMatchFailure(op, "rank-0 input");
    auto axis = normalizeAxis(intAttrOr(op, "axis", 0), inT.getRank());
    if (!axis)
      return rewriter.notifyMatchFailure(op, "axis out of range");
    bool keepdims = intAttrOr(op, "keepdims", 1) != 0;
    bool selectLast = intAttrOr(op, "select_last_index", 0) != 0;
    SmallVector<bool> reduced(inT.getRank(), false);
    reduced[*axis] = true;
    if (!compatibleShape(reducedShape(inT, reduced, keepdims), outT.getShape()))
      return rewriter.notifyMatchFailure(op, "result shape does not match axis");
    bool isUnsigned = isUnsignedOnnx(op->getOperand(0)) || elem.isInteger(1);
    Value idx = argReduce(rewriter, op.getLoc(), data, *axis, isMax, selectLast,
                          isUnsigned);
    rewriter.replaceOp(op, expandKept(rewriter, op.getLoc(), idx, reduced, outT));
    return success();
  }
  bool isMax;
};

enum class SoftKind { Softmax, LogSoftmax, Hardmax };

template <typename OpTy>
struct SoftmaxLowering : OpConversionPattern<OpTy> {
  SoftmaxLowering(const TypeConverter &tc, MLIRContext *ctx, SoftKind kind)
      : OpConversionPattern<OpTy>(tc, ctx), kind(kind) {}

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getOperands()[0];
    auto inT = dyn_cast<RankedTensorType>(x.getType());
    auto outT = resultType(*this->getTypeConverter(), op);
    if (!inT || !outT || inT != outT)
      return rewriter.notifyMatchFailure(op, "shape or type mismatch");
    Type elem = inT.getElementType();
    if (!isa<FloatType>(elem))
      return rewriter.notifyMatchFailure(op, "float element types only");
    int64_t rank = inT.getRank();
    if (rank == 0)
      return rewriter.notifyMatchFailure(op, "rank-0 input");
    int64_t opset = opsetOf(op);
    bool legacy = opset > 0 && opset < 13;
    auto axis = normalizeAxis(intAttrOr(op, "axis", legacy ? 1 : -1), rank);
    if (!axis)
      return rewriter.notifyMatchFailure(op, "axis out of range");
    // Opset 13 normalizes along one axis; before, over all dims from `axis`
    // on (the input coerced to 2-D).
    SmallVector<bool> reduced(rank, false);
    for (int64_t i = *axis; i < (legacy ? rank : *axis + 1); ++i)
      reduced[i] = true;

    OpBuilder &b = rewriter;
    if (kind == SoftKind::Hardmax) {
      if (llvm::count(reduced, true) != 1)
        return rewriter.notifyMatchFailure(op, "legacy multi-dim hardmax");
      Value idx = argReduce(b, loc, x, *axis, /*isMax=*/true, false, false);
      Value init = fullTensor(b, loc, x, elem);
      int64_t ax = *axis;
      Value r = genericOver(
          b, loc, reduced, {{idx, true}}, {init}, false,
          [&](OpBuilder &nb, Location nl, ValueRange in, ValueRange) {
            Value i = linalg::IndexOp::create(nb, nl, ax);
            Value i64 = arith::IndexCastOp::create(nb, nl, nb.getI64Type(), i);
            Value eq = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, i64, in[0]);
            return SmallVector<Value>{arith::SelectOp::create(
                nb, nl, eq, scalarConstant(nb, nl, elem, 1),
                scalarConstant(nb, nl, elem, 0))};
          })[0];
      rewriter.replaceOp(op, r);
      return success();
    }

    Type acc = accumulatorType(b, elem);
    auto ext = [&](OpBuilder &nb, Location nl, Value v) {
      return castScalar(nb, nl, v, acc, false, false);
    };
    Value mInit = keptTensor(b, loc, x, reduced, acc, lowest(b, loc, acc, false));
    Value m = genericOver(b, loc, reduced, {{x, false}}, {mInit}, true,
                          [&](OpBuilder &nb, Location nl, ValueRange in, ValueRange out) {
                            return SmallVector<Value>{maxOf(nb, nl, ext(nb, nl, in[0]), out[0], false)};
                          })[0];
    Value sInit = keptTensor(b, loc, x, reduced, acc, scalarConstant(b, loc, acc, 0));
    Value s = genericOver(b, loc, reduced, {{x, false}, {m, true}}, {sInit}, true,
                          [&](OpBuilder &nb, Location nl, ValueRange in, ValueRange out) {
                            Value d = arith::SubFOp::create(nb, nl, ext(nb, nl, in[0]), in[1]);
                            Value e = math::ExpOp::create(nb, nl, d);
                            return SmallVector<Value>{arith::AddFOp::create(nb, nl, out[0], e)};
                          })[0];
    Value init = fullTensor(b, loc, x, elem);
    SoftKind k = kind;
    Value r = genericOver(
        b, loc, reduced, {{x, false}, {m, true}, {s, true}}, {init}, false,
        [&](OpBuilder &nb, Location nl, ValueRange in, ValueRange) {
          Value d = arith::SubFOp::create(nb, nl, ext(nb, nl, in[0]), in[1]);
          Value v;
          if (k == SoftKind::Softmax)
            v = arith::DivFOp::create(nb, nl, math::ExpOp::create(nb, nl, d), in[2]);
          else
            v = arith::SubFOp::create(nb, nl, d, math::LogOp::create(nb, nl, in[2]));
          return SmallVector<Value>{castScalar(nb, nl, v, elem, false, false)};
        })[0];
    rewriter.replaceOp(op, r);
    return success();
  }
  SoftKind kind;
};

} // namespace

void populateOnnxReductionPatterns(RewritePatternSet &patterns,
                                   const TypeConverter &converter) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<ReduceLowering<onnx::ReduceSumOp>>(converter, ctx, Kind::Sum);
  patterns.add<ReduceLowering<onnx::ReduceMeanOp>>(converter, ctx, Kind::Mean);
  patterns.add<ReduceLowering<onnx::ReduceMaxOp>>(converter, ctx, Kind::Max);
  patterns.add<ReduceLowering<onnx::ReduceMinOp>>(converter, ctx, Kind::Min);
  patterns.add<ReduceLowering<onnx::ReduceProdOp>>(converter, ctx, Kind::Prod);
  patterns.add<ReduceLowering<onnx::ReduceL1Op>>(converter, ctx, Kind::L1);
  patterns.add<ReduceLowering<onnx::ReduceL2Op>>(converter, ctx, Kind::L2);
  patterns.add<ReduceLowering<onnx::ReduceLogSumOp>>(converter, ctx, Kind::LogSum);
  patterns.add<ReduceLowering<onnx::ReduceLogSumExpOp>>(converter, ctx,
                                                        Kind::LogSumExp);
  patterns.add<ReduceLowering<onnx::ReduceSumSquareOp>>(converter, ctx,
                                                        Kind::SumSquare);
  patterns.add<ArgLowering<onnx::ArgMaxOp>>(converter, ctx, true);
  patterns.add<ArgLowering<onnx::ArgMinOp>>(converter, ctx, false);
  patterns.add<SoftmaxLowering<onnx::SoftmaxOp>>(converter, ctx, SoftKind::Softmax);
  patterns.add<SoftmaxLowering<onnx::LogSoftmaxOp>>(converter, ctx,
                                                   SoftKind::LogSoftmax);
  patterns.add<SoftmaxLowering<onnx::HardmaxOp>>(converter, ctx, SoftKind::Hardmax);
}

} // namespace kiln
