//===- GpuUkernelsAttention.cpp - The paged KV cache on a GPU ---------------===//
//
// GPU versions of the attention microkernels of targets/cpu/ukernels/
// attention.c -- kiln_uk_kv_append_f32 and kiln_uk_attention_f32 (the
// concatenated KV cache), kiln_uk_kv_cache_write_f32 and
// kiln_uk_paged_attention_f32 (the paged one): same operands, same `args`,
// same results. The cache writes are one invocation per copied element.
// Attention is one workgroup per query row (GpuWorkgroup.h): each
// invocation walks its share of the visible keys (j = tid, tid + size, ...)
// with an online softmax (running max and sum, the weighted V rows in
// private memory); the shares are merged by workgroup reductions (the
// maximum, then the rescaled sums) and invocation 0 writes the row. Rows
// that see no key are zeros.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuUkernels.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <limits>

using namespace mlir;

namespace kiln {
namespace {

/// Index arithmetic on `index` values, terse.
struct Ix {
  RewriterBase &r;
  Location loc;
  Value c(int64_t v) { return arith::ConstantIndexOp::create(r, loc, v); }
  Value add(Value a, Value b) { return arith::AddIOp::create(r, loc, a, b); }
  Value sub(Value a, Value b) { return arith::SubIOp::create(r, loc, a, b); }
  Value mul(Value a, Value b) { return arith::MulIOp::create(r, loc, a, b); }
  Value div(Value a, Value b) { return arith::DivSIOp::create(r, loc, a, b); }
  Value rem(Value a, Value b) { return arith::RemSIOp::create(r, loc, a, b); }
  Value min(Value a, Value b) { return arith::MinSIOp::create(r, loc, a, b); }
  Value max(Value a, Value b) { return arith::MaxSIOp::create(r, loc, a, b); }
  Value cmp(arith::CmpIPredicate p, Value a, Value b) {
    return arith::CmpIOp::create(r, loc, p, a, b);
  }
  Value lt(Value a, Value b) { return cmp(arith::CmpIPredicate::slt, a, b); }
  Value le(Value a, Value b) { return cmp(arith::CmpIPredicate::sle, a, b); }
  Value ge(Value a, Value b) { return cmp(arith::CmpIPredicate::sge, a, b); }
  Value land(Value a, Value b) { return arith::AndIOp::create(r, loc, a, b); }
  Value dim(Value m, int64_t d) { return memref::DimOp::create(r, loc, m, d); }
  /// An i32 element of a 1-d index buffer as an index.
  Value loadIndex(Value m, ValueRange at) {
    Value v = memref::LoadOp::create(r, loc, m, at);
    return arith::IndexCastOp::create(r, loc, r.getIndexType(), v);
  }
};

/// One query row of attention, on flat (1-d) buffers.
struct AttentionRow {
  Value q, k, v, out;
  Value qBase, outBase; // flat index of the row's first element
  int64_t hd;
  float scale;
  /// Keys [0, numKeys) are visible (numKeys may be <= 0).
  Value numKeys;
  /// For key j: whether it is seen, and the flat index of its K and V rows
  /// (read only where seen). Borrowed: the callable must outlive the row.
  function_ref<std::pair<Value, Value>(Value j)> key;
  /// kv8: K and V rows are hd int8 values followed by their f32 scale (4
  /// bytes); null for f32 rows.
  bool int8 = false;
};

/// The f32 stored in 4 little-endian bytes of an i8 buffer at `at`.
Value loadF32Bytes(RewriterBase &rw, Location loc, Value buf, Value at) {
  Ix x{rw, loc};
  Type i32 = rw.getI32Type();
  Value bits = arith::ConstantIntOp::create(rw, loc, i32, 0);
  for (int64_t i = 0; i < 4; ++i) {
    Value b = memref::LoadOp::create(rw, loc, buf, ValueRange{x.add(at, x.c(i))});
    Value w = arith::ExtUIOp::create(rw, loc, i32, b);
    w = arith::ShLIOp::create(rw, loc, w, arith::ConstantIntOp::create(rw, loc, i32, 8 * i));
    bits = arith::OrIOp::create(rw, loc, bits, w);
  }
  return arith::BitcastOp::create(rw, loc, rw.getF32Type(), bits);
}

/// Element `at` of a K or V buffer as f32 (int8 rows: the integer; the
/// caller applies the row's scale).
Value loadKv(RewriterBase &rw, Location loc, bool int8, Value buf, Value at) {
  Value v = memref::LoadOp::create(rw, loc, buf, ValueRange{at});
  if (!int8)
    return v;
  return arith::SIToFPOp::create(rw, loc, rw.getF32Type(), v);
}

/// A zeroed private accumulator of hd floats (a row's weighted V sum).
Value zeroAccumulator(RewriterBase &rw, Location loc, int64_t hd) {
  Ix x{rw, loc};
  Value acc = memref::AllocaOp::create(rw, loc, MemRefType::get({hd}, rw.getF32Type()));
  Value zero = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f));
  scf::ForOp::create(rw, loc, x.c(0), x.c(hd), x.c(1), ValueRange{},
                     [&](OpBuilder &, Location, Value d, ValueRange) {
                       memref::StoreOp::create(rw, loc, zero, acc, d);
                       scf::YieldOp::create(rw, loc);
                     });
  return acc;
}

