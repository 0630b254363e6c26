//===- Signal.cpp - onnx signal / sampling ops -> linalg -------------------===//
//
// GridSample and RoiAlign are one linalg.generic over the output whose body
// reads the input with tensor.extract at computed coordinates (RoiAlign's
// sampling grid is an scf.for nest inside the body, its size can depend on
// the ROI). DFT and STFT are direct O(n^2) transforms: a linalg.generic with
// one reduction dimension over the samples, accumulated in f64, followed by
// an elementwise scale/truncation. MelWeightMatrix evaluates the triangle
// filters per output element; its sizes come from the static result type
// and its scalar inputs are read with tensor.extract.
//
//===----------------------------------------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/AffineMap.h"

#include <cmath>

using namespace mlir;

namespace kiln {
namespace {

Value cidx(OpBuilder &b, Location l, int64_t v) {
  return arith::ConstantIndexOp::create(b, l, v);
}

/// Float helpers bound to one builder/location/type.
struct F {
  OpBuilder &b;
  Location l;
  Type t;
  Value c(double v) const { return scalarConstant(b, l, t, v); }
  Value add(Value x, Value y) const { return arith::AddFOp::create(b, l, x, y); }
  Value sub(Value x, Value y) const { return arith::SubFOp::create(b, l, x, y); }
  Value mul(Value x, Value y) const { return arith::MulFOp::create(b, l, x, y); }
  Value div(Value x, Value y) const { return arith::DivFOp::create(b, l, x, y); }
  Value floor(Value x) const { return math::FloorOp::create(b, l, x); }
  Value lt(Value x, Value y) const {
    return arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, x, y);
  }
  Value gt(Value x, Value y) const {
    return arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, x, y);
  }
  Value ge(Value x, Value y) const {
    return arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGE, x, y);
  }
  Value eq(Value x, Value y) const {
    return arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, x, y);
  }
  Value sel(Value c, Value x, Value y) const {
    return arith::SelectOp::create(b, l, c, x, y);
  }
  Value max(Value x, Value y) const { return arith::MaximumFOp::create(b, l, x, y); }
  Value min(Value x, Value y) const { return arith::MinimumFOp::create(b, l, x, y); }
  Value and_(Value x, Value y) const { return arith::AndIOp::create(b, l, x, y); }
  Value or_(Value x, Value y) const { return arith::OrIOp::create(b, l, x, y); }
  /// Float -> index, truncating toward zero.
  Value toIndex(Value x) const {
    Value i = arith::FPToSIOp::create(b, l, b.getI64Type(), x);
    return arith::IndexCastOp::create(b, l, b.getIndexType(), i);
  }
  Value fromIndex(Value i) const {
    Value v = arith::IndexCastOp::create(b, l, b.getI64Type(), i);
    return arith::SIToFPOp::create(b, l, t, v);
  }
  Value fromInt(Value i) const {
    if (i.getType().isIndex())
      return fromIndex(i);
    return arith::SIToFPOp::create(b, l, t, i);
  }
};

Value clampIndex(OpBuilder &b, Location l, Value i, int64_t hi) {
  i = arith::MaxSIOp::create(b, l, i, cidx(b, l, 0));
  return arith::MinSIOp::create(b, l, i, cidx(b, l, hi));
}

/// Reads a scalar (rank 0 or one-element) tensor.
Value scalarOf(OpBuilder &b, Location l, Value t) {
  auto type = cast<RankedTensorType>(t.getType());
  SmallVector<Value> zeros(type.getRank(), cidx(b, l, 0));
  return tensor::ExtractOp::create(b, l, t, zeros);
}

bool isScalarTensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.hasStaticShape() && t.getNumElements() == 1;
}

/// Integer scalar (any width, signedness from `orig`) -> i64.
Value toI64(OpBuilder &b, Location l, Value v, bool isUnsigned) {
  return castScalar(b, l, v, b.getI64Type(), isUnsigned, false);
}

/// Floating compute type for an element type (f16/bf16 go through f32).
Type computeType(OpBuilder &b, Type et) {
  return et.isF64() ? Type(b.getF64Type()) : Type(b.getF32Type());
}

//===----------------------------------------------------------------------===//
// GridSample
//===----------------------------------------------------------------------===//

/// ONNX's reflection of x into [lo, hi] (float borders).
Value reflect(const F &f, Value x, Value lo, Value hi) {
  Value rng = f.sub(hi, lo);
  auto part = [&](Value dx, Value evenBase, Value oddBase, bool evenAdds) {
    Value n = f.floor(f.div(dx, rng));
    Value r = f.sub(dx, f.mul(n, rng));
    Value half = f.floor(f.mul(n, f.c(0.5)));
    Value even = f.eq(f.sub(n, f.mul(half, f.c(2))), f.c(0));
    Value ev = evenAdds ? f.add(evenBase, r) : f.sub(evenBase, r);
    Value od = evenAdds ? f.sub(oddBase, r) : f.add(oddBase, r);
    return f.sel(even, ev, od);
  };
  Value below = part(f.sub(lo, x), lo, hi, true);
  Value above = part(f.sub(x, hi), hi, lo, false);
  Value r = f.sel(f.lt(x, lo), below, f.sel(f.gt(x, hi), above, x));
  // A degenerate range reflects everything onto the border.
  return f.sel(f.eq(rng, f.c(0)), lo, r);
}

