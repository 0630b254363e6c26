//===- Recurrent.cpp - onnx RNN, GRU and LSTM -> linalg --------------------===//
//
// One recurrent op becomes, per direction:
//   * one contraction XW[t, b, :] = X[t, b, :] . W^T + (Wb + Rb) for all time
//     steps at once (the input projection does not depend on the state);
//   * an scf.for over the time steps carrying H (and C for LSTM) and Y as
//     tensor iter_args; each step is a small contraction H . R^T followed by
//     one linalg.generic computing the gates and the new state.
// sequence_lens masks the state update (the state is frozen past a batch
// entry's length, Y is zero there); in the reverse direction each batch entry
// starts at its own last valid step, so the step's input is gathered and its
// Y row scattered per batch entry. layout = 1 is handled by transposing X and
// the initial states in and Y / Y_h / Y_c out.
//
//===----------------------------------------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/AffineMap.h"

#include <string>

using namespace mlir;

namespace kiln {
namespace {

enum class Kind { RNN, GRU, LSTM };

Value cidx(OpBuilder &b, Location l, int64_t v) {
  return arith::ConstantIndexOp::create(b, l, v);
}

RankedTensorType tensorOf(ArrayRef<int64_t> shape, Type et) {
  return RankedTensorType::get(shape, et);
}

Value zerosOf(OpBuilder &b, Location l, RankedTensorType t) {
  Value e = tensor::EmptyOp::create(b, l, t.getShape(), t.getElementType());
  Value z = scalarConstant(b, l, t.getElementType(), 0);
  return linalg::FillOp::create(b, l, ValueRange{z}, ValueRange{e}).getResult(0);
}

using GenBody =
    function_ref<SmallVector<Value>(OpBuilder &, Location, ValueRange)>;

/// A linalg.generic; `fn` gets the block arguments (inputs then outputs) and
/// returns the values to yield.
SmallVector<Value> makeGeneric(OpBuilder &b, Location l, ValueRange ins,
                               ValueRange outs, ArrayRef<AffineMap> maps,
                               ArrayRef<utils::IteratorType> its, GenBody fn) {
  SmallVector<Type> types;
  for (Value o : outs)
    types.push_back(o.getType());
  auto g = linalg::GenericOp::create(
      b, l, types, ins, outs, maps, its,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        linalg::YieldOp::create(nb, nl, fn(nb, nl, args));
      });
  return SmallVector<Value>(g.getResults().begin(), g.getResults().end());
}

/// out[perm-dims] = in: out dim k is input dim perm[k].
Value transposeOf(OpBuilder &b, Location l, Value in, ArrayRef<int64_t> perm) {
  auto t = cast<RankedTensorType>(in.getType());
  SmallVector<int64_t> shape;
  for (int64_t p : perm)
    shape.push_back(t.getDimSize(p));
  MLIRContext *ctx = b.getContext();
  int64_t r = t.getRank();
  SmallVector<AffineExpr> inExprs(r);
  for (int64_t k = 0; k < r; ++k)
    inExprs[perm[k]] = getAffineDimExpr(k, ctx);
  Value init = tensor::EmptyOp::create(b, l, shape, t.getElementType());
  SmallVector<AffineMap> maps{AffineMap::get(r, 0, inExprs, ctx),
                              AffineMap::getMultiDimIdentityMap(r, ctx)};
  SmallVector<utils::IteratorType> its(r, utils::IteratorType::parallel);
  return makeGeneric(b, l, ValueRange{in}, ValueRange{init}, maps, its,
                     [](OpBuilder &, Location, ValueRange a) {
                       return SmallVector<Value>{a[0]};
                     })[0];
}

/// The rank-reduced slice src[d] of a tensor whose leading dim is dropped.
Value sliceLeading(OpBuilder &b, Location l, Value src, OpFoldResult d) {
  auto t = cast<RankedTensorType>(src.getType());
  int64_t r = t.getRank();
  SmallVector<OpFoldResult> offs(r, b.getIndexAttr(0)), sizes, strides(r, b.getIndexAttr(1));
  offs[0] = d;
  sizes.push_back(b.getIndexAttr(1));
  for (int64_t i = 1; i < r; ++i)
    sizes.push_back(b.getIndexAttr(t.getDimSize(i)));
  auto rt = tensorOf(t.getShape().drop_front(), t.getElementType());
  return tensor::ExtractSliceOp::create(b, l, rt, src, offs, sizes, strides);
}

/// Columns [off, off + n) of a [B, N] tensor.
Value colSlice(OpBuilder &b, Location l, Value t, int64_t off, int64_t n) {
  auto tt = cast<RankedTensorType>(t.getType());
  if (off == 0 && n == tt.getDimSize(1))
    return t;
  SmallVector<OpFoldResult> offs{b.getIndexAttr(0), b.getIndexAttr(off)};
  SmallVector<OpFoldResult> sizes{b.getIndexAttr(tt.getDimSize(0)), b.getIndexAttr(n)};
  SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
  return tensor::ExtractSliceOp::create(
      b, l, tensorOf({tt.getDimSize(0), n}, tt.getElementType()), t, offs, sizes,
      strides);
}

/// Elements [off, off + n) of a 1-D tensor.
Value vecSlice(OpBuilder &b, Location l, Value t, int64_t off, int64_t n) {
  auto tt = cast<RankedTensorType>(t.getType());
  SmallVector<OpFoldResult> offs{b.getIndexAttr(off)}, sizes{b.getIndexAttr(n)},
      strides{b.getIndexAttr(1)};
  return tensor::ExtractSliceOp::create(
      b, l, tensorOf({n}, tt.getElementType()), t, offs, sizes, strides);
}

/// out[m..., n] = sum_k x[m..., k] * w[n, k] accumulated into `init`.
Value contractT(OpBuilder &b, Location l, Value x, Value w, Value init) {
  auto xt = cast<RankedTensorType>(x.getType());
  MLIRContext *ctx = b.getContext();
  int64_t xr = xt.getRank();
  int64_t n = xr + 1; // batch dims (xr-1), n, k
  SmallVector<AffineExpr> xe, we, oe;
  for (int64_t i = 0; i < xr - 1; ++i) {
    xe.push_back(getAffineDimExpr(i, ctx));
    oe.push_back(getAffineDimExpr(i, ctx));
  }
  AffineExpr dn = getAffineDimExpr(xr - 1, ctx), dk = getAffineDimExpr(xr, ctx);
  xe.push_back(dk);
  we = {dn, dk};
  oe.push_back(dn);
  SmallVector<AffineMap> maps{AffineMap::get(n, 0, xe, ctx),
                              AffineMap::get(n, 0, we, ctx),
                              AffineMap::get(n, 0, oe, ctx)};
  SmallVector<utils::IteratorType> its(n, utils::IteratorType::parallel);
  its.back() = utils::IteratorType::reduction;
  return makeGeneric(b, l, ValueRange{x, w}, ValueRange{init}, maps, its,
                     [](OpBuilder &nb, Location nl, ValueRange a) {
                       Value m = arith::MulFOp::create(nb, nl, a[0], a[1]);
                       return SmallVector<Value>{
                           arith::AddFOp::create(nb, nl, a[2], m)};
                     })[0];
}

struct Act {
  std::string name;
  float alpha = 0, beta = 0;
};

/// Whether an activation name is known; sets its default alpha/beta and how
/// many of them it consumes.
bool actInfo(const std::string &n, float &alpha, float &beta, bool &usesAlpha,
             bool &usesBeta) {
  usesAlpha = usesBeta = false;
  if (n == "relu" || n == "tanh" || n == "sigmoid" || n == "softsign" ||
      n == "softplus")
    return true;
  usesAlpha = true;
  if (n == "leakyrelu") { alpha = 0.01f; return true; }
  if (n == "thresholdedrelu") { alpha = 1.0f; return true; }
  if (n == "elu") { alpha = 1.0f; return true; }
  usesBeta = true;
  if (n == "affine") { alpha = 1.0f; beta = 0.0f; return true; }
  if (n == "scaledtanh") { alpha = 1.0f; beta = 1.0f; return true; }
  if (n == "hardsigmoid") { alpha = 0.2f; beta = 0.5f; return true; }
  return false;
}

Value applyAct(OpBuilder &b, Location l, const Act &a, Value x) {
  Type t = x.getType();
  auto c = [&](double v) { return scalarConstant(b, l, t, v); };
  const std::string &n = a.name;
  if (n == "tanh")
    return math::TanhOp::create(b, l, x);
  if (n == "sigmoid") {
    Value e = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, x));
    return arith::DivFOp::create(b, l, c(1), arith::AddFOp::create(b, l, c(1), e));
  }
  if (n == "relu")
    return arith::MaximumFOp::create(b, l, x, c(0));
  if (n == "softsign") {
    Value ax = math::AbsFOp::create(b, l, x);
    return arith::DivFOp::create(b, l, x, arith::AddFOp::create(b, l, c(1), ax));
  }
  if (n == "softplus")
    return math::LogOp::create(
        b, l, arith::AddFOp::create(b, l, c(1), math::ExpOp::create(b, l, x)));
  if (n == "leakyrelu") {
    Value neg = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, x, c(0));
    return arith::SelectOp::create(b, l, neg,
                                   arith::MulFOp::create(b, l, x, c(a.alpha)), x);
  }
  if (n == "thresholdedrelu") {
    Value gt = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, x, c(a.alpha));
    return arith::SelectOp::create(b, l, gt, x, c(0));
  }
  if (n == "elu") {
    Value neg = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, x, c(0));
    Value em1 = arith::SubFOp::create(b, l, math::ExpOp::create(b, l, x), c(1));
    return arith::SelectOp::create(b, l, neg,
                                   arith::MulFOp::create(b, l, em1, c(a.alpha)), x);
  }
  if (n == "affine")
    return arith::AddFOp::create(b, l, arith::MulFOp::create(b, l, x, c(a.alpha)),
                                 c(a.beta));
  if (n == "scaledtanh") {
    Value in = arith::MulFOp::create(b, l, x, c(a.beta));
    return arith::MulFOp::create(b, l, math::TanhOp::create(b, l, in), c(a.alpha));
  }
  // hardsigmoid
  Value v = arith::AddFOp::create(b, l, arith::MulFOp::create(b, l, x, c(a.alpha)),
                                  c(a.beta));
  v = arith::MaximumFOp::create(b, l, v, c(0));
  return arith::MinimumFOp::create(b, l, v, c(1));
}

