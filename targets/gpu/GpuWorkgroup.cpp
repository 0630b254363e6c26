//===- GpuWorkgroup.cpp - Code that a workgroup's invocations run together -===//
#include "targets/gpu/GpuWorkgroup.h"

#include "targets/TargetRegistry.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <limits>

using namespace mlir;

namespace kiln {

GpuKernelConfig GpuKernelConfig::forTarget(const TargetDescription &target) {
  GpuKernelConfig c;
  c.workgroupSize = target.workgroupSize;
  c.subgroupSize = target.subgroupSize;
  auto has = [&](llvm::StringRef cap) {
    return llvm::is_contained(target.spirvCapabilities, cap);
  };
  // CUDA: warps of 32 with shuffles; Vulkan: what the profile declares.
  bool cuda = target.kind == TargetKind::Cuda;
  c.subgroupReduce = cuda || has("GroupNonUniformArithmetic");
  c.subgroupShuffle = cuda || has("GroupNonUniformShuffle");
  c.matrixOps = target.matrixOps;
  c.maxSharedBytes = target.maxSharedMemoryBytes;
  c.vectorLoads = cuda;
  return c;
}

/// `v` as the constant that folding its (pure, index) arithmetic gives, if
/// any.
static std::optional<int64_t> foldedIndex(Value v, int depth = 0) {
  if (std::optional<int64_t> c = getConstantIntValue(v))
    return c;
  Operation *op = v.getDefiningOp();
  if (!op || depth > 16 || op->getNumResults() != 1 || op->getNumRegions() != 0 ||
      !isPure(op))
    return std::nullopt;
  SmallVector<Attribute> operands;
  for (Value o : op->getOperands()) {
    std::optional<int64_t> c = foldedIndex(o, depth + 1);
    if (!c || !o.getType().isIntOrIndex())
      return std::nullopt;
    operands.push_back(IntegerAttr::get(o.getType(), *c));
  }
  SmallVector<OpFoldResult> results;
  if (failed(op->fold(operands, results)) || results.size() != 1)
    return std::nullopt;
  if (auto a = dyn_cast_if_present<IntegerAttr>(dyn_cast_if_present<Attribute>(results[0])))
    return a.getInt();
  return std::nullopt;
}

Value workgroupBuffer(RewriterBase &rw, Location loc, int64_t n, Type type) {
  auto alloc = memref::AllocOp::create(rw, loc, MemRefType::get({n}, type));
  alloc->setAttr("kiln.gpu_memory", rw.getStringAttr("workgroup"));
  return alloc;
}

SmallVector<Value> WorkgroupBuilder::items(ArrayRef<Value> ubs) {
  scratch = workgroupBuffer(rw, loc, cfg.workgroupSize * kChunk, rw.getF32Type());
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  Value one = arith::ConstantIndexOp::create(rw, loc, 1);
  SmallVector<Value> lbs(ubs.size(), zero), steps(ubs.size(), one);
  // Canonicalization rebuilds an scf.parallel without its dimensions of one
  // iteration (or inlines it), and the rebuilt loop has lost the cooperative
  // tag. A bound that folds to 1 (a matmul's only 2 panels with 2 per
  // workgroup) becomes a 1 it cannot see: min(1, number of workgroups).
  SmallVector<Value> bounds(ubs);
  for (Value &ub : bounds)
    if (foldedIndex(ub) == 1)
      ub = arith::MinUIOp::create(rw, loc, one,
                                  gpu::GridDimOp::create(rw, loc, gpu::Dimension::x));
  auto p = scf::ParallelOp::create(rw, loc, lbs, bounds, steps);
  p->setAttr(kCooperativeAttr, rw.getUnitAttr());
  rw.setInsertionPointToStart(p.getBody());
  return SmallVector<Value>(p.getInductionVars());
}

Value WorkgroupBuilder::tid() {
  return gpu::ThreadIdOp::create(rw, loc, gpu::Dimension::x);
}

void WorkgroupBuilder::barrier() { gpu::BarrierOp::create(rw, loc); }

void WorkgroupBuilder::inFirst(function_ref<void()> body) {
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  Value first = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::eq, tid(), zero);
  auto guard = scf::IfOp::create(rw, loc, first, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard g(rw);
  rw.setInsertionPoint(guard.thenBlock()->getTerminator());
  body();
}

SmallVector<Value> WorkgroupBuilder::strided(
    Value n, ValueRange inits,
    function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  Value step = arith::ConstantIndexOp::create(rw, loc, cfg.workgroupSize);
  Value t = tid();
  auto loop = scf::ForOp::create(rw, loc, zero, n, step, inits);
  OpBuilder::InsertionGuard g(rw);
  // Each block gets its yield below.
  openBlock(rw, loop.getBody());
  Value i = arith::AddIOp::create(rw, loc, loop.getInductionVar(), t);
  Value in = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::slt, i, n);
  ValueRange carried = loop.getRegionIterArgs();
  auto branch = scf::IfOp::create(rw, loc, carried.getTypes(), in, /*withElseRegion=*/true);
  scf::YieldOp::create(rw, loc, branch.getResults());
  openBlock(rw, branch.thenBlock());
  scf::YieldOp::create(rw, loc, body(i, carried));
  openBlock(rw, branch.elseBlock());
  scf::YieldOp::create(rw, loc, carried);
  return SmallVector<Value>(loop.getResults());
}

