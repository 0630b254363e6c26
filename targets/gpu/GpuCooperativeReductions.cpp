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
// element (a sum, a maxnumf or a maximumf) and otherwise only a few
// elements of work (copies of the output, ReduceMean's division), or after
// the reduction elementwise writes of the tile's final output (Softmax's
// exp(x - max) / sum), becomes a cooperative loop over the same outputs.
// Every invocation runs the small work alike; the reduction and the final
// writes are split over them. Other combiners (products, integer sums) and
// short rows keep one invocation per output.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuKernelSteps.h"
#include "targets/gpu/GpuWorkgroup.h"

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
  bool nanMax = false;      // arith.maximumf: a NaN anywhere makes the result NaN
  int64_t staticLength = 0; // 0 when a reduction dim is dynamic
  /// Elementwise ops after the reduction writing the tile's final output
  /// (Softmax's division): spread over the invocations.
  SmallVector<linalg::GenericOp> rowWrites;
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
  if (isa<arith::MaxNumFOp, arith::MaximumFOp>(combiner)) {
    r.kind = CombineKind::Max;
    r.nanMax = isa<arith::MaximumFOp>(combiner);
  } else if (!isa<arith::AddFOp>(combiner)) {
    return std::nullopt;
  }
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

/// An elementwise op (parallel loops only, element i of its output from
/// element i of its iteration space) whose output is a view of a kernel
/// argument that nothing else in the tile touches: its elements can be
/// written by any invocation, in any order.
bool isFinalRowWrite(linalg::GenericOp op, scf::ForallOp forall) {
  if (op.getNumReductionLoops() != 0 || op.getNumDpsInits() != 1 || op->getNumResults() != 0 ||
      !op.getMatchingIndexingMap(op.getDpsInitOperand(0)).isIdentity())
    return false;
  Value out = op.getDpsInits()[0];
  Value base = out;
  while (auto view = base.getDefiningOp<memref::SubViewOp>())
    base = view.getSource();
  if (!isa<BlockArgument>(base) || forall->isAncestor(cast<BlockArgument>(base).getOwner()->getParentOp()))
    return false;
  for (Operation *user : out.getUsers())
    if (user != op.getOperation())
      return false;
  Block &body = op.getRegion().front();
  if (!body.getArguments().back().use_empty())
    return false; // reads its output
  for (Operation &inner : body.without_terminator())
    if (!isMemoryEffectFree(&inner) || isa<linalg::IndexOp>(inner))
      return false;
  return true;
}

/// The tile body's one long reduction, when the rest is small work or
/// final row writes after it.
std::optional<RowReduction> matchTile(scf::ForallOp forall, int64_t workgroupSize) {
  for (OpFoldResult step : forall.getMixedStep())
    if (getConstantIntValue(step) != 1)
      return std::nullopt;
  std::optional<RowReduction> found;
  for (Operation &op : forall.getBody()->without_terminator()) {
    auto generic = dyn_cast<linalg::GenericOp>(op);
    if (generic && generic.getNumReductionLoops() > 0) {
      if (found)
        return std::nullopt; // two reductions in one tile: not this form
      found = matchRowReduction(generic);
      if (!found)
        return std::nullopt;
      continue;
    }
    if (isSmallWork(op))
      continue;
    if (found && generic && isFinalRowWrite(generic, forall)) {
      found->rowWrites.push_back(generic);
      continue;
    }
    return std::nullopt;
  }
  if (!found || (found->staticLength != 0 && found->staticLength < 2 * workgroupSize))
    return std::nullopt;
  return found;
}

/// The extents of `op`'s loops `dims` into `extents`; returns their product.
Value loopExtents(RewriterBase &rw, Location loc, linalg::GenericOp op, ArrayRef<unsigned> dims,
                  SmallVectorImpl<Value> &extents) {
  SmallVector<Range, 4> ranges = cast<linalg::LinalgOp>(op.getOperation()).createLoopRanges(rw, loc);
  Value n = arith::ConstantIndexOp::create(rw, loc, 1);
  for (unsigned d : dims) {
    extents.push_back(getValueOrCreateConstantIndexOp(rw, loc, ranges[d].size));
    n = arith::MulIOp::create(rw, loc, n, extents.back());
  }
  return n;
}

/// What `op`'s body yields at loop indices `idx`: memref inputs loaded
/// through their indexing maps, scalar inputs as they are, the output's
/// block argument bound to `outValue` (null when the body does not read it),
/// linalg.index to `idx`.
Value bodyAt(RewriterBase &rw, Location loc, linalg::GenericOp op, ArrayRef<Value> idx,
             Value outValue) {
  Block &body = op.getRegion().front();
  IRMapping map;
  for (OpOperand *in : op.getDpsInputOperands()) {
    BlockArgument arg = body.getArgument(in->getOperandNumber());
    if (!isa<MemRefType>(in->get().getType())) {
      map.map(arg, in->get());
      continue;
    }
    map.map(arg, memref::LoadOp::create(rw, loc, in->get(),
                                        applyMap(rw, loc, op.getMatchingIndexingMap(in), idx)));
  }
  if (outValue)
    map.map(body.getArguments().back(), outValue);
  for (Operation &inner : body.without_terminator()) {
    if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
      map.map(index.getResult(), idx[index.getDim()]);
      continue;
    }
    rw.clone(inner, map);
  }
  return map.lookup(cast<linalg::YieldOp>(body.getTerminator()).getOperand(0));
}

