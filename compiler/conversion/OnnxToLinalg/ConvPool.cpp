//===- ConvPool.cpp - onnx conv / pool / resize ops -> linalg -------------===//
//
// Convolutions and poolings are linalg.generic ops over an explicitly padded
// (tensor.pad) input:
//   conv:  loops (n, g, oc, o..., ic, k...) over tensors expanded to expose
//          the group dimension; x[n, g, ic, o*s + k*d] * w[g, oc, ic, k].
//   pool:  loops (n, c, o..., k...), with a `window` operand (an unused
//          tensor.empty of the kernel shape) that gives the k loops a bound.
// ConvTranspose places the input on a zero tensor with stride `strides`
// (tensor.insert_slice) and runs a stride-1 convolution with a flipped kernel.
// Resize and MaxUnpool gather from their input with tensor.extract inside a
// linalg.generic over the output.
//
// All spatial shapes must be static: window geometry (pads for auto_pad,
// ceil_mode, output_padding, output_shape) comes from the static result type.
//
//===----------------------------------------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/AffineExpr.h"
#include "mlir/IR/AffineMap.h"

#include <cmath>

using namespace mlir;

namespace kiln {
namespace {

using IT = utils::IteratorType;

//===----------------------------------------------------------------------===//
// Small helpers
//===----------------------------------------------------------------------===//

RankedTensorType staticType(Value v) {
  if (!v)
    return {};
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.hasStaticShape() ? t : RankedTensorType();
}

/// String attributes; ODS renames reserved names (`mode` -> `mode_`) while the
/// importer keeps the ONNX name, so both spellings are tried.
std::string attrStr(Operation *op, StringRef name, StringRef dflt) {
  if (auto a = op->getAttrOfType<StringAttr>(name))
    return a.str();
  if (auto a = op->getAttrOfType<StringAttr>((name + "_").str()))
    return a.str();
  return dflt.str();
}

int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
int64_t ceilDiv(int64_t a, int64_t b) { return -floorDiv(-a, b); }

Value idx(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// The lowest value of an element type (-inf, INT_MIN, or 0 for unsigned).
Value lowestValue(OpBuilder &b, Location loc, Type t, bool isUnsigned) {
  if (auto ft = dyn_cast<FloatType>(t))
    return arith::ConstantOp::create(
        b, loc, b.getFloatAttr(ft, APFloat::getInf(ft.getFloatSemantics(),
                                                   /*Negative=*/true)));
  unsigned w = t.getIntOrFloatBitWidth();
  APInt v = isUnsigned ? APInt::getZero(w) : APInt::getSignedMinValue(w);
  return arith::ConstantOp::create(b, loc, b.getIntegerAttr(t, v));
}

Value maxValue(OpBuilder &b, Location loc, Value x, Value y, bool isUnsigned) {
  if (isa<FloatType>(x.getType()))
    return arith::MaximumFOp::create(b, loc, x, y);
  if (isUnsigned)
    return arith::MaxUIOp::create(b, loc, x, y);
  return arith::MaxSIOp::create(b, loc, x, y);
}

Value fill(OpBuilder &b, Location loc, RankedTensorType type, Value v) {
  Value e = tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType());
  return linalg::FillOp::create(b, loc, ValueRange{v}, ValueRange{e}).getResult(0);
}

/// tensor.pad with static amounts and a scalar pad value; `x` when no padding.
Value padTensor(OpBuilder &b, Location loc, Value x, ArrayRef<int64_t> low,
                ArrayRef<int64_t> high, Value padValue) {
  if (llvm::all_of(low, [](int64_t v) { return v == 0; }) &&
      llvm::all_of(high, [](int64_t v) { return v == 0; }))
    return x;
  auto t = cast<RankedTensorType>(x.getType());
  SmallVector<int64_t> shape;
  SmallVector<OpFoldResult> lo, hi;
  for (int64_t i = 0; i < t.getRank(); ++i) {
    shape.push_back(t.getDimSize(i) + low[i] + high[i]);
    lo.push_back(b.getIndexAttr(low[i]));
    hi.push_back(b.getIndexAttr(high[i]));
  }
  auto rt = RankedTensorType::get(shape, t.getElementType());
  return tensor::PadOp::create(b, loc, rt, x, lo, hi, padValue).getResult();
}

/// Reads element 0 of a one-element tensor (any rank) as a scalar.
Value extractScalar(OpBuilder &b, Location loc, Value t) {
  auto type = cast<RankedTensorType>(t.getType());
  SmallVector<Value> zeros(type.getRank(), idx(b, loc, 0));
  return tensor::ExtractOp::create(b, loc, t, zeros);
}

AffineExpr dim(MLIRContext *ctx, unsigned i) { return getAffineDimExpr(i, ctx); }

//===----------------------------------------------------------------------===//
// Window geometry
//===----------------------------------------------------------------------===//

struct Window {
  SmallVector<int64_t> in, kernel, out, strides, dilations;
  SmallVector<int64_t> padBegin, padEnd; // declared (or auto_pad) pads
  SmallVector<int64_t> padHigh;          // high padding the windows need
  int64_t rank() const { return in.size(); }
};

LogicalResult computeWindow(Operation *op, ArrayRef<int64_t> in,
                            ArrayRef<int64_t> kernel, ArrayRef<int64_t> out,
                            Window &w) {
  int64_t r = in.size();
  if (r == 0 || (int64_t)kernel.size() != r || (int64_t)out.size() != r)
    return failure();
  w.in.assign(in.begin(), in.end());
  w.kernel.assign(kernel.begin(), kernel.end());
  w.out.assign(out.begin(), out.end());
  w.strides = intsAttr(op, "strides");
  if (w.strides.empty())
    w.strides.assign(r, 1);
  w.dilations = intsAttr(op, "dilations");
  if (w.dilations.empty())
    w.dilations.assign(r, 1);
  SmallVector<int64_t> pads = intsAttr(op, "pads");
  if (pads.empty())
    pads.assign(2 * r, 0);
  if ((int64_t)w.strides.size() != r || (int64_t)w.dilations.size() != r ||
      (int64_t)pads.size() != 2 * r)
    return failure();
  std::string autoPad = attrStr(op, "auto_pad", "NOTSET");
  for (int64_t i = 0; i < r; ++i) {
    int64_t s = w.strides[i], d = w.dilations[i], k = kernel[i];
    if (s <= 0 || d <= 0 || k <= 0 || out[i] <= 0 || in[i] <= 0)
      return failure();
    int64_t span = (k - 1) * d + 1;
    int64_t b, e;
    if (autoPad == "VALID") {
      b = e = 0;
    } else if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      int64_t total = std::max<int64_t>(0, (out[i] - 1) * s + span - in[i]);
      b = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
      e = total - b;
    } else if (autoPad == "NOTSET" || autoPad.empty()) {
      b = pads[i];
      e = pads[r + i];
    } else {
      return failure();
    }
    if (b < 0 || e < 0)
      return failure();
    int64_t need = (out[i] - 1) * s + span;
    w.padBegin.push_back(b);
    w.padEnd.push_back(e);
    w.padHigh.push_back(std::max(e, need - in[i] - b));
  }
  return success();
}

/// Pads [N, C, spatial...] by the window's begin / high pads.
Value padSpatial(OpBuilder &b, Location loc, Value x, const Window &w,
                 Value padValue) {
  SmallVector<int64_t> low{0, 0}, high{0, 0};
  low.append(w.padBegin);
  high.append(w.padHigh);
  return padTensor(b, loc, x, low, high, padValue);
}

/// Maps of a pooling generic: loops (n, c, o..., k...).
/// x: (n, c, o*s + k*d), window: (k...), out: (n, c, o...).
SmallVector<AffineMap> poolMaps(MLIRContext *ctx, const Window &w,
                                int64_t numOutputs) {
  int64_t r = w.rank(), n = 2 + 2 * r;
  SmallVector<AffineExpr> xe{dim(ctx, 0), dim(ctx, 1)}, we, oe{dim(ctx, 0),
                                                            dim(ctx, 1)};
  for (int64_t i = 0; i < r; ++i) {
    xe.push_back(dim(ctx, 2 + i) * w.strides[i] +
                 dim(ctx, 2 + r + i) * w.dilations[i]);
    we.push_back(dim(ctx, 2 + r + i));
    oe.push_back(dim(ctx, 2 + i));
  }
  SmallVector<AffineMap> maps{AffineMap::get(n, 0, xe, ctx),
                              AffineMap::get(n, 0, we, ctx)};
  for (int64_t i = 0; i < numOutputs; ++i)
    maps.push_back(AffineMap::get(n, 0, oe, ctx));
  return maps;
}

SmallVector<IT> poolIterators(const Window &w) {
  SmallVector<IT> its(2 + w.rank(), IT::parallel);
  its.append(w.rank(), IT::reduction);
  return its;
}

Value windowOperand(OpBuilder &b, Location loc, const Window &w, Type elem) {
  return tensor::EmptyOp::create(b, loc, w.kernel, elem);
}

/// A windowed reduction of a padded [N, C, P...] into `init` [N, C, O...].
Value buildPool(OpBuilder &b, Location loc, Value xPadded, const Window &w,
                Value init,
                function_ref<Value(OpBuilder &, Location, Value, Value)> fn) {
  MLIRContext *ctx = b.getContext();
  Type elem = cast<RankedTensorType>(xPadded.getType()).getElementType();
  Value window = windowOperand(b, loc, w, elem);
  auto g = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{xPadded, window},
      ValueRange{init}, poolMaps(ctx, w, 1), poolIterators(w),
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        linalg::YieldOp::create(nb, nloc, fn(nb, nloc, args[0], args[2]));
      });
  return g.getResult(0);
}

