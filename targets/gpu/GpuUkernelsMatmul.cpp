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
#include "targets/gpu/GpuMatmul.h"
#include "targets/gpu/GpuMatrixTiles.h"

using namespace mlir;

namespace kiln {

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

Value bf16BitsToFloat(UkernelBuilder &e, Value bits) {
  auto &rw = e.rw;
  Value w = arith::ExtUIOp::create(rw, e.loc, rw.getI32Type(), bits);
  w = arith::ShLIOp::create(rw, e.loc, w,
                            arith::ConstantIntOp::create(rw, e.loc, rw.getI32Type(), 16));
  return arith::BitcastOp::create(rw, e.loc, rw.getF32Type(), w);
}

Value loadByte(UkernelBuilder &e, Value buf, Value at) {
  return arith::ExtUIOp::create(e.rw, e.loc, e.rw.getI32Type(), e.load(buf, at));
}

namespace {

/// Weight (k, column c of `panel`) of a [K, N] weight in f32 panels (or
/// half ones), one element each: (panel * K + k) * 16 + c.
Value panelElement(UkernelBuilder &e, Value buf, Value K, Value panel, Value k, Value c) {
  Value c16 = e.idx(kLanes);
  return e.load(buf, e.add(e.mul(e.add(e.mul(panel, K), k), c16), c));
}

WeightReader f32Weights(UkernelBuilder &e, Value K) {
  WeightReader r;
  r.group = K;
  r.K = K;
  r.params = [](Value, Value, Value, Value) { return SmallVector<Value>{}; };
  r.weight = [&e, K](Value buf, Value panel, Value k, Value c, ArrayRef<Value>) {
    return panelElement(e, buf, K, panel, k, c);
  };
  return r;
}

/// The f32 panels' layout in IEEE half (--quantize=f16), widened on load.
WeightReader halfWeights(UkernelBuilder &e, Value K) {
  WeightReader r = f32Weights(e, K);
  r.tileOperand = e.rw.getF16Type();
  r.format = WeightFormat::Half;
  r.weight = [&e, K](Value buf, Value panel, Value k, Value c, ArrayRef<Value>) -> Value {
    return arith::ExtFOp::create(e.rw, e.loc, e.rw.getF32Type(),
                                 panelElement(e, buf, K, panel, k, c));
  };
  return r;
}

/// The f32 panels' layout in bfloat16 (--quantize=bf16), stored as i16
/// bits: a weight is its bits shifted into an f32's top half.
WeightReader bf16Weights(UkernelBuilder &e, Value K) {
  WeightReader r = f32Weights(e, K);
  r.tileOperand = e.rw.getBF16Type();
  r.format = WeightFormat::Bf16;
  r.weight = [&e, K](Value buf, Value panel, Value k, Value c, ArrayRef<Value>) -> Value {
    return bf16BitsToFloat(e, panelElement(e, buf, K, panel, k, c));
  };
  return r;
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
  r.tileOperand = e.rw.getF16Type();
  Value panels = e.ceilDiv(N, kLanes);
  Value panelBytes = e.mul(K, e.idx(bits == 4 ? 8 : 16));
  Value groups = e.div(K, e.idx(group));
  int64_t paramBytes = hasZp ? 48 : 32;
  r.format = bits == 4 ? WeightFormat::Int4 : WeightFormat::Int8;
  r.K = K;
  r.panelBytes = panelBytes;
  r.paramsStart = e.mul(panels, panelBytes);
  r.groups = groups;
  r.paramBytes = paramBytes;
  r.hasZp = hasZp;
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

/// Where one invocation works in the cooperative SIMT form below: column c
/// of panel `panel`, k of residue s.
struct SimtLane {
  Value s, c, panel, n, groups;
};

constexpr int64_t kSlices = 4, kRows = 4;

/// Invocation t of a group of perGroup = size / 64 panels (item
/// `panelGroup`) takes column c = (t / 4) % 16 of panel t / 64 and the k of
/// residue s = t % 4.
SimtLane simtLane(UkernelBuilder &e, WorkgroupBuilder &wg, const WeightReader &r, Value K,
                  Value N, Value panelGroup) {
  int64_t perGroup = wg.size() / (kLanes * kSlices);
  Value panels = e.ceilDiv(N, kLanes);
  Value t = wg.tid();
  SimtLane l;
  l.s = e.rem(t, e.idx(kSlices));
  l.c = e.rem(e.div(t, e.idx(kSlices)), e.idx(kLanes));
  l.panel = e.add(e.mul(panelGroup, e.idx(perGroup)), e.div(t, e.idx(kSlices * kLanes)));
  // Invocations past the last panel run no k (they still join the sums).
  l.groups = e.select(e.lt(l.panel, panels), e.div(K, r.group), e.idx(0));
  l.n = e.add(e.mul(l.panel, e.idx(kLanes)), l.c);
  return l;
}

/// Rows row0 .. row0 + rows - 1 of the product, cooperative SIMT: each step
/// of the workgroup reads 4 consecutive k-rows of every panel (256
/// contiguous bytes of f32 weights) and each weight feeds all the rows (a
/// decode GEMV reads the weights once). The 4 partial sums of a column are
/// then added across neighbouring lanes (subgroup shuffles, or shared
/// memory).
void simtBlock(UkernelBuilder &e, WorkgroupBuilder &wg, const WeightReader &r, const SimtLane &l,
               Value A, Value K, Value Bp, Value Bu, Value N, Value bias, Value residual,
               int64_t act, Value C, Value row0, int64_t rows) {
  int64_t perRow = Bu ? 2 : 1;
  SmallVector<Value> inits(rows * perRow, e.f(0.0f));
  SmallVector<Value> acc = e.loop(e.idx(0), l.groups, e.idx(1), inits, [&](Value g, ValueRange ag) {
    SmallVector<Value> pg = r.params(Bp, l.panel, g, l.c);
    SmallVector<Value> pu = Bu ? r.params(Bu, l.panel, g, l.c) : SmallVector<Value>{};
    // The group's k of residue s: the first at or after its start.
    Value k0 = e.mul(g, r.group);
    Value first = e.add(k0, e.rem(e.sub(e.add(l.s, e.idx(kSlices)), e.rem(k0, e.idx(kSlices))),
                                  e.idx(kSlices)));
    return e.loop(first, e.add(k0, r.group), e.idx(kSlices), ag, [&](Value k, ValueRange a) {
      Value w = r.weight(Bp, l.panel, k, l.c, pg);
      Value wu = Bu ? r.weight(Bu, l.panel, k, l.c, pu) : Value();
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
  e.ifThen(e.land(e.eq(l.s, e.idx(0)), e.lt(l.n, N)), [&] {
    for (int64_t j = 0; j < rows; ++j) {
      Value out = e.add(e.mul(e.add(row0, e.idx(j)), N), l.n);
      Value y = matmulEpilogue(e, sums[j * perRow], Bu ? sums[j * perRow + 1] : Value(), l.n,
                               out, bias, residual, act);
      e.store(y, C, out);
    }
  });
}

/// Rows row0 .. end - 1 in blocks of 4, the last fewer than 4 one by one.
void simtRows(UkernelBuilder &e, WorkgroupBuilder &wg, const WeightReader &r, const SimtLane &l,
              Value A, Value K, Value Bp, Value Bu, Value N, Value bias, Value residual,
              int64_t act, Value C, Value row0, Value end) {
  Value full = e.add(row0, e.mul(e.div(e.sub(end, row0), e.idx(kRows)), e.idx(kRows)));
  e.loop(row0, full, e.idx(kRows), {}, [&](Value row, ValueRange) {
    simtBlock(e, wg, r, l, A, K, Bp, Bu, N, bias, residual, act, C, row, kRows);
    return SmallVector<Value>{};
  });
  e.loop(full, end, e.idx(1), {}, [&](Value row, ValueRange) {
    simtBlock(e, wg, r, l, A, K, Bp, Bu, N, bias, residual, act, C, row, 1);
    return SmallVector<Value>{};
  });
}

/// C = act(A @ B + bias) + residual (Bu == null) or act(A @ Bg) * (A @ Bu),
/// cooperative SIMT. A work item is (a block of 4 rows of A, a group of
/// panels); a workgroup of 64 * P invocations takes P panels.
void matmul(UkernelBuilder &e, const GpuKernelConfig &cfg, const WeightReader &r, Value A,
            Value M, Value K, Value Bp, Value Bu, Value N, Value bias, Value residual,
            int64_t act, Value C) {
  int64_t perGroup = cfg.workgroupSize / (kLanes * kSlices);
  WorkgroupBuilder wg(e.rw, e.loc, cfg);
  Value panels = e.ceilDiv(N, kLanes);
  if (usesPanelGemv(cfg)) {
    Value scratch = panelGemvScratch(e, cfg);
    SmallVector<Value> iv = wg.items({e.ceilDiv(M, kGemvRows), panels});
    Value row0 = e.mul(iv[0], e.idx(kGemvRows));
    Value end = e.select(e.le(e.add(row0, e.idx(kGemvRows)), M), e.add(row0, e.idx(kGemvRows)), M);
    panelGemvItem(e, wg, r, A, K, Bp, Bu, N, bias, residual, act, C, iv[1], row0, end, scratch);
    return;
  }
  SmallVector<Value> iv = wg.items({e.ceilDiv(M, kRows), e.ceilDiv(panels, perGroup)});
  SimtLane l = simtLane(e, wg, r, K, N, iv[1]);
  Value firstRow = e.mul(iv[0], e.idx(kRows));
  Value end = e.select(e.le(e.add(firstRow, e.idx(kRows)), M), e.add(firstRow, e.idx(kRows)), M);
  simtRows(e, wg, r, l, A, K, Bp, Bu, N, bias, residual, act, C, firstRow, end);
}

/// The same product on 16x16 tiles (GpuMatrixTiles.h: tensor cores on
/// CUDA) for workgroups of 4 warps, where the weights are f16, bf16 or
/// quantized (the inputs are rounded to the tiles' operand type too). A
/// work item is 64 rows x 4 panels (64 columns); warp w computes its 32 x
/// 32 quarter (rows 32 (w / 2), panels 2 (w % 2)): four 16x16 tile
/// products per step of 16 k, for which the workgroup stages A (64 x 16)
/// and the weights of the 4 panels (dequantized, 16 x 16 each) in
/// workgroup memory -- each staged element feeds 32 multiply-adds, and
/// each barrier pair brackets 4 tile products per warp. Rows past M and k
/// past K are staged as zeros; the epilogue goes through workgroup memory
/// one tile per warp at a time. Fewer than 16 rows in all (decode) take
/// the panel GEMV instead.
void matmulTiles(UkernelBuilder &e, const GpuKernelConfig &cfg, const WeightReader &r, Value A,
                 Value M, Value K, Value Bp, Value Bu, Value N, Value bias, Value residual,
                 int64_t act, Value C) {
  constexpr int64_t kTile = MatrixTiles::kTile, kStep = kTile, kRows = 64, kPanels = 4;
  constexpr int64_t kThreads = 4 * MatrixTiles::kWarp;
  MatrixTiles tiles(e.rw, e.loc, cfg.matrixOps, r.tileOperand);
  Type operand = tiles.operandType();
  int64_t nAcc = Bu ? 2 : 1;
  auto shared = [&](int64_t n, Type t) { return workgroupBuffer(e.rw, e.loc, n, t); };
  // As[i * 16 + k]; Bs[p * 256 + k * 16 + c]; Cs[(warp * nAcc + j) * 256 +
  // i * 16 + c].
  Value As = shared(kRows * kStep, operand);
  SmallVector<Value> Bs{shared(kPanels * kStep * kTile, operand)};
  if (Bu)
    Bs.push_back(shared(kPanels * kStep * kTile, operand));
  Value Cs = shared(4 * nAcc * kTile * kTile, e.rw.getF32Type());
  WorkgroupBuilder wg(e.rw, e.loc, cfg);
  Value panels = e.ceilDiv(N, kLanes);
  // Fewer than 16 rows in all (decode): items of (4 rows, 1 panel) for
  // panelGemv; otherwise (64 rows, 4 panels).
  Value decode = e.lt(M, e.idx(kTile));
  SmallVector<Value> iv = wg.items({e.select(decode, e.ceilDiv(M, kGemvRows), e.ceilDiv(M, kRows)),
                                    e.select(decode, panels, e.ceilDiv(panels, kPanels))});
  Value t = wg.tid();
  e.ifThenElse(decode, [&] {
    Value row0 = e.mul(iv[0], e.idx(kGemvRows));
    Value end = e.select(e.le(e.add(row0, e.idx(kGemvRows)), M), e.add(row0, e.idx(kGemvRows)), M);
    panelGemvItem(e, wg, r, A, K, Bp, Bu, N, bias, residual, act, C, iv[1], row0, end, Cs);
  }, [&] {
    Value row0 = e.mul(iv[0], e.idx(kRows));
    auto toOperand = [&](Value x) -> Value {
      return operand.isF32() ? x : Value(arith::TruncFOp::create(e.rw, e.loc, operand, x));
    };
    Value warp = e.div(t, e.idx(MatrixTiles::kWarp));
    Value lane = e.rem(t, e.idx(MatrixTiles::kWarp));
    Value wm = e.div(warp, e.idx(2)), wn = e.rem(warp, e.idx(2));
    // acc[(mi * 2 + pi) * nAcc + j]: the warp's row tile mi, panel pi,
    // weight j.
    SmallVector<Value> acc;
    for (int64_t i = 0; i < 4 * nAcc; ++i)
      acc.push_back(tiles.zero());
    SmallVector<Value> inits = tiles.carried() ? acc : SmallVector<Value>{};
    SmallVector<Value> res = e.loop(e.idx(0), K, e.idx(kStep), inits, [&](Value kb, ValueRange cur) {
      wg.barrier();
      // A: 64 rows x 16 k, row by row (coalesced); past M or K, zeros.
      for (int64_t i = 0; i < kRows * kStep / kThreads; ++i) {
        Value el = e.add(t, e.idx(i * kThreads));
        Value row = e.add(row0, e.div(el, e.idx(kStep)));
        Value k = e.add(kb, e.rem(el, e.idx(kStep)));
        Value in = e.land(e.lt(row, M), e.lt(k, K));
        Value x = e.load(A, e.select(in, e.add(e.mul(row, K), k), e.idx(0)));
        e.store(toOperand(e.select(in, x, e.f(0.0f))), As, el);
      }
      // Weights: per panel 16 k-rows of 16 columns (contiguous in the
      // packed panel); past K or the last panel, zeros.
      for (int64_t i = 0; i < kPanels * kStep * kTile / kThreads; ++i) {
        Value el = e.add(t, e.idx(i * kThreads));
        Value p = e.div(el, e.idx(kStep * kTile));
        Value k = e.add(kb, e.rem(e.div(el, e.idx(kTile)), e.idx(kStep)));
        Value c = e.rem(el, e.idx(kTile));
        Value panel = e.add(e.mul(iv[1], e.idx(kPanels)), p);
        Value in = e.land(e.lt(k, K), e.lt(panel, panels));
        Value kc = e.select(in, k, e.idx(0)), pc = e.select(in, panel, e.idx(0));
        Value g = e.div(kc, r.group);
        Value bufs[2] = {Bp, Bu};
        for (int64_t j = 0; j < nAcc; ++j) {
          Value w = r.weight(bufs[j], pc, kc, c, r.params(bufs[j], pc, g, c));
          e.store(toOperand(e.select(in, w, e.f(0.0f))), Bs[j], el);
        }
      }
      wg.barrier();
      SmallVector<Value> next;
      for (int64_t mi = 0; mi < 2; ++mi)
        for (int64_t pi = 0; pi < 2; ++pi)
          for (int64_t j = 0; j < nAcc; ++j) {
            int64_t at = (mi * 2 + pi) * nAcc + j;
            Value aOff = e.mul(e.add(e.mul(wm, e.idx(32)), e.idx(16 * mi)), e.idx(kStep));
            Value bOff = e.mul(e.add(e.mul(wn, e.idx(2)), e.idx(pi)), e.idx(kStep * kTile));
            next.push_back(tiles.multiplyAdd(tiles.carried() ? cur[at] : acc[at], As, aOff, kStep,
                                             Bs[j], bOff, kTile, t));
          }
      return tiles.carried() ? next : SmallVector<Value>{};
    });
    // Epilogue, one tile (and its GLU twin) per warp at a time: stored to
    // the warp's part of Cs, then 8 elements per lane.
    for (int64_t mi = 0; mi < 2; ++mi)
      for (int64_t pi = 0; pi < 2; ++pi) {
        for (int64_t j = 0; j < nAcc; ++j) {
          int64_t at = (mi * 2 + pi) * nAcc + j;
          tiles.store(tiles.carried() ? res[at] : acc[at], Cs,
                      e.mul(e.add(e.mul(warp, e.idx(nAcc)), e.idx(j)), e.idx(kTile * kTile)),
                      kTile, t);
        }
        wg.barrier();
        for (int64_t i = 0; i < kTile * kTile / MatrixTiles::kWarp; ++i) {
          Value el = e.add(lane, e.idx(i * MatrixTiles::kWarp));
          Value row = e.add(e.add(row0, e.add(e.mul(wm, e.idx(32)), e.idx(16 * mi))),
                            e.div(el, e.idx(kTile)));
          Value panel = e.add(e.mul(iv[1], e.idx(kPanels)), e.add(e.mul(wn, e.idx(2)), e.idx(pi)));
          Value n = e.add(e.mul(panel, e.idx(kTile)), e.rem(el, e.idx(kTile)));
          SmallVector<Value> sums;
          for (int64_t j = 0; j < nAcc; ++j)
            sums.push_back(e.load(
                Cs, e.add(e.mul(e.add(e.mul(warp, e.idx(nAcc)), e.idx(j)), e.idx(kTile * kTile)),
                          el)));
          e.ifThen(e.land(e.lt(row, M), e.lt(n, N)), [&] {
            Value out = e.add(e.mul(row, N), n);
            e.store(matmulEpilogue(e, sums[0], Bu ? sums[1] : Value(), n, out, bias, residual,
                                   act),
                    C, out);
          });
        }
        wg.barrier();
      }
  });
}

/// The cooperative form the target allows.
void matmulFor(UkernelBuilder &e, const GpuKernelConfig &cfg, const WeightReader &r, Value A,
               Value M, Value K, Value Bp, Value Bu, Value N, Value bias, Value residual,
               int64_t act, Value C) {
  if (cfg.matrixOps != GpuMatrixOps::None && r.tileOperand &&
      cfg.workgroupSize == 4 * MatrixTiles::kWarp)
    matmulTiles(e, cfg, r, A, M, K, Bp, Bu, N, bias, residual, act, C);
  else if (cfg.workgroupSize % (kLanes * kSlices) == 0)
    matmul(e, cfg, r, A, M, K, Bp, Bu, N, bias, residual, act, C);
  else
    matmulPerElement(e, r, A, M, K, Bp, Bu, N, bias, residual, act, C);
}

/// How a dense panel format (f32, half, bfloat16) is read.
using PanelReader = WeightReader (*)(UkernelBuilder &, Value K);

/// kiln_uk_matmul{,_h,_bf16}_f32(A, M, K, Bpacked, N, bias, residual, act,
/// C): the same arguments, the panels read by `reader`.
LogicalResult expandPanelMatmul(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &config,
                                std::string &error, PanelReader reader) {
  UkernelBuilder e(op, rw);
  if (failed(e.expect(9, error)))
    return failure();
  matmulFor(e, config, reader(e, e.size(2)), e.buffer(0), e.size(1), e.size(2), e.buffer(3),
            Value(), e.size(4), e.buffer(5), e.buffer(6), e.intArg(7), e.buffer(8));
  return e.finish();
}

/// kiln_uk_matmul_glu{,_h,_bf16}_f32(A, M, K, Bg_packed, Bu_packed, N, act,
/// C).
LogicalResult expandPanelMatmulGlu(llm::UkernelOp op, RewriterBase &rw,
                                   const GpuKernelConfig &config, std::string &error,
                                   PanelReader reader) {
  UkernelBuilder e(op, rw);
  if (failed(e.expect(8, error)))
    return failure();
  matmulFor(e, config, reader(e, e.size(2)), e.buffer(0), e.size(1), e.size(2), e.buffer(3),
            e.buffer(4), e.size(5), Value(), Value(), e.intArg(6), e.buffer(7));
  return e.finish();
}

} // namespace

LogicalResult expandMatmulF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &config,
                              std::string &error) {
  return expandPanelMatmul(op, rw, config, error, f32Weights);
}

LogicalResult expandMatmulGluF32(llm::UkernelOp op, RewriterBase &rw,
                                 const GpuKernelConfig &config, std::string &error) {
  return expandPanelMatmulGlu(op, rw, config, error, f32Weights);
}

LogicalResult expandMatmulHF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &config,
                               std::string &error) {
  return expandPanelMatmul(op, rw, config, error, halfWeights);
}

LogicalResult expandMatmulGluHF32(llm::UkernelOp op, RewriterBase &rw,
                                  const GpuKernelConfig &config, std::string &error) {
  return expandPanelMatmulGlu(op, rw, config, error, halfWeights);
}

LogicalResult expandMatmulBf16F32(llm::UkernelOp op, RewriterBase &rw,
                                  const GpuKernelConfig &config, std::string &error) {
  return expandPanelMatmul(op, rw, config, error, bf16Weights);
}

LogicalResult expandMatmulGluBf16F32(llm::UkernelOp op, RewriterBase &rw,
                                     const GpuKernelConfig &config, std::string &error) {
  return expandPanelMatmulGlu(op, rw, config, error, bf16Weights);
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
  matmulFor(e, config, quantizedWeights(e, K, N, bits, group, hasZp), e.buffer(0), e.size(1), K,
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
  matmulFor(e, config, quantizedWeights(e, K, N, bits, group, hasZp), e.buffer(0), e.size(1), K,
         e.buffer(3), e.buffer(4), N, Value(), Value(), e.intArg(9), e.buffer(10));
  return e.finish();
}

} // namespace kiln