struct GridSampleLowering : OpConversionPattern<onnx::GridSampleOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::GridSampleOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value X = adaptor.getX(), grid = adaptor.getGrid();
    auto xT = dyn_cast<RankedTensorType>(X.getType());
    auto gT = dyn_cast<RankedTensorType>(grid.getType());
    auto outT = resultType(*getTypeConverter(), op);
    if (!xT || !gT || !outT || xT.getRank() != 4 || gT.getRank() != 4 ||
        outT.getRank() != 4 || !xT.hasStaticShape() || !gT.hasStaticShape() ||
        !outT.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static 4-D (2 spatial dims) only");
    if (!isa<FloatType>(xT.getElementType()) || !isa<FloatType>(gT.getElementType()))
      return rewriter.notifyMatchFailure(op, "float types only");
    if (gT.getDimSize(3) != 2 || gT.getDimSize(0) != xT.getDimSize(0) ||
        outT.getDimSize(0) != xT.getDimSize(0) ||
        outT.getDimSize(1) != xT.getDimSize(1) ||
        outT.getDimSize(2) != gT.getDimSize(1) ||
        outT.getDimSize(3) != gT.getDimSize(2))
      return rewriter.notifyMatchFailure(op, "shape mismatch");
    StringRef mode = op.getMode_();
    StringRef pad = op.getPaddingMode();
    int kind = mode == "bilinear" || mode == "linear" ? 0
               : mode == "nearest"                    ? 1
               : mode == "bicubic" || mode == "cubic" ? 2
                                                      : -1;
    if (kind < 0)
      return rewriter.notifyMatchFailure(op, "unknown mode");
    int padKind = pad == "zeros" ? 0 : pad == "border" ? 1 : pad == "reflection" ? 2 : -1;
    if (padKind < 0)
      return rewriter.notifyMatchFailure(op, "unknown padding_mode");
    bool alignCorners = op.getAlignCorners() != 0;
    int64_t Hin = xT.getDimSize(2), Win = xT.getDimSize(3);
    if (Hin == 0 || Win == 0)
      return rewriter.notifyMatchFailure(op, "empty input");

    MLIRContext *ctx = getContext();
    auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
    auto c0 = getAffineConstantExpr(0, ctx), c1 = getAffineConstantExpr(1, ctx);
    SmallVector<AffineMap> maps{AffineMap::get(4, 0, {d(0), d(2), d(3), c0}, ctx),
                                AffineMap::get(4, 0, {d(0), d(2), d(3), c1}, ctx),
                                AffineMap::getMultiDimIdentityMap(4, ctx)};
    SmallVector<utils::IteratorType> its(4, utils::IteratorType::parallel);
    Value init = tensor::EmptyOp::create(rewriter, loc, outT.getShape(),
                                         outT.getElementType());
    Type ct = computeType(rewriter, xT.getElementType());
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{outT}, ValueRange{grid, grid}, ValueRange{init},
        maps, its, [&](OpBuilder &b, Location l, ValueRange a) {
          F f{b, l, ct};
          Value n = linalg::IndexOp::create(b, l, 0);
          Value c = linalg::IndexOp::create(b, l, 1);
          Value gx = castScalar(b, l, a[0], ct, false, false);
          Value gy = castScalar(b, l, a[1], ct, false, false);
          auto denorm = [&](Value v, int64_t len) -> Value {
            Value v1 = f.add(v, f.c(1));
            if (alignCorners)
              return f.mul(f.mul(v1, f.c(0.5)), f.c(len - 1));
            return f.mul(f.sub(f.mul(v1, f.c(len)), f.c(1)), f.c(0.5));
          };
          double xmin = alignCorners ? 0 : -0.5, xmax = alignCorners ? Win - 1 : Win - 0.5;
          double ymin = alignCorners ? 0 : -0.5, ymax = alignCorners ? Hin - 1 : Hin - 0.5;
          Value x = denorm(gx, Win), y = denorm(gy, Hin);
          if (kind == 1) {
            // np.rint: round half to even.
            auto rint = [&](Value v) -> Value {
              Value r = f.floor(f.add(v, f.c(0.5)));
              Value tie = f.eq(f.sub(r, v), f.c(0.5));
              Value half = f.floor(f.mul(r, f.c(0.5)));
              Value odd = f.eq(f.sub(r, f.mul(half, f.c(2))), f.c(1));
              return f.sel(f.and_(tie, odd), f.sub(r, f.c(1)), r);
            };
            x = rint(x);
            y = rint(y);
          }
          auto fixCoord = [&](Value v, double lo, double hi, int64_t len) -> Value {
            if (padKind == 0)
              return v;
            Value out = f.or_(f.lt(v, f.c(lo)), f.gt(v, f.c(hi)));
            Value fixed = padKind == 1 ? f.min(f.max(v, f.c(0)), f.c(len - 1))
                                       : reflect(f, v, f.c(lo), f.c(hi));
            return f.sel(out, fixed, v);
          };
          x = fixCoord(x, xmin, xmax, Win);
          y = fixCoord(y, ymin, ymax, Hin);
          // One pixel at integral float coordinates, with padding.
          Value zero = f.c(0);
          auto pixel = [&](Value py, Value px) -> Value {
            Value valid;
            auto index = [&](Value p, double lo, double hi, int64_t len) -> Value {
              if (padKind == 1)
                p = f.min(f.max(p, f.c(0)), f.c(len - 1));
              else if (padKind == 2)
                p = reflect(f, p, f.c(lo), f.c(hi));
              return clampIndex(b, l, f.toIndex(p), len - 1);
            };
            if (padKind == 0)
              valid = f.and_(f.and_(f.ge(px, f.c(0)), f.lt(px, f.c(Win))),
                             f.and_(f.ge(py, f.c(0)), f.lt(py, f.c(Hin))));
            Value iy = index(py, ymin, ymax, Hin), ix = index(px, xmin, xmax, Win);
            Value v = tensor::ExtractOp::create(b, l, X, ValueRange{n, c, iy, ix});
            v = castScalar(b, l, v, ct, false, false);
            return valid ? f.sel(valid, v, zero) : v;
          };
          Value result;
          if (kind == 1) {
            // astype(int32) truncates toward zero.
            Value tx = arith::FPToSIOp::create(b, l, b.getI64Type(), x);
            Value ty = arith::FPToSIOp::create(b, l, b.getI64Type(), y);
            result = pixel(arith::SIToFPOp::create(b, l, ct, ty),
                           arith::SIToFPOp::create(b, l, ct, tx));
          } else {
            Value x0 = f.floor(x), y0 = f.floor(y);
            Value fx = f.sub(x, x0), fy = f.sub(y, y0);
            SmallVector<Value> wx, wy;
            int64_t first, count;
            if (kind == 0) {
              wx = {f.sub(f.c(1), fx), fx};
              wy = {f.sub(f.c(1), fy), fy};
              first = 0;
              count = 2;
            } else {
              auto cubic = [&](Value t) -> SmallVector<Value> {
                const double A = -0.75;
                Value t1 = f.add(t, f.c(1)), s1 = f.sub(f.c(1), t),
                      s2 = f.sub(f.c(2), t);
                auto outer = [&](Value z) {
                  // ((A z - 5A) z + 8A) z - 4A
                  Value p = f.sub(f.mul(f.c(A), z), f.c(5 * A));
                  p = f.add(f.mul(p, z), f.c(8 * A));
                  return f.sub(f.mul(p, z), f.c(4 * A));
                };
                auto inner = [&](Value z) {
                  // ((A + 2) z - (A + 3)) z z + 1
                  Value p = f.sub(f.mul(f.c(A + 2), z), f.c(A + 3));
                  return f.add(f.mul(f.mul(p, z), z), f.c(1));
                };
                return {outer(t1), inner(t), inner(s1), outer(s2)};
              };
              wx = cubic(fx);
              wy = cubic(fy);
              first = -1;
              count = 4;
            }
            result = f.c(0);
            for (int64_t i = 0; i < count; ++i) {
              Value py = f.add(y0, f.c(first + i));
              Value row = f.c(0);
              for (int64_t j = 0; j < count; ++j) {
                Value px = f.add(x0, f.c(first + j));
                row = f.add(row, f.mul(wx[j], pixel(py, px)));
              }
              result = f.add(result, f.mul(wy[i], row));
            }
          }
          result = castScalar(b, l, result, outT.getElementType(), false, false);
          linalg::YieldOp::create(b, l, result);
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// RoiAlign
//===----------------------------------------------------------------------===//

struct RoiAlignLowering : OpConversionPattern<onnx::RoiAlignOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::RoiAlignOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value X = adaptor.getX(), rois = adaptor.getRois(), bidx = adaptor.getBatchIndices();
    auto xT = dyn_cast<RankedTensorType>(X.getType());
    auto rT = dyn_cast<RankedTensorType>(rois.getType());
    auto bT = dyn_cast<RankedTensorType>(bidx.getType());
    auto outT = resultType(*getTypeConverter(), op);
    if (!xT || !rT || !bT || !outT || xT.getRank() != 4 || rT.getRank() != 2 ||
        bT.getRank() != 1 || outT.getRank() != 4 || !xT.hasStaticShape() ||
        !rT.hasStaticShape() || !bT.hasStaticShape() || !outT.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    if (!isa<FloatType>(xT.getElementType()) || !isa<FloatType>(rT.getElementType()) ||
        !isa<IntegerType>(bT.getElementType()))
      return rewriter.notifyMatchFailure(op, "unsupported element types");
    int64_t PH = op.getOutputHeight(), PW = op.getOutputWidth();
    int64_t ratio = op.getSamplingRatio();
    int64_t N = xT.getDimSize(0), Hh = xT.getDimSize(2), Ww = xT.getDimSize(3);
    if (rT.getDimSize(1) != 4 || rT.getDimSize(0) != bT.getDimSize(0) ||
        outT.getShape() != ArrayRef<int64_t>{rT.getDimSize(0), xT.getDimSize(1), PH, PW} ||
        PH <= 0 || PW <= 0 || ratio < 0 || N == 0 || Hh == 0 || Ww == 0)
      return rewriter.notifyMatchFailure(op, "shape mismatch");
    StringRef mode = op.getMode_();
    if (mode != "avg" && mode != "max")
      return rewriter.notifyMatchFailure(op, "unknown mode");
    bool isMax = mode == "max";
    StringRef ctm = op.getCoordinateTransformationMode();
    if (ctm != "half_pixel" && ctm != "output_half_pixel")
      return rewriter.notifyMatchFailure(op, "unknown coordinate_transformation_mode");
    bool halfPixel = ctm == "half_pixel";
    double scale = op.getSpatialScale().convertToDouble();
    bool bUnsigned = isUnsignedOnnx(op.getBatchIndices());

    MLIRContext *ctx = getContext();
    SmallVector<AffineMap> maps{AffineMap::getMultiDimIdentityMap(4, ctx)};
    SmallVector<utils::IteratorType> its(4, utils::IteratorType::parallel);
    Value init = tensor::EmptyOp::create(rewriter, loc, outT.getShape(),
                                         outT.getElementType());
    Type ct = rewriter.getF64Type();
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{outT}, ValueRange{}, ValueRange{init}, maps, its,
        [&](OpBuilder &b, Location l, ValueRange) {
          F f{b, l, ct};
          Value r = linalg::IndexOp::create(b, l, 0);
          Value c = linalg::IndexOp::create(b, l, 1);
          Value ph = f.fromIndex(linalg::IndexOp::create(b, l, 2));
          Value pw = f.fromIndex(linalg::IndexOp::create(b, l, 3));
          auto roi = [&](int64_t k) {
            Value v = tensor::ExtractOp::create(b, l, rois, ValueRange{r, cidx(b, l, k)});
            v = castScalar(b, l, v, ct, false, false);
            return f.sub(f.mul(v, f.c(scale)), f.c(halfPixel ? 0.5 : 0.0));
          };
          Value bi = tensor::ExtractOp::create(b, l, bidx, ValueRange{r});
          bi = arith::IndexCastOp::create(b, l, b.getIndexType(),
                                          toI64(b, l, bi, bUnsigned));
          bi = clampIndex(b, l, bi, N - 1);
          Value sw = roi(0), sh = roi(1), ew = roi(2), eh = roi(3);
          Value rw = f.sub(ew, sw), rh = f.sub(eh, sh);
          if (!halfPixel) {
            rw = f.max(rw, f.c(1));
            rh = f.max(rh, f.c(1));
          }
          Value binH = f.div(rh, f.c(PH)), binW = f.div(rw, f.c(PW));
          Value gridH, gridW;
          if (ratio > 0) {
            gridH = cidx(b, l, ratio);
            gridW = cidx(b, l, ratio);
          } else {
            gridH = f.toIndex(math::CeilOp::create(b, l, binH));
            gridW = f.toIndex(math::CeilOp::create(b, l, binW));
            gridH = arith::MaxSIOp::create(b, l, gridH, cidx(b, l, 0));
            gridW = arith::MaxSIOp::create(b, l, gridW, cidx(b, l, 0));
          }
          Value gridHf = f.fromIndex(gridH), gridWf = f.fromIndex(gridW);
          Value count = f.max(f.mul(gridHf, gridWf), f.c(1));
          Value baseY = f.add(sh, f.mul(ph, binH));
          Value baseX = f.add(sw, f.mul(pw, binW));
          Value falseV = arith::ConstantIntOp::create(b, l, 0, 1);
          Value zi = cidx(b, l, 0), oi = cidx(b, l, 1);
          auto outer = scf::ForOp::create(
              b, l, zi, gridH, oi, ValueRange{f.c(0), falseV},
              [&](OpBuilder &ob, Location ol, Value iy, ValueRange oacc) {
                F g{ob, ol, ct};
                Value yy = g.add(baseY, g.div(g.mul(g.add(g.fromIndex(iy), g.c(0.5)), binH),
                                              gridHf));
                auto inner = scf::ForOp::create(
                    ob, ol, zi, gridW, oi, oacc,
                    [&](OpBuilder &ib, Location il, Value ix, ValueRange acc) {
                      F h{ib, il, ct};
                      Value xx = h.add(baseX,
                                       h.div(h.mul(h.add(h.fromIndex(ix), h.c(0.5)), binW),
                                             gridWf));
                      Value outside = h.or_(h.or_(h.lt(yy, h.c(-1)), h.gt(yy, h.c(Hh))),
                                            h.or_(h.lt(xx, h.c(-1)), h.gt(xx, h.c(Ww))));
                      auto axis = [&](Value v, int64_t size, Value &lo, Value &hi,
                                      Value &frac) {
                        v = h.max(v, h.c(0));
                        Value lowF = h.floor(v); // v >= 0: int() == floor
                        Value atEnd = h.ge(lowF, h.c(size - 1));
                        lowF = h.sel(atEnd, h.c(size - 1), lowF);
                        v = h.sel(atEnd, lowF, v);
                        lo = clampIndex(ib, il, h.toIndex(lowF), size - 1);
                        hi = h.sel(atEnd, lo, clampIndex(ib, il,
                                                         arith::AddIOp::create(ib, il, lo, cidx(ib, il, 1)),
                                                         size - 1));
                        frac = h.sub(v, lowF);
                      };
                      Value yl, yh, ly, xl, xh, lx;
                      axis(yy, Hh, yl, yh, ly);
                      axis(xx, Ww, xl, xh, lx);
                      Value hy = h.sub(h.c(1), ly), hx = h.sub(h.c(1), lx);
                      auto at = [&](Value yi, Value xi) {
                        Value v = tensor::ExtractOp::create(ib, il, X, ValueRange{bi, c, yi, xi});
                        return castScalar(ib, il, v, ct, false, false);
                      };
                      Value t1 = h.mul(h.mul(hy, hx), at(yl, xl));
                      Value t2 = h.mul(h.mul(hy, lx), at(yl, xh));
                      Value t3 = h.mul(h.mul(ly, hx), at(yh, xl));
                      Value t4 = h.mul(h.mul(ly, lx), at(yh, xh));
                      Value val;
                      if (isMax)
                        val = h.max(h.max(t1, t2), h.max(t3, t4));
                      else
                        val = h.add(h.add(t1, t2), h.add(t3, t4));
                      val = h.sel(outside, h.c(0), val);
                      Value next;
                      if (isMax)
                        next = h.sel(acc[1], h.max(acc[0], val), val);
                      else
                        next = h.add(acc[0], val);
                      Value trueV = arith::ConstantIntOp::create(ib, il, 1, 1);
                      scf::YieldOp::create(ib, il, ValueRange{next, trueV});
                    });
                scf::YieldOp::create(ob, ol, inner.getResults());
              });
          Value res = outer.getResult(0);
          if (!isMax)
            res = f.div(res, count);
          res = castScalar(b, l, res, outT.getElementType(), false, false);
          linalg::YieldOp::create(b, l, res);
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// DFT and STFT
//===----------------------------------------------------------------------===//

/// exp(sign * 2 pi i * ((k n) mod L) / L) as (cos, sin) of the angle, with k,
/// n, L as index values.
std::pair<Value, Value> twiddle(const F &f, Value k, Value n, Value L, double sign) {
  OpBuilder &b = f.b;
  Location l = f.l;
  Value kn = arith::MulIOp::create(b, l, k, n);
  Value safeL = arith::MaxSIOp::create(b, l, L, cidx(b, l, 1));
  Value m = arith::RemUIOp::create(b, l, kn, safeL);
  Value ang = f.div(f.mul(f.c(sign * 2 * M_PI), f.fromIndex(m)), f.fromIndex(safeL));
  return {math::CosOp::create(b, l, ang), math::SinOp::create(b, l, ang)};
}

/// (xr + i xi) * (cr + i ci) component `comp` (0 real, 1 imaginary).
Value complexMulPart(const F &f, Value xr, Value xi, Value cr, Value ci, Value comp) {
  Value re = f.sub(f.mul(xr, cr), xi ? f.mul(xi, ci) : f.c(0));
  Value im = f.add(f.mul(xr, ci), xi ? f.mul(xi, cr) : f.c(0));
  Value isRe = arith::CmpIOp::create(f.b, f.l, arith::CmpIPredicate::eq, comp,
                                     cidx(f.b, f.l, 0));
  return f.sel(isRe, re, im);
}

/// An index value for a length operand: the constant, or a runtime read, or
/// `dflt` when absent.
Value lengthValue(OpBuilder &b, Location l, Value orig, Value converted, int64_t dflt) {
  if (isNone(converted))
    return cidx(b, l, dflt);
  if (auto c = constantInts(converted); c && c->size() == 1)
    return cidx(b, l, (*c)[0]);
  Value v = scalarOf(b, l, converted);
  v = toI64(b, l, v, isUnsignedOnnx(orig));
  return arith::IndexCastOp::create(b, l, b.getIndexType(), v);
}

/// Elementwise `acc * scale` truncated to `outT`.
Value finish(OpBuilder &b, Location loc, Value acc, RankedTensorType outT,
             Value scale) {
  return buildElementwise(b, loc, outT, {acc},
                          [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                            Value v = a[0];
                            if (scale)
                              v = arith::MulFOp::create(nb, nl, v, scale);
                            return castScalar(nb, nl, v, outT.getElementType(),
                                              false, false);
                          });
}

struct DFTLowering : OpConversionPattern<onnx::DFTOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::DFTOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getInput();
    Value lenOp = adaptor.getDftLength();
    auto xT = dyn_cast<RankedTensorType>(x.getType());
    auto outT = resultType(*getTypeConverter(), op);
    if (!xT || !outT || !xT.hasStaticShape() || !outT.hasStaticShape() ||
        xT.getRank() < 2 || outT.getRank() != xT.getRank())
      return rewriter.notifyMatchFailure(op, "static shapes only");
    if (!isa<FloatType>(xT.getElementType()) || !isa<FloatType>(outT.getElementType()))
      return rewriter.notifyMatchFailure(op, "float types only");
    int64_t rank = xT.getRank();
    int64_t comps = xT.getDimSize(rank - 1);
    if ((comps != 1 && comps != 2) || outT.getDimSize(rank - 1) != 2)
      return rewriter.notifyMatchFailure(op, "last dim must be 1|2 (input), 2 (output)");
    auto axisOpt = normalizeAxis(op.getAxis(), rank);
    if (!axisOpt || *axisOpt == rank - 1)
      return rewriter.notifyMatchFailure(op, "bad axis");
    int64_t axis = *axisOpt;
    for (int64_t i = 0; i < rank - 1; ++i)
      if (i != axis && xT.getDimSize(i) != outT.getDimSize(i))
        return rewriter.notifyMatchFailure(op, "shape mismatch");
    if (!isNone(lenOp) && !isScalarTensor(lenOp))
      return rewriter.notifyMatchFailure(op, "dft_length must be a scalar");
    bool inverse = op.getInverse() != 0;
    int64_t N = xT.getDimSize(axis);
    if (N == 0)
      return rewriter.notifyMatchFailure(op, "empty signal");
    if (auto c = isNone(lenOp) ? std::optional<SmallVector<int64_t>>(
                                      SmallVector<int64_t>{N})
                               : constantInts(lenOp)) {
      int64_t L = (*c)[0];
      int64_t K = op.getOnesided() ? L / 2 + 1 : L;
      if (L <= 0 || K != outT.getDimSize(axis))
        return rewriter.notifyMatchFailure(op, "output size does not match dft_length");
    }

    MLIRContext *ctx = getContext();
    Type ct = rewriter.getF64Type();
    Value L = lengthValue(rewriter, loc, op.getDftLength(), lenOp, N);
    // Loops: the output dims, then n (reduction over the input axis).
    int64_t nl = rank + 1;
    auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
    SmallVector<AffineExpr> reE, imE, outE;
    for (int64_t i = 0; i < rank; ++i) {
      AffineExpr e = i == axis ? d(rank) : d(i);
      if (i == rank - 1) {
        reE.push_back(getAffineConstantExpr(0, ctx));
        imE.push_back(getAffineConstantExpr(1, ctx));
      } else {
        reE.push_back(e);
        imE.push_back(e);
      }
      outE.push_back(d(i));
    }
    SmallVector<Value> ins{x};
    SmallVector<AffineMap> maps{AffineMap::get(nl, 0, reE, ctx)};
    if (comps == 2) {
      ins.push_back(x);
      maps.push_back(AffineMap::get(nl, 0, imE, ctx));
    }
    maps.push_back(AffineMap::get(nl, 0, outE, ctx));
    SmallVector<utils::IteratorType> its(nl, utils::IteratorType::parallel);
    its.back() = utils::IteratorType::reduction;
    auto accT = RankedTensorType::get(outT.getShape(), ct);
    Value empty = tensor::EmptyOp::create(rewriter, loc, accT.getShape(), ct);
    Value zero = scalarConstant(rewriter, loc, ct, 0);
    Value init = linalg::FillOp::create(rewriter, loc, ValueRange{zero}, ValueRange{empty})
                     .getResult(0);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{accT}, ins, ValueRange{init}, maps, its,
        [&](OpBuilder &b, Location l, ValueRange a) {
          F f{b, l, ct};
          Value k = linalg::IndexOp::create(b, l, axis);
          Value comp = linalg::IndexOp::create(b, l, rank - 1);
          Value n = linalg::IndexOp::create(b, l, rank);
          Value xr = castScalar(b, l, a[0], ct, false, false);
          Value xi = comps == 2 ? castScalar(b, l, a[1], ct, false, false) : Value();
          auto [cr, ci] = twiddle(f, k, n, L, inverse ? 1.0 : -1.0);
          Value v = complexMulPart(f, xr, xi, cr, ci, comp);
          Value inRange = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, n, L);
          v = f.sel(inRange, v, f.c(0));
          linalg::YieldOp::create(b, l, f.add(a.back(), v));
        });
    Value scale;
    if (inverse) {
      F f{rewriter, loc, ct};
      scale = f.div(f.c(1), f.fromIndex(arith::MaxSIOp::create(rewriter, loc, L,
                                                                 cidx(rewriter, loc, 1))));
    }
    rewriter.replaceOp(op, finish(rewriter, loc, generic.getResult(0), outT, scale));
    return success();
  }
};