Value WorkgroupBuilder::identity(CombineKind kind) {
  float v = kind == CombineKind::Add ? 0.0f : -std::numeric_limits<float>::infinity();
  return arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(v));
}

Value WorkgroupBuilder::combine(CombineKind kind, Value a, Value b) {
  if (kind == CombineKind::Add)
    return arith::AddFOp::create(rw, loc, a, b);
  return arith::MaxNumFOp::create(rw, loc, a, b);
}

void WorkgroupBuilder::storeRow(ArrayRef<Value> chunk, Value row) {
  Value base = arith::MulIOp::create(
      rw, loc, row, arith::ConstantIndexOp::create(rw, loc, chunk.size()));
  for (auto [i, v] : llvm::enumerate(chunk)) {
    Value at = arith::AddIOp::create(rw, loc, base, arith::ConstantIndexOp::create(rw, loc, i));
    memref::StoreOp::create(rw, loc, v, scratch, ValueRange{at});
  }
}

SmallVector<Value> WorkgroupBuilder::foldRows(Value first, Value rows, size_t width,
                                              CombineKind kind) {
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  Value one = arith::ConstantIndexOp::create(rw, loc, 1);
  Value w = arith::ConstantIndexOp::create(rw, loc, width);
  SmallVector<Value> inits(width, identity(kind));
  auto fold = scf::ForOp::create(rw, loc, zero, rows, one, inits);
  OpBuilder::InsertionGuard g(rw);
  rw.setInsertionPointToStart(fold.getBody());
  Value row = arith::MulIOp::create(
      rw, loc, arith::AddIOp::create(rw, loc, first, fold.getInductionVar()), w);
  SmallVector<Value> next;
  for (auto [i, acc] : llvm::enumerate(fold.getRegionIterArgs())) {
    Value at = arith::AddIOp::create(rw, loc, row, arith::ConstantIndexOp::create(rw, loc, i));
    next.push_back(combine(kind, acc, memref::LoadOp::create(rw, loc, scratch, ValueRange{at})));
  }
  scf::YieldOp::create(rw, loc, next);
  return SmallVector<Value>(fold.getResults());
}

SmallVector<Value> WorkgroupBuilder::allReduce(ValueRange values, CombineKind kind) {
  SmallVector<Value> totals;
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  for (size_t first = 0; first < values.size(); first += kChunk) {
    SmallVector<Value> part(values.slice(first, std::min<size_t>(kChunk, values.size() - first)));
    // The scratch may still be read by the previous reduction.
    barrier();
    Value slots;
    if (cfg.subgroupReduce) {
      // Each subgroup reduces in registers; lane 0 of subgroup s writes
      // row s of the scratch.
      auto op = kind == CombineKind::Add ? gpu::AllReduceOperation::ADD
                                         : gpu::AllReduceOperation::MAXNUMF;
      for (Value &v : part)
        v = gpu::SubgroupReduceOp::create(rw, loc, v, op, /*uniform=*/false);
      Value slot = gpu::SubgroupIdOp::create(rw, loc, rw.getIndexType(), IntegerAttr());
      slots = gpu::NumSubgroupsOp::create(rw, loc, rw.getIndexType(), IntegerAttr());
      Value lane = gpu::LaneIdOp::create(rw, loc, rw.getIndexType(), IntegerAttr());
      Value leader = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::eq, lane, zero);
      auto guard = scf::IfOp::create(rw, loc, leader, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard g(rw);
      rw.setInsertionPoint(guard.thenBlock()->getTerminator());
      storeRow(part, slot);
    } else {
      // Every invocation writes its own row.
      slots = arith::ConstantIndexOp::create(rw, loc, cfg.workgroupSize);
      storeRow(part, tid());
    }
    barrier();
    // Every invocation folds the rows in the same order: equal totals.
    llvm::append_range(totals, foldRows(zero, slots, part.size(), kind));
  }
  return totals;
}

SmallVector<Value> WorkgroupBuilder::clusterSum(ValueRange values, int64_t lanes) {
  return clusterReduce(values, lanes, CombineKind::Add);
}