//===----------------------------------------------------------------------===//
// Convolutions
//===----------------------------------------------------------------------===//

SmallVector<ReassociationIndices> splitDim(int64_t rank, int64_t d) {
  SmallVector<ReassociationIndices> re;
  int64_t j = 0;
  for (int64_t i = 0; i < rank; ++i) {
    if (i == d) {
      re.push_back({j, j + 1});
      j += 2;
    } else {
      re.push_back({j++});
    }
  }
  return re;
}

Value expandDim(OpBuilder &b, Location loc, Value v, int64_t d, int64_t outer) {
  auto t = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < t.getRank(); ++i) {
    if (i == d) {
      shape.push_back(outer);
      shape.push_back(t.getDimSize(i) / outer);
    } else {
      shape.push_back(t.getDimSize(i));
    }
  }
  auto rt = RankedTensorType::get(shape, t.getElementType());
  return tensor::ExpandShapeOp::create(b, loc, rt, v, splitDim(t.getRank(), d));
}

/// Scalar body of a convolution: (x, w, [w zero point], acc) -> acc'.
using ConvBody = function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// x: [N, G*ICg, P...]; w: [G*OCg, ICg, K...] (or [G*ICg, OCg, K...] when
/// transposed); init: [N, G*OCg, O...]; wzp: optional [G*OCg] per-channel
/// operand. Transposed convolutions use stride 1 and a flipped kernel.
Value buildConv(OpBuilder &b, Location loc, Value x, Value w, Value init,
                Value wzp, int64_t G, ArrayRef<int64_t> strides,
                ArrayRef<int64_t> dilations, bool transposed, ConvBody body) {
  MLIRContext *ctx = b.getContext();
  auto wt = cast<RankedTensorType>(w.getType());
  auto initT = cast<RankedTensorType>(init.getType());
  int64_t r = wt.getRank() - 2;
  Value xe = expandDim(b, loc, x, 1, G);
  Value we = expandDim(b, loc, w, 0, G);
  Value ie = expandDim(b, loc, init, 1, G);
  int64_t n = 4 + 2 * r;
  // Loops: 0 n, 1 g, 2 oc, 3.. o, 3+r ic, 4+r.. k.
  AffineExpr N = dim(ctx, 0), Gd = dim(ctx, 1), OC = dim(ctx, 2),
             IC = dim(ctx, 3 + r);
  SmallVector<AffineExpr> xm{N, Gd, IC}, wm, om{N, Gd, OC};
  if (transposed)
    wm = {Gd, IC, OC};
  else
    wm = {Gd, OC, IC};
  for (int64_t i = 0; i < r; ++i) {
    AffineExpr o = dim(ctx, 3 + i), k = dim(ctx, 4 + r + i);
    int64_t K = wt.getDimSize(2 + i);
    if (transposed)
      xm.push_back(o + (K - 1) * dilations[i] - k * dilations[i]);
    else
      xm.push_back(o * strides[i] + k * dilations[i]);
    wm.push_back(k);
    om.push_back(o);
  }
  SmallVector<Value> inputs{xe, we};
  SmallVector<AffineMap> maps{AffineMap::get(n, 0, xm, ctx),
                              AffineMap::get(n, 0, wm, ctx)};
  if (wzp) {
    inputs.push_back(expandDim(b, loc, wzp, 0, G));
    maps.push_back(AffineMap::get(n, 0, {Gd, OC}, ctx));
  }
  maps.push_back(AffineMap::get(n, 0, om, ctx));
  SmallVector<IT> its(3 + r, IT::parallel);
  its.append(1 + r, IT::reduction);
  auto g = linalg::GenericOp::create(
      b, loc, TypeRange{ie.getType()}, inputs, ValueRange{ie}, maps, its,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        linalg::YieldOp::create(nb, nloc, body(nb, nloc, args));
      });
  return tensor::CollapseShapeOp::create(b, loc, initT, g.getResult(0),
                                         splitDim(initT.getRank(), 1));
}

/// The conv output init: bias [OC] broadcast along dim 1, or zeros.
Value convInit(OpBuilder &b, Location loc, RankedTensorType type, Value bias) {
  if (isNone(bias))
    return fill(b, loc, type, scalarConstant(b, loc, type.getElementType(), 0));
  MLIRContext *ctx = b.getContext();
  int64_t n = type.getRank();
  Value e = tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType());
  SmallVector<AffineMap> maps{AffineMap::get(n, 0, {dim(ctx, 1)}, ctx),
                              AffineMap::getMultiDimIdentityMap(n, ctx)};
  return linalg::GenericOp::create(
             b, loc, TypeRange{type}, ValueRange{bias}, ValueRange{e}, maps,
             SmallVector<IT>(n, IT::parallel),
             [&](OpBuilder &nb, Location nloc, ValueRange args) {
               linalg::YieldOp::create(nb, nloc, args[0]);
             })
      .getResult(0);
}

Value floatMulAdd(OpBuilder &b, Location loc, ValueRange a) {
  Value m = arith::MulFOp::create(b, loc, a[0], a[1]);
  return arith::AddFOp::create(b, loc, a.back(), m);
}