struct STFTLowering : OpConversionPattern<onnx::STFTOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::STFTOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value sig = adaptor.getSignal(), step = adaptor.getFrameStep();
    Value window = adaptor.getWindow(), flen = adaptor.getFrameLength();
    auto sT = dyn_cast<RankedTensorType>(sig.getType());
    auto outT = resultType(*getTypeConverter(), op);
    if (!sT || !outT || !sT.hasStaticShape() || !outT.hasStaticShape() ||
        sT.getRank() != 3 || outT.getRank() != 4)
      return rewriter.notifyMatchFailure(op, "static [B, S, 1|2] signal only");
    if (!isa<FloatType>(sT.getElementType()) || !isa<FloatType>(outT.getElementType()))
      return rewriter.notifyMatchFailure(op, "float types only");
    int64_t comps = sT.getDimSize(2), S = sT.getDimSize(1);
    int64_t K = outT.getDimSize(2);
    if ((comps != 1 && comps != 2) || outT.getDimSize(3) != 2 ||
        outT.getDimSize(0) != sT.getDimSize(0) || S == 0 || K == 0)
      return rewriter.notifyMatchFailure(op, "shape mismatch");
    if (!isScalarTensor(step) || (!isNone(flen) && !isScalarTensor(flen)))
      return rewriter.notifyMatchFailure(op, "frame_step/frame_length must be scalars");
    auto wT = isNone(window) ? RankedTensorType() : dyn_cast<RankedTensorType>(window.getType());
    if (!isNone(window) && (!wT || wT.getRank() != 1 || !wT.hasStaticShape() ||
                            !isa<FloatType>(wT.getElementType())))
      return rewriter.notifyMatchFailure(op, "bad window");
    bool onesided = op.getOnesided() != 0;
    // Upper bound on the frame length (the reduction size); the actual one
    // may be a runtime value.
    int64_t Lmax;
    std::optional<int64_t> Lstatic;
    if (!isNone(flen)) {
      if (auto c = constantInts(flen))
        Lstatic = (*c)[0];
    } else if (wT) {
      Lstatic = wT.getDimSize(0);
    } else {
      Lstatic = S;
    }
    if (Lstatic)
      Lmax = *Lstatic;
    else if (wT)
      Lmax = wT.getDimSize(0);
    else
      Lmax = onesided ? 2 * K - 1 : K;
    if (Lmax <= 0 || (wT && wT.getDimSize(0) < Lmax))
      return rewriter.notifyMatchFailure(op, "bad frame length");
    if (Lstatic && (onesided ? *Lstatic / 2 + 1 : *Lstatic) != K)
      return rewriter.notifyMatchFailure(op, "output size does not match frame length");

    MLIRContext *ctx = getContext();
    Type ct = rewriter.getF64Type();
    Value L = Lstatic ? cidx(rewriter, loc, *Lstatic)
                      : lengthValue(rewriter, loc, op.getFrameLength(), flen, 0);
    Value hop = lengthValue(rewriter, loc, op.getFrameStep(), step, 1);
    int64_t nl = 5; // b, frame, k, comp, n
    auto dim = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
    // A reduction loop needs a sized operand: a [Lmax] dummy input.
    Value dummy = tensor::EmptyOp::create(rewriter, loc, ArrayRef<int64_t>{Lmax}, ct);
    SmallVector<AffineMap> maps{AffineMap::get(nl, 0, {dim(4)}, ctx),
                                AffineMap::get(nl, 0, {dim(0), dim(1), dim(2), dim(3)}, ctx)};
    SmallVector<utils::IteratorType> its(nl, utils::IteratorType::parallel);
    its.back() = utils::IteratorType::reduction;
    auto accT = RankedTensorType::get(outT.getShape(), ct);
    Value empty = tensor::EmptyOp::create(rewriter, loc, accT.getShape(), ct);
    Value zero = scalarConstant(rewriter, loc, ct, 0);
    Value init = linalg::FillOp::create(rewriter, loc, ValueRange{zero}, ValueRange{empty})
                     .getResult(0);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{accT}, ValueRange{dummy}, ValueRange{init}, maps, its,
        [&](OpBuilder &b, Location l, ValueRange a) {
          F f{b, l, ct};
          Value bi = linalg::IndexOp::create(b, l, 0);
          Value fr = linalg::IndexOp::create(b, l, 1);
          Value k = linalg::IndexOp::create(b, l, 2);
          Value comp = linalg::IndexOp::create(b, l, 3);
          Value n = linalg::IndexOp::create(b, l, 4);
          Value pos = arith::AddIOp::create(b, l, arith::MulIOp::create(b, l, fr, hop), n);
          Value valid = f.and_(
              arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, n, L),
              arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, pos, cidx(b, l, S)));
          Value p = clampIndex(b, l, pos, S - 1);
          Value xr = castScalar(b, l,
                                tensor::ExtractOp::create(b, l, sig, ValueRange{bi, p, cidx(b, l, 0)}),
                                ct, false, false);
          Value xi;
          if (comps == 2)
            xi = castScalar(b, l,
                            tensor::ExtractOp::create(b, l, sig, ValueRange{bi, p, cidx(b, l, 1)}),
                            ct, false, false);
          if (wT) {
            Value wi = clampIndex(b, l, n, wT.getDimSize(0) - 1);
            Value w = castScalar(b, l, tensor::ExtractOp::create(b, l, window, ValueRange{wi}),
                                 ct, false, false);
            xr = f.mul(xr, w);
            if (xi)
              xi = f.mul(xi, w);
          }
          auto [cr, ci] = twiddle(f, k, n, L, -1.0);
          Value v = complexMulPart(f, xr, xi, cr, ci, comp);
          v = f.sel(valid, v, f.c(0));
          linalg::YieldOp::create(b, l, f.add(a.back(), v));
        });
    rewriter.replaceOp(op, finish(rewriter, loc, generic.getResult(0), outT, Value()));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// MelWeightMatrix
