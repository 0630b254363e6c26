//===- GpuUkernelsDense.cpp - Dense LLM microkernels as GPU loop nests -----===//
//
// The GPU versions of the f32 microkernels of targets/cpu/ukernels that are
// not attention: embedding (layout.c), RMSNorm and LayerNorm (norm.c), the
// matmul and its GLU form over weights in the packed panel layout (matmul.c,
// pack.c), head split/merge (layout.c) and rotary embedding (rotary.c). Each
// reads its operands and scalars from the op's C argument list (`args`, see
// LowerLlm.cpp) exactly as the C function would, and becomes the form of
// GpuUkernels.h: one scf.parallel over output elements for the layout ops,
// a cooperative loop (GpuWorkgroup.h) for the reductions: a row per
// workgroup for the norms, 4 rows by 16 * P columns for the matmuls.
//
// The arithmetic follows the C code operation by operation where it can:
// - every `a * b + c` that clang contracts into one fused multiply-add (one
//   C expression) is a math.fma here, and nothing else is fused;
// - the sums are split over invocations and so rounded in another order
//   than on the CPU (matmul.c keeps one FMA chain per output, norm.c 64
//   partial sums); greedy decoding of the fixtures stays equal to their
//   references (test/e2e/check_vulkan.py);
// - exp and erfc are uk_math.h's polynomials built from arith ops, not
//   math.exp: GLSL's exp may be off by 3 + 2|x| ulp, and activations as
//   close to the CPU's as possible keep greedy decoding equal to it. Only
//   exp's rounding to an integer differs (see Expansion::exp).
//
//===----------------------------------------------------------------------===//
#include "targets/vulkan/GpuUkernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;