/// One key of the online softmax: `score` joins the running maximum and
/// sum ml = (m, l), and its V row (vAt(d), weighted by its probability,
/// times vScale for kv8 rows) is added to acc after acc is rescaled to the
/// new maximum. Returns (m', l').
SmallVector<Value> softmaxStep(RewriterBase &rw, Location loc, Value acc, int64_t hd, Value score,
                               ValueRange ml, Value vScale, function_ref<Value(Value d)> vAt) {
  Ix x{rw, loc};
  Value negInf = arith::ConstantOp::create(
      rw, loc, rw.getF32FloatAttr(-std::numeric_limits<float>::infinity()));
  Value zero = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f));
  Value mOld = ml[0], lOld = ml[1];
  Value mNew = arith::MaximumFOp::create(rw, loc, mOld, score);
  Value first = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OEQ, mOld, negInf);
  Value alpha = arith::SelectOp::create(
      rw, loc, first, zero, math::ExpOp::create(rw, loc, arith::SubFOp::create(rw, loc, mOld, mNew)));
  Value p = math::ExpOp::create(rw, loc, arith::SubFOp::create(rw, loc, score, mNew));
  Value lNew = math::FmaOp::create(rw, loc, lOld, alpha, p);
  // kv8: the V row's scale goes with its weight.
  Value pv = vScale ? arith::MulFOp::create(rw, loc, p, vScale).getResult() : p;
  scf::ForOp::create(rw, loc, x.c(0), x.c(hd), x.c(1), ValueRange{},
                     [&](OpBuilder &, Location, Value d, ValueRange) {
                       Value old = memref::LoadOp::create(rw, loc, acc, d);
                       Value scaled = arith::MulFOp::create(rw, loc, old, alpha);
                       memref::StoreOp::create(rw, loc, math::FmaOp::create(rw, loc, pv, vAt(d), scaled),
                                               acc, d);
                       scf::YieldOp::create(rw, loc);
                     });
  return {mNew, lNew};
}

/// A row's shares merged: each rescaled to the maximum over the shares,
/// then the weights and the weighted V rows summed; `reduce` combines
/// values over the row's invocations (each gets the totals). Returns the
/// hd sums and 1 / (sum of weights), 0 for a row that saw no key.
std::pair<SmallVector<Value>, Value>
mergeShares(RewriterBase &rw, Location loc, Value acc, int64_t hd, Value m, Value l,
            function_ref<SmallVector<Value>(ValueRange, CombineKind)> reduce) {
  Ix x{rw, loc};
  auto fc = [&](float v) {
    return arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(v)).getResult();
  };
  Value mMax = reduce({m}, CombineKind::Max)[0];
  Value empty = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OEQ, m,
                                      fc(-std::numeric_limits<float>::infinity()));
  Value factor = arith::SelectOp::create(
      rw, loc, empty, fc(0.0f), math::ExpOp::create(rw, loc, arith::SubFOp::create(rw, loc, m, mMax)));
  Value total = reduce({arith::MulFOp::create(rw, loc, l, factor).getResult()}, CombineKind::Add)[0];
  Value positive = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OGT, total, fc(0.0f));
  Value inv = arith::SelectOp::create(
      rw, loc, positive, arith::DivFOp::create(rw, loc, fc(1.0f), total), fc(0.0f));
  SmallVector<Value> weighted;
  for (int64_t d = 0; d < hd; ++d) {
    Value old = memref::LoadOp::create(rw, loc, acc, ValueRange{x.c(d)});
    weighted.push_back(arith::MulFOp::create(rw, loc, old, factor));
  }
  return {reduce(weighted, CombineKind::Add), inv};
}

/// The cooperative online softmax of one row (see above).
void attendRow(WorkgroupBuilder &wg, RewriterBase &rw, Location loc, const AttentionRow &a) {
  Ix x{rw, loc};
  auto fc = [&](float v) {
    return arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(v)).getResult();
  };
  Value zero = x.c(0), one = x.c(1), hd = x.c(a.hd);
  Value scale = fc(a.scale);
  Value acc = zeroAccumulator(rw, loc, a.hd);
  SmallVector<Value> ml = wg.strided(
      x.max(a.numKeys, zero), {fc(-std::numeric_limits<float>::infinity()), fc(0.0f)},
      [&](Value j, ValueRange ml) {
        auto [seen, row] = a.key(j);
        auto ifSeen = scf::IfOp::create(
            rw, loc, seen,
            [&](OpBuilder &, Location) {
              auto dot = scf::ForOp::create(
                  rw, loc, zero, hd, one, ValueRange{fc(0.0f)},
                  [&](OpBuilder &, Location, Value d, ValueRange sum) {
                    Value qv = memref::LoadOp::create(rw, loc, a.q, ValueRange{x.add(a.qBase, d)});
                    Value kv = loadKv(rw, loc, a.int8, a.k, x.add(row, d));
                    scf::YieldOp::create(rw, loc,
                                         math::FmaOp::create(rw, loc, qv, kv, sum[0]).getResult());
                  });
              Value score = arith::MulFOp::create(rw, loc, dot.getResult(0), scale);
              if (a.int8)
                score = arith::MulFOp::create(rw, loc, score,
                                              loadF32Bytes(rw, loc, a.k, x.add(row, hd)));
              Value vScale = a.int8 ? loadF32Bytes(rw, loc, a.v, x.add(row, hd)) : Value();
              scf::YieldOp::create(
                  rw, loc, softmaxStep(rw, loc, acc, a.hd, score, ml, vScale, [&](Value d) {
                    return loadKv(rw, loc, a.int8, a.v, x.add(row, d));
                  }));
            },
            [&](OpBuilder &, Location) {
              scf::YieldOp::create(rw, loc, ValueRange{ml[0], ml[1]});
            });
        return SmallVector<Value>(ifSeen.getResults());
      });
  // Across the workgroup.
  auto [sums, inv] = mergeShares(rw, loc, acc, a.hd, ml[0], ml[1],
                                 [&](ValueRange v, CombineKind k) { return wg.allReduce(v, k); });
  wg.inFirst([&] {
    for (int64_t d = 0; d < a.hd; ++d)
      memref::StoreOp::create(rw, loc, arith::MulFOp::create(rw, loc, sums[d], inv), a.out,
                              ValueRange{x.add(a.outBase, x.c(d))});
  });
}

