//===- GpuUkernelBuilder.h - Building the GPU form of a microkernel -*- C++ -*-===//
//
// UkernelBuilder holds one llm.ukernel op being expanded (GpuUkernels.h):
// typed access to its C argument list, f32 and index arithmetic one op per
// C operator, the few scf shapes the expanders share, and uk_math.h's exp,
// erfc and activations built from arith ops.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_GPU_GPUUKERNELBUILDER_H
#define KILN_TARGETS_GPU_GPUUKERNELBUILDER_H

#include "targets/gpu/GpuUkernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace kiln {
// The expanders are written in MLIR's names; the using-directive stays in
// this namespace.
namespace gpu_ukernel {
using namespace mlir;

/// The 16 lanes of the C code's vectors (UK_W).
constexpr int64_t kLanes = 16;

/// Builds the loop nest of one llm.ukernel op: typed access to its C
/// argument list and the few arith/scf shapes the expanders share.
class UkernelBuilder {
public:
  UkernelBuilder(llm::UkernelOp op, mlir::RewriterBase &rw)
      : op(op), rw(rw), loc(op.getLoc()), args(op.getArgs()) {}

  LogicalResult expect(unsigned n, std::string &error) {
    return expectUkernelArgs(op, n, error);
  }
  Value buffer(unsigned i) { return ukernelBuffer(op, i, rw); }
  Value size(unsigned i) { return ukernelSize(op, i, rw); }

  int64_t intArg(unsigned i) { return cast<IntegerAttr>(args[i]).getInt(); }
  float floatArg(unsigned i) {
    return cast<FloatAttr>(args[i]).getValue().convertToFloat();
  }

