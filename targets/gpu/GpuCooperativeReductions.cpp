//===- GpuCooperativeReductions.cpp - A workgroup per long row reduction ---===//
//
// After tileForInvocations a reduction with many outputs is one tile per
// output: an invocation walks its whole row, reading memory with the row's
// stride across its neighbours. When the rows are long, a row is better
// given to a whole workgroup, as the LLM norms are (GpuWorkgroup.h): its
// invocations read neighbouring elements, each folds a strided share, and
// the shares are combined with subgroup operations and workgroup memory.
//
// This step rewrites such tiles after bufferization: an scf.forall over
// outputs whose body holds one linalg.generic reducing into one f32
// element (a sum, or a maxnumf) and otherwise only a few elements of work
// (copies of the output, an epilogue such as ReduceMean's division) becomes
// a cooperative loop over the same outputs. Every invocation runs the small
// work alike; the reduction is split over them. Reductions whose combiner
// has no workgroup form (maximumf, which propagates NaN; products; integer
// sums) and short rows keep one invocation per output.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuKernelSteps.h"
#include "targets/gpu/GpuWorkgroup.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <limits>

using namespace mlir;

namespace kiln {
namespace {

/// Other work in a rewritten tile runs in every invocation: at most this
/// many iterations per op.
constexpr int64_t kSmallWork = 16;

struct RowReduction {
  linalg::GenericOp op;
  CombineKind kind;
  int64_t staticLength = 0; // 0 when a reduction dim is dynamic
};

/// The reduction `op` folds into its one f32 output element with
/// out = combine(f(inputs), out), combine an addf or maxnumf.
std::optional<RowReduction> matchRowReduction(linalg::GenericOp op) {
  if (op.getNumDpsInits() != 1 || op->getNumResults() != 0 || op.getNumReductionLoops() == 0)
    return std::nullopt;
  auto outType = dyn_cast<MemRefType>(op.getDpsInits()[0].getType());
  if (!outType || !outType.getElementType().isF32() || !outType.hasStaticShape() ||
      outType.getNumElements() != 1)
    return std::nullopt;
  Block &body = op.getRegion().front();
  BlockArgument out = body.getArguments().back();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  Operation *combiner = yield.getOperand(0).getDefiningOp();
  if (!combiner || combiner->getNumOperands() != 2 || !out.hasOneUse() ||
      !llvm::is_contained(combiner->getOperands(), out))
    return std::nullopt;
  RowReduction r{op, CombineKind::Add};
  if (isa<arith::MaxNumFOp>(combiner))
    r.kind = CombineKind::Max;
  else if (!isa<arith::AddFOp>(combiner))
    return std::nullopt;
  for (Operation &inner : body.without_terminator())
    if (!isMemoryEffectFree(&inner))
      return std::nullopt;
  r.staticLength = 1;
  for (auto [range, it] : llvm::zip(op.getStaticLoopRanges(), op.getIteratorTypesArray())) {
    if (it == utils::IteratorType::parallel) {
      if (range != 1)
        return std::nullopt;
      continue;
    }
    if (ShapedType::isDynamic(range)) {
      r.staticLength = 0;
      break;
    }
    r.staticLength *= range;
  }
  return r;
}

/// Whether `op`, run by every invocation of the workgroup, is small work.
bool isSmallWork(Operation &op) {
  if (isa<memref::AllocOp, memref::DeallocOp, memref::SubViewOp, memref::ExpandShapeOp,
          memref::CollapseShapeOp, memref::CastOp>(op) ||
      isMemoryEffectFree(&op))
    return true;
  if (auto copy = dyn_cast<memref::CopyOp>(op)) {
    auto t = dyn_cast<MemRefType>(copy.getSource().getType());
    return t && t.hasStaticShape() && t.getNumElements() <= kSmallWork;
  }
  if (auto l = dyn_cast<linalg::LinalgOp>(op)) {
    int64_t n = 1;
    for (int64_t range : l.getStaticLoopRanges()) {
      if (ShapedType::isDynamic(range))
        return false;
      n *= range;
    }
    return n <= kSmallWork && l.getNumReductionLoops() == 0;
  }
  return false;
}

/// The tile body's one long reduction, when the rest is small work.
std::optional<RowReduction> matchTile(scf::ForallOp forall, int64_t workgroupSize) {
  if (forall->getNumResults() != 0 || forall.getMapping())
    return std::nullopt;
  for (OpFoldResult lb : forall.getMixedLowerBound())
    if (getConstantIntValue(lb) != 0)
      return std::nullopt;
  for (OpFoldResult step : forall.getMixedStep())
    if (getConstantIntValue(step) != 1)
      return std::nullopt;
  std::optional<RowReduction> found;
  for (Operation &op : forall.getBody()->without_terminator()) {
    auto generic = dyn_cast<linalg::GenericOp>(op);
    if (generic && generic.getNumReductionLoops() > 0) {
      if (found)
        return std::nullopt; // two reductions (softmax): not this form
      found = matchRowReduction(generic);
      if (!found)
        return std::nullopt;
      continue;
    }
    if (!isSmallWork(op))
      return std::nullopt;
  }
  if (!found || (found->staticLength != 0 && found->staticLength < 2 * workgroupSize))
    return std::nullopt;
  return found;
}

/// Replaces `r` (inside a cooperative item) by its workgroup form.
void splitReduction(RewriterBase &rw, WorkgroupBuilder &wg, const RowReduction &r) {
  linalg::GenericOp op = r.op;
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  SmallVector<Range, 4> ranges = cast<linalg::LinalgOp>(op.getOperation()).createLoopRanges(rw, loc);
  SmallVector<unsigned> dims;
  SmallVector<Value> extents;
  Value length = arith::ConstantIndexOp::create(rw, loc, 1);
  for (auto [d, it] : llvm::enumerate(op.getIteratorTypesArray())) {
    if (it != utils::IteratorType::reduction)
      continue;
    dims.push_back(d);
    extents.push_back(getValueOrCreateConstantIndexOp(rw, loc, ranges[d].size));
    length = arith::MulIOp::create(rw, loc, length, extents.back());
  }
  Value out = op.getDpsInits()[0];
  SmallVector<Value> origin(cast<MemRefType>(out.getType()).getRank(), zero);
  Value init = memref::LoadOp::create(rw, loc, out, origin);
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  Value identity = arith::ConstantOp::create(
      rw, loc,
      rw.getF32FloatAttr(r.kind == CombineKind::Add ? 0.0f
                                                    : -std::numeric_limits<float>::infinity()));
  SmallVector<Value> partial = wg.strided(length, {identity}, [&](Value i, ValueRange carried) {
    // i -> the reduction dims' indices, row-major; parallel dims are 0.
    SmallVector<Value> idx(op.getNumLoops(), zero);
    Value rem = i;
    for (int k = static_cast<int>(dims.size()) - 1; k >= 0; --k) {
      if (k == 0) {
        idx[dims[k]] = rem;
        break;
      }
      idx[dims[k]] = arith::RemUIOp::create(rw, loc, rem, extents[k]);
      rem = arith::DivUIOp::create(rw, loc, rem, extents[k]);
    }
    IRMapping map;
    for (OpOperand *in : op.getDpsInputOperands()) {
      BlockArgument arg = body.getArgument(in->getOperandNumber());
      if (!isa<MemRefType>(in->get().getType())) {
        map.map(arg, in->get()); // a scalar input
        continue;
      }
      AffineMap m = op.getMatchingIndexingMap(in);
      SmallVector<Value> at;
      for (AffineExpr e : m.getResults())
        at.push_back(affine::AffineApplyOp::create(
            rw, loc, AffineMap::get(m.getNumDims(), 0, e), idx));
      map.map(arg, memref::LoadOp::create(rw, loc, in->get(), at));
    }
    map.map(body.getArguments().back(), carried[0]);
    for (Operation &inner : body.without_terminator()) {
      if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
        map.map(index.getResult(), idx[index.getDim()]);
        continue;
      }
      rw.clone(inner, map);
    }
    return SmallVector<Value>{map.lookup(yield.getOperand(0))};
  });
  Value total = wg.allReduce(partial, r.kind)[0];
  Value result = r.kind == CombineKind::Add
                     ? arith::AddFOp::create(rw, loc, init, total).getResult()
                     : arith::MaxNumFOp::create(rw, loc, init, total).getResult();
  // Every invocation stores the same value (to its own copy, when the
  // output is a temporary of the tile: those are private).
  memref::StoreOp::create(rw, loc, result, out, origin);
  rw.eraseOp(op);
}

} // namespace