//===----------------------------------------------------------------------===//

struct MelWeightMatrixLowering : OpConversionPattern<onnx::MelWeightMatrixOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::MelWeightMatrixOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto outT = resultType(*getTypeConverter(), op);
    if (!outT || outT.getRank() != 2 || !outT.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "static 2-D result only");
    Type outET = outT.getElementType();
    if (!isa<FloatType>(outET) && !isa<IntegerType>(outET))
      return rewriter.notifyMatchFailure(op, "unsupported output type");
    Value ops[5] = {adaptor.getNumMelBins(), adaptor.getDftLength(),
                    adaptor.getSampleRate(), adaptor.getLowerEdgeHertz(),
                    adaptor.getUpperEdgeHertz()};
    for (int i = 0; i < 5; ++i) {
      if (!isScalarTensor(ops[i]))
        return rewriter.notifyMatchFailure(op, "scalar inputs only");
      Type e = cast<RankedTensorType>(ops[i].getType()).getElementType();
      if (i < 3 ? !isa<IntegerType>(e) : !isa<FloatType>(e))
        return rewriter.notifyMatchFailure(op, "unsupported input types");
    }
    int64_t numMel = outT.getDimSize(1);
    OpBuilder &b = rewriter;
    Type f32 = b.getF32Type(), f64 = b.getF64Type();
    auto readInt = [&](int i) {
      Value v = scalarOf(b, loc, ops[i]);
      return toI64(b, loc, v, isUnsignedOnnx(op->getOperand(i)));
    };
    Value dftLen = readInt(1), rate = readInt(2);
    Value lower = castScalar(b, loc, scalarOf(b, loc, ops[3]), f32, false, false);
    Value upper = castScalar(b, loc, scalarOf(b, loc, ops[4]), f32, false, false);
    Value dftLen1 = arith::SIToFPOp::create(
        b, loc, f64, arith::AddIOp::create(b, loc, dftLen,
                                           arith::ConstantIntOp::create(b, loc, 1, 64)));
    Value rateF = arith::SIToFPOp::create(b, loc, f64, rate);

    Value init = tensor::EmptyOp::create(b, loc, outT.getShape(), outET);
    MLIRContext *ctx = getContext();
    SmallVector<AffineMap> maps{AffineMap::getMultiDimIdentityMap(2, ctx)};
    SmallVector<utils::IteratorType> its(2, utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        b, loc, TypeRange{outT}, ValueRange{}, ValueRange{init}, maps, its,
        [&](OpBuilder &nb, Location l, ValueRange) {
          // Mel edges in f32 (as numpy computes them from f32 scalars); math
          // ops stay in the kernel.
          F g{nb, l, f32};
          auto mel = [&](Value hz) {
            Value v = math::Log10Op::create(nb, l, g.add(g.c(1), g.div(hz, g.c(700))));
            return g.mul(g.c(2595), v);
          };
          Value lowMel = mel(lower), highMel = mel(upper);
          Value melStep = g.div(g.sub(highMel, lowMel), g.c(numMel + 2));
          Value lowMel64 = arith::ExtFOp::create(nb, l, f64, lowMel);
          Value melStep64 = arith::ExtFOp::create(nb, l, f64, melStep);
          F f{nb, l, f64};
          Value j = f.fromIndex(linalg::IndexOp::create(nb, l, 0));
          Value i = f.fromIndex(linalg::IndexOp::create(nb, l, 1));
          // Frequency bin k, as a floored float.
          auto bin = [&](Value k) {
            Value m = f.add(f.mul(k, melStep64), lowMel64);
            Value p = math::PowFOp::create(nb, l, f.c(10), f.div(m, f.c(2595)));
            Value hz = f.mul(f.c(700), f.sub(p, f.c(1)));
            Value q = f.floor(f.div(f.mul(dftLen1, hz), rateF));
            // astype(int) truncates.
            return arith::SIToFPOp::create(
                nb, l, f64, arith::FPToSIOp::create(nb, l, nb.getI64Type(), q));
          };
          Value lo = bin(i), ce = bin(f.add(i, f.c(1))), hi = bin(f.add(i, f.c(2)));
          Value lowToCenter = f.sub(ce, lo);
          Value rise = f.div(f.sub(j, lo), lowToCenter);
          Value inRise = f.and_(f.ge(j, lo), f.ge(ce, j));
          Value val = f.sel(f.eq(lowToCenter, f.c(0)),
                            f.sel(f.eq(j, ce), f.c(1), f.c(0)),
                            f.sel(inRise, rise, f.c(0)));
          Value centerToHigh = f.sub(hi, ce);
          Value inFall = f.and_(f.gt(centerToHigh, f.c(0)),
                                f.and_(f.ge(j, ce), f.lt(j, hi)));
          Value fall = f.div(f.sub(hi, j), centerToHigh);
          val = f.sel(inFall, fall, val);
          linalg::YieldOp::create(nb, l, castScalar(nb, l, val, outET, false,
                                                    isUnsignedOnnx(op->getResult(0))));
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

} // namespace

void populateOnnxSignalPatterns(RewritePatternSet &patterns,
                                const TypeConverter &converter) {
  patterns.add<GridSampleLowering, RoiAlignLowering, DFTLowering, STFTLowering,
               MelWeightMatrixLowering>(converter, patterns.getContext());
}

} // namespace kiln