SmallVector<Value> WorkgroupBuilder::clusterReduce(ValueRange values, int64_t lanes,
                                                   CombineKind kind) {
  SmallVector<Value> sums(values.begin(), values.end());
  if (lanes <= 1)
    return sums;
  if (cfg.subgroupShuffle && cfg.subgroupSize >= lanes) {
    // Butterfly: after step `off` every lane holds the sum of its 2 * off
    // neighbours; a + b and b + a round alike, so all lanes agree.
    for (int64_t off = 1; off < lanes; off *= 2)
      for (Value &v : sums) {
        auto shuffled = gpu::ShuffleOp::create(rw, loc, v, static_cast<int32_t>(off),
                                               static_cast<int32_t>(cfg.subgroupSize),
                                               gpu::ShuffleMode::XOR);
        v = combine(kind, v, shuffled.getShuffleResult());
      }
    return sums;
  }
  Value t = tid();
  Value count = arith::ConstantIndexOp::create(rw, loc, lanes);
  Value group = arith::SubIOp::create(rw, loc, t, arith::RemUIOp::create(rw, loc, t, count));
  SmallVector<Value> out;
  for (size_t first = 0; first < sums.size(); first += kChunk) {
    ArrayRef<Value> chunk =
        ArrayRef<Value>(sums).slice(first, std::min<size_t>(kChunk, sums.size() - first));
    barrier();
    storeRow(chunk, t);
    barrier();
    llvm::append_range(out, foldRows(group, count, chunk.size(), kind));
  }
  return out;
}

scf::ForallOp soleTileLoop(func::FuncOp fn) {
  scf::ForallOp forall;
  for (Operation &op : fn.getBody().front().without_terminator()) {
    if (auto f = dyn_cast<scf::ForallOp>(op); f && !forall) {
      forall = f;
      continue;
    }
    if (!isMemoryEffectFree(&op))
      return {};
  }
  if (!forall || forall->getNumResults() != 0 || forall.getMapping())
    return {};
  for (OpFoldResult lb : forall.getMixedLowerBound())
    if (getConstantIntValue(lb) != 0)
      return {};
  return forall;
}

bool tileLoopToItems(RewriterBase &rw, WorkgroupBuilder &wg, scf::ForallOp forall) {
  bool one = true;
  for (auto [ub, step] : llvm::zip(forall.getMixedUpperBound(), forall.getMixedStep())) {
    std::optional<int64_t> u = getConstantIntValue(ub), st = getConstantIntValue(step);
    one &= u && st && *u <= *st;
  }
  if (one)
    return false;
  Location loc = forall.getLoc();
  rw.setInsertionPoint(forall);
  // Items count iterations from 0; the body gets the forall's values.
  SmallVector<Value> counts, steps;
  for (auto [ub, step] : llvm::zip(forall.getMixedUpperBound(), forall.getMixedStep())) {
    Value s = getValueOrCreateConstantIndexOp(rw, loc, step);
    counts.push_back(
        arith::CeilDivUIOp::create(rw, loc, getValueOrCreateConstantIndexOp(rw, loc, ub), s));
    steps.push_back(s);
  }
  SmallVector<Value> ivs;
  for (auto [item, step] : llvm::zip(wg.items(counts), steps))
    ivs.push_back(arith::MulIOp::create(rw, loc, item, step));
  Block *items = rw.getInsertionBlock();
  Block *tile = forall.getBody();
  rw.eraseOp(tile->getTerminator());
  rw.inlineBlockBefore(tile, items, rw.getInsertionPoint(), ivs);
  rw.eraseOp(forall);
  return true;
}

void openBlock(RewriterBase &rw, Block *block) {
  // The builders add terminators where there are no results.
  if (!block->empty() && block->back().hasTrait<OpTrait::IsTerminator>())
    rw.eraseOp(&block->back());
  rw.setInsertionPointToEnd(block);
}

SmallVector<Value> delinearize(RewriterBase &rw, Location loc, Value i, ArrayRef<Value> extents) {
  SmallVector<Value> idx(extents.size());
  for (int d = static_cast<int>(extents.size()) - 1; d > 0; --d) {
    idx[d] = arith::RemUIOp::create(rw, loc, i, extents[d]);
    i = arith::DivUIOp::create(rw, loc, i, extents[d]);
  }
  if (!idx.empty())
    idx[0] = i;
  return idx;
}

SmallVector<Value> applyMap(RewriterBase &rw, Location loc, AffineMap map, ValueRange dims) {
  SmallVector<Value> out;
  for (AffineExpr e : map.getResults())
    out.push_back(affine::AffineApplyOp::create(rw, loc, AffineMap::get(map.getNumDims(), 0, e), dims));
  return out;
}

} // namespace kiln