void cooperateRowReductions(func::FuncOp fn, const GpuKernelConfig &config) {
  // Only a kernel whose one step is the tile loop is spread over many
  // workgroups (GpuDistribute's grid mode): the tile's temporaries are then
  // private to each invocation.
  scf::ForallOp forall;
  for (Operation &op : fn.getBody().front().without_terminator()) {
    if (auto f = dyn_cast<scf::ForallOp>(op)) {
      if (forall)
        return;
      forall = f;
      continue;
    }
    if (!isMemoryEffectFree(&op))
      return;
  }
  if (!forall)
    return;
  std::optional<RowReduction> r = matchTile(forall, config.workgroupSize);
  if (!r)
    return;
  // One output in all: canonicalization would fold a loop of one work item
  // away, and with it the cooperative form.
  if (llvm::all_of(forall.getMixedUpperBound(),
                   [](OpFoldResult ub) { return getConstantIntValue(ub) == 1; }))
    return;
  IRRewriter rw(fn.getContext());
  rw.setInsertionPoint(forall);
  Location loc = forall.getLoc();
  SmallVector<Value> ubs;
  for (OpFoldResult ub : forall.getMixedUpperBound())
    ubs.push_back(getValueOrCreateConstantIndexOp(rw, loc, ub));
  WorkgroupBuilder wg(rw, loc, config);
  SmallVector<Value> ivs = wg.items(ubs);
  Block *items = rw.getInsertionBlock();
  Block *tile = forall.getBody();
  rw.eraseOp(tile->getTerminator());
  rw.inlineBlockBefore(tile, items, rw.getInsertionPoint(), ivs);
  rw.eraseOp(forall);
  splitReduction(rw, wg, *r);
}

} // namespace kiln