struct ConvLowering : OpConversionPattern<onnx::ConvOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ConvOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getX(), w = adaptor.getW(), bias = adaptor.getB();
    auto xt = staticType(x), wt = staticType(w);
    auto rt = resultType(*getTypeConverter(), op);
    if (!xt || !wt || !rt || !rt.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    if (!isa<FloatType>(xt.getElementType()) ||
        wt.getElementType() != xt.getElementType() ||
        rt.getElementType() != xt.getElementType())
      return rewriter.notifyMatchFailure(op, "float conv only");
    int64_t rank = xt.getRank(), r = rank - 2;
    int64_t G = op.getGroup();
    if (r < 1 || wt.getRank() != rank || rt.getRank() != rank || G <= 0)
      return rewriter.notifyMatchFailure(op, "bad ranks");
    int64_t C = xt.getDimSize(1), OC = wt.getDimSize(0);
    if (C != G * wt.getDimSize(1) || OC % G != 0 || rt.getDimSize(1) != OC ||
        rt.getDimSize(0) != xt.getDimSize(0))
      return rewriter.notifyMatchFailure(op, "bad channel counts");
    if (!isNone(bias)) {
      auto bt = staticType(bias);
      if (!bt || bt.getRank() != 1 || bt.getDimSize(0) != OC)
        return rewriter.notifyMatchFailure(op, "bad bias");
    }
    Window win;
    if (failed(computeWindow(op, xt.getShape().drop_front(2),
                             wt.getShape().drop_front(2),
                             rt.getShape().drop_front(2), win)))
      return rewriter.notifyMatchFailure(op, "unsupported window geometry");
    Value zero = scalarConstant(rewriter, loc, xt.getElementType(), 0);
    Value xp = padSpatial(rewriter, loc, x, win, zero);
    Value init = convInit(rewriter, loc, rt, bias);
    Value y = buildConv(rewriter, loc, xp, w, init, nullptr, G, win.strides,
                        win.dilations, false, floatMulAdd);
    rewriter.replaceOp(op, y);
    return success();
  }
};

struct ConvIntegerLowering : OpConversionPattern<onnx::ConvIntegerOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ConvIntegerOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getX(), w = adaptor.getW();
    Value xzp = adaptor.getXZeroPoint(), wzp = adaptor.getWZeroPoint();
    auto xt = staticType(x), wt = staticType(w);
    auto rt = resultType(*getTypeConverter(), op);
    if (!xt || !wt || !rt || !rt.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    if (!isa<IntegerType>(xt.getElementType()) ||
        !isa<IntegerType>(wt.getElementType()) ||
        !rt.getElementType().isInteger(32))
      return rewriter.notifyMatchFailure(op, "integer inputs, i32 result");
    int64_t rank = xt.getRank(), r = rank - 2;
    int64_t G = op.getGroup();
    if (r < 1 || wt.getRank() != rank || rt.getRank() != rank || G <= 0)
      return rewriter.notifyMatchFailure(op, "bad ranks");
    int64_t C = xt.getDimSize(1), OC = wt.getDimSize(0);
    if (C != G * wt.getDimSize(1) || OC % G != 0 || rt.getDimSize(1) != OC)
      return rewriter.notifyMatchFailure(op, "bad channel counts");
    bool xU = isUnsignedOnnx(op->getOperand(0));
    bool wU = isUnsignedOnnx(op->getOperand(1));
    Type i32 = rewriter.getI32Type();
    // x zero point: a scalar; padding uses it so that padded taps vanish.
    Value xzpRaw = scalarConstant(rewriter, loc, xt.getElementType(), 0);
    if (!isNone(xzp)) {
      auto t = staticType(xzp);
      if (!t || t.getNumElements() != 1)
        return rewriter.notifyMatchFailure(op, "x_zero_point must be a scalar");
      xzpRaw = extractScalar(rewriter, loc, xzp);
    }
    Value wzpScalar, wzpTensor;
    if (!isNone(wzp)) {
      auto t = staticType(wzp);
      if (t && t.getNumElements() == 1)
        wzpScalar = extractScalar(rewriter, loc, wzp);
      else if (t && t.getRank() == 1 && t.getDimSize(0) == OC)
        wzpTensor = wzp;
      else
        return rewriter.notifyMatchFailure(op, "unsupported w_zero_point");
    }
    Window win;
    if (failed(computeWindow(op, xt.getShape().drop_front(2),
                             wt.getShape().drop_front(2),
                             rt.getShape().drop_front(2), win)))
      return rewriter.notifyMatchFailure(op, "unsupported window geometry");
    Value xp = padSpatial(rewriter, loc, x, win, xzpRaw);
    Value init = fill(rewriter, loc, rt, scalarConstant(rewriter, loc, i32, 0));
    Value xzp32 = castScalar(rewriter, loc, xzpRaw, i32, xU, false);
    Value wzp32 = wzpScalar ? castScalar(rewriter, loc, wzpScalar, i32, wU, false)
                            : Value();
    bool hasWzpTensor = (bool)wzpTensor;
    Value y = buildConv(
        rewriter, loc, xp, w, init, wzpTensor, G, win.strides, win.dilations,
        false, [&](OpBuilder &b, Location l, ValueRange a) -> Value {
          Value xv = castScalar(b, l, a[0], i32, xU, false);
          Value wv = castScalar(b, l, a[1], i32, wU, false);
          xv = arith::SubIOp::create(b, l, xv, xzp32);
          if (hasWzpTensor)
            wv = arith::SubIOp::create(b, l, wv,
                                       castScalar(b, l, a[2], i32, wU, false));
          else if (wzp32)
            wv = arith::SubIOp::create(b, l, wv, wzp32);
          Value m = arith::MulIOp::create(b, l, xv, wv);
          return arith::AddIOp::create(b, l, a.back(), m);
        });
    rewriter.replaceOp(op, y);
    return success();
  }
};