/// Prefill: up to kBlockRows consecutive query rows of one (sequence,
/// head), which see the same keys (each row up to its own limit), attend
/// together. Each step stages kKeyTile keys' K and V rows in workgroup
/// memory once for all the rows (the row-per-workgroup form above reads
/// them once per row); the invocations of a row (size / kBlockRows of
/// them) take the tile's keys in turn with their own online softmax, and
/// the row's shares are merged as above, within the row's invocations.
constexpr int64_t kBlockRows = 16, kKeyTile = 16;

struct AttentionBlock {
  Value q, k, v, out;
  Value base; // flat index of the first row's first element in q and out
  Value rows; // rows in the block, 1 .. kBlockRows; row r at base + r * hd
  int64_t hd;
  float scale;
  /// Keys [0, numKeys(r)) are visible to row r (r < rows); non-decreasing
  /// in r.
  function_ref<Value(Value r)> numKeys;
  function_ref<std::pair<Value, Value>(Value j)> key;
  bool int8 = false;
};

/// Workgroup memory of the block form: Q rows, a tile of K and of V rows
/// (f32; kv8 rows as their integers), per key of the tile whether it is
/// seen and (kv8) its K and V scales, and its row's offset.
struct BlockScratch {
  Value qs, ks, vs, info, offsets;
};

int64_t blockSharedBytes(int64_t hd) {
  return 4 * (kBlockRows * hd + 2 * kKeyTile * hd + 3 * kKeyTile + kKeyTile);
}

/// Whether the target can run the block form for head size `hd`: whole
/// invocations per row, a power of two of them, and the scratch beside the
/// reductions' in workgroup memory.
bool blockFormFits(const GpuKernelConfig &cfg, int64_t hd) {
  int64_t per = cfg.workgroupSize / kBlockRows;
  int64_t reductions = cfg.workgroupSize * WorkgroupBuilder::kChunk * 4;
  return per >= 1 && cfg.workgroupSize % kBlockRows == 0 && llvm::isPowerOf2_64(per) &&
         blockSharedBytes(hd) + reductions <= cfg.maxSharedBytes;
}

/// Allocates the block form's workgroup memory (before the cooperative
/// loop opens).
BlockScratch allocBlockScratch(RewriterBase &rw, Location loc, int64_t hd) {
  auto shared = [&](int64_t n, Type t) { return workgroupBuffer(rw, loc, n, t); };
  Type f32 = rw.getF32Type();
  return {shared(kBlockRows * hd, f32), shared(kKeyTile * hd, f32), shared(kKeyTile * hd, f32),
          shared(3 * kKeyTile, f32), shared(kKeyTile, rw.getI32Type())};
}

/// `cond ? then() : 0.0f`, evaluating then() only where cond holds.
Value loadIf(RewriterBase &rw, Location loc, Value cond, function_ref<Value()> then) {
  auto i = scf::IfOp::create(rw, loc, TypeRange{rw.getF32Type()}, cond, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard g(rw);
  rw.setInsertionPointToStart(i.thenBlock());
  scf::YieldOp::create(rw, loc, then());
  rw.setInsertionPointToStart(i.elseBlock());
  scf::YieldOp::create(rw, loc,
                       arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f)).getResult());
  return i.getResult(0);
}