namespace kiln {
namespace {

/// The 16 lanes of the C code's vectors (UK_W).
constexpr int64_t kLanes = 16;

/// Builds the loop nest of one llm.ukernel op: typed access to its C
/// argument list and the few arith/scf shapes the expanders share.
class Expansion {
public:
  Expansion(llm::UkernelOp op, RewriterBase &rw)
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

/// The epilogue of one output element from its sums over k.
Value matmulEpilogue(Expansion &e, Value acc, Value accUp, Value n, Value out, Value bias,
                     Value residual, int64_t act) {
  if (accUp)
    return e.fmul(e.activation(acc, act), accUp);
  Value y = acc;
  if (bias)
    y = e.fadd(y, e.load(bias, n));
  y = e.activation(y, act);
  if (residual)
    y = e.fadd(y, e.load(residual, out));
  return y;
}

/// C = act(A @ B + bias) + residual (Bu == null) or act(A @ Bg) * (A @ Bu).
/// B [K, N] is in panels of 16 columns, k-major inside a panel: element
/// (k, n) is at (n / 16) * K * 16 + k * 16 + n % 16 (the last panel padded
/// with zeros).
///
/// One invocation per output element, each one FMA chain over k in order:
/// for workgroup sizes the cooperative form below cannot split.
void matmulPerElement(Expansion &e, Value A, Value M, Value K, Value Bp, Value Bu, Value N,
            Value bias, Value residual, int64_t act, Value C) {
  SmallVector<Value> iv = e.parallel({M, N});
  Value row = iv[0], n = iv[1];
  Value c16 = e.idx(kLanes);
  Value panel = e.add(e.mul(e.mul(e.div(n, c16), K), c16), e.rem(n, c16));
  Value aRow = e.mul(row, K);
  Value zero = e.f(0.0f);
  SmallVector<Value> inits{zero};
  if (Bu)
    inits.push_back(zero);
  SmallVector<Value> acc =
      e.loop(e.idx(0), K, e.idx(1), inits, [&](Value k, ValueRange c) {
        Value a = e.load(A, e.add(aRow, k));
        Value w = e.add(panel, e.mul(k, c16));
        SmallVector<Value> next{e.fma(a, e.load(Bp, w), c[0])};
        if (Bu)
          next.push_back(e.fma(a, e.load(Bu, w), c[1]));
        return next;
      });
  Value out = e.add(e.mul(row, N), n);
  e.store(matmulEpilogue(e, acc[0], Bu ? acc[1] : Value(), n, out, bias, residual, act), C, out);
}

/// The same product, cooperative. A work item is (a block of 4 rows of A,
/// a group of panels); a workgroup of 64 * P invocations takes P panels.
/// Invocation t works on column c = (t / 4) % 16 of panel t / 64 and on
/// the k of one residue s = t % 4: each step of the workgroup reads 4
/// consecutive k-rows of every panel, 256 contiguous bytes each, and each
/// weight feeds all 4 rows (a decode GEMV reads the weights once). The 4
/// partial sums of a column are then added across neighbouring lanes
/// (subgroup shuffles, or shared memory). A last block of fewer than 4
/// rows goes row by row.
void matmul(Expansion &e, const GpuKernelConfig &cfg, Value A, Value M, Value K, Value Bp,
            Value Bu, Value N, Value bias, Value residual, int64_t act, Value C) {
  constexpr int64_t kSlices = 4, kRows = 4;
  if (cfg.workgroupSize % (kLanes * kSlices) != 0) {
    matmulPerElement(e, A, M, K, Bp, Bu, N, bias, residual, act, C);
    return;
  }
  int64_t perGroup = cfg.workgroupSize / (kLanes * kSlices);
  WorkgroupBuilder wg(e.rw, e.loc, cfg);
  Value panels = e.ceilDiv(N, kLanes);
  SmallVector<Value> iv = wg.items({e.ceilDiv(M, kRows), e.ceilDiv(panels, perGroup)});
  Value t = wg.tid();
  Value s = e.rem(t, e.idx(kSlices));
  Value c = e.rem(e.div(t, e.idx(kSlices)), e.idx(kLanes));
  Value panel = e.add(e.mul(iv[1], e.idx(perGroup)), e.div(t, e.idx(kSlices * kLanes)));
  Value kEnd = e.select(e.lt(panel, panels), K, e.idx(0));
  Value n = e.add(e.mul(panel, e.idx(kLanes)), c);
  Value wBase = e.add(e.mul(e.mul(panel, K), e.idx(kLanes)), c);
  Value firstRow = e.mul(iv[0], e.idx(kRows));
  int64_t perRow = Bu ? 2 : 1;
  auto block = [&](Value row0, int64_t rows) {
    SmallVector<Value> inits(rows * perRow, e.f(0.0f));
    SmallVector<Value> acc = e.loop(s, kEnd, e.idx(kSlices), inits, [&](Value k, ValueRange a) {
      Value at = e.add(wBase, e.mul(k, e.idx(kLanes)));
      Value w = e.load(Bp, at);
      Value wu = Bu ? e.load(Bu, at) : Value();
      SmallVector<Value> next;
      for (int64_t j = 0; j < rows; ++j) {
        Value x = e.load(A, e.add(e.mul(e.add(row0, e.idx(j)), K), k));
        next.push_back(e.fma(x, w, a[j * perRow]));
        if (Bu)
          next.push_back(e.fma(x, wu, a[j * perRow + 1]));
      }
      return next;
    });
    SmallVector<Value> sums = wg.clusterSum(acc, kSlices);
    e.ifThen(e.land(e.eq(s, e.idx(0)), e.lt(n, N)), [&] {
      for (int64_t j = 0; j < rows; ++j) {
        Value out = e.add(e.mul(e.add(row0, e.idx(j)), N), n);
        Value y = matmulEpilogue(e, sums[j * perRow], Bu ? sums[j * perRow + 1] : Value(), n,
                                 out, bias, residual, act);
        e.store(y, C, out);
      }
    });
  };
  e.ifThenElse(
      e.le(e.add(firstRow, e.idx(kRows)), M), [&] { block(firstRow, kRows); },
      [&] {
        e.loop(firstRow, M, e.idx(1), {}, [&](Value row, ValueRange) {
          block(row, 1);
          return SmallVector<Value>{};
        });
      });
}

/// The sum over i in [0, D) of term(x[base + i]) (with `square`: of its
/// square), split over a workgroup: each invocation adds its elements (i =
/// tid, tid + size, ...) in one chain, then the partial sums are reduced
/// across the workgroup.
Value rowSum(Expansion &e, WorkgroupBuilder &wg, Value x, Value base, Value D, bool square,
             function_ref<Value(Value)> term) {
  Value partial = wg.strided(D, {e.f(0.0f)}, [&](Value i, ValueRange acc) {
    Value d = term(e.load(x, e.add(base, i)));
    return SmallVector<Value>{square ? e.fma(d, d, acc[0]) : e.fadd(acc[0], d)};
  })[0];
  return wg.allReduce({partial}, CombineKind::Add)[0];
}

/// norm.c's uk_norm_apply: out = (x - shift) * scale * w (+ b), the row's
/// elements spread over the workgroup. Each invocation reads the elements
/// it writes, so out may alias x.
void normApply(Expansion &e, WorkgroupBuilder &wg, Value x, Value base, Value D, Value shift,
               Value scale, Value w, Value b, Value out) {
  wg.strided(D, {}, [&](Value i, ValueRange) {
    Value at = e.add(base, i);
    Value v = e.load(x, at);
    if (shift)
      v = e.fsub(v, shift);
    Value y = e.fmul(e.fmul(v, scale), e.load(w, i));
    if (b)
      y = e.fadd(y, e.load(b, i));
    e.store(y, out, at);
    return SmallVector<Value>{};
  });
}

} // namespace

// kiln_uk_embedding_f32(table, V, D, ids, N, pos_table, max_pos, pos, out):
// one work item per output element.
LogicalResult expandEmbeddingF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &,
                               std::string &error) {
  Expansion e(op, rw);
  if (failed(e.expect(9, error)))
    return failure();
  Value table = e.buffer(0), V = e.size(1), D = e.size(2), ids = e.buffer(3), N = e.size(4);
  Value posTable = e.buffer(5), maxPos = e.size(6), pos = e.buffer(7), out = e.buffer(8);
  SmallVector<Value> iv = e.parallel({N, D});
  Value r = iv[0], i = iv[1];
  Value zero = e.f(0.0f);
  Value y = e.ifElse(e.lt(e.idx(0), V), rw.getF32Type(), [&] {
    return e.load(table, e.add(e.mul(e.clampedId(ids, r, V), D), i));
  }, [&] { return zero; });
  if (posTable) {
    y = e.ifElse(e.lt(e.idx(0), maxPos), rw.getF32Type(), [&] {
      Value p = pos ? e.clampedId(pos, r, maxPos)
                    : e.select(e.lt(r, maxPos), r, e.sub(maxPos, e.idx(1)));
      return e.fadd(y, e.load(posTable, e.add(e.mul(p, D), i)));
    }, [&] { return y; });
  }
  e.store(y, out, e.add(e.mul(r, D), i));
  return e.finish();
}

// kiln_uk_rms_norm_f32(x, rows, D, w, eps, out): one work item per row.
LogicalResult expandRmsNormF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &config, std::string &error) {
  Expansion e(op, rw);
  if (failed(e.expect(6, error)))
    return failure();
  Value x = e.buffer(0), rows = e.size(1), D = e.size(2), w = e.buffer(3);
  float eps = e.floatArg(4);
  Value out = e.buffer(5);
  WorkgroupBuilder wg(rw, op.getLoc(), config);
  Value r = wg.items({rows})[0];
  Value base = e.mul(r, D);
  Value Df = e.toFloat(D);
  // The C code subtracts a shift of 0.0f, which changes no value.
  Value ms = e.fdiv(rowSum(e, wg, x, base, D, /*square=*/true, [](Value v) { return v; }), Df);
  Value sqrt = math::SqrtOp::create(rw, op.getLoc(), e.fadd(ms, e.f(eps)));
  Value scale = e.fdiv(e.f(1.0f), sqrt);
  normApply(e, wg, x, base, D, Value(), scale, w, Value(), out);
  return e.finish();
}