struct ConvTransposeLowering : OpConversionPattern<onnx::ConvTransposeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ConvTransposeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getX(), w = adaptor.getW(), bias = adaptor.getB();
    auto xt = staticType(x), wt = staticType(w);
    auto rt = resultType(*getTypeConverter(), op);
    if (!xt || !wt || !rt || !rt.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    Type elem = xt.getElementType();
    if (!isa<FloatType>(elem) || wt.getElementType() != elem ||
        rt.getElementType() != elem)
      return rewriter.notifyMatchFailure(op, "float conv only");
    int64_t rank = xt.getRank(), r = rank - 2;
    int64_t G = op.getGroup();
    if (r < 1 || wt.getRank() != rank || rt.getRank() != rank || G <= 0)
      return rewriter.notifyMatchFailure(op, "bad ranks");
    int64_t C = xt.getDimSize(1), OCg = wt.getDimSize(1);
    if (wt.getDimSize(0) != C || C % G != 0 || rt.getDimSize(1) != G * OCg ||
        rt.getDimSize(0) != xt.getDimSize(0))
      return rewriter.notifyMatchFailure(op, "bad channel counts");
    if (!isNone(bias)) {
      auto bt = staticType(bias);
      if (!bt || bt.getRank() != 1 || bt.getDimSize(0) != G * OCg)
        return rewriter.notifyMatchFailure(op, "bad bias");
    }
    SmallVector<int64_t> strides = intsAttr(op, "strides"),
                         dil = intsAttr(op, "dilations"),
                         pads = intsAttr(op, "pads"),
                         outPad = intsAttr(op, "output_padding");
    if (strides.empty())
      strides.assign(r, 1);
    if (dil.empty())
      dil.assign(r, 1);
    if (pads.empty())
      pads.assign(2 * r, 0);
    if (outPad.empty())
      outPad.assign(r, 0);
    if ((int64_t)strides.size() != r || (int64_t)dil.size() != r ||
        (int64_t)pads.size() != 2 * r || (int64_t)outPad.size() != r)
      return rewriter.notifyMatchFailure(op, "bad attribute sizes");
    std::string autoPad = attrStr(op, "auto_pad", "NOTSET");
    bool hasOutputShape = !intsAttr(op, "output_shape").empty();
    // Placement of the strided input on a zero tensor the stride-1
    // convolution slides over: Y[j] = sum_k Z[j + (K-1)*d - k*d] * W[k].
    SmallVector<int64_t> zShape{xt.getDimSize(0), C}, offs{0, 0},
        firstIn{0, 0}, countIn{xt.getDimSize(0), C}, zStr{1, 1};
    bool empty = false;
    for (int64_t i = 0; i < r; ++i) {
      int64_t in = xt.getDimSize(2 + i), K = wt.getDimSize(2 + i),
              out = rt.getDimSize(2 + i), s = strides[i], d = dil[i];
      if (s <= 0 || d <= 0)
        return rewriter.notifyMatchFailure(op, "bad strides/dilations");
      int64_t pb;
      if (hasOutputShape || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
        int64_t total = s * (in - 1) + outPad[i] + (K - 1) * d + 1 - out;
        pb = autoPad == "SAME_UPPER" ? floorDiv(total, 2)
                                     : total - floorDiv(total, 2);
      } else if (autoPad == "VALID") {
        pb = 0;
      } else if (autoPad == "NOTSET" || autoPad.empty()) {
        pb = pads[i];
      } else {
        return rewriter.notifyMatchFailure(op, "bad auto_pad");
      }
      int64_t L = (K - 1) * d - pb;
      int64_t size = out + (K - 1) * d;
      int64_t iMin = std::max<int64_t>(0, ceilDiv(-L, s));
      int64_t iMax = std::min<int64_t>(in - 1, floorDiv(size - 1 - L, s));
      if (iMin > iMax)
        empty = true;
      zShape.push_back(size);
      offs.push_back(L + iMin * s);
      firstIn.push_back(iMin);
      countIn.push_back(iMax - iMin + 1);
      zStr.push_back(s);
    }
    Value zero = scalarConstant(rewriter, loc, elem, 0);
    Value z = fill(rewriter, loc, RankedTensorType::get(zShape, elem), zero);
    if (!empty) {
      auto ofr = [&](ArrayRef<int64_t> v) {
        SmallVector<OpFoldResult> o;
        for (int64_t e : v)
          o.push_back(rewriter.getIndexAttr(e));
        return o;
      };
      Value src = x;
      if (!llvm::equal(countIn, xt.getShape()))
        src = tensor::ExtractSliceOp::create(
            rewriter, loc, RankedTensorType::get(countIn, elem), x,
            ofr(firstIn), ofr(countIn), ofr(SmallVector<int64_t>(rank, 1)));
      z = tensor::InsertSliceOp::create(rewriter, loc, src, z, ofr(offs),
                                        ofr(countIn), ofr(zStr));
    }
    Value init = convInit(rewriter, loc, rt, bias);
    Value y = buildConv(rewriter, loc, z, w, init, nullptr, G, strides, dil,
                        /*transposed=*/true, floatMulAdd);
    rewriter.replaceOp(op, y);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Pools
//===----------------------------------------------------------------------===//

struct MaxPoolLowering : OpConversionPattern<onnx::MaxPoolOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::MaxPoolOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getX();
    auto xt = staticType(x);
    auto rt = resultType(*getTypeConverter(), op, 0);
    if (!xt || !rt || !rt.hasStaticShape() || xt.getRank() < 3 ||
        rt.getRank() != xt.getRank())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    Type elem = xt.getElementType();
    if (!elem.isIntOrFloat() || elem.isInteger(1) || rt.getElementType() != elem)
      return rewriter.notifyMatchFailure(op, "bad element type");
    auto it = op->getNumResults() > 1
                  ? resultType(*getTypeConverter(), op, 1)
                  : RankedTensorType();
    if (it && (!it.getElementType().isInteger(64) ||
               it.getShape() != rt.getShape()))
      return rewriter.notifyMatchFailure(op, "bad Indices type");
    if (!it && op->getNumResults() > 1 && !op->getResult(1).use_empty())
      return rewriter.notifyMatchFailure(op, "Indices without a ranked type");
    Window win;
    if (failed(computeWindow(op, xt.getShape().drop_front(2),
                             intsAttr(op, "kernel_shape"),
                             rt.getShape().drop_front(2), win)))
      return rewriter.notifyMatchFailure(op, "unsupported window geometry");
    bool isU = isUnsignedOnnx(op->getOperand(0));
    Value lowest = lowestValue(rewriter, loc, elem, isU);
    Value xp = padSpatial(rewriter, loc, x, win, lowest);
    Value init = fill(rewriter, loc, rt, lowest);
    if (!it) {
      Value y = buildPool(rewriter, loc, xp, win, init,
                          [&](OpBuilder &b, Location l, Value v, Value acc) {
                            return maxValue(b, l, acc, v, isU);
                          });
      if (op->getNumResults() > 1) {
        // The absent Indices result (type none, no uses) is dropped.
        rewriter.replaceOp(op, ValueRange{y, Value()});
        return success();
      }
      rewriter.replaceOp(op, y);
      return success();
    }
    // Values and flat indices (row-major, or column-major over the spatial
    // dims with storage_order = 1) of the first maximum of each window.
    int64_t r = win.rank();
    int64_t storageOrder = intAttrOr(op, "storage_order", 0);
    Value idxInit = fill(rewriter, loc, it,
                         scalarConstant(rewriter, loc, rewriter.getI64Type(), 0));
    Value window = windowOperand(rewriter, loc, win, elem);
    int64_t C = xt.getDimSize(1);
    auto g = linalg::GenericOp::create(
        rewriter, loc, TypeRange{rt, it}, ValueRange{xp, window},
        ValueRange{init, idxInit}, poolMaps(ctx, win, 2), poolIterators(win),
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value v = args[0], acc = args[2], accIdx = args[3];
          auto index = [&](int64_t d) -> Value {
            return linalg::IndexOp::create(b, l, d);
          };
          // flat = ((n*C + c) * prod(in)) + spatial offset
          Value flat = arith::AddIOp::create(
              b, l, arith::MulIOp::create(b, l, index(0), idx(b, l, C)),
              index(1));
          SmallVector<Value> pos(r);
          for (int64_t i = 0; i < r; ++i) {
            Value p = arith::AddIOp::create(
                b, l,
                arith::MulIOp::create(b, l, index(2 + i),
                                      idx(b, l, win.strides[i])),
                arith::MulIOp::create(b, l, index(2 + r + i),
                                      idx(b, l, win.dilations[i])));
            pos[i] = arith::SubIOp::create(b, l, p, idx(b, l, win.padBegin[i]));
          }
          SmallVector<int64_t> order;
          for (int64_t i = 0; i < r; ++i)
            order.push_back(storageOrder ? r - 1 - i : i);
          for (int64_t i : order)
            flat = arith::AddIOp::create(
                b, l, arith::MulIOp::create(b, l, flat, idx(b, l, win.in[i])),
                pos[i]);
          Value flat64 =
              arith::IndexCastOp::create(b, l, b.getI64Type(), flat);
          Value gt;
          if (isa<FloatType>(elem))
            gt = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, v, acc);
          else
            gt = arith::CmpIOp::create(b, l,
                                       isU ? arith::CmpIPredicate::ugt
                                           : arith::CmpIPredicate::sgt,
                                       v, acc);
          Value nv = arith::SelectOp::create(b, l, gt, v, acc);
          Value ni = arith::SelectOp::create(b, l, gt, flat64, accIdx);
          linalg::YieldOp::create(b, l, ValueRange{nv, ni});
        });
    rewriter.replaceOp(op, g.getResults());
    return success();
  }
};

