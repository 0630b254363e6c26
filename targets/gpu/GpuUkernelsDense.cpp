//===- GpuUkernelsDense.cpp - Layout and norm microkernels as GPU loop nests ===//
//
// The GPU versions of the f32 microkernels of targets/cpu/ukernels that are
// neither matmuls (GpuUkernelsMatmul.cpp) nor attention
// (GpuUkernelsAttention.cpp): embedding (layout.c), RMSNorm and LayerNorm
// (norm.c), head split/merge (layout.c) and rotary embedding (rotary.c).
// Each reads its operands and scalars from the op's C argument list
// (`args`, see LowerLlm.cpp) exactly as the C function would, and becomes
// the form of GpuUkernels.h: one scf.parallel over output elements for the
// layout ops, a cooperative loop (GpuWorkgroup.h) with a row per workgroup
// for the norms.
//
// The arithmetic (here and in the matmuls) follows the C code operation by
// operation where it can:
// - every `a * b + c` that clang contracts into one fused multiply-add (one
//   C expression) is a math.fma here, and nothing else is fused;
// - the sums are split over invocations and so rounded in another order
//   than on the CPU (matmul.c keeps one FMA chain per output, norm.c 64
//   partial sums); greedy decoding of the fixtures stays equal to their
//   references (test/e2e/check_vulkan.py);
// - exp and erfc are uk_math.h's polynomials built from arith ops, not
//   math.exp: GLSL's exp may be off by 3 + 2|x| ulp, and activations as
//   close to the CPU's as possible keep greedy decoding equal to it. Only
//   exp's rounding to an integer differs (see UkernelBuilder::exp).
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuUkernelBuilder.h"

using namespace mlir;

namespace kiln {
namespace {

/// The sum over i in [0, D) of term(x[base + i]) (with `square`: of its
/// square), split over a workgroup: each invocation adds its elements (i =
/// tid, tid + size, ...) in one chain, then the partial sums are reduced
/// across the workgroup.
Value rowSum(UkernelBuilder &e, WorkgroupBuilder &wg, Value x, Value base, Value D, bool square,
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
void normApply(UkernelBuilder &e, WorkgroupBuilder &wg, Value x, Value base, Value D, Value shift,
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
  UkernelBuilder e(op, rw);
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
  UkernelBuilder e(op, rw);
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
  UkernelBuilder e(op, rw);
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

// kiln_uk_split_heads_f32(x, B, S, H, hd, out): x [B, S, H*hd] -> out
// [B, H, S, hd], one work item per output element.
LogicalResult expandSplitHeadsF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &,
                               std::string &error) {
  UkernelBuilder e(op, rw);
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
  UkernelBuilder e(op, rw);
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
  UkernelBuilder e(op, rw);
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