/// The block form (see above).
void attendBlock(WorkgroupBuilder &wg, RewriterBase &rw, Location loc, const AttentionBlock &a,
                 const BlockScratch &sc) {
  Ix x{rw, loc};
  auto fc = [&](float v) {
    return arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(v)).getResult();
  };
  auto load = [&](Value buf, Value at) {
    return memref::LoadOp::create(rw, loc, buf, ValueRange{at}).getResult();
  };
  auto store = [&](Value v, Value buf, Value at) {
    memref::StoreOp::create(rw, loc, v, buf, ValueRange{at});
  };
  int64_t per = wg.size() / kBlockRows;
  Value zero = x.c(0), one = x.c(1), hd = x.c(a.hd), tile = x.c(kKeyTile);
  Value t = wg.tid();
  Value r = x.div(t, x.c(per)), sub = x.rem(t, x.c(per));
  Value rowValid = x.lt(r, a.rows);
  Value negInf = fc(-std::numeric_limits<float>::infinity());
  Value scale = fc(a.scale);
  // The previous item's readers are done with the scratch.
  wg.barrier();
  wg.strided(x.c(kBlockRows * a.hd), {}, [&](Value e, ValueRange) {
    Value in = x.lt(x.div(e, hd), a.rows);
    store(loadIf(rw, loc, in, [&] { return load(a.q, x.add(a.base, e)); }), sc.qs, e);
    return SmallVector<Value>{};
  });
  Value mine = x.min(r, x.sub(a.rows, one));
  Value nk = arith::SelectOp::create(rw, loc, rowValid, a.numKeys(mine), zero);
  Value maxKeys = x.max(a.numKeys(x.sub(a.rows, one)), zero);
  Value acc = zeroAccumulator(rw, loc, a.hd);
  auto tiles = scf::ForOp::create(rw, loc, zero, maxKeys, tile, ValueRange{negInf, fc(0.0f)});
  {
    OpBuilder::InsertionGuard g(rw);
    rw.setInsertionPointToStart(tiles.getBody());
    Value kt = tiles.getInductionVar();
    wg.barrier();
    // Per key of the tile: seen (1 / 0), kv8 scales, row offset.
    auto first = scf::IfOp::create(rw, loc, x.lt(t, tile), /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard g2(rw);
      rw.setInsertionPoint(first.thenBlock()->getTerminator());
      Value j = x.add(kt, t);
      auto [seen, row] = a.key(x.min(j, x.sub(maxKeys, one)));
      Value vis = x.land(x.lt(j, maxKeys), seen);
      store(arith::SelectOp::create(rw, loc, vis, fc(1.0f), fc(0.0f)), sc.info, t);
      Value off = arith::SelectOp::create(rw, loc, vis, row, zero);
      store(arith::IndexCastOp::create(rw, loc, rw.getI32Type(), off), sc.offsets, t);
      if (a.int8) {
        store(loadIf(rw, loc, vis, [&] { return loadF32Bytes(rw, loc, a.k, x.add(row, hd)); }),
              sc.info, x.add(tile, t));
        store(loadIf(rw, loc, vis, [&] { return loadF32Bytes(rw, loc, a.v, x.add(row, hd)); }),
              sc.info, x.add(x.c(2 * kKeyTile), t));
      }
    }
    wg.barrier();
    wg.strided(x.c(kKeyTile * a.hd), {}, [&](Value e, ValueRange) {
      Value jj = x.div(e, hd), d = x.rem(e, hd);
      Value vis = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::ONE, load(sc.info, jj),
                                        fc(0.0f));
      Value at = x.add(arith::IndexCastOp::create(rw, loc, rw.getIndexType(),
                                                  load(sc.offsets, jj)),
                       d);
      store(loadIf(rw, loc, vis, [&] { return loadKv(rw, loc, a.int8, a.k, at); }), sc.ks, e);
      store(loadIf(rw, loc, vis, [&] { return loadKv(rw, loc, a.int8, a.v, at); }), sc.vs, e);
      return SmallVector<Value>{};
    });
    wg.barrier();
    // This invocation's keys of the tile: sub, sub + per, ...
    auto keys = scf::ForOp::create(rw, loc, sub, tile, x.c(per), tiles.getRegionIterArgs());
    {
      OpBuilder::InsertionGuard g3(rw);
      rw.setInsertionPointToStart(keys.getBody());
      Value jj = keys.getInductionVar();
      ValueRange ml = keys.getRegionIterArgs();
      Value seen = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::ONE, load(sc.info, jj),
                                         fc(0.0f));
      Value use = x.land(x.land(rowValid, x.lt(x.add(kt, jj), nk)), seen);
      auto ifUse = scf::IfOp::create(
          rw, loc, use,
          [&](OpBuilder &, Location) {
            auto dot = scf::ForOp::create(
                rw, loc, zero, hd, one, ValueRange{fc(0.0f)},
                [&](OpBuilder &, Location, Value d, ValueRange sum) {
                  Value qv = load(sc.qs, x.add(x.mul(r, hd), d));
                  Value kv = load(sc.ks, x.add(x.mul(jj, hd), d));
                  scf::YieldOp::create(rw, loc,
                                       math::FmaOp::create(rw, loc, qv, kv, sum[0]).getResult());
                });
            Value score = arith::MulFOp::create(rw, loc, dot.getResult(0), scale);
            if (a.int8)
              score = arith::MulFOp::create(rw, loc, score, load(sc.info, x.add(tile, jj)));
            Value vScale = a.int8 ? load(sc.info, x.add(x.c(2 * kKeyTile), jj)) : Value();
            scf::YieldOp::create(
                rw, loc, softmaxStep(rw, loc, acc, a.hd, score, ml, vScale, [&](Value d) {
                  return load(sc.vs, x.add(x.mul(jj, hd), d));
                }));
          },
          [&](OpBuilder &, Location) { scf::YieldOp::create(rw, loc, ValueRange{ml[0], ml[1]}); });
      scf::YieldOp::create(rw, loc, ifUse.getResults());
    }
    scf::YieldOp::create(rw, loc, keys.getResults());
  }
  // Within the row's invocations (neighbours).
  auto [sums, inv] = mergeShares(rw, loc, acc, a.hd, tiles.getResult(0), tiles.getResult(1),
                                 [&](ValueRange v, CombineKind k) {
                                   return wg.clusterReduce(v, per, k);
                                 });
  auto writer = scf::IfOp::create(rw, loc, x.land(rowValid, x.cmp(arith::CmpIPredicate::eq, sub, zero)),
                                  /*withElseRegion=*/false);
  OpBuilder::InsertionGuard g(rw);
  rw.setInsertionPoint(writer.thenBlock()->getTerminator());
  Value rowBase = x.add(a.base, x.mul(r, hd));
  for (int64_t d = 0; d < a.hd; ++d)
    store(arith::MulFOp::create(rw, loc, sums[d], inv), a.out, x.add(rowBase, x.c(d)));
}