/// AveragePool and LpPool.
template <typename OpTy>
struct SumPoolLowering : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    constexpr bool isLp = std::is_same_v<OpTy, onnx::LpPoolOp>;
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getX();
    auto xt = staticType(x);
    auto rt = resultType(*this->getTypeConverter(), op);
    if (!xt || !rt || !rt.hasStaticShape() || xt.getRank() < 3 ||
        rt.getRank() != xt.getRank())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    Type elem = xt.getElementType();
    if (!isa<FloatType>(elem) || rt.getElementType() != elem)
      return rewriter.notifyMatchFailure(op, "float pools only");
    Window win;
    if (failed(computeWindow(op, xt.getShape().drop_front(2),
                             intsAttr(op, "kernel_shape"),
                             rt.getShape().drop_front(2), win)))
      return rewriter.notifyMatchFailure(op, "unsupported window geometry");
    int64_t r = win.rank();
    Value zero = scalarConstant(rewriter, loc, elem, 0);
    Value xp = padSpatial(rewriter, loc, x, win, zero);
    Value init = fill(rewriter, loc, rt, zero);
    int64_t p = isLp ? intAttrOr(op, "p", 2) : 1;
    if (isLp && p <= 0)
      return rewriter.notifyMatchFailure(op, "p must be positive");
    Value sum = buildPool(
        rewriter, loc, xp, win, init,
        [&](OpBuilder &b, Location l, Value v, Value acc) -> Value {
          if (isLp) {
            if (p == 2)
              v = arith::MulFOp::create(b, l, v, v);
            else {
              v = math::AbsFOp::create(b, l, v);
              if (p != 1)
                v = math::PowFOp::create(
                    b, l, v, scalarConstant(b, l, elem, (double)p));
            }
          }
          return arith::AddFOp::create(b, l, acc, v);
        });
    int64_t n = rt.getRank();
    Value out = tensor::EmptyOp::create(rewriter, loc, rt.getShape(), elem);
    SmallVector<IT> its(n, IT::parallel);
    auto id = AffineMap::getMultiDimIdentityMap(n, ctx);
    if (isLp) {
      Value y = linalg::GenericOp::create(
                    rewriter, loc, TypeRange{rt}, ValueRange{sum},
                    ValueRange{out}, SmallVector<AffineMap>{id, id}, its,
                    [&](OpBuilder &b, Location l, ValueRange a) {
                      Value v = a[0];
                      if (p == 2)
                        v = math::SqrtOp::create(b, l, v);
                      else if (p != 1)
                        v = math::PowFOp::create(
                            b, l, v, scalarConstant(b, l, elem, 1.0 / p));
                      linalg::YieldOp::create(b, l, v);
                    })
                    .getResult(0);
      rewriter.replaceOp(op, y);
      return success();
    }
    // Divisors: window taps inside the input (or inside input + declared
    // pads with count_include_pad), per output position.
    bool includePad = intAttrOr(op, "count_include_pad", 0) != 0;
    SmallVector<SmallVector<int64_t>> counts(r);
    for (int64_t i = 0; i < r; ++i) {
      int64_t lo = includePad ? -win.padBegin[i] : 0;
      int64_t hi = includePad ? win.in[i] + win.padEnd[i] : win.in[i];
      for (int64_t o = 0; o < win.out[i]; ++o) {
        int64_t c = 0;
        for (int64_t k = 0; k < win.kernel[i]; ++k) {
          int64_t pos = o * win.strides[i] + k * win.dilations[i] - win.padBegin[i];
          c += pos >= lo && pos < hi;
        }
        counts[i].push_back(std::max<int64_t>(c, 1));
      }
    }
    SmallVector<Attribute> divs;
    SmallVector<int64_t> pos(r, 0);
    bool uniform = true;
    int64_t first = -1;
    while (true) {
      int64_t c = 1;
      for (int64_t i = 0; i < r; ++i)
        c *= counts[i][pos[i]];
      if (first < 0)
        first = c;
      uniform &= c == first;
      divs.push_back(rewriter.getFloatAttr(elem, (double)c));
      int64_t i = r - 1;
      while (i >= 0 && ++pos[i] == win.out[i])
        pos[i--] = 0;
      if (i < 0)
        break;
    }
    SmallVector<Value> inputs{sum};
    SmallVector<AffineMap> maps{id};
    Value scalarDiv;
    if (uniform) {
      scalarDiv = scalarConstant(rewriter, loc, elem, (double)first);
    } else {
      auto dt = RankedTensorType::get(win.out, elem);
      inputs.push_back(arith::ConstantOp::create(
          rewriter, loc, dt, DenseElementsAttr::get(dt, divs)));
      SmallVector<AffineExpr> e;
      for (int64_t i = 0; i < r; ++i)
        e.push_back(dim(ctx, 2 + i));
      maps.push_back(AffineMap::get(n, 0, e, ctx));
    }
    maps.push_back(id);
    Value y = linalg::GenericOp::create(
                  rewriter, loc, TypeRange{rt}, inputs, ValueRange{out}, maps,
                  its,
                  [&](OpBuilder &b, Location l, ValueRange a) {
                    Value d = scalarDiv ? scalarDiv : a[1];
                    linalg::YieldOp::create(b, l, Value(arith::DivFOp::create(b, l, a[0], d)));
                  })
                  .getResult(0);
    rewriter.replaceOp(op, y);
    return success();
  }
};

template <typename OpTy, bool IsMax>
struct GlobalPoolLowering : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getX();
    auto xt = staticType(x);
    auto rt = resultType(*this->getTypeConverter(), op);
    if (!xt || !rt || !rt.hasStaticShape() || xt.getRank() < 3 ||
        rt.getRank() != xt.getRank())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    Type elem = xt.getElementType();
    if (rt.getElementType() != elem || !elem.isIntOrFloat() ||
        (!IsMax && !isa<FloatType>(elem)))
      return rewriter.notifyMatchFailure(op, "bad element type");
    bool isU = isUnsignedOnnx(op->getOperand(0));
    int64_t n = xt.getRank();
    auto nc = RankedTensorType::get({xt.getDimSize(0), xt.getDimSize(1)}, elem);
    Value initV = IsMax ? lowestValue(rewriter, loc, elem, isU)
                        : scalarConstant(rewriter, loc, elem, 0);
    Value init = fill(rewriter, loc, nc, initV);
    SmallVector<IT> its{IT::parallel, IT::parallel};
    its.append(n - 2, IT::reduction);
    SmallVector<AffineMap> maps{
        AffineMap::getMultiDimIdentityMap(n, ctx),
        AffineMap::get(n, 0, {dim(ctx, 0), dim(ctx, 1)}, ctx)};
    double count = 1;
    for (int64_t i = 2; i < n; ++i)
      count *= xt.getDimSize(i);
    Value y = linalg::GenericOp::create(
                  rewriter, loc, TypeRange{nc}, ValueRange{x}, ValueRange{init},
                  maps, its,
                  [&](OpBuilder &b, Location l, ValueRange a) {
                    Value v = IsMax ? maxValue(b, l, a[1], a[0], isU)
                                    : arith::AddFOp::create(b, l, a[1], a[0]);
                    linalg::YieldOp::create(b, l, v);
                  })
                  .getResult(0);
    if (!IsMax) {
      Value c = scalarConstant(rewriter, loc, elem, count);
      auto id = AffineMap::getMultiDimIdentityMap(2, ctx);
      Value out = tensor::EmptyOp::create(rewriter, loc, nc.getShape(), elem);
      y = linalg::GenericOp::create(
              rewriter, loc, TypeRange{nc}, ValueRange{y}, ValueRange{out},
              SmallVector<AffineMap>{id, id},
              SmallVector<IT>(2, IT::parallel),
              [&](OpBuilder &b, Location l, ValueRange a) {
                linalg::YieldOp::create(b, l, Value(arith::DivFOp::create(b, l, a[0], c)));
              })
              .getResult(0);
    }
    SmallVector<ReassociationIndices> re{{0}, {1}};
    for (int64_t i = 2; i < n; ++i)
      re.back().push_back(i);
    rewriter.replaceOp(op,
                       tensor::ExpandShapeOp::create(rewriter, loc, rt, y, re));
    return success();
  }
};

