//===- GpuUkernelsAttention.cpp - The paged KV cache on a GPU ---------------===//
//
// GPU versions of kiln_uk_kv_cache_write_f32 and kiln_uk_paged_attention_f32
// (targets/cpu/ukernels/attention.c): same operands, same `args`, same
// results. The cache write is one invocation per copied element. Attention
// is one workgroup per (head, token row) (GpuWorkgroup.h): it finds the
// row's sequence; each invocation walks its share of the visible keys
// through the block table with an online softmax (running max and sum, the
// weighted V rows accumulated in private memory); the shares are merged by
// workgroup reductions (maximum, then the rescaled sums) and invocation 0
// writes the output row. Rows no sequence covers are zeros.
//
//===----------------------------------------------------------------------===//
#include "targets/vulkan/GpuUkernels.h"

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

LogicalResult expandPagedAttentionF32(llm::UkernelOp op, RewriterBase &rewriter,
                                      const GpuKernelConfig &config, std::string &error) {
  if (failed(checkOperands(op, 6, error)))
    return failure();
  Location loc = op.getLoc();
  Ix x{rewriter, loc};
  ValueRange in = op.getInputs();
  Value q = in[0], kPool = in[1], vPool = in[2], tables = in[3], lens = in[4],
        starts = in[5], out = op.getOutputs()[0];
  auto qType = cast<MemRefType>(q.getType());
  if (qType.isDynamicDim(3)) {
    error = "paged attention needs a static head size on this target";
    return failure();
  }
  int64_t hdStatic = qType.getDimSize(3);
  float scaleValue = 0.0f;
  bool causal = false;
  // args: ... f32 scale, i32 causal, ptr(out) — the last three.
  ArrayRef<Attribute> args = op.getArgs().getValue();
  if (args.size() < 3 || !isa<FloatAttr>(args[args.size() - 3]) ||
      !isa<IntegerAttr>(args[args.size() - 2])) {
    error = "internal: unexpected paged attention arguments";
    return failure();
  }
  scaleValue = cast<FloatAttr>(args[args.size() - 3]).getValueAsDouble();
  causal = cast<IntegerAttr>(args[args.size() - 2]).getInt() != 0;

  // q/out [1, H, N, hd]; pools [num_blocks, block_size, KVH, hd];
  // tables [B, M]; lens [B]; starts [B + 1].
  Value h = x.dim(q, 1), n = x.dim(q, 2), hd = x.c(hdStatic);
  Value numBlocks = x.dim(kPool, 0), bs = x.dim(kPool, 1), kvh = x.dim(kPool, 2);
  Value batch = x.dim(lens, 0), m = x.dim(tables, 1);
  Value zero = x.c(0), one = x.c(1), minusOne = x.c(-1);
  Value group = x.max(x.div(h, kvh), one);
  Type f32 = rewriter.getF32Type();
  auto fc = [&](float v) {
    return arith::ConstantOp::create(rewriter, loc, rewriter.getF32FloatAttr(v)).getResult();
  };
  auto accType = MemRefType::get({hdStatic}, f32);
  Value negInf = fc(-std::numeric_limits<float>::infinity());
  Value scale = fc(scaleValue);
  WorkgroupBuilder wg(rewriter, loc, config);
  SmallVector<Value> iv = wg.items({h, n});
  Value head = iv[0], t = iv[1];
  // The sequence whose query rows hold t (-1: none); the same in every
  // invocation, so the branches below are uniform.
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
    memref::StoreOp::create(rewriter, loc, fc(0.0f), out, ValueRange{zero, head, t, d});
    return SmallVector<Value>{};
  });
  // Covered: each invocation runs an online softmax over its share of the
  // visible keys (j = tid, tid + size, ...), then the shares are merged.
  rewriter.setInsertionPointToStart(branch.thenBlock());
  Value q0 = x.loadIndex(starts, {b});
  Value q1 = x.loadIndex(starts, {x.add(b, one)});
  Value s = x.sub(t, q0), rows = x.sub(q1, q0);
  Value total = x.max(x.min(x.loadIndex(lens, {b}), x.mul(m, bs)), zero);
  Value last = x.sub(total, one);
  Value lim = causal ? x.min(x.add(x.sub(total, rows), s), last) : last;
  Value c = x.min(x.div(head, group), x.sub(kvh, one));
  Value acc = memref::AllocaOp::create(rewriter, loc, accType);
  scf::ForOp::create(rewriter, loc, zero, hd, one, ValueRange{},
                     [&](OpBuilder &, Location, Value d, ValueRange) {
                       memref::StoreOp::create(rewriter, loc, fc(0.0f), acc, d);
                       scf::YieldOp::create(rewriter, loc);
                     });
  SmallVector<Value> ml = wg.strided(
      x.max(x.add(lim, one), zero), {negInf, fc(0.0f)}, [&](Value j, ValueRange ml) {
        Value blk = x.loadIndex(tables, {b, x.div(j, bs)});
        Value valid = x.land(x.ge(blk, zero), x.lt(blk, numBlocks));
        auto ifValid = scf::IfOp::create(
            rewriter, loc, valid,
            [&](OpBuilder &, Location) {
              Value off = x.rem(j, bs);
              auto dot = scf::ForOp::create(
                  rewriter, loc, zero, hd, one, ValueRange{fc(0.0f)},
                  [&](OpBuilder &, Location, Value d, ValueRange sum) {
                    Value qv =
                        memref::LoadOp::create(rewriter, loc, q, ValueRange{zero, head, t, d});
                    Value kv =
                        memref::LoadOp::create(rewriter, loc, kPool, ValueRange{blk, off, c, d});
                    Value next = math::FmaOp::create(rewriter, loc, qv, kv, sum[0]);
                    scf::YieldOp::create(rewriter, loc, next);
                  });
              Value score = arith::MulFOp::create(rewriter, loc, dot.getResult(0), scale);
              Value mOld = ml[0], lOld = ml[1];
              Value mNew = arith::MaximumFOp::create(rewriter, loc, mOld, score);
              Value first =
                  arith::CmpFOp::create(rewriter, loc, arith::CmpFPredicate::OEQ, mOld, negInf);
              Value alpha = arith::SelectOp::create(
                  rewriter, loc, first, fc(0.0f),
                  math::ExpOp::create(rewriter, loc,
                                      arith::SubFOp::create(rewriter, loc, mOld, mNew)));
              Value p = math::ExpOp::create(rewriter, loc,
                                            arith::SubFOp::create(rewriter, loc, score, mNew));
              Value lNew = math::FmaOp::create(rewriter, loc, lOld, alpha, p);
              scf::ForOp::create(
                  rewriter, loc, zero, hd, one, ValueRange{},
                  [&](OpBuilder &, Location, Value d, ValueRange) {
                    Value vv =
                        memref::LoadOp::create(rewriter, loc, vPool, ValueRange{blk, off, c, d});
                    Value a = memref::LoadOp::create(rewriter, loc, acc, d);
                    Value scaled = arith::MulFOp::create(rewriter, loc, a, alpha);
                    Value next = math::FmaOp::create(rewriter, loc, p, vv, scaled);
                    memref::StoreOp::create(rewriter, loc, next, acc, d);
                    scf::YieldOp::create(rewriter, loc);
                  });
              scf::YieldOp::create(rewriter, loc, ValueRange{mNew, lNew});
            },
            [&](OpBuilder &, Location) {
              scf::YieldOp::create(rewriter, loc, ValueRange{ml[0], ml[1]});
            });
        return SmallVector<Value>(ifValid.getResults());
      });
  // Merge: rescale every share to the workgroup's maximum, then sum the
  // weights and the weighted V rows across the workgroup.
  Value mMax = wg.allReduce({ml[0]}, CombineKind::Max)[0];
  Value empty = arith::CmpFOp::create(rewriter, loc, arith::CmpFPredicate::OEQ, ml[0], negInf);
  Value factor = arith::SelectOp::create(
      rewriter, loc, empty, fc(0.0f),
      math::ExpOp::create(rewriter, loc, arith::SubFOp::create(rewriter, loc, ml[0], mMax)));
  Value l = wg.allReduce({arith::MulFOp::create(rewriter, loc, ml[1], factor).getResult()},
                         CombineKind::Add)[0];
  Value positive = arith::CmpFOp::create(rewriter, loc, arith::CmpFPredicate::OGT, l, fc(0.0f));
  Value inv = arith::SelectOp::create(
      rewriter, loc, positive, arith::DivFOp::create(rewriter, loc, fc(1.0f), l), fc(0.0f));
  SmallVector<Value> weighted;
  for (int64_t d = 0; d < hdStatic; ++d) {
    Value a = memref::LoadOp::create(rewriter, loc, acc, ValueRange{x.c(d)});
    weighted.push_back(arith::MulFOp::create(rewriter, loc, a, factor));
  }
  SmallVector<Value> sums = wg.allReduce(weighted, CombineKind::Add);
  wg.inFirst([&] {
    for (int64_t d = 0; d < hdStatic; ++d)
      memref::StoreOp::create(rewriter, loc, arith::MulFOp::create(rewriter, loc, sums[d], inv),
                              out, ValueRange{zero, head, t, x.c(d)});
  });
  rewriter.eraseOp(op);
  return success();
}

} // namespace kiln
