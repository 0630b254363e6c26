//===- GpuUkernelsMatmul.cpp - The LLM matmuls as GPU loop nests -----------===//
//
// The GPU versions of kiln_uk_matmul_f32 / kiln_uk_matmul_glu_f32 (matmul.c,
// over weights packed into 16-column panels by pack.c) and of their
// quantized forms kiln_uk_matmul_q_f32 / kiln_uk_matmul_glu_q_f32 (int8 or
// int4 weights, group-wise f16 scales and optional zero points, packed by
// pack_q.c). One cooperative loop (GpuWorkgroup.h) serves all four; a
// WeightReader says how a weight is read and dequantized, inside the
// kernel: the weights stay packed in memory.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuUkernelBuilder.h"

#include <functional>

using namespace mlir;

namespace kiln {
namespace {

/// The epilogue of one output element from its sums over k.
Value matmulEpilogue(UkernelBuilder &e, Value acc, Value accUp, Value n, Value out, Value bias,
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

/// How the packed weight(s) of a matmul are read. K is split into groups
/// (one group for f32 weights); `params` loads what one (panel, group) of a
/// column needs once (scales, zero points), `weight` one dequantized f32
/// weight of that column at k. Weights are packed in panels of 16 columns
/// (the last zero padded); f32: element (k, n) at (n / 16) * K * 16 + k *
/// 16 + n % 16.
struct WeightReader {
  Value group; // k per group, dividing K
  std::function<SmallVector<Value>(Value buf, Value panel, Value g, Value c)> params;
  std::function<Value(Value buf, Value panel, Value k, Value c, ArrayRef<Value> params)> weight;
};

WeightReader f32Weights(UkernelBuilder &e, Value K) {
  WeightReader r;
  r.group = K;
  r.params = [](Value, Value, Value, Value) { return SmallVector<Value>{}; };
  r.weight = [&e, K](Value buf, Value panel, Value k, Value c, ArrayRef<Value>) {
    Value c16 = e.idx(kLanes);
    return e.load(buf, e.add(e.add(e.mul(e.mul(panel, K), c16), e.mul(k, c16)), c));
  };
  return r;
}

/// An unsigned byte of an i8 buffer as i32.
Value loadByte(UkernelBuilder &e, Value buf, Value at) {
  return arith::ExtUIOp::create(e.rw, e.loc, e.rw.getI32Type(), e.load(buf, at));
}

/// IEEE half bits (in the low 16 bits of an i32) to f32 with integer
/// operations only, as uq_half16 does: no Float16 capability needed.
Value halfToFloat(UkernelBuilder &e, Value h) {
  auto &rw = e.rw;
  Location loc = e.loc;
  auto i = [&](int32_t v) { return arith::ConstantIntOp::create(rw, loc, rw.getI32Type(), v); };
  Value sign = arith::ShLIOp::create(rw, loc, arith::AndIOp::create(rw, loc, h, i(0x8000)), i(16));
  Value exp = arith::AndIOp::create(rw, loc, arith::ShRUIOp::create(rw, loc, h, i(10)), i(31));
  Value mant = arith::AndIOp::create(rw, loc, h, i(1023));
  // Normal: rebias the exponent by 127 - 15 = 112; 31 (inf, nan) -> 255.
  Value exp32 = e.select(
      arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::eq, exp, i(31)), i(255),
      arith::AddIOp::create(rw, loc, exp, i(112)));
  Value normal = arith::OrIOp::create(
      rw, loc, arith::ShLIOp::create(rw, loc, exp32, i(23)),
      arith::ShLIOp::create(rw, loc, mant, i(13)));
  Value normalF = arith::BitcastOp::create(rw, loc, rw.getF32Type(), normal);
  // Zero and subnormals: mant * 2^-24.
  Value tinyF = e.fmul(arith::SIToFPOp::create(rw, loc, rw.getF32Type(), mant), e.f(0x1p-24f));
  Value mag = e.select(arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::eq, exp, i(0)),
                       tinyF, normalF);
  Value bits = arith::OrIOp::create(
      rw, loc, arith::BitcastOp::create(rw, loc, rw.getI32Type(), mag), sign);
  return arith::BitcastOp::create(rw, loc, rw.getF32Type(), bits);
}

/// pack_q.c's layout (ukernels.h): per panel, the integers k-major (bits 8:
/// 16 int8 per k; bits 4: per block of 8 k, 16 little-endian words, word j
/// holding column j's 8 nibbles); after every panel's integers, per (panel,
/// group), 16 f16 scales then, with zero points, 16 int8 of them. W =
/// (q - z) * s.
WeightReader quantizedWeights(UkernelBuilder &e, Value K, Value N, int64_t bits, int64_t group,
                              bool hasZp) {
  WeightReader r;
  r.group = e.idx(group);
  Value panels = e.ceilDiv(N, kLanes);
  Value panelBytes = e.mul(K, e.idx(bits == 4 ? 8 : 16));
  Value groups = e.div(K, e.idx(group));
  int64_t paramBytes = hasZp ? 48 : 32;
  r.params = [&e, panels, panelBytes, groups, paramBytes, hasZp](Value buf, Value panel, Value g,
                                                                 Value c) {
    auto &rw = e.rw;
    Location loc = e.loc;
    Value at = e.add(e.mul(panels, panelBytes),
                     e.mul(e.add(e.mul(panel, groups), g), e.idx(paramBytes)));
    Value lo = loadByte(e, buf, e.add(at, e.mul(c, e.idx(2))));
    Value hi = loadByte(e, buf, e.add(at, e.add(e.mul(c, e.idx(2)), e.idx(1))));
    Value eight = arith::ConstantIntOp::create(rw, loc, rw.getI32Type(), 8);
    Value half = arith::OrIOp::create(rw, loc, lo, arith::ShLIOp::create(rw, loc, hi, eight));
    SmallVector<Value> p{halfToFloat(e, half)};
    if (hasZp) {
      Value z = e.load(buf, e.add(at, e.add(e.idx(32), c)));
      p.push_back(arith::SIToFPOp::create(
          rw, loc, rw.getF32Type(), arith::ExtSIOp::create(rw, loc, rw.getI32Type(), z)));
    }
    return p;
  };
  r.weight = [&e, panelBytes, bits, hasZp](Value buf, Value panel, Value k, Value c,
                                          ArrayRef<Value> p) {
    auto &rw = e.rw;
    Location loc = e.loc;
    Value base = e.mul(panel, panelBytes);
    Value q;
    if (bits == 8) {
      Value v = e.load(buf, e.add(base, e.add(e.mul(k, e.idx(kLanes)), c)));
      q = arith::ExtSIOp::create(rw, loc, rw.getI32Type(), v);
    } else {
      Value at = e.add(base, e.add(e.add(e.mul(e.div(k, e.idx(8)), e.idx(4 * kLanes)),
                                         e.mul(c, e.idx(4))),
                                   e.div(e.rem(k, e.idx(8)), e.idx(2))));
      Value byte = loadByte(e, buf, at);
      Value shift = arith::IndexCastOp::create(rw, loc, rw.getI32Type(),
                                               e.mul(e.rem(k, e.idx(2)), e.idx(4)));
      q = arith::AndIOp::create(rw, loc, arith::ShRUIOp::create(rw, loc, byte, shift),
                                arith::ConstantIntOp::create(rw, loc, rw.getI32Type(), 15));
    }
    Value qf = arith::SIToFPOp::create(rw, loc, rw.getF32Type(), q);
    if (hasZp)
      qf = e.fsub(qf, p[1]);
    return e.fmul(qf, p[0]);
  };
  return r;
}

/// C = act(A @ B + bias) + residual (Bu == null) or act(A @ Bg) * (A @ Bu),
/// one invocation per output element, each one chain over k in order: for
/// workgroup sizes the cooperative form below cannot split.
void matmulPerElement(UkernelBuilder &e, const WeightReader &r, Value A, Value M, Value K,
                      Value Bp, Value Bu, Value N, Value bias, Value residual, int64_t act,
                      Value C) {
  SmallVector<Value> iv = e.parallel({M, N});
  Value row = iv[0], n = iv[1];
  Value c16 = e.idx(kLanes);
  Value panel = e.div(n, c16), c = e.rem(n, c16);
  Value aRow = e.mul(row, K);
  SmallVector<Value> inits(Bu ? 2 : 1, e.f(0.0f));
  SmallVector<Value> acc = e.loop(
      e.idx(0), e.div(K, r.group), e.idx(1), inits, [&](Value g, ValueRange cg) {
        SmallVector<Value> pg = r.params(Bp, panel, g, c);
        SmallVector<Value> pu = Bu ? r.params(Bu, panel, g, c) : SmallVector<Value>{};
        Value k0 = e.mul(g, r.group);
        return e.loop(k0, e.add(k0, r.group), e.idx(1), cg, [&](Value k, ValueRange cc) {
          Value a = e.load(A, e.add(aRow, k));
          SmallVector<Value> next{e.fma(a, r.weight(Bp, panel, k, c, pg), cc[0])};
          if (Bu)
            next.push_back(e.fma(a, r.weight(Bu, panel, k, c, pu), cc[1]));
          return next;
        });
      });
  Value out = e.add(e.mul(row, N), n);
  e.store(matmulEpilogue(e, acc[0], Bu ? acc[1] : Value(), n, out, bias, residual, act), C, out);
}

/// The same product, cooperative. A work item is (a block of 4 rows of A,
/// a group of panels); a workgroup of 64 * P invocations takes P panels.
/// Invocation t works on column c = (t / 4) % 16 of panel t / 64 and on
/// the k of one residue s = t % 4: each step of the workgroup reads 4
/// consecutive k-rows of every panel (256 contiguous bytes of f32 weights)
/// and each weight feeds all 4 rows (a decode GEMV reads the weights once).
/// The 4 partial sums of a column are then added across neighbouring lanes
/// (subgroup shuffles, or shared memory). A last block of fewer than 4
/// rows goes row by row.
void matmul(UkernelBuilder &e, const GpuKernelConfig &cfg, const WeightReader &r, Value A,
            Value M, Value K, Value Bp, Value Bu, Value N, Value bias, Value residual,
            int64_t act, Value C) {
  constexpr int64_t kSlices = 4, kRows = 4;
  if (cfg.workgroupSize % (kLanes * kSlices) != 0) {
    matmulPerElement(e, r, A, M, K, Bp, Bu, N, bias, residual, act, C);
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
  // Invocations past the last panel run no k (they still join the sums).
  Value groups = e.select(e.lt(panel, panels), e.div(K, r.group), e.idx(0));
  Value n = e.add(e.mul(panel, e.idx(kLanes)), c);
  Value firstRow = e.mul(iv[0], e.idx(kRows));
  int64_t perRow = Bu ? 2 : 1;
  auto block = [&](Value row0, int64_t rows) {
    SmallVector<Value> inits(rows * perRow, e.f(0.0f));
    SmallVector<Value> acc = e.loop(e.idx(0), groups, e.idx(1), inits, [&](Value g, ValueRange ag) {
      SmallVector<Value> pg = r.params(Bp, panel, g, c);
      SmallVector<Value> pu = Bu ? r.params(Bu, panel, g, c) : SmallVector<Value>{};
      // The group's k of residue s: the first at or after its start.
      Value k0 = e.mul(g, r.group);
      Value first = e.add(k0, e.rem(e.sub(e.add(s, e.idx(kSlices)), e.rem(k0, e.idx(kSlices))),
                                    e.idx(kSlices)));
      return e.loop(first, e.add(k0, r.group), e.idx(kSlices), ag, [&](Value k, ValueRange a) {
        Value w = r.weight(Bp, panel, k, c, pg);
        Value wu = Bu ? r.weight(Bu, panel, k, c, pu) : Value();
        SmallVector<Value> next;
        for (int64_t j = 0; j < rows; ++j) {
          Value x = e.load(A, e.add(e.mul(e.add(row0, e.idx(j)), K), k));
          next.push_back(e.fma(x, w, a[j * perRow]));
          if (Bu)
            next.push_back(e.fma(x, wu, a[j * perRow + 1]));
        }
        return next;
      });
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

} // namespace

// kiln_uk_matmul_f32(A, M, K, Bpacked, N, bias, residual, act, C).
LogicalResult expandMatmulF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &config, std::string &error) {
  UkernelBuilder e(op, rw);
  if (failed(e.expect(9, error)))
    return failure();
  matmul(e, config, f32Weights(e, e.size(2)), e.buffer(0), e.size(1), e.size(2), e.buffer(3),
         Value(), e.size(4), e.buffer(5),
         e.buffer(6), e.intArg(7), e.buffer(8));
  return e.finish();
}

// kiln_uk_matmul_glu_f32(A, M, K, Bg_packed, Bu_packed, N, act, C).
LogicalResult expandMatmulGluF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &config, std::string &error) {
  UkernelBuilder e(op, rw);
  if (failed(e.expect(8, error)))
    return failure();
  matmul(e, config, f32Weights(e, e.size(2)), e.buffer(0), e.size(1), e.size(2), e.buffer(3),
         e.buffer(4), e.size(5), Value(),
         Value(), e.intArg(6), e.buffer(7));
  return e.finish();
}

/// The (bits, group, has_zp) literals of a quantized matmul, checked.
static LogicalResult quantArgs(UkernelBuilder &e, unsigned at, int64_t &bits, int64_t &group,
                               bool &hasZp, std::string &error) {
  ArrayAttr args = e.op.getArgs();
  if (!isa<IntegerAttr>(args[at]) || !isa<IntegerAttr>(args[at + 1]) ||
      !isa<IntegerAttr>(args[at + 2])) {
    error = "internal: '" + e.op.getCallee().str() + "' takes literal bits, group and has_zp";
    return failure();
  }
  bits = e.intArg(at);
  group = e.intArg(at + 1);
  hasZp = e.intArg(at + 2) != 0;
  if ((bits != 8 && bits != 4) || group <= 0 || (bits == 4 && group % 8 != 0)) {
    error = "'" + e.op.getCallee().str() + "': no GPU kernel for " + std::to_string(bits) +
            "-bit weights in groups of " + std::to_string(group);
    return failure();
  }
  return success();
}

// kiln_uk_matmul_q_f32(A, M, K, Bq, N, bits, group, has_zp, bias, residual,
// act, C).
LogicalResult expandMatmulQF32(llm::UkernelOp op, RewriterBase &rw,
                               const GpuKernelConfig &config, std::string &error) {
  UkernelBuilder e(op, rw);
  int64_t bits, group;
  bool hasZp;
  if (failed(e.expect(12, error)) || failed(quantArgs(e, 5, bits, group, hasZp, error)))
    return failure();
  Value K = e.size(2), N = e.size(4);
  matmul(e, config, quantizedWeights(e, K, N, bits, group, hasZp), e.buffer(0), e.size(1), K,
         e.buffer(3), Value(), N, e.buffer(8), e.buffer(9), e.intArg(10), e.buffer(11));
  return e.finish();
}

// kiln_uk_matmul_glu_q_f32(A, M, K, Bg_q, Bu_q, N, bits, group, has_zp, act,
// C).
LogicalResult expandMatmulGluQF32(llm::UkernelOp op, RewriterBase &rw,
                                  const GpuKernelConfig &config, std::string &error) {
  UkernelBuilder e(op, rw);
  int64_t bits, group;
  bool hasZp;
  if (failed(e.expect(11, error)) || failed(quantArgs(e, 6, bits, group, hasZp, error)))
    return failure();
  Value K = e.size(2), N = e.size(5);
  matmul(e, config, quantizedWeights(e, K, N, bits, group, hasZp), e.buffer(0), e.size(1), K,
         e.buffer(3), e.buffer(4), N, Value(), Value(), e.intArg(9), e.buffer(10));
  return e.finish();
}

} // namespace kiln