struct LRNLowering : OpConversionPattern<onnx::LRNOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::LRNOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getX();
    auto xt = staticType(x);
    auto rt = resultType(*getTypeConverter(), op);
    if (!xt || !rt || rt != xt || xt.getRank() < 2)
      return rewriter.notifyMatchFailure(op, "static shapes only");
    Type elem = xt.getElementType();
    if (!isa<FloatType>(elem))
      return rewriter.notifyMatchFailure(op, "float only");
    int64_t size = intAttrOr(op, "size", 0);
    if (size <= 0)
      return rewriter.notifyMatchFailure(op, "bad size");
    double alpha = floatAttrOr(op, "alpha", 1e-4), beta = floatAttrOr(op, "beta", 0.75),
           bias = floatAttrOr(op, "bias", 1.0);
    int64_t n = xt.getRank();
    int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
    SmallVector<int64_t> low(n, 0), high(n, 0);
    low[1] = lo;
    high[1] = hi;
    Value zero = scalarConstant(rewriter, loc, elem, 0);
    Value xp = padTensor(rewriter, loc, x, low, high, zero);
    // Loops (d0..d{n-1}, k): sum of squares over channels c..c+size-1 of xp.
    SmallVector<AffineExpr> xe, oe;
    for (int64_t i = 0; i < n; ++i) {
      xe.push_back(i == 1 ? dim(ctx, 1) + dim(ctx, n) : dim(ctx, i));
      oe.push_back(dim(ctx, i));
    }
    Value window = tensor::EmptyOp::create(rewriter, loc, SmallVector<int64_t>{size}, elem);
    SmallVector<AffineMap> maps{AffineMap::get(n + 1, 0, xe, ctx),
                                AffineMap::get(n + 1, 0, {dim(ctx, n)}, ctx),
                                AffineMap::get(n + 1, 0, oe, ctx)};
    SmallVector<IT> its(n, IT::parallel);
    its.push_back(IT::reduction);
    Value sq = linalg::GenericOp::create(
                   rewriter, loc, TypeRange{rt}, ValueRange{xp, window},
                   ValueRange{fill(rewriter, loc, rt, zero)}, maps, its,
                   [&](OpBuilder &b, Location l, ValueRange a) {
                     Value m = arith::MulFOp::create(b, l, a[0], a[0]);
                     linalg::YieldOp::create(b, l, Value(arith::AddFOp::create(b, l, a[2], m)));
                   })
                   .getResult(0);
    Value y = buildElementwise(
        rewriter, loc, rt, {x, sq},
        [&](OpBuilder &b, Location l, ValueRange a) -> Value {
          Value s = arith::MulFOp::create(
              b, l, a[1], scalarConstant(b, l, elem, alpha / size));
          s = arith::AddFOp::create(b, l, s, scalarConstant(b, l, elem, bias));
          s = math::PowFOp::create(b, l, s, scalarConstant(b, l, elem, beta));
          return arith::DivFOp::create(b, l, a[0], s);
        });
    rewriter.replaceOp(op, y);
    return success();
  }
};

struct MaxUnpoolLowering : OpConversionPattern<onnx::MaxUnpoolOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::MaxUnpoolOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getX(), ind = adaptor.getI();
    auto xt = staticType(x), indT = staticType(ind);
    auto rt = resultType(*getTypeConverter(), op);
    if (!xt || !indT || !rt || !rt.hasStaticShape() || xt.getRank() < 3 ||
        rt.getRank() != xt.getRank() || indT.getShape() != xt.getShape() ||
        !indT.getElementType().isInteger(64) ||
        rt.getElementType() != xt.getElementType() ||
        rt.getDimSize(0) != xt.getDimSize(0) ||
        rt.getDimSize(1) != xt.getDimSize(1))
      return rewriter.notifyMatchFailure(op, "static shapes only");
    int64_t n = xt.getRank(), r = n - 2;
    SmallVector<int64_t> kernel = intsAttr(op, "kernel_shape"),
                         strides = intsAttr(op, "strides"),
                         pads = intsAttr(op, "pads");
    if (strides.empty())
      strides.assign(r, 1);
    if (pads.empty())
      pads.assign(2 * r, 0);
    if ((int64_t)kernel.size() != r || (int64_t)strides.size() != r ||
        (int64_t)pads.size() != 2 * r ||
        llvm::any_of(strides, [](int64_t s) { return s <= 0; }) ||
        llvm::any_of(kernel, [](int64_t k) { return k <= 0; }))
      return rewriter.notifyMatchFailure(op, "bad attributes");
    Type elem = xt.getElementType();
    // Indices address the default unpooled shape; a larger output_shape pads
    // it with zeros at the end (as the ONNX reference does).
    SmallVector<int64_t> dflt;
    for (int64_t i = 0; i < r; ++i) {
      dflt.push_back((xt.getDimSize(2 + i) - 1) * strides[i] + kernel[i] -
                     pads[i] - pads[r + i]);
      if (dflt.back() <= 0)
        return rewriter.notifyMatchFailure(op, "bad attributes");
    }
    // Output position p gets X[q] where q*s - pad + k == p and I[q] == flat(p)
    // (the max pool that made I put each index inside its own window).
    int64_t loops = n + r;
    SmallVector<AffineExpr> we, oe;
    for (int64_t i = 0; i < n; ++i)
      oe.push_back(dim(ctx, i));
    for (int64_t i = 0; i < r; ++i)
      we.push_back(dim(ctx, n + i));
    Value window = tensor::EmptyOp::create(rewriter, loc, kernel, elem);
    Value zero = scalarConstant(rewriter, loc, elem, 0);
    SmallVector<IT> its(n, IT::parallel);
    its.append(r, IT::reduction);
    int64_t C = xt.getDimSize(1);
    auto g = linalg::GenericOp::create(
        rewriter, loc, TypeRange{rt}, ValueRange{window},
        ValueRange{fill(rewriter, loc, rt, zero)},
        SmallVector<AffineMap>{AffineMap::get(loops, 0, we, ctx),
                               AffineMap::get(loops, 0, oe, ctx)},
        its, [&](OpBuilder &b, Location l, ValueRange a) {
          auto index = [&](int64_t d) -> Value {
            return linalg::IndexOp::create(b, l, d);
          };
          Value cZero = idx(b, l, 0);
          Value valid = arith::ConstantOp::create(b, l, b.getBoolAttr(true));
          SmallVector<Value> q{index(0), index(1)};
          Value flat = arith::AddIOp::create(
              b, l, arith::MulIOp::create(b, l, index(0), idx(b, l, C)),
              index(1));
          for (int64_t i = 0; i < r; ++i) {
            Value p = index(2 + i);
            flat = arith::AddIOp::create(
                b, l, arith::MulIOp::create(b, l, flat, idx(b, l, dflt[i])), p);
            valid = arith::AndIOp::create(
                b, l, valid,
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, p,
                                      idx(b, l, dflt[i])));
            Value t = arith::SubIOp::create(
                b, l, arith::AddIOp::create(b, l, p, idx(b, l, pads[i])),
                index(n + i));
            Value s = idx(b, l, strides[i]);
            Value qi = arith::DivSIOp::create(b, l, t, s);
            Value rem = arith::RemSIOp::create(b, l, t, s);
            Value ok = arith::AndIOp::create(
                b, l,
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, t, cZero),
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, rem, cZero));
            ok = arith::AndIOp::create(
                b, l, ok,
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, qi,
                                      idx(b, l, xt.getDimSize(2 + i))));
            valid = arith::AndIOp::create(b, l, valid, ok);
            q.push_back(arith::SelectOp::create(b, l, ok, qi, cZero));
          }
          Value iv = tensor::ExtractOp::create(b, l, ind, q);
          Value flat64 = arith::IndexCastOp::create(b, l, b.getI64Type(), flat);
          Value hit = arith::AndIOp::create(
              b, l, valid,
              arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, iv, flat64));
          Value xv = tensor::ExtractOp::create(b, l, x, q);
          linalg::YieldOp::create(b, l, Value(arith::SelectOp::create(b, l, hit, xv, a[1])));
        });
    rewriter.replaceOp(op, g.getResult(0));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Resize