template <typename OpTy, Kind K>
struct RecurrentLowering : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;

  static constexpr int64_t numGates = K == Kind::RNN ? 1 : K == Kind::GRU ? 3 : 4;
  static constexpr int64_t numActs = K == Kind::RNN ? 1 : K == Kind::GRU ? 2 : 3;

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    MLIRContext *ctx = b.getContext();
    Value X = adaptor.getX(), W = adaptor.getW(), R = adaptor.getR();
    Value Bv = adaptor.getB(), seq = adaptor.getSequenceLens();
    Value h0 = adaptor.getInitialH();
    Value c0, P;
    bool inputForget = false, lbr = false;
    if constexpr (K == Kind::LSTM) {
      c0 = adaptor.getInitialC();
      P = adaptor.getP();
      inputForget = op.getInputForget() != 0;
    }
    if constexpr (K == Kind::GRU)
      lbr = op.getLinearBeforeReset() != 0;

    auto staticRanked = [](Value v, int64_t rank) {
      auto t = dyn_cast<RankedTensorType>(v.getType());
      return t && t.hasStaticShape() && t.getRank() == rank;
    };
    if (!staticRanked(X, 3) || !staticRanked(W, 3) || !staticRanked(R, 3))
      return rewriter.notifyMatchFailure(op, "X, W, R must be static 3-D");
    auto xT = cast<RankedTensorType>(X.getType());
    Type et = xT.getElementType();
    if (!isa<FloatType>(et))
      return rewriter.notifyMatchFailure(op, "float element types only");
    int64_t layout = op.getLayout();
    if (layout != 0 && layout != 1)
      return rewriter.notifyMatchFailure(op, "bad layout");
    int64_t T = xT.getDimSize(layout), Bn = xT.getDimSize(1 - layout),
            I = xT.getDimSize(2);
    auto wT = cast<RankedTensorType>(W.getType());
    auto rT = cast<RankedTensorType>(R.getType());
    int64_t D = wT.getDimSize(0);
    int64_t H = rT.getDimSize(2);
    int64_t GH = numGates * H;
    if (wT.getDimSize(1) != GH || wT.getDimSize(2) != I ||
        rT.getDimSize(0) != D || rT.getDimSize(1) != GH)
      return rewriter.notifyMatchFailure(op, "inconsistent W/R shapes");
    if (auto hs = op.getHiddenSize(); hs && *hs != H)
      return rewriter.notifyMatchFailure(op, "hidden_size mismatch");
    StringRef dir = op.getDirection();
    bool bidi = dir == "bidirectional";
    if (!(dir == "forward" || dir == "reverse" || bidi) ||
        D != (bidi ? 2 : 1))
      return rewriter.notifyMatchFailure(op, "bad direction");
    if (T == 0 || Bn == 0)
      return rewriter.notifyMatchFailure(op, "empty input");
    if (!isNone(Bv) && !staticRanked(Bv, 2))
      return rewriter.notifyMatchFailure(op, "B must be static 2-D");
    if (!isNone(Bv) &&
        cast<RankedTensorType>(Bv.getType()).getShape() != ArrayRef<int64_t>{D, 2 * GH})
      return rewriter.notifyMatchFailure(op, "bad B shape");
    if (!isNone(seq) &&
        (!staticRanked(seq, 1) ||
         cast<RankedTensorType>(seq.getType()).getDimSize(0) != Bn ||
         !isa<IntegerType>(cast<RankedTensorType>(seq.getType()).getElementType())))
      return rewriter.notifyMatchFailure(op, "bad sequence_lens");
    auto checkState = [&](Value &s) -> bool {
      if (isNone(s))
        return true;
      if (!staticRanked(s, 3) ||
          cast<RankedTensorType>(s.getType()).getElementType() != et)
        return false;
      SmallVector<int64_t> want = layout == 1 ? SmallVector<int64_t>{Bn, D, H}
                                              : SmallVector<int64_t>{D, Bn, H};
      return cast<RankedTensorType>(s.getType()).getShape() == ArrayRef<int64_t>(want);
    };
    if (!checkState(h0) || !checkState(c0))
      return rewriter.notifyMatchFailure(op, "bad initial state");
    if (!isNone(P) &&
        (!staticRanked(P, 2) || cast<RankedTensorType>(P.getType()).getShape() !=
                                    ArrayRef<int64_t>{D, 3 * H}))
      return rewriter.notifyMatchFailure(op, "bad P shape");

    // Activations, per direction.
    SmallVector<std::string> names;
    if (auto acts = op.getActivations()) {
      for (Attribute a : *acts) {
        std::string s = cast<StringAttr>(a).getValue().lower();
        names.push_back(s);
      }
      if ((int64_t)names.size() == numActs && D == 2)
        names.append(SmallVector<std::string>(names));
      if ((int64_t)names.size() != numActs * D)
        return rewriter.notifyMatchFailure(op, "wrong number of activations");
    } else {
      for (int64_t d = 0; d < D; ++d) {
        if (K == Kind::RNN)
          names.push_back("tanh");
        else if (K == Kind::GRU)
          names.append({"sigmoid", "tanh"});
        else
          names.append({"sigmoid", "tanh", "tanh"});
      }
    }
    SmallVector<float> alphas = floatsAttr(op, "activation_alpha");
    SmallVector<float> betas = floatsAttr(op, "activation_beta");
    size_t ai = 0, bi = 0;
    SmallVector<Act> acts;
    for (const std::string &n : names) {
      Act a;
      a.name = n;
      bool ua, ub;
      if (!actInfo(n, a.alpha, a.beta, ua, ub))
        return rewriter.notifyMatchFailure(op, "unknown activation");
      if (ua && ai < alphas.size())
        a.alpha = alphas[ai++];
      if (ub && bi < betas.size())
        a.beta = betas[bi++];
      acts.push_back(a);
    }
    std::optional<double> clip;
    if (auto c = op.getClip())
      clip = c->convertToDouble();

    auto yType = resultType(*this->getTypeConverter(), op, 0);
    auto yhType = resultType(*this->getTypeConverter(), op, 1);
    RankedTensorType ycType;
    if constexpr (K == Kind::LSTM)
      ycType = resultType(*this->getTypeConverter(), op, 2);
    bool wantY = !isa<NoneType>(op->getResult(0).getType());
    auto expect = [&](unsigned i, RankedTensorType t,
                      SmallVector<int64_t> shape) -> bool {
      if (isa<NoneType>(op->getResult(i).getType()))
        return true;
      return t && t.getElementType() == et && t.getShape() == ArrayRef<int64_t>(shape);
    };
    SmallVector<int64_t> stShape = layout == 1 ? SmallVector<int64_t>{Bn, D, H}
                                               : SmallVector<int64_t>{D, Bn, H};
    if (!expect(0, yType,
                layout == 1 ? SmallVector<int64_t>{Bn, T, D, H}
                            : SmallVector<int64_t>{T, D, Bn, H}) ||
        !expect(1, yhType, stShape) ||
        (K == Kind::LSTM && !expect(2, ycType, stShape)))
      return rewriter.notifyMatchFailure(op, "unexpected result types");

    // Everything checked: build. Work in layout 0.
    if (layout == 1) {
      X = transposeOf(b, loc, X, {1, 0, 2});
      if (!isNone(h0))
        h0 = transposeOf(b, loc, h0, {1, 0, 2});
      if (!isNone(c0))
        c0 = transposeOf(b, loc, c0, {1, 0, 2});
    }

    auto d2 = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
    auto cst = [&](OpBuilder &nb, Location nl, double v) {
      return scalarConstant(nb, nl, et, v);
    };
    auto clipped = [&](OpBuilder &nb, Location nl, Value v) -> Value {
      if (!clip)
        return v;
      v = arith::MaximumFOp::create(nb, nl, v, cst(nb, nl, -*clip));
      return arith::MinimumFOp::create(nb, nl, v, cst(nb, nl, *clip));
    };

    Value c0i = cidx(b, loc, 0), c1i = cidx(b, loc, 1), cTi = cidx(b, loc, T);
    RankedTensorType stateT = tensorOf({Bn, H}, et);
    RankedTensorType fullYT = tensorOf({T, D, Bn, H}, et);
    Value Y = wantY ? zerosOf(b, loc, fullYT) : Value();
    SmallVector<Value> finalH, finalC;

    for (int64_t d = 0; d < D; ++d) {
      bool reverse = dir == "reverse" || (bidi && d == 1);
      ArrayRef<Act> dActs = ArrayRef<Act>(acts).slice(d * numActs, numActs);
      Value Wd = sliceLeading(b, loc, W, b.getIndexAttr(d));
      Value Rd = sliceLeading(b, loc, R, b.getIndexAttr(d));
      Value Bd = isNone(Bv) ? Value() : sliceLeading(b, loc, Bv, b.getIndexAttr(d));
      Value Pd = isNone(P) ? Value() : sliceLeading(b, loc, P, b.getIndexAttr(d));

      // XW = X . W^T + Wb + Rb (GRU with linear_before_reset keeps Rbh out).
      RankedTensorType xwT = tensorOf({T, Bn, GH}, et);
      Value xwInit;
      if (Bd) {
        SmallVector<AffineMap> maps{
            AffineMap::get(3, 0, {d2(2)}, ctx),
            AffineMap::get(3, 0, {d2(2)}, ctx),
            AffineMap::getMultiDimIdentityMap(3, ctx)};
        SmallVector<utils::IteratorType> its(3, utils::IteratorType::parallel);
        Value e = tensor::EmptyOp::create(b, loc, xwT.getShape(), et);
        xwInit = makeGeneric(
            b, loc, ValueRange{vecSlice(b, loc, Bd, 0, GH), vecSlice(b, loc, Bd, GH, GH)},
            ValueRange{e}, maps, its,
            [&](OpBuilder &nb, Location nl, ValueRange a) -> SmallVector<Value> {
              Value rb = a[1];
              if (lbr) {
                Value j = linalg::IndexOp::create(nb, nl, 2);
                Value inH = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge,
                                                  j, cidx(nb, nl, 2 * H));
                rb = arith::SelectOp::create(nb, nl, inH, cst(nb, nl, 0), rb);
              }
              return {arith::AddFOp::create(nb, nl, a[0], rb)};
            })[0];
      } else {
        xwInit = zerosOf(b, loc, xwT);
      }
      Value XW = contractT(b, loc, X, Wd, xwInit);

      Value hInit = isNone(h0) ? zerosOf(b, loc, stateT)
                               : sliceLeading(b, loc, h0, b.getIndexAttr(d));
      Value cInit;
      if (K == Kind::LSTM)
        cInit = isNone(c0) ? zerosOf(b, loc, stateT)
                           : sliceLeading(b, loc, c0, b.getIndexAttr(d));
      SmallVector<Value> iterInit{hInit};
      if (cInit)
        iterInit.push_back(cInit);
      if (Y)
        iterInit.push_back(Y);

      auto loop = scf::ForOp::create(
          b, loc, c0i, cTi, c1i, iterInit,
          [&](OpBuilder &lb, Location ll, Value s, ValueRange args) {
            Value hPrev = args[0];
            Value cPrev = cInit ? args[1] : Value();
            Value yCur = Y ? args.back() : Value();
            bool gather = reverse && !isNone(seq);
            Value t = s;
            if (reverse && !gather)
              t = arith::SubIOp::create(lb, ll, cidx(lb, ll, T - 1), s);
            auto lenAt = [&](OpBuilder &nb, Location nl, Value len) -> Value {
              return arith::IndexCastOp::create(nb, nl, nb.getIndexType(), len);
            };
            // This step's input projection [B, GH].
            Value xwT_;
            RankedTensorType stepT = tensorOf({Bn, GH}, et);
            if (gather) {
              SmallVector<AffineMap> maps{AffineMap::get(2, 0, {d2(0)}, ctx),
                                          AffineMap::getMultiDimIdentityMap(2, ctx)};
              SmallVector<utils::IteratorType> its(2, utils::IteratorType::parallel);
              Value e = tensor::EmptyOp::create(lb, ll, stepT.getShape(), et);
              xwT_ = makeGeneric(
                  lb, ll, ValueRange{seq}, ValueRange{e}, maps, its,
                  [&](OpBuilder &nb, Location nl, ValueRange a) -> SmallVector<Value> {
                    Value len = lenAt(nb, nl, a[0]);
                    Value tb = arith::SubIOp::create(
                        nb, nl, arith::SubIOp::create(nb, nl, len, cidx(nb, nl, 1)), s);
                    tb = arith::MaxSIOp::create(nb, nl, tb, cidx(nb, nl, 0));
                    tb = arith::MinSIOp::create(nb, nl, tb, cidx(nb, nl, T - 1));
                    Value bb = linalg::IndexOp::create(nb, nl, 0);
                    Value j = linalg::IndexOp::create(nb, nl, 1);
                    return {tensor::ExtractOp::create(nb, nl, XW, ValueRange{tb, bb, j})};
                  })[0];
            } else {
              SmallVector<OpFoldResult> offs{t, lb.getIndexAttr(0), lb.getIndexAttr(0)};
              SmallVector<OpFoldResult> sizes{lb.getIndexAttr(1), lb.getIndexAttr(Bn),
                                              lb.getIndexAttr(GH)};
              SmallVector<OpFoldResult> strides(3, lb.getIndexAttr(1));
              xwT_ = tensor::ExtractSliceOp::create(lb, ll, stepT, XW, offs, sizes,
                                                    strides);
            }
            // Recurrent projection [B, GH].
            Value hr = contractT(lb, ll, hPrev, Rd, zerosOf(lb, ll, stepT));
            // GRU without linear_before_reset: (r * Hprev) . Rh^T.
            Value rhh;
            if (K == Kind::GRU && !lbr) {
              SmallVector<AffineMap> maps(4, AffineMap::getMultiDimIdentityMap(2, ctx));
              SmallVector<utils::IteratorType> its(2, utils::IteratorType::parallel);
              Value e = tensor::EmptyOp::create(lb, ll, stateT.getShape(), et);
              Value rh = makeGeneric(
                  lb, ll,
                  ValueRange{colSlice(lb, ll, xwT_, H, H), colSlice(lb, ll, hr, H, H), hPrev},
                  ValueRange{e}, maps, its,
                  [&](OpBuilder &nb, Location nl, ValueRange a) -> SmallVector<Value> {
                    Value pre = arith::AddFOp::create(nb, nl, a[0], a[1]);
                    Value r = applyAct(nb, nl, dActs[0], clipped(nb, nl, pre));
                    return {arith::MulFOp::create(nb, nl, r, a[2])};
                  })[0];
              RankedTensorType hhT = tensorOf({H, H}, et);
              SmallVector<OpFoldResult> offs{lb.getIndexAttr(2 * H), lb.getIndexAttr(0)};
              SmallVector<OpFoldResult> sizes{lb.getIndexAttr(H), lb.getIndexAttr(H)};
              SmallVector<OpFoldResult> strides(2, lb.getIndexAttr(1));
              Value Rh = tensor::ExtractSliceOp::create(lb, ll, hhT, Rd, offs, sizes,
                                                        strides);
              rhh = contractT(lb, ll, rh, Rh, zerosOf(lb, ll, stateT));
            }

            // The cell: one generic over [B, H].
            SmallVector<Value> ins;
            SmallVector<AffineMap> maps;
            auto addIn = [&](Value v, AffineMap m) {
              ins.push_back(v);
              maps.push_back(m);
              return (int)ins.size() - 1;
            };
            AffineMap id2 = AffineMap::getMultiDimIdentityMap(2, ctx);
            AffineMap vecMap = AffineMap::get(2, 0, {d2(1)}, ctx);
            SmallVector<int> xg, hg;
            for (int64_t g = 0; g < numGates; ++g) {
              xg.push_back(addIn(colSlice(lb, ll, xwT_, g * H, H), id2));
              hg.push_back(addIn(colSlice(lb, ll, hr, g * H, H), id2));
            }
            int iRhh = rhh ? addIn(rhh, id2) : -1;
            int iRbh = (K == Kind::GRU && lbr && Bd)
                           ? addIn(vecSlice(lb, ll, Bd, GH + 2 * H, H), vecMap)
                           : -1;
            SmallVector<int> iP;
            if (Pd)
              for (int64_t g = 0; g < 3; ++g)
                iP.push_back(addIn(vecSlice(lb, ll, Pd, g * H, H), vecMap));
            int iLen = isNone(seq) ? -1 : addIn(seq, AffineMap::get(2, 0, {d2(0)}, ctx));
            bool wantYVal = yCur && iLen >= 0;
            SmallVector<Value> outs;
            int iH = addIn(hPrev, id2);
            int iC = cPrev ? addIn(cPrev, id2) : -1;
            int nOut = 1 + (cPrev ? 1 : 0) + (wantYVal ? 1 : 0);
            for (int i = 0; i < nOut; ++i) {
              outs.push_back(tensor::EmptyOp::create(lb, ll, stateT.getShape(), et));
              maps.push_back(id2);
            }
            SmallVector<utils::IteratorType> its(2, utils::IteratorType::parallel);
            SmallVector<Value> res = makeGeneric(
                lb, ll, ins, outs, maps, its,
                [&](OpBuilder &nb, Location nl, ValueRange a) -> SmallVector<Value> {
                  auto gate = [&](int64_t g) {
                    return arith::AddFOp::create(nb, nl, a[xg[g]], a[hg[g]]);
                  };
                  Value hp = a[iH];
                  Value hNew, cNew;
                  if (K == Kind::RNN) {
                    hNew = applyAct(nb, nl, dActs[0], clipped(nb, nl, gate(0)));
                  } else if (K == Kind::GRU) {
                    Value z = applyAct(nb, nl, dActs[0], clipped(nb, nl, gate(0)));
                    Value hpre;
                    if (lbr) {
                      Value r = applyAct(nb, nl, dActs[0], clipped(nb, nl, gate(1)));
                      Value hh = a[hg[2]];
                      if (iRbh >= 0)
                        hh = arith::AddFOp::create(nb, nl, hh, a[iRbh]);
                      hpre = arith::AddFOp::create(nb, nl, a[xg[2]],
                                                   arith::MulFOp::create(nb, nl, r, hh));
                    } else {
                      hpre = arith::AddFOp::create(nb, nl, a[xg[2]], a[iRhh]);
                    }
                    Value ht = applyAct(nb, nl, dActs[1], clipped(nb, nl, hpre));
                    Value oneMz = arith::SubFOp::create(nb, nl, cst(nb, nl, 1), z);
                    hNew = arith::AddFOp::create(nb, nl,
                                                 arith::MulFOp::create(nb, nl, oneMz, ht),
                                                 arith::MulFOp::create(nb, nl, z, hp));
                  } else {
                    // Gates in W/R/B: i, o, f, c; peepholes: i, o, f.
                    Value cp = a[iC];
                    auto peep = [&](Value pre, int g, Value cv) -> Value {
                      if (iP.empty())
                        return pre;
                      return arith::AddFOp::create(nb, nl, pre,
                                                   arith::MulFOp::create(nb, nl, a[iP[g]], cv));
                    };
                    Value iG = applyAct(nb, nl, dActs[0],
                                        clipped(nb, nl, peep(gate(0), 0, cp)));
                    Value fG;
                    if (inputForget)
                      fG = arith::SubFOp::create(nb, nl, cst(nb, nl, 1), iG);
                    else
                      fG = applyAct(nb, nl, dActs[0],
                                    clipped(nb, nl, peep(gate(2), 2, cp)));
                    Value cG = applyAct(nb, nl, dActs[1], clipped(nb, nl, gate(3)));
                    cNew = arith::AddFOp::create(nb, nl, arith::MulFOp::create(nb, nl, fG, cp),
                                                 arith::MulFOp::create(nb, nl, iG, cG));
                    Value oG = applyAct(nb, nl, dActs[0],
                                        clipped(nb, nl, peep(gate(1), 1, cNew)));
                    hNew = arith::MulFOp::create(nb, nl, oG,
                                                 applyAct(nb, nl, dActs[2], cNew));
                  }
                  SmallVector<Value> out;
                  Value valid;
                  if (iLen >= 0) {
                    Value len = lenAt(nb, nl, a[iLen]);
                    valid = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt, s, len);
                  }
                  Value yv = hNew;
                  if (valid) {
                    yv = arith::SelectOp::create(nb, nl, valid, hNew, cst(nb, nl, 0));
                    hNew = arith::SelectOp::create(nb, nl, valid, hNew, hp);
                    if (cNew)
                      cNew = arith::SelectOp::create(nb, nl, valid, cNew, a[iC]);
                  }
                  out.push_back(hNew);
                  if (cNew)
                    out.push_back(cNew);
                  if (wantYVal)
                    out.push_back(yv);
                  return out;
                });
            // Copy the new state into the carried tensors: the loop's yields
            // must bufferize to the iter_args' buffers.
            auto carry = [&](Value v, Value into) {
              return linalg::CopyOp::create(lb, ll, ValueRange{v}, ValueRange{into})
                  .getResult(0);
            };
            SmallVector<Value> yields{carry(res[0], hPrev)};
            if (cPrev)
              yields.push_back(carry(res[1], cPrev));
            if (yCur) {
              Value yv = wantYVal ? res.back() : res[0];
              if (gather) {
                // Scatter into Y[len_b - 1 - s, d, b, :] where valid.
                SmallVector<AffineMap> smaps{
                    AffineMap::get(4, 0, {d2(2), d2(3)}, ctx),
                    AffineMap::get(4, 0, {d2(2)}, ctx),
                    AffineMap::getMultiDimIdentityMap(4, ctx)};
                SmallVector<utils::IteratorType> sits(4, utils::IteratorType::parallel);
                yCur = makeGeneric(
                    lb, ll, ValueRange{yv, seq}, ValueRange{yCur}, smaps, sits,
                    [&](OpBuilder &nb, Location nl, ValueRange a) -> SmallVector<Value> {
                      Value len = lenAt(nb, nl, a[1]);
                      Value tb = arith::SubIOp::create(
                          nb, nl, arith::SubIOp::create(nb, nl, len, cidx(nb, nl, 1)), s);
                      Value ti = linalg::IndexOp::create(nb, nl, 0);
                      Value di = linalg::IndexOp::create(nb, nl, 1);
                      Value hit = arith::AndIOp::create(
                          nb, nl,
                          arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, ti, tb),
                          arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, di,
                                                cidx(nb, nl, d)));
                      return {arith::SelectOp::create(nb, nl, hit, a[0], a[2])};
                    })[0];
              } else {
                SmallVector<OpFoldResult> offs{t, lb.getIndexAttr(d), lb.getIndexAttr(0),
                                               lb.getIndexAttr(0)};
                SmallVector<OpFoldResult> sizes{lb.getIndexAttr(1), lb.getIndexAttr(1),
                                                lb.getIndexAttr(Bn), lb.getIndexAttr(H)};
                SmallVector<OpFoldResult> strides(4, lb.getIndexAttr(1));
                yCur = tensor::InsertSliceOp::create(lb, ll, yv, yCur, offs, sizes, strides);
              }
              yields.push_back(yCur);
            }
            scf::YieldOp::create(lb, ll, yields);
          });
      finalH.push_back(loop.getResult(0));
      if (cInit)
        finalC.push_back(loop.getResult(1));
      if (Y)
        Y = loop.getResults().back();
    }

    auto stack = [&](ArrayRef<Value> states) -> Value {
      Value out = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{D, Bn, H}, et);
      for (int64_t d = 0; d < D; ++d) {
        SmallVector<OpFoldResult> offs{b.getIndexAttr(d), b.getIndexAttr(0),
                                       b.getIndexAttr(0)};
        SmallVector<OpFoldResult> sizes{b.getIndexAttr(1), b.getIndexAttr(Bn),
                                        b.getIndexAttr(H)};
        SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
        out = tensor::InsertSliceOp::create(b, loc, states[d], out, offs, sizes, strides);
      }
      if (layout == 1)
        out = transposeOf(b, loc, out, {1, 0, 2});
      return out;
    };
    SmallVector<Value> results;
    if (wantY) {
      results.push_back(layout == 1 ? transposeOf(b, loc, Y, {2, 0, 1, 3}) : Y);
    } else {
      results.push_back(Value());
    }
    if (!isa<NoneType>(op->getResult(1).getType())) {
      results.push_back(stack(finalH));
    } else {
      results.push_back(Value());
    }
    if constexpr (K == Kind::LSTM) {
      if (!isa<NoneType>(op->getResult(2).getType())) {
        results.push_back(stack(finalC));
      } else {
        results.push_back(Value());
      }
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

} // namespace

void populateOnnxRecurrentPatterns(RewritePatternSet &patterns,
                                   const TypeConverter &converter) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<RecurrentLowering<onnx::RNNOp, Kind::RNN>,
               RecurrentLowering<onnx::GRUOp, Kind::GRU>,
               RecurrentLowering<onnx::LSTMOp, Kind::LSTM>>(converter, ctx);
}

} // namespace kiln