/// Where `tiled` holds (uniform), the item of row s attends in the block
/// form when s is the first of a block of kBlockRows (the other items of
/// the block have nothing to do); elsewhere it attends its row alone.
void attendRowOrBlock(WorkgroupBuilder &wg, RewriterBase &rw, Location loc, Value tiled, Value s,
                      const AttentionRow &row, const AttentionBlock &blk,
                      const BlockScratch &scratch) {
  Ix x{rw, loc};
  auto mode = scf::IfOp::create(rw, loc, tiled, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard g(rw);
  rw.setInsertionPoint(mode.thenBlock()->getTerminator());
  Value lead = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::eq,
                                     x.rem(s, x.c(kBlockRows)), x.c(0));
  auto ifLead = scf::IfOp::create(rw, loc, lead, /*withElseRegion=*/false);
  rw.setInsertionPoint(ifLead.thenBlock()->getTerminator());
  attendBlock(wg, rw, loc, blk, scratch);
  rw.setInsertionPoint(mode.elseBlock()->getTerminator());
  attendRow(wg, rw, loc, row);
}

/// The head size, static on this target (it sizes the private accumulator).
FailureOr<int64_t> staticHeadSize(llm::UkernelOp op, Value q, std::string &error) {
  auto t = cast<MemRefType>(q.getType());
  if (t.getRank() != 4 || t.isDynamicDim(3)) {
    error = "'" + op.getCallee().str() + "' needs a static head size on this target";
    return failure();
  }
  return t.getDimSize(3);
}

/// The f32 scale and i32 causal flag: the two arguments before `out`.
LogicalResult scaleAndCausal(llm::UkernelOp op, float &scale, bool &causal, std::string &error) {
  ArrayRef<Attribute> args = op.getArgs().getValue();
  if (args.size() < 3 || !isa<FloatAttr>(args[args.size() - 3]) ||
      !isa<IntegerAttr>(args[args.size() - 2])) {
    error = "internal: unexpected '" + op.getCallee().str() + "' arguments";
    return failure();
  }
  scale = cast<FloatAttr>(args[args.size() - 3]).getValueAsDouble();
  causal = cast<IntegerAttr>(args[args.size() - 2]).getInt() != 0;
  return success();
}

LogicalResult checkOperands(llm::UkernelOp op, unsigned ins, std::string &error) {
  if (op.getInputs().size() != ins || op.getOutputs().size() != 1 ||
      !llvm::all_of(op->getOperandTypes(), [](Type t) { return isa<MemRefType>(t); })) {
    error = "internal: '" + op.getCallee().str() + "' is not in its bufferized form";
    return failure();
  }
  return success();
}

} // namespace

LogicalResult expandKvCacheWriteF32(llm::UkernelOp op, RewriterBase &rewriter,
                                    const GpuKernelConfig &, std::string &error) {
  if (failed(checkOperands(op, 2, error)))
    return failure();
  Location loc = op.getLoc();
  Ix x{rewriter, loc};
  Value cur = op.getInputs()[0], slots = op.getInputs()[1], pool = op.getOutputs()[0];
  // cur [1, KVH, N, hd]; pool [num_blocks, block_size, KVH, hd]; slots [N].
  Value kvh = x.dim(cur, 1), n = x.dim(cur, 2), hd = x.dim(cur, 3);
  Value blocks = x.dim(pool, 0), bs = x.dim(pool, 1);
  Value numSlots = x.mul(blocks, bs);
  Value zero = x.c(0), one = x.c(1);
  scf::ParallelOp::create(
      rewriter, loc, ValueRange{zero, zero, zero}, ValueRange{n, kvh, hd},
      ValueRange{one, one, one}, [&](OpBuilder &, Location, ValueRange iv) {
        Value t = iv[0], c = iv[1], d = iv[2];
        Value slot = x.loadIndex(slots, {t});
        Value ok = x.land(x.ge(slot, zero), x.lt(slot, numSlots));
        scf::IfOp::create(rewriter, loc, ok, [&](OpBuilder &, Location) {
          Value v = memref::LoadOp::create(rewriter, loc, cur, ValueRange{zero, c, t, d});
          memref::StoreOp::create(rewriter, loc, v, pool,
                                  ValueRange{x.div(slot, bs), x.rem(slot, bs), c, d});
          scf::YieldOp::create(rewriter, loc);
        });
      });
  rewriter.eraseOp(op);
  return success();
}