//===----------------------------------------------------------------------===//

struct ResizeLowering : OpConversionPattern<onnx::ResizeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ResizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getX(), roi = adaptor.getRoi(),
          scales = adaptor.getScales(), sizes = adaptor.getSizes();
    auto xt = staticType(x);
    auto rt = resultType(*getTypeConverter(), op);
    if (!xt || !rt || !rt.hasStaticShape() || rt.getRank() != xt.getRank() ||
        rt.getElementType() != xt.getElementType())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    Type elem = xt.getElementType();
    int64_t n = xt.getRank();
    std::string mode = attrStr(op, "mode", "nearest");
    std::string ctm =
        attrStr(op, "coordinate_transformation_mode", "half_pixel");
    std::string nearestMode = attrStr(op, "nearest_mode", "round_prefer_floor");
    double cubicA = floatAttrOr(op, "cubic_coeff_a", -0.75);
    bool excludeOutside = intAttrOr(op, "exclude_outside", 0) != 0;
    double extrapolation = floatAttrOr(op, "extrapolation_value", 0.0);
    if (mode != "nearest" && mode != "linear" && mode != "cubic")
      return rewriter.notifyMatchFailure(op, "unsupported mode");
    if (mode != "nearest" && !isa<FloatType>(elem))
      return rewriter.notifyMatchFailure(op, "linear/cubic need floats");
    if (mode == "nearest" && nearestMode != "round_prefer_floor" &&
        nearestMode != "round_prefer_ceil" && nearestMode != "floor" &&
        nearestMode != "ceil")
      return rewriter.notifyMatchFailure(op, "unsupported nearest_mode");
    if (ctm != "half_pixel" && ctm != "pytorch_half_pixel" &&
        ctm != "align_corners" && ctm != "asymmetric" &&
        ctm != "tf_half_pixel_for_nn" && ctm != "tf_crop_and_resize")
      return rewriter.notifyMatchFailure(op, "unsupported coordinate mode");
    bool crop = ctm == "tf_crop_and_resize";
    auto numel = [](Value v) -> int64_t {
      auto t = staticType(v);
      return t ? t.getNumElements() : -1;
    };
    bool haveSizes = !isNone(sizes) && numel(sizes) != 0;
    bool haveScales = !isNone(scales) && numel(scales) != 0;
    if (haveSizes && numel(sizes) != n)
      return rewriter.notifyMatchFailure(op, "bad sizes");
    if (!haveSizes && (!haveScales || numel(scales) != n ||
                       !isa<FloatType>(getElementTypeOrSelf(scales.getType()))))
      return rewriter.notifyMatchFailure(op, "needs scales or sizes");
    if (crop && (isNone(roi) || numel(roi) != 2 * n ||
                 !isa<FloatType>(getElementTypeOrSelf(roi.getType()))))
      return rewriter.notifyMatchFailure(op, "tf_crop_and_resize needs roi");
    std::optional<SmallVector<double>> constScales;
    if (!haveSizes)
      constScales = constantFloats(scales);
    Type f64 = rewriter.getF64Type();
    auto readF64 = [&](Value t, int64_t i) -> Value {
      Value v = tensor::ExtractOp::create(rewriter, loc, t, ValueRange{idx(rewriter, loc, i)});
      return castScalar(rewriter, loc, v, f64, false, false);
    };
    // Per dim: the scale (f64 value, read before the generic) or identity.
    SmallVector<Value> scaleV(n), roiStart(n), roiEnd(n);
    SmallVector<bool> resized(n, false);
    for (int64_t i = 0; i < n; ++i) {
      int64_t in = xt.getDimSize(i), out = rt.getDimSize(i);
      std::optional<double> s;
      if (haveSizes)
        s = (double)out / (double)in;
      else if (constScales)
        s = (*constScales)[i];
      // A dim keeps its coordinates when its size (and a known scale) is 1:1.
      resized[i] = crop || in != out || (s && *s != 1.0);
      if (!resized[i])
        continue;
      scaleV[i] = s ? arith::ConstantOp::create(rewriter, loc,
                                                rewriter.getF64FloatAttr(*s))
                          .getResult()
                    : readF64(scales, i);
      if (crop) {
        roiStart[i] = readF64(roi, i);
        roiEnd[i] = readF64(roi, n + i);
      }
    }
    Value init = tensor::EmptyOp::create(rewriter, loc, rt.getShape(), elem);
    auto g = linalg::GenericOp::create(
        rewriter, loc, TypeRange{rt}, ValueRange{}, ValueRange{init},
        SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(n, ctx)},
        SmallVector<IT>(n, IT::parallel),
        [&](OpBuilder &b, Location l, ValueRange) {
          auto cf = [&](double v) -> Value {
            return arith::ConstantOp::create(b, l, b.getF64FloatAttr(v));
          };
          auto add = [&](Value a, Value c) -> Value {
            return arith::AddFOp::create(b, l, a, c);
          };
          auto sub = [&](Value a, Value c) -> Value {
            return arith::SubFOp::create(b, l, a, c);
          };
          auto mul = [&](Value a, Value c) -> Value {
            return arith::MulFOp::create(b, l, a, c);
          };
          auto div = [&](Value a, Value c) -> Value {
            return arith::DivFOp::create(b, l, a, c);
          };
          auto sel = [&](Value c, Value a, Value d) -> Value {
            return arith::SelectOp::create(b, l, c, a, d);
          };
          auto cmp = [&](arith::CmpFPredicate p, Value a, Value c) -> Value {
            return arith::CmpFOp::create(b, l, p, a, c);
          };
          Type i64 = b.getI64Type();
          Value outside;
          // Per dim: taps (index, weight).
          SmallVector<SmallVector<std::pair<Value, Value>>> taps(n);
          for (int64_t i = 0; i < n; ++i) {
            Value o = linalg::IndexOp::create(b, l, i);
            if (!resized[i]) {
              taps[i].push_back({o, Value()});
              continue;
            }
            int64_t in = xt.getDimSize(i);
            Value xf = arith::SIToFPOp::create(
                b, l, f64, arith::IndexCastOp::create(b, l, i64, o));
            Value scale = scaleV[i];
            Value outW = mul(scale, cf((double)in));
            Value isOne = cmp(arith::CmpFPredicate::OEQ, outW, cf(1.0));
            Value xo;
            if (ctm == "half_pixel") {
              xo = sub(div(add(xf, cf(0.5)), scale), cf(0.5));
            } else if (ctm == "pytorch_half_pixel") {
              xo = sel(isOne, cf(-0.5), sub(div(add(xf, cf(0.5)), scale), cf(0.5)));
            } else if (ctm == "align_corners") {
              xo = sel(isOne, cf(0.0),
                       div(mul(xf, cf((double)(in - 1))), sub(outW, cf(1.0))));
            } else if (ctm == "asymmetric") {
              xo = div(xf, scale);
            } else if (ctm == "tf_half_pixel_for_nn") {
              xo = div(add(xf, cf(0.5)), scale);
            } else { // tf_crop_and_resize
              Value extent = mul(sub(roiEnd[i], roiStart[i]), cf((double)(in - 1)));
              xo = sel(isOne, div(extent, cf(2.0)),
                       div(mul(xf, extent), sub(outW, cf(1.0))));
              xo = add(xo, mul(roiStart[i], cf((double)(in - 1))));
              Value oob = arith::OrIOp::create(
                  b, l, cmp(arith::CmpFPredicate::OLT, xo, cf(0.0)),
                  cmp(arith::CmpFPredicate::OGT, xo, cf((double)(in - 1))));
              outside = outside ? arith::OrIOp::create(b, l, outside, oob).getResult()
                                : oob;
            }
            Value x0 = math::FloorOp::create(b, l, xo);
            Value ratio = sub(xo, x0);
            Value x0i = arith::FPToSIOp::create(b, l, i64, x0);
            auto clampIdx = [&](Value v) -> Value {
              v = arith::MaxSIOp::create(
                  b, l, v, arith::ConstantOp::create(b, l, b.getI64IntegerAttr(0)));
              v = arith::MinSIOp::create(
                  b, l, v,
                  arith::ConstantOp::create(b, l, b.getI64IntegerAttr(in - 1)));
              return arith::IndexCastOp::create(b, l, b.getIndexType(), v);
            };
            auto plus = [&](Value v, int64_t k) -> Value {
              return arith::AddIOp::create(
                  b, l, v, arith::ConstantOp::create(b, l, b.getI64IntegerAttr(k)));
            };
            if (mode == "nearest") {
              Value up;
              if (nearestMode == "round_prefer_floor")
                up = cmp(arith::CmpFPredicate::OGT, ratio, cf(0.5));
              else if (nearestMode == "round_prefer_ceil")
                up = cmp(arith::CmpFPredicate::OGE, ratio, cf(0.5));
              else if (nearestMode == "floor")
                up = arith::ConstantOp::create(b, l, b.getBoolAttr(false));
              else
                up = cmp(arith::CmpFPredicate::OGT, ratio, cf(0.0));
              Value pick = arith::SelectOp::create(b, l, up, plus(x0i, 1), x0i);
              taps[i].push_back({clampIdx(pick), Value()});
            } else if (mode == "linear") {
              taps[i].push_back({clampIdx(x0i), sub(cf(1.0), ratio)});
              taps[i].push_back({clampIdx(plus(x0i, 1)), ratio});
            } else {
              double A = cubicA;
              Value r1 = add(ratio, cf(1.0));
              Value q = sub(cf(1.0), ratio);
              Value q1 = add(q, cf(1.0));
              SmallVector<Value> c(4);
              // ((A*(t) - 5A)*t + 8A)*t - 4A for t in (1, 2)
              auto far = [&](Value t) {
                return sub(mul(add(mul(sub(mul(cf(A), t), cf(5 * A)), t), cf(8 * A)), t),
                           cf(4 * A));
              };
              // ((A+2)*t - (A+3))*t*t + 1 for t in [0, 1]
              auto near = [&](Value t) {
                return add(mul(mul(sub(mul(cf(A + 2), t), cf(A + 3)), t), t), cf(1.0));
              };
              c[0] = far(r1);
              c[1] = near(ratio);
              c[2] = near(q);
              c[3] = far(q1);
              if (excludeOutside) {
                Value sum = cf(0.0);
                for (int64_t j = 0; j < 4; ++j) {
                  Value pos = plus(x0i, j - 1);
                  Value inR = arith::AndIOp::create(
                      b, l,
                      arith::CmpIOp::create(
                          b, l, arith::CmpIPredicate::sge, pos,
                          arith::ConstantOp::create(b, l, b.getI64IntegerAttr(0))),
                      arith::CmpIOp::create(
                          b, l, arith::CmpIPredicate::slt, pos,
                          arith::ConstantOp::create(b, l, b.getI64IntegerAttr(in))));
                  c[j] = sel(inR, c[j], cf(0.0));
                  sum = add(sum, c[j]);
                }
                for (int64_t j = 0; j < 4; ++j)
                  c[j] = div(c[j], sum);
              }
              for (int64_t j = 0; j < 4; ++j)
                taps[i].push_back({clampIdx(plus(x0i, j - 1)), c[j]});
            }
          }
          // Sum over the tap combinations.
          SmallVector<int64_t> pos(n, 0);
          Value acc;
          while (true) {
            SmallVector<Value> ids;
            Value w;
            for (int64_t i = 0; i < n; ++i) {
              auto [iv, wv] = taps[i][pos[i]];
              ids.push_back(iv);
              if (wv)
                w = w ? mul(w, wv) : wv;
            }
            Value v = tensor::ExtractOp::create(b, l, x, ids);
            if (mode == "nearest" || !w) {
              acc = v;
            } else {
              Value term = mul(castScalar(b, l, v, f64, false, false), w);
              acc = acc ? add(acc, term) : term;
            }
            int64_t i = n - 1;
            while (i >= 0 && ++pos[i] == (int64_t)taps[i].size())
              pos[i--] = 0;
            if (i < 0)
              break;
          }
          Value result = acc;
          if (result.getType() != elem)
            result = castScalar(b, l, result, elem, false, false);
          if (outside)
            result = sel(outside, scalarConstant(b, l, elem, extrapolation), result);
          linalg::YieldOp::create(b, l, result);
        });
    rewriter.replaceOp(op, g.getResult(0));
    return success();
  }
};

} // namespace

void populateOnnxConvPoolPatterns(RewritePatternSet &patterns,
                                  const TypeConverter &converter) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<ConvLowering, ConvIntegerLowering, ConvTransposeLowering,
               MaxPoolLowering, SumPoolLowering<onnx::AveragePoolOp>,
               SumPoolLowering<onnx::LpPoolOp>,
               GlobalPoolLowering<onnx::GlobalAveragePoolOp, false>,
               GlobalPoolLowering<onnx::GlobalMaxPoolOp, true>, LRNLowering,
               MaxUnpoolLowering, ResizeLowering>(converter, ctx);
}

} // namespace kiln
