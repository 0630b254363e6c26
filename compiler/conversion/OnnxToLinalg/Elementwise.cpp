//===- Elementwise.cpp - onnx elementwise ops -> linalg.generic -----------===//
//
// Every elementwise ONNX op is one linalg.generic over numpy-broadcast
// operands; the ops differ only in the scalar body built here.
//
//===----------------------------------------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;

namespace kiln {
namespace {

/// What a scalar body sees: operand scalars plus the original op (attributes,
/// onnx-level signedness).
struct Ctx {
  Operation *op;
  bool isUnsigned; // of the first operand
};
using Body = std::function<Value(OpBuilder &, Location, ValueRange, const Ctx &)>;

template <typename OpTy>
struct ElementwiseLowering : OpConversionPattern<OpTy> {
  ElementwiseLowering(const TypeConverter &tc, MLIRContext *ctx, Body body,
                      bool floatOnly, int maxOperands)
      : OpConversionPattern<OpTy>(tc, ctx), body(std::move(body)),
        floatOnly(floatOnly), maxOperands(maxOperands) {}

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = resultType(*this->getTypeConverter(), op);
    if (!type)
      return rewriter.notifyMatchFailure(op, "unranked result");
    ValueRange operands = adaptor.getOperands();
    if (maxOperands >= 0 && (int)operands.size() > maxOperands)
      operands = operands.take_front(maxOperands);
    if (floatOnly && (operands.empty() ||
                      !isa<FloatType>(getElementTypeOrSelf(operands[0].getType()))))
      return rewriter.notifyMatchFailure(op, "float element types only");
    SmallVector<Value> inputs;
    for (Value v : operands) {
      if (isa<NoneType>(v.getType()))
        continue;
      if (!isa<RankedTensorType>(v.getType()))
        return rewriter.notifyMatchFailure(op, "unranked operand");
      inputs.push_back(v);
    }
    Ctx c{op, op->getNumOperands() && isUnsignedOnnx(op->getOperand(0))};
    // Operands that were `none` are passed as null scalars.
    SmallVector<bool> present;
    for (Value v : operands)
      present.push_back(!isa<NoneType>(v.getType()));
    Value r = buildElementwise(
        rewriter, op.getLoc(), type, inputs,
        [&](OpBuilder &b, Location loc, ValueRange scalars) {
          SmallVector<Value> all;
          size_t k = 0;
          for (bool p : present)
            all.push_back(p ? scalars[k++] : Value());
          return body(b, loc, all, c);
        });
    rewriter.replaceOp(op, r);
    return success();
  }
  Body body;
  bool floatOnly;
  int maxOperands;
};

bool isFloat(Value v) { return isa<FloatType>(v.getType()); }

template <typename F, typename I>
Body arith2(bool signedOnly = false) {
  return [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    if (isFloat(a[0]))
      return F::create(b, loc, a[0], a[1]);
    return I::create(b, loc, a[0], a[1]);
  };
}

Value sigmoid(OpBuilder &b, Location loc, Value x) {
  Value one = scalarConstant(b, loc, x.getType(), 1.0);
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, one, arith::AddFOp::create(b, loc, one, e));
}

template <typename OpTy>
void add(RewritePatternSet &p, const TypeConverter &tc, Body body,
         bool floatOnly = false, int maxOperands = -1) {
  p.add<ElementwiseLowering<OpTy>>(tc, p.getContext(), std::move(body),
                                   floatOnly, maxOperands);
}

template <typename OpTy, typename MathOp>
void addUnaryMath(RewritePatternSet &p, const TypeConverter &tc) {
  add<OpTy>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    return MathOp::create(b, loc, a[0]);
  }, /*floatOnly=*/true);
}

} // namespace