// kiln_uk_layer_norm_f32(x, rows, D, w, b, eps, out): one work item per row;
// the variance is a second pass over (x - mean)^2 as in norm.c.
LogicalResult expandLayerNormF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &config, std::string &error) {
  Expansion e(op, rw);
  if (failed(e.expect(7, error)))
    return failure();
  Value x = e.buffer(0), rows = e.size(1), D = e.size(2), w = e.buffer(3), b = e.buffer(4);
  float eps = e.floatArg(5);
  Value out = e.buffer(6);
  WorkgroupBuilder wg(rw, op.getLoc(), config);
  Value r = wg.items({rows})[0];
  Value base = e.mul(r, D);
  Value Df = e.toFloat(D);
  Value mean =
      e.fdiv(rowSum(e, wg, x, base, D, /*square=*/false, [](Value v) { return v; }), Df);
  Value var = e.fdiv(
      rowSum(e, wg, x, base, D, /*square=*/true, [&](Value v) { return e.fsub(v, mean); }),
      Df);
  Value sqrt = math::SqrtOp::create(rw, op.getLoc(), e.fadd(var, e.f(eps)));
  Value scale = e.fdiv(e.f(1.0f), sqrt);
  normApply(e, wg, x, base, D, mean, scale, w, b, out);
  return e.finish();
}

// kiln_uk_matmul_f32(A, M, K, Bpacked, N, bias, residual, act, C).
LogicalResult expandMatmulF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &config, std::string &error) {
  Expansion e(op, rw);
  if (failed(e.expect(9, error)))
    return failure();
  matmul(e, config, e.buffer(0), e.size(1), e.size(2), e.buffer(3), Value(), e.size(4), e.buffer(5),
         e.buffer(6), e.intArg(7), e.buffer(8));
  return e.finish();
}

// kiln_uk_matmul_glu_f32(A, M, K, Bg_packed, Bu_packed, N, act, C).
LogicalResult expandMatmulGluF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &config, std::string &error) {
  Expansion e(op, rw);
  if (failed(e.expect(8, error)))
    return failure();
  matmul(e, config, e.buffer(0), e.size(1), e.size(2), e.buffer(3), e.buffer(4), e.size(5), Value(),
         Value(), e.intArg(6), e.buffer(7));
  return e.finish();
}