/// Replaces `r` (inside a cooperative item) by its workgroup form.
void splitReduction(RewriterBase &rw, WorkgroupBuilder &wg, const RowReduction &r) {
  linalg::GenericOp op = r.op;
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  SmallVector<unsigned> dims;
  op.getReductionDims(dims);
  SmallVector<Value> extents;
  Value length = loopExtents(rw, loc, op, dims, extents);
  Value out = op.getDpsInits()[0];
  SmallVector<Value> origin(cast<MemRefType>(out.getType()).getRank(), zero);
  Value init = memref::LoadOp::create(rw, loc, out, origin);
  Value identity = arith::ConstantOp::create(
      rw, loc,
      rw.getF32FloatAttr(r.kind == CombineKind::Add ? 0.0f
                                                    : -std::numeric_limits<float>::infinity()));
  SmallVector<Value> partial = wg.strided(length, {identity}, [&](Value i, ValueRange carried) {
    // i -> the reduction dims' indices, row-major; parallel dims are 0.
    SmallVector<Value> idx(op.getNumLoops(), zero);
    for (auto [d, v] : llvm::zip(dims, delinearize(rw, loc, i, extents)))
      idx[d] = v;
    return SmallVector<Value>{bodyAt(rw, loc, op, idx, carried[0])};
  });
  Value result;
  if (r.kind == CombineKind::Add) {
    result = arith::AddFOp::create(rw, loc, init, wg.allReduce(partial, r.kind)[0]);
  } else if (!r.nanMax) {
    result = arith::MaxNumFOp::create(rw, loc, init, wg.allReduce(partial, r.kind)[0]);
  } else {
    // The workgroup combines with maxnumf, which drops NaN: NaN shares
    // enter as -inf and are counted on the side.
    Value p = partial[0];
    Value nan = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::UNO, p, p);
    Value clean = arith::SelectOp::create(rw, loc, nan, identity, p);
    Value one = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(1.0f));
    Value zerof = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f));
    Value count = wg.allReduce({arith::SelectOp::create(rw, loc, nan, one, zerof)}, CombineKind::Add)[0];
    Value top = wg.allReduce({clean}, CombineKind::Max)[0];
    Value any = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OGT, count, zerof);
    Value qnan = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(std::numeric_limits<float>::quiet_NaN()));
    result = arith::MaximumFOp::create(rw, loc, init, arith::SelectOp::create(rw, loc, any, qnan, top));
  }
  // Every invocation stores the same value (to its own copy, when the
  // output is a temporary of the tile: those are private).
  memref::StoreOp::create(rw, loc, result, out, origin);
  rw.eraseOp(op);
}

/// `op` (a final row write) as a loop over its elements strided over the
/// invocations.
void spreadRowWrite(RewriterBase &rw, WorkgroupBuilder &wg, linalg::GenericOp op) {
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  SmallVector<Value> extents;
  Value n = loopExtents(rw, loc, op, llvm::to_vector(llvm::seq<unsigned>(0, op.getNumLoops())), extents);
  Value step = arith::ConstantIndexOp::create(rw, loc, wg.size());
  auto loop = scf::ForOp::create(rw, loc, wg.tid(), n, step);
  OpBuilder::InsertionGuard g(rw);
  rw.setInsertionPoint(loop.getBody()->getTerminator());
  SmallVector<Value> idx = delinearize(rw, loc, loop.getInductionVar(), extents);
  Value v = bodyAt(rw, loc, op, idx, /*outValue=*/Value());
  OpOperand *out = op.getDpsInitOperand(0);
  memref::StoreOp::create(rw, loc, v, out->get(), applyMap(rw, loc, op.getMatchingIndexingMap(out), idx));
  rw.eraseOp(op);
}

} // namespace

void cooperateRowReductions(func::FuncOp fn, const GpuKernelConfig &config) {
  scf::ForallOp forall = soleTileLoop(fn);
  if (!forall)
    return;
  std::optional<RowReduction> r = matchTile(forall, config.workgroupSize);
  if (!r)
    return;
  IRRewriter rw(fn.getContext());
  WorkgroupBuilder wg(rw, forall.getLoc(), config);
  if (!tileLoopToItems(rw, wg, forall))
    return;
  splitReduction(rw, wg, *r);
  for (linalg::GenericOp write : r->rowWrites)
    spreadRowWrite(rw, wg, write);
}

} // namespace kiln