// kiln_uk_kv_append_f32(past, cur, B, KVH, P, S, hd, out): out [B, KVH,
// P + S, hd] = concat(past, cur) along axis 2, one invocation per element.
LogicalResult expandKvAppendF32(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &,
                                std::string &error) {
  if (failed(expectUkernelArgs(op, 8, error)))
    return failure();
  Location loc = op.getLoc();
  Ix x{rw, loc};
  Value past = ukernelBuffer(op, 0, rw), cur = ukernelBuffer(op, 1, rw);
  Value B = ukernelSize(op, 2, rw), kvh = ukernelSize(op, 3, rw), P = ukernelSize(op, 4, rw),
        S = ukernelSize(op, 5, rw), hd = ukernelSize(op, 6, rw), out = ukernelBuffer(op, 7, rw);
  Value T = x.add(P, S), zero = x.c(0), one = x.c(1);
  scf::ParallelOp::create(
      rw, loc, ValueRange{zero, zero, zero}, ValueRange{x.mul(B, kvh), T, hd},
      ValueRange{one, one, one}, [&](OpBuilder &, Location, ValueRange iv) {
        Value bc = iv[0], t = iv[1], d = iv[2];
        Value fromPast = x.lt(t, P);
        auto v = scf::IfOp::create(
            rw, loc, fromPast,
            [&](OpBuilder &, Location) {
              Value at = x.add(x.mul(x.add(x.mul(bc, P), t), hd), d);
              scf::YieldOp::create(rw, loc,
                                   memref::LoadOp::create(rw, loc, past, ValueRange{at}).getResult());
            },
            [&](OpBuilder &, Location) {
              Value at = x.add(x.mul(x.add(x.mul(bc, S), x.sub(t, P)), hd), d);
              scf::YieldOp::create(rw, loc,
                                   memref::LoadOp::create(rw, loc, cur, ValueRange{at}).getResult());
            });
        memref::StoreOp::create(rw, loc, v.getResult(0), out,
                                ValueRange{x.add(x.mul(x.add(x.mul(bc, T), t), hd), d)});
        scf::ReduceOp::create(rw, loc);
      });
  rw.eraseOp(op);
  return success();
}

// kiln_uk_attention_f32(q, k, v, mask, B, H, KVH, S, T, hd, scale, causal,
// out): q/out [B, H, S, hd], k/v [B, KVH, T, hd], mask [B, T] (0: not
// seen) or NULL; row s sees keys up to T - S + s when causal.
LogicalResult expandAttentionF32(llm::UkernelOp op, RewriterBase &rw,
                                 const GpuKernelConfig &config, std::string &error) {
  float scale;
  bool causal;
  if (failed(expectUkernelArgs(op, 13, error)) ||
      failed(scaleAndCausal(op, scale, causal, error)))
    return failure();
  Value qOperand = op->getOperand(cast<DenseI64ArrayAttr>(op.getArgs()[0])[0]);
  FailureOr<int64_t> hdStatic = staticHeadSize(op, qOperand, error);
  if (failed(hdStatic))
    return failure();
  Location loc = op.getLoc();
  Ix x{rw, loc};
  Value q = ukernelBuffer(op, 0, rw), k = ukernelBuffer(op, 1, rw), v = ukernelBuffer(op, 2, rw),
        mask = ukernelBuffer(op, 3, rw);
  Value B = ukernelSize(op, 4, rw), H = ukernelSize(op, 5, rw), kvh = ukernelSize(op, 6, rw),
        S = ukernelSize(op, 7, rw), T = ukernelSize(op, 8, rw), out = ukernelBuffer(op, 12, rw);
  Value hd = x.c(*hdStatic), zero = x.c(0), one = x.c(1);
  Value group = x.max(x.div(H, kvh), one);
  bool blocks = blockFormFits(config, *hdStatic);
  BlockScratch scratch;
  if (blocks)
    scratch = allocBlockScratch(rw, loc, *hdStatic);
  WorkgroupBuilder wg(rw, loc, config);
  SmallVector<Value> iv = wg.items({B, H, S});
  Value b = iv[0], h = iv[1], s = iv[2];
  Value c = x.min(x.div(h, group), x.sub(kvh, one));
  Value last = x.sub(T, one);
  Value lim = causal ? x.min(x.add(x.sub(T, S), s), last) : last;
  // No kv heads: no keys (k and v are empty).
  Value numKeys = arith::SelectOp::create(rw, loc, x.lt(zero, kvh), x.add(lim, one), zero);
  Value rowBase = x.mul(x.add(x.mul(x.add(x.mul(b, H), h), S), s), hd);
  Value kvRow0 = x.mul(x.add(x.mul(b, kvh), c), T);
  auto key = [&](Value j) -> std::pair<Value, Value> {
    Value seen = arith::ConstantIntOp::create(rw, loc, 1, 1);
    if (mask) {
      Value m = memref::LoadOp::create(rw, loc, mask, ValueRange{x.add(x.mul(b, T), j)});
      Value zeroMask = arith::ConstantIntOp::create(rw, loc, m.getType(), 0);
      seen = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ne, m, zeroMask);
    }
    return {seen, x.mul(x.add(kvRow0, j), hd)};
  };
  AttentionRow row{q, k, v, out, rowBase, rowBase, *hdStatic, scale, numKeys, key};
  if (!blocks) {
    attendRow(wg, rw, loc, row);
    rw.eraseOp(op);
    return success();
  }
  // Prompts of 16 rows or more: item s = 16i takes rows s .. s + 15, the
  // other items of the row have nothing to do.
  auto numKeysOf = [&](Value r) -> Value {
    Value l = causal ? x.min(x.add(x.sub(T, S), x.add(s, r)), last) : last;
    return arith::SelectOp::create(rw, loc, x.lt(zero, kvh), x.add(l, one), zero);
  };
  AttentionBlock blk{q, k, v, out, rowBase, x.min(x.c(kBlockRows), x.sub(S, s)),
                     *hdStatic, scale, numKeysOf, key};
  attendRowOrBlock(wg, rw, loc, x.le(x.c(kBlockRows), S), s, row, blk, scratch);
  rw.eraseOp(op);
  return success();
}