// kiln_uk_split_heads_f32(x, B, S, H, hd, out): x [B, S, H*hd] -> out
// [B, H, S, hd], one work item per output element.
LogicalResult expandSplitHeadsF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &,
                               std::string &error) {
  Expansion e(op, rw);
  if (failed(e.expect(6, error)))
    return failure();
  Value x = e.buffer(0), B = e.size(1), S = e.size(2), H = e.size(3), hd = e.size(4);
  Value out = e.buffer(5);
  SmallVector<Value> iv = e.parallel({B, H, S, hd});
  Value b = iv[0], h = iv[1], s = iv[2], i = iv[3];
  e.store(e.load(x, e.linear({b, s, h, i}, {B, S, H, hd})), out,
          e.linear({b, h, s, i}, {B, H, S, hd}));
  return e.finish();
}

// kiln_uk_merge_heads_f32(x, B, H, S, hd, out): x [B, H, S, hd] -> out
// [B, S, H*hd], one work item per output element.
LogicalResult expandMergeHeadsF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &,
                               std::string &error) {
  Expansion e(op, rw);
  if (failed(e.expect(6, error)))
    return failure();
  Value x = e.buffer(0), B = e.size(1), H = e.size(2), S = e.size(3), hd = e.size(4);
  Value out = e.buffer(5);
  SmallVector<Value> iv = e.parallel({B, S, H, hd});
  Value b = iv[0], s = iv[1], h = iv[2], i = iv[3];
  e.store(e.load(x, e.linear({b, h, s, i}, {B, H, S, hd})), out,
          e.linear({b, s, h, i}, {B, S, H, hd}));
  return e.finish();
}

// kiln_uk_rotary_f32(x, B, H, S, hd, cos, sin, max_pos, positions, out):
// one work item per pair (i, i + hd/2) of a row, plus the last element of
// an odd hd; an item reads both before it writes either, so out may alias x.
LogicalResult expandRotaryF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &,
                               std::string &error) {
  Expansion e(op, rw);
  if (failed(e.expect(10, error)))
    return failure();
  Value x = e.buffer(0), B = e.size(1), H = e.size(2), S = e.size(3), hd = e.size(4);
  Value cosT = e.buffer(5), sinT = e.buffer(6), maxPos = e.size(7), positions = e.buffer(8);
  Value out = e.buffer(9);
  Value half = e.div(hd, e.idx(2));
  SmallVector<Value> iv = e.parallel({B, H, S, e.sub(hd, half)});
  Value b = iv[0], s = iv[2], i = iv[3];
  Value row = e.mul(e.linear({b, iv[1], s}, {B, H, S}), hd);
  Value pair = e.lt(i, half);
  Value x1At = e.add(row, i), x2At = e.add(x1At, half);
  e.ifThenElse(
      e.lt(e.idx(0), maxPos),
      [&] {
        Value bs = e.add(e.mul(b, S), s);
        Value pos = positions ? e.clampedId(positions, bs, maxPos)
                              : e.select(e.lt(s, maxPos), s, e.sub(maxPos, e.idx(1)));
        Value tab = e.mul(pos, hd);
        e.ifThenElse(
            pair,
            [&] {
              Value x1 = e.load(x, x1At), x2 = e.load(x, x2At);
              Value c1At = e.add(tab, i), c2At = e.add(c1At, half);
              // y1 = x1 * c - x2 * sn and y2 = x2 * c + x1 * sn, contracted
              // by clang into an FMA on the first product.
              Value y1 = e.fma(x1, e.load(cosT, c1At), e.fneg(e.fmul(x2, e.load(sinT, c1At))));
              Value y2 = e.fma(x2, e.load(cosT, c2At), e.fmul(x1, e.load(sinT, c2At)));
              e.store(y1, out, x1At);
              e.store(y2, out, x2At);
            },
            [&] { // i == hd / 2 of an odd hd: the last element, scaled by cos
              Value last = e.sub(hd, e.idx(1));
              e.store(e.fmul(e.load(x, e.add(row, last)), e.load(cosT, e.add(tab, last))), out,
                      e.add(row, last));
            });
      },
      [&] { // no table to read: the row is copied unrotated
        e.ifThenElse(
            pair,
            [&] {
              Value x1 = e.load(x, x1At), x2 = e.load(x, x2At);
              e.store(x1, out, x1At);
              e.store(x2, out, x2At);
            },
            [&] {
              Value last = e.add(row, e.sub(hd, e.idx(1)));
              e.store(e.load(x, last), out, last);
            });
      });
  return e.finish();
}

} // namespace kiln