void populateOnnxElementwisePatterns(RewritePatternSet &p,
                                     const TypeConverter &tc) {
  using namespace arith;
  add<onnx::AddOp>(p, tc, arith2<AddFOp, AddIOp>());
  add<onnx::SubOp>(p, tc, arith2<SubFOp, SubIOp>());
  add<onnx::MulOp>(p, tc, arith2<MulFOp, MulIOp>());
  add<onnx::DivOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    if (isFloat(a[0]))
      return DivFOp::create(b, loc, a[0], a[1]);
    if (c.isUnsigned)
      return DivUIOp::create(b, loc, a[0], a[1]);
    return DivSIOp::create(b, loc, a[0], a[1]);
  });
  add<onnx::ModOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    bool fmod = intAttrOr(c.op, "fmod", 0);
    if (isFloat(a[0])) {
      Value r = RemFOp::create(b, loc, a[0], a[1]);
      if (fmod)
        return r;
      // Python-style: result takes the sign of the divisor.
      Value zero = scalarConstant(b, loc, a[0].getType(), 0);
      Value rNeg = CmpFOp::create(b, loc, CmpFPredicate::OLT, r, zero);
      Value dNeg = CmpFOp::create(b, loc, CmpFPredicate::OLT, a[1], zero);
      Value rNz = CmpFOp::create(b, loc, CmpFPredicate::ONE, r, zero);
      Value fix = AndIOp::create(b, loc, rNz, XOrIOp::create(b, loc, rNeg, dNeg));
      return SelectOp::create(b, loc, fix, AddFOp::create(b, loc, r, a[1]), r);
    }
    if (c.isUnsigned)
      return RemUIOp::create(b, loc, a[0], a[1]);
    Value r = RemSIOp::create(b, loc, a[0], a[1]);
    if (fmod)
      return r;
    Value zero = scalarConstant(b, loc, a[0].getType(), 0);
    Value rNeg = CmpIOp::create(b, loc, CmpIPredicate::slt, r, zero);
    Value dNeg = CmpIOp::create(b, loc, CmpIPredicate::slt, a[1], zero);
    Value rNz = CmpIOp::create(b, loc, CmpIPredicate::ne, r, zero);
    Value fix = AndIOp::create(b, loc, rNz, XOrIOp::create(b, loc, rNeg, dNeg));
    return SelectOp::create(b, loc, fix, AddIOp::create(b, loc, r, a[1]), r);
  });
  add<onnx::PowOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Value x = a[0], y = a[1];
    if (isFloat(x)) {
      y = castScalar(b, loc, y, x.getType(), isUnsignedOnnx(c.op->getOperand(1)), false);
      return math::PowFOp::create(b, loc, x, y);
    }
    // Integer base: compute in f64 and truncate, as the reference does.
    Value xf = castScalar(b, loc, x, b.getF64Type(), c.isUnsigned, false);
    Value yf = castScalar(b, loc, y, b.getF64Type(), isUnsignedOnnx(c.op->getOperand(1)), false);
    return castScalar(b, loc, math::PowFOp::create(b, loc, xf, yf), x.getType(),
                      false, c.isUnsigned);
  });
  auto variadic = [](bool isMax) -> Body {
    return [isMax](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
      Value r = a[0];
      for (Value v : a.drop_front()) {
        if (isFloat(r))
          r = isMax ? (Value)MaximumFOp::create(b, loc, r, v)
                    : (Value)MinimumFOp::create(b, loc, r, v);
        else if (c.isUnsigned)
          r = isMax ? (Value)MaxUIOp::create(b, loc, r, v)
                    : (Value)MinUIOp::create(b, loc, r, v);
        else
          r = isMax ? (Value)MaxSIOp::create(b, loc, r, v)
                    : (Value)MinSIOp::create(b, loc, r, v);
      }
      return r;
    };
  };
  add<onnx::MaxOp>(p, tc, variadic(true));
  add<onnx::MinOp>(p, tc, variadic(false));
  add<onnx::SumOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    Value r = a[0];
    for (Value v : a.drop_front())
      r = isFloat(r) ? (Value)AddFOp::create(b, loc, r, v) : (Value)AddIOp::create(b, loc, r, v);
    return r;
  });
  add<onnx::MeanOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    Value r = a[0];
    for (Value v : a.drop_front())
      r = AddFOp::create(b, loc, r, v);
    return DivFOp::create(b, loc, r, scalarConstant(b, loc, r.getType(), a.size()));
  }, /*floatOnly=*/true);

  // Comparisons and logic.
  auto cmp = [](CmpFPredicate f, CmpIPredicate s, CmpIPredicate u) -> Body {
    return [=](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
      if (isFloat(a[0]))
        return CmpFOp::create(b, loc, f, a[0], a[1]);
      return CmpIOp::create(b, loc, c.isUnsigned ? u : s, a[0], a[1]);
    };
  };
  add<onnx::EqualOp>(p, tc, cmp(CmpFPredicate::OEQ, CmpIPredicate::eq, CmpIPredicate::eq));
  add<onnx::LessOp>(p, tc, cmp(CmpFPredicate::OLT, CmpIPredicate::slt, CmpIPredicate::ult));
  add<onnx::LessOrEqualOp>(p, tc, cmp(CmpFPredicate::OLE, CmpIPredicate::sle, CmpIPredicate::ule));
  add<onnx::GreaterOp>(p, tc, cmp(CmpFPredicate::OGT, CmpIPredicate::sgt, CmpIPredicate::ugt));
  add<onnx::GreaterOrEqualOp>(p, tc, cmp(CmpFPredicate::OGE, CmpIPredicate::sge, CmpIPredicate::uge));
  add<onnx::AndOp>(p, tc, arith2<AndIOp, AndIOp>());
  add<onnx::OrOp>(p, tc, arith2<OrIOp, OrIOp>());
  add<onnx::XorOp>(p, tc, arith2<XOrIOp, XOrIOp>());
  add<onnx::NotOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    return XOrIOp::create(b, loc, a[0], scalarConstant(b, loc, a[0].getType(), 1));
  });
  add<onnx::BitShiftOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    auto dir = c.op->getAttrOfType<StringAttr>("direction");
    if (dir && dir.getValue() == "LEFT")
      return ShLIOp::create(b, loc, a[0], a[1]);
    return ShRUIOp::create(b, loc, a[0], a[1]);
  });
  add<onnx::WhereOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    return SelectOp::create(b, loc, a[0], a[1], a[2]);
  });

  // Unary math.
  addUnaryMath<onnx::ExpOp, math::ExpOp>(p, tc);
  addUnaryMath<onnx::LogOp, math::LogOp>(p, tc);
  addUnaryMath<onnx::SqrtOp, math::SqrtOp>(p, tc);
  addUnaryMath<onnx::TanhOp, math::TanhOp>(p, tc);
  addUnaryMath<onnx::ErfOp, math::ErfOp>(p, tc);
  addUnaryMath<onnx::SinOp, math::SinOp>(p, tc);
  addUnaryMath<onnx::CosOp, math::CosOp>(p, tc);
  addUnaryMath<onnx::TanOp, math::TanOp>(p, tc);
  addUnaryMath<onnx::AsinOp, math::AsinOp>(p, tc);
  addUnaryMath<onnx::AcosOp, math::AcosOp>(p, tc);
  addUnaryMath<onnx::AtanOp, math::AtanOp>(p, tc);
  addUnaryMath<onnx::SinhOp, math::SinhOp>(p, tc);
  addUnaryMath<onnx::CoshOp, math::CoshOp>(p, tc);
  addUnaryMath<onnx::AsinhOp, math::AsinhOp>(p, tc);
  addUnaryMath<onnx::AcoshOp, math::AcoshOp>(p, tc);
  addUnaryMath<onnx::AtanhOp, math::AtanhOp>(p, tc);
  addUnaryMath<onnx::FloorOp, math::FloorOp>(p, tc);
  addUnaryMath<onnx::CeilOp, math::CeilOp>(p, tc);
  addUnaryMath<onnx::RoundOp, math::RoundEvenOp>(p, tc);
  add<onnx::AbsOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    if (isFloat(a[0]))
      return math::AbsFOp::create(b, loc, a[0]);
    if (c.isUnsigned)
      return a[0];
    return math::AbsIOp::create(b, loc, a[0]);
  });
  add<onnx::NegOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    if (isFloat(a[0]))
      return NegFOp::create(b, loc, a[0]);
    return SubIOp::create(b, loc, scalarConstant(b, loc, a[0].getType(), 0), a[0]);
  });
  add<onnx::SignOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    Value zero = scalarConstant(b, loc, t, 0), one = scalarConstant(b, loc, t, 1), neg = scalarConstant(b, loc, t, -1);
    Value gt, lt;
    if (isFloat(a[0])) {
      gt = CmpFOp::create(b, loc, CmpFPredicate::OGT, a[0], zero);
      lt = CmpFOp::create(b, loc, CmpFPredicate::OLT, a[0], zero);
    } else {
      gt = CmpIOp::create(b, loc, c.isUnsigned ? CmpIPredicate::ugt : CmpIPredicate::sgt, a[0], zero);
      lt = CmpIOp::create(b, loc, c.isUnsigned ? CmpIPredicate::ult : CmpIPredicate::slt, a[0], zero);
    }
    return SelectOp::create(b, loc, gt, one, SelectOp::create(b, loc, lt, neg, zero));
  });
  add<onnx::ReciprocalOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    return DivFOp::create(b, loc, scalarConstant(b, loc, a[0].getType(), 1), a[0]);
  }, /*floatOnly=*/true);
  add<onnx::ReluOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    Value zero = scalarConstant(b, loc, a[0].getType(), 0);
    if (isFloat(a[0]))
      return MaximumFOp::create(b, loc, a[0], zero);
    return MaxSIOp::create(b, loc, a[0], zero);
  });
  add<onnx::SigmoidOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    return sigmoid(b, loc, a[0]);
  }, /*floatOnly=*/true);
  add<onnx::HardSigmoidOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    Value v = AddFOp::create(b, loc, MulFOp::create(b, loc, a[0], scalarConstant(b, loc, t, floatAttrOr(c.op, "alpha", 0.2f))),
                             scalarConstant(b, loc, t, floatAttrOr(c.op, "beta", 0.5f)));
    return MinimumFOp::create(b, loc, MaximumFOp::create(b, loc, v, scalarConstant(b, loc, t, 0)), scalarConstant(b, loc, t, 1));
  }, /*floatOnly=*/true);
  add<onnx::HardSwishOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    Type t = a[0].getType();
    Value v = AddFOp::create(b, loc, MulFOp::create(b, loc, a[0], scalarConstant(b, loc, t, 1.0 / 6)), scalarConstant(b, loc, t, 0.5));
    v = MinimumFOp::create(b, loc, MaximumFOp::create(b, loc, v, scalarConstant(b, loc, t, 0)), scalarConstant(b, loc, t, 1));
    return MulFOp::create(b, loc, a[0], v);
  }, /*floatOnly=*/true);
  add<onnx::LeakyReluOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    Value neg = CmpFOp::create(b, loc, CmpFPredicate::OLT, a[0], scalarConstant(b, loc, t, 0));
    return SelectOp::create(b, loc, neg, MulFOp::create(b, loc, a[0], scalarConstant(b, loc, t, floatAttrOr(c.op, "alpha", 0.01f))), a[0]);
  }, /*floatOnly=*/true);
  add<onnx::PReluOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    if (!isFloat(a[0])) {
      Value neg = CmpIOp::create(b, loc, CmpIPredicate::slt, a[0], scalarConstant(b, loc, t, 0));
      return SelectOp::create(b, loc, neg, MulIOp::create(b, loc, a[0], a[1]), a[0]);
    }
    Value neg = CmpFOp::create(b, loc, CmpFPredicate::OLT, a[0], scalarConstant(b, loc, t, 0));
    return SelectOp::create(b, loc, neg, MulFOp::create(b, loc, a[0], a[1]), a[0]);
  });
  add<onnx::EluOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    Value neg = CmpFOp::create(b, loc, CmpFPredicate::OLT, a[0], scalarConstant(b, loc, t, 0));
    Value em1 = SubFOp::create(b, loc, math::ExpOp::create(b, loc, a[0]), scalarConstant(b, loc, t, 1));
    return SelectOp::create(b, loc, neg, MulFOp::create(b, loc, em1, scalarConstant(b, loc, t, floatAttrOr(c.op, "alpha", 1.0f))), a[0]);
  }, /*floatOnly=*/true);
  add<onnx::CeluOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    Value alpha = scalarConstant(b, loc, t, floatAttrOr(c.op, "alpha", 1.0f));
    Value zero = scalarConstant(b, loc, t, 0);
    Value em1 = SubFOp::create(b, loc, math::ExpOp::create(b, loc, DivFOp::create(b, loc, a[0], alpha)), scalarConstant(b, loc, t, 1));
    return AddFOp::create(b, loc, MaximumFOp::create(b, loc, a[0], zero),
                          MinimumFOp::create(b, loc, zero, MulFOp::create(b, loc, alpha, em1)));
  }, /*floatOnly=*/true);
  add<onnx::SeluOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    Value alpha = scalarConstant(b, loc, t, floatAttrOr(c.op, "alpha", 1.67326319217681884765625f));
    Value gamma = scalarConstant(b, loc, t, floatAttrOr(c.op, "gamma", 1.05070102214813232421875f));
    Value neg = CmpFOp::create(b, loc, CmpFPredicate::OLE, a[0], scalarConstant(b, loc, t, 0));
    Value em1 = SubFOp::create(b, loc, math::ExpOp::create(b, loc, a[0]), scalarConstant(b, loc, t, 1));
    Value v = SelectOp::create(b, loc, neg, MulFOp::create(b, loc, alpha, em1), a[0]);
    return MulFOp::create(b, loc, gamma, v);
  }, /*floatOnly=*/true);
  add<onnx::ThresholdedReluOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    Value gt = CmpFOp::create(b, loc, CmpFPredicate::OGT, a[0], scalarConstant(b, loc, t, floatAttrOr(c.op, "alpha", 1.0f)));
    return SelectOp::create(b, loc, gt, a[0], scalarConstant(b, loc, t, 0));
  }, /*floatOnly=*/true);
  add<onnx::SoftplusOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    return math::Log1pOp::create(b, loc, math::ExpOp::create(b, loc, a[0]));
  }, /*floatOnly=*/true);
  add<onnx::SoftsignOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    Type t = a[0].getType();
    return DivFOp::create(b, loc, a[0], AddFOp::create(b, loc, scalarConstant(b, loc, t, 1), math::AbsFOp::create(b, loc, a[0])));
  }, /*floatOnly=*/true);
  add<onnx::ShrinkOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    double lambd = floatAttrOr(c.op, "lambd", 0.5f), bias = floatAttrOr(c.op, "bias", 0.0f);
    if (!isFloat(a[0])) {
      // Integer inputs: compare in f64, results stay integral.
      Value x = castScalar(b, loc, a[0], b.getF64Type(), c.isUnsigned, false);
      Value lo = CmpFOp::create(b, loc, CmpFPredicate::OLT, x, scalarConstant(b, loc, b.getF64Type(), -lambd));
      Value hi = CmpFOp::create(b, loc, CmpFPredicate::OGT, x, scalarConstant(b, loc, b.getF64Type(), lambd));
      Value r = SelectOp::create(b, loc, lo, AddFOp::create(b, loc, x, scalarConstant(b, loc, b.getF64Type(), bias)),
                                 SelectOp::create(b, loc, hi, SubFOp::create(b, loc, x, scalarConstant(b, loc, b.getF64Type(), bias)),
                                                  scalarConstant(b, loc, b.getF64Type(), 0)));
      return castScalar(b, loc, r, t, false, c.isUnsigned);
    }
    Value lo = CmpFOp::create(b, loc, CmpFPredicate::OLT, a[0], scalarConstant(b, loc, t, -lambd));
    Value hi = CmpFOp::create(b, loc, CmpFPredicate::OGT, a[0], scalarConstant(b, loc, t, lambd));
    return SelectOp::create(b, loc, lo, AddFOp::create(b, loc, a[0], scalarConstant(b, loc, t, bias)),
                            SelectOp::create(b, loc, hi, SubFOp::create(b, loc, a[0], scalarConstant(b, loc, t, bias)), scalarConstant(b, loc, t, 0)));
  });
  add<onnx::IsNaNOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &) -> Value {
    return CmpFOp::create(b, loc, CmpFPredicate::UNO, a[0], a[0]);
  }, /*floatOnly=*/true);
  add<onnx::IsInfOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type t = a[0].getType();
    Value inf = scalarConstant(b, loc, t, INFINITY), ninf = scalarConstant(b, loc, t, -INFINITY);
    Value pos = CmpFOp::create(b, loc, CmpFPredicate::OEQ, a[0], inf);
    Value neg = CmpFOp::create(b, loc, CmpFPredicate::OEQ, a[0], ninf);
    Value r;
    bool dp = intAttrOr(c.op, "detect_positive", 1), dn = intAttrOr(c.op, "detect_negative", 1);
    Value f = scalarConstant(b, loc, b.getI1Type(), 0);
    r = OrIOp::create(b, loc, dp ? pos : f, dn ? neg : f);
    return r;
  }, /*floatOnly=*/true);
  add<onnx::ClipOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Value x = a[0];
    bool f = isFloat(x);
    if (a.size() > 1 && a[1])
      x = f ? (Value)MaximumFOp::create(b, loc, x, a[1])
            : c.isUnsigned ? (Value)MaxUIOp::create(b, loc, x, a[1])
                           : (Value)MaxSIOp::create(b, loc, x, a[1]);
    if (a.size() > 2 && a[2])
      x = f ? (Value)MinimumFOp::create(b, loc, x, a[2])
            : c.isUnsigned ? (Value)MinUIOp::create(b, loc, x, a[2])
                           : (Value)MinSIOp::create(b, loc, x, a[2]);
    return x;
  });
  add<onnx::CastOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type to = getElementTypeOrSelf(c.op->getResult(0).getType());
    Type toSignless = to.isUnsignedInteger()
                          ? (Type)b.getIntegerType(to.getIntOrFloatBitWidth())
                          : to;
    return castScalar(b, loc, a[0], toSignless, c.isUnsigned, to.isUnsignedInteger());
  });
  add<onnx::CastLikeOp>(p, tc, [](OpBuilder &b, Location loc, ValueRange a, const Ctx &c) -> Value {
    Type to = getElementTypeOrSelf(c.op->getResult(0).getType());
    Type toSignless = to.isUnsignedInteger()
                          ? (Type)b.getIntegerType(to.getIntOrFloatBitWidth())
                          : to;
    return castScalar(b, loc, a[0], toSignless, c.isUnsigned, to.isUnsignedInteger());
  }, false, /*maxOperands=*/1);
  add<onnx::IdentityOp>(p, tc, [](OpBuilder &, Location, ValueRange a, const Ctx &) -> Value {
    return a[0];
  });
}

} // namespace kiln