/// kiln_uk_paged_attention_f32 and, with int8 pools, _q8.
static LogicalResult expandPagedAttention(llm::UkernelOp op, RewriterBase &rewriter,
                                          const GpuKernelConfig &config, bool int8,
                                          std::string &error) {
  float scale;
  bool causal;
  if (failed(checkOperands(op, 6, error)) || failed(scaleAndCausal(op, scale, causal, error)))
    return failure();
  Location loc = op.getLoc();
  Ix x{rewriter, loc};
  ValueRange in = op.getInputs();
  Value q = in[0], kPool = in[1], vPool = in[2], tables = in[3], lens = in[4],
        starts = in[5], out = op.getOutputs()[0];
  FailureOr<int64_t> hdStatic = staticHeadSize(op, q, error);
  if (failed(hdStatic))
    return failure();

  // q/out [1, H, N, hd]; pools [num_blocks, block_size, KVH, hd];
  // tables [B, M]; lens [B]; starts [B + 1].
  Value h = x.dim(q, 1), n = x.dim(q, 2), hd = x.c(*hdStatic);
  Value numBlocks = x.dim(kPool, 0), bs = x.dim(kPool, 1), kvh = x.dim(kPool, 2);
  Value batch = x.dim(lens, 0), m = x.dim(tables, 1);
  Value zero = x.c(0), one = x.c(1), minusOne = x.c(-1);
  // A pool row: hd values (kv8: hd int8 and a 4-byte f32 scale).
  Value rowStride = int8 ? x.c(*hdStatic + 4) : hd;
  Value group = x.max(x.div(h, kvh), one);
  auto flat = [&](Value buf) {
    ReassociationIndices all{0, 1, 2, 3};
    return memref::CollapseShapeOp::create(rewriter, loc, buf,
                                           ArrayRef<ReassociationIndices>{all})
        .getResult();
  };
  Value qFlat = flat(q), kFlat = flat(kPool), vFlat = flat(vPool), outFlat = flat(out);
  bool blocks = blockFormFits(config, *hdStatic);
  BlockScratch scratch;
  if (blocks)
    scratch = allocBlockScratch(rewriter, loc, *hdStatic);
  WorkgroupBuilder wg(rewriter, loc, config);
  SmallVector<Value> iv = wg.items({h, n});
  Value head = iv[0], t = iv[1];
  Value rowBase = x.mul(x.add(x.mul(head, n), t), hd);
  // The sequence whose query rows hold t (-1: none); the same in every
  // invocation, so the branch on it is uniform.
  auto find = scf::ForOp::create(
      rewriter, loc, zero, batch, one, ValueRange{minusOne},
      [&](OpBuilder &, Location, Value b, ValueRange acc) {
        Value q0 = x.loadIndex(starts, {b});
        Value q1 = x.loadIndex(starts, {x.add(b, one)});
        Value hit = x.land(x.land(x.le(q0, t), x.lt(t, q1)), x.le(q1, n));
        Value sel = arith::SelectOp::create(rewriter, loc, hit, b, acc[0]);
        scf::YieldOp::create(rewriter, loc, sel);
      });
  Value b = find.getResult(0);
  Value covered = x.ge(b, zero);
  auto branch = scf::IfOp::create(rewriter, loc, covered, /*withElse=*/true);
  // Not covered: zeros.
  rewriter.setInsertionPointToStart(branch.elseBlock());
  wg.strided(hd, {}, [&](Value d, ValueRange) {
    memref::StoreOp::create(rewriter, loc, arith::ConstantOp::create(
                                               rewriter, loc, rewriter.getF32FloatAttr(0.0f)),
                            outFlat, ValueRange{x.add(rowBase, d)});
    return SmallVector<Value>{};
  });
  rewriter.setInsertionPointToStart(branch.thenBlock());
  Value q0 = x.loadIndex(starts, {b});
  Value q1 = x.loadIndex(starts, {x.add(b, one)});
  Value s = x.sub(t, q0), rows = x.sub(q1, q0);
  Value total = x.max(x.min(x.loadIndex(lens, {b}), x.mul(m, bs)), zero);
  Value last = x.sub(total, one);
  Value lim = causal ? x.min(x.add(x.sub(total, rows), s), last) : last;
  Value c = x.min(x.div(head, group), x.sub(kvh, one));
  auto key = [&](Value j) -> std::pair<Value, Value> {
    Value blk = x.loadIndex(tables, {b, x.div(j, bs)});
    Value valid = x.land(x.ge(blk, zero), x.lt(blk, numBlocks));
    Value slot = x.add(x.mul(blk, bs), x.rem(j, bs));
    return {valid, x.mul(x.add(x.mul(slot, kvh), c), rowStride)};
  };
  AttentionRow row{qFlat, kFlat, vFlat, outFlat, rowBase, rowBase, *hdStatic, scale,
                   x.add(lim, one), key, int8};
  if (!blocks) {
    attendRow(wg, rewriter, loc, row);
    rewriter.eraseOp(op);
    return success();
  }
  // One sequence's prompt of 16 rows or more (prefill): item t = 16i takes
  // rows t .. t + 15 (see attendBlock); a batch of sequences (decode,
  // serving) keeps a workgroup per row.
  auto numKeysOf = [&](Value r) -> Value {
    Value l = causal ? x.min(x.add(x.sub(total, rows), x.add(s, r)), last) : last;
    return x.add(l, one);
  };
  AttentionBlock blk{qFlat, kFlat, vFlat, outFlat, rowBase, x.min(x.c(kBlockRows), x.sub(rows, s)),
                     *hdStatic, scale, numKeysOf, key, int8};
  Value tiled = x.land(x.land(x.cmp(arith::CmpIPredicate::eq, batch, one),
                              x.cmp(arith::CmpIPredicate::eq, rows, n)),
                       x.le(x.c(kBlockRows), n));
  attendRowOrBlock(wg, rewriter, loc, tiled, s, row, blk, scratch);
  rewriter.eraseOp(op);
  return success();
}