  // Index arithmetic.
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(rw, loc, v); }
  Value add(Value a, Value b) { return arith::AddIOp::create(rw, loc, a, b); }
  Value sub(Value a, Value b) { return arith::SubIOp::create(rw, loc, a, b); }
  Value mul(Value a, Value b) { return arith::MulIOp::create(rw, loc, a, b); }
  Value div(Value a, Value b) { return arith::DivUIOp::create(rw, loc, a, b); }
  Value rem(Value a, Value b) { return arith::RemUIOp::create(rw, loc, a, b); }
  Value lt(Value a, Value b) {
    return arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::slt, a, b);
  }
  Value le(Value a, Value b) {
    return arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::sle, a, b);
  }
  Value eq(Value a, Value b) {
    return arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::eq, a, b);
  }
  Value land(Value a, Value b) { return arith::AndIOp::create(rw, loc, a, b); }
  Value ceilDiv(Value a, int64_t b) { return div(add(a, idx(b - 1)), idx(b)); }
  Value select(Value c, Value a, Value b) {
    return arith::SelectOp::create(rw, loc, c, a, b);
  }
  /// Row-major linear index of `ivs` in `dims`.
  Value linear(ArrayRef<Value> ivs, ArrayRef<Value> dims) {
    Value r = ivs[0];
    for (size_t i = 1; i < ivs.size(); ++i)
      r = add(mul(r, dims[i]), ivs[i]);
    return r;
  }

  // f32 arithmetic, one op per C operator.
  Value f(float v) {
    return arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(v));
  }
  Value fadd(Value a, Value b) { return arith::AddFOp::create(rw, loc, a, b); }
  Value fsub(Value a, Value b) { return arith::SubFOp::create(rw, loc, a, b); }
  Value fmul(Value a, Value b) { return arith::MulFOp::create(rw, loc, a, b); }
  Value fdiv(Value a, Value b) { return arith::DivFOp::create(rw, loc, a, b); }
  Value fneg(Value a) { return arith::NegFOp::create(rw, loc, a); }
  /// a * b + c with one rounding (clang's contraction of one expression).
  Value fma(Value a, Value b, Value c) { return math::FmaOp::create(rw, loc, a, b, c); }
  Value flt(Value a, Value b) {
    return arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OLT, a, b);
  }
  Value fgt(Value a, Value b) {
    return arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OGT, a, b);
  }

  Value load(Value buf, Value i) { return memref::LoadOp::create(rw, loc, buf, ValueRange{i}); }
  void store(Value v, Value buf, Value i) {
    memref::StoreOp::create(rw, loc, v, buf, ValueRange{i});
  }
  /// (float)D of an index, through int32 as the device's index is.
  Value toFloat(Value v) {
    Value i = arith::IndexCastOp::create(rw, loc, rw.getI32Type(), v);
    return arith::SIToFPOp::create(rw, loc, rw.getF32Type(), i);
  }
  /// An int64 id at buf[i] clamped into [0, n - 1], as an index
  /// (uk_clamp64: n <= 0 is the caller's to exclude).
  Value clampedId(Value buf, Value i, Value n) {
    Value id = load(buf, i);
    Type it = id.getType();
    Value hi = arith::IndexCastOp::create(rw, loc, it, sub(n, idx(1)));
    Value zero = arith::ConstantOp::create(rw, loc, rw.getIntegerAttr(it, 0));
    id = arith::MinSIOp::create(rw, loc, arith::MaxSIOp::create(rw, loc, id, zero), hi);
    return arith::IndexCastOp::create(rw, loc, rw.getIndexType(), id);
  }

  /// Opens the one scf.parallel over [0, ubs) and moves the insertion point
  /// into its body; returns the induction variables.
  SmallVector<Value> parallel(ArrayRef<Value> ubs) {
    SmallVector<Value> lbs(ubs.size(), idx(0)), steps(ubs.size(), idx(1));
    auto p = scf::ParallelOp::create(rw, loc, lbs, ubs, steps);
    rw.setInsertionPointToStart(p.getBody());
    return SmallVector<Value>(p.getInductionVars());
  }

  /// scf.for from lb to ub by step carrying `inits`; `body(iv, carried)`
  /// returns the next values. Returns the final ones.
  SmallVector<Value> loop(Value lb, Value ub, Value step, ValueRange inits,
                          function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto f = scf::ForOp::create(rw, loc, lb, ub, step, inits);
    {
      OpBuilder::InsertionGuard g(rw);
      rw.setInsertionPointToStart(f.getBody());
      SmallVector<Value> next = body(f.getInductionVar(), f.getRegionIterArgs());
      if (f.getBody()->empty() || !f.getBody()->back().hasTrait<OpTrait::IsTerminator>())
        scf::YieldOp::create(rw, loc, next);
    }
    return SmallVector<Value>(f.getResults());
  }

  /// `cond ? thenFn() : elseFn()` where only the taken side may be
  /// evaluated (it loads from a buffer that may be empty otherwise).
  Value ifElse(Value cond, Type t, function_ref<Value()> thenFn,
               function_ref<Value()> elseFn) {
    auto i = scf::IfOp::create(rw, loc, TypeRange{t}, cond, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard g(rw);
    rw.setInsertionPointToStart(i.thenBlock());
    scf::YieldOp::create(rw, loc, thenFn());
    rw.setInsertionPointToStart(i.elseBlock());
    scf::YieldOp::create(rw, loc, elseFn());
    return i.getResult(0);
  }

  /// Side effects only: `thenFn` where `cond` holds.
  void ifThen(Value cond, function_ref<void()> thenFn) {
    auto i = scf::IfOp::create(rw, loc, TypeRange{}, cond, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard g(rw);
    rw.setInsertionPoint(i.thenBlock()->getTerminator());
    thenFn();
  }

  /// Side effects only: then / else bodies with no results.
  void ifThenElse(Value cond, function_ref<void()> thenFn, function_ref<void()> elseFn) {
    auto i = scf::IfOp::create(rw, loc, TypeRange{}, cond, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard g(rw);
    rw.setInsertionPoint(i.thenBlock()->getTerminator());
    thenFn();
    rw.setInsertionPoint(i.elseBlock()->getTerminator());
    elseFn();
  }

  /// uk_expf (uk_math.h): Cody-Waite reduction, Cephes polynomial, 2^n as
  /// two factors; the same operations in the same order, except that n is
  /// rounded by math.roundeven rather than by adding and subtracting
  /// 1.5 * 2^23: shader compilers (Mesa's NIR) fold (t + c) - c into t,
  /// which loses the rounding. (The C code rounds the exact product x *
  /// log2(e); here the f32 product is rounded, which can differ by one at a
  /// tie, where both n give exp(x) to the same accuracy.)
  Value exp(Value x) {
    Type i32 = rw.getI32Type();
    x = select(flt(x, f(-104.0f)), f(-104.0f), x);
    x = select(fgt(x, f(88.8f)), f(88.8f), x);
    Value nf = math::RoundEvenOp::create(rw, loc, fmul(x, f(1.44269504088896341f)));
    Value n = arith::FPToSIOp::create(rw, loc, i32, nf);
    Value r = fma(fneg(nf), f(0.693359375f), x);
    r = fma(fneg(nf), f(-2.12194440e-4f), r);
    Value p = f(1.9875691500e-4f);
    for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                    1.6666665459e-1f, 5.0000001201e-1f})
      p = fma(p, r, f(c));
    Value y = fadd(fma(p, fmul(r, r), r), f(1.0f));
    Value one = arith::ConstantIntOp::create(rw, loc, i32, 1);
    Value n1 = arith::ShRSIOp::create(rw, loc, n, one);
    Value n2 = arith::SubIOp::create(rw, loc, n, n1);
    auto pow2 = [&](Value e) {
      Value bias = arith::ConstantIntOp::create(rw, loc, i32, 127);
      Value sh = arith::ConstantIntOp::create(rw, loc, i32, 23);
      Value bits = arith::ShLIOp::create(rw, loc, arith::AddIOp::create(rw, loc, e, bias), sh);
      return arith::BitcastOp::create(rw, loc, rw.getF32Type(), bits);
    };
    return fmul(fmul(y, pow2(n1)), pow2(n2));
  }

  /// uk_erfcf (uk_math.h): Numerical Recipes' erfcc.
  Value erfc(Value z) {
    Value neg = flt(z, f(0.0f));
    Value az = select(neg, fneg(z), z);
    Value t = fdiv(f(1.0f), fma(f(0.5f), az, f(1.0f)));
    Value p = f(0.17087277f);
    for (float c : {-0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f, -0.18628806f,
                    0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f})
      p = fma(p, t, f(c));
    Value r = fmul(t, exp(fma(fneg(az), az, p)));
    return select(neg, fsub(f(2.0f), r), r);
  }

  /// uk_act_v: the KILN_UK_ACT_* codes; an unknown code is the identity.
  Value activation(Value x, int64_t act) {
    switch (act) {
    case 1: { // gelu_tanh as x * sigmoid(2y)
      Value inner = fma(fmul(fmul(f(0.044715f), x), x), x, x);
      Value y = fmul(f(0.79788456080286536f), inner);
      return fdiv(x, fadd(f(1.0f), exp(fmul(f(-2.0f), y))));
    }
    case 2: // silu
      return fdiv(x, fadd(f(1.0f), exp(fneg(x))));
    case 3: // gelu_erf = 0.5 x erfc(-x / sqrt 2)
      return fmul(fmul(f(0.5f), x), erfc(fmul(fneg(x), f(0.70710678118654752f))));
    default:
      return x;
    }
  }

  /// Erases the op; before bufferization its results are its outputs.
  LogicalResult finish() {
    rw.setInsertionPoint(op);
    if (op->getNumResults() != 0)
      rw.replaceOp(op, op.getOutputs());
    else
      rw.eraseOp(op);
    return success();
  }

  llm::UkernelOp op;
  RewriterBase &rw;
  Location loc;
  ArrayAttr args;
};

} // namespace gpu_ukernel

using gpu_ukernel::kLanes;
using gpu_ukernel::UkernelBuilder;

} // namespace kiln

#endif