LogicalResult expandPagedAttentionF32(llm::UkernelOp op, RewriterBase &rw,
                                      const GpuKernelConfig &config, std::string &error) {
  return expandPagedAttention(op, rw, config, /*int8=*/false, error);
}

LogicalResult expandPagedAttentionQ8(llm::UkernelOp op, RewriterBase &rw,
                                     const GpuKernelConfig &config, std::string &error) {
  return expandPagedAttention(op, rw, config, /*int8=*/true, error);
}

// kiln_uk_kv_cache_write_q8: per (token, kv head) row, scale = max|x| / 127
// and q = x * (127 / max|x|) rounded half away from zero, clamped to
// [-127, 127]; the scale's 4 bytes follow the row. One invocation per row.
LogicalResult expandKvCacheWriteQ8(llm::UkernelOp op, RewriterBase &rw, const GpuKernelConfig &,
                                   std::string &error) {
  if (failed(checkOperands(op, 2, error)))
    return failure();
  Location loc = op.getLoc();
  Ix x{rw, loc};
  Value cur = op.getInputs()[0], slots = op.getInputs()[1], pool = op.getOutputs()[0];
  // cur [1, KVH, N, hd]; pool [num_blocks, block_size, KVH, hd + 4] int8.
  Value kvh = x.dim(cur, 1), n = x.dim(cur, 2), hd = x.dim(cur, 3);
  Value numSlots = x.mul(x.dim(pool, 0), x.dim(pool, 1));
  ReassociationIndices all{0, 1, 2, 3};
  Value flat = memref::CollapseShapeOp::create(rw, loc, pool, ArrayRef<ReassociationIndices>{all});
  Value zero = x.c(0), one = x.c(1);
  Type i32 = rw.getI32Type(), i8 = rw.getI8Type();
  auto fc = [&](float v) { return arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(v)).getResult(); };
  auto ic = [&](int32_t v) { return arith::ConstantIntOp::create(rw, loc, i32, v).getResult(); };
  scf::ParallelOp::create(
      rw, loc, ValueRange{zero, zero}, ValueRange{n, kvh}, ValueRange{one, one},
      [&](OpBuilder &, Location, ValueRange iv) {
        Value t = iv[0], c = iv[1];
        Value slot = x.loadIndex(slots, {t});
        Value ok = x.land(x.ge(slot, zero), x.lt(slot, numSlots));
        scf::IfOp::create(rw, loc, ok, [&](OpBuilder &, Location) {
          auto src = [&](Value d) {
            return memref::LoadOp::create(rw, loc, cur, ValueRange{zero, c, t, d}).getResult();
          };
          auto amax = scf::ForOp::create(
              rw, loc, zero, hd, one, ValueRange{fc(0.0f)},
              [&](OpBuilder &, Location, Value d, ValueRange m) {
                Value a = math::AbsFOp::create(rw, loc, src(d));
                Value bigger = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OGT, a, m[0]);
                scf::YieldOp::create(rw, loc,
                                     arith::SelectOp::create(rw, loc, bigger, a, m[0]).getResult());
              });
          Value mx = amax.getResult(0);
          Value s = arith::DivFOp::create(rw, loc, mx, fc(127.0f));
          Value positive = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OGT, mx, fc(0.0f));
          Value inv = arith::SelectOp::create(
              rw, loc, positive, arith::DivFOp::create(rw, loc, fc(127.0f), mx), fc(0.0f));
          Value base = x.mul(x.add(x.mul(slot, kvh), c), x.add(hd, x.c(4)));
          scf::ForOp::create(
              rw, loc, zero, hd, one, ValueRange{},
              [&](OpBuilder &, Location, Value d, ValueRange) {
                Value r = arith::MulFOp::create(rw, loc, src(d), inv);
                Value neg = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OLT, r, fc(0.0f));
                Value half = arith::SelectOp::create(rw, loc, neg, fc(-0.5f), fc(0.5f));
                Value v = arith::FPToSIOp::create(rw, loc, i32, arith::AddFOp::create(rw, loc, r, half));
                v = arith::MinSIOp::create(rw, loc, arith::MaxSIOp::create(rw, loc, v, ic(-127)),
                                           ic(127));
                memref::StoreOp::create(rw, loc, arith::TruncIOp::create(rw, loc, i8, v), flat,
                                        ValueRange{x.add(base, d)});
                scf::YieldOp::create(rw, loc);
              });
          Value bits = arith::BitcastOp::create(rw, loc, i32, s);
          for (int32_t i = 0; i < 4; ++i) {
            Value byte = arith::ShRUIOp::create(rw, loc, bits, ic(8 * i));
            memref::StoreOp::create(rw, loc, arith::TruncIOp::create(rw, loc, i8, byte), flat,
                                    ValueRange{x.add(base, x.add(hd, x.c(i)))});
          }
          scf::YieldOp::create(rw, loc);
        });
        scf::ReduceOp::create(rw, loc);
      });
  rw.eraseOp(op);
  return success();
}

} // namespace kiln
