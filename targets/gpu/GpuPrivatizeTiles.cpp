//===- GpuPrivatizeTiles.cpp - A tile loop's whole-buffer temporary, per tile ===//
//
// Bufferization gives a reduction whose initial value is a kernel input a
// temporary as large as the output: the input is copied into it, the tile
// loop folds each row into its element, and the temporary is copied to the
// output:
//
//   %t = memref.alloc() : memref<40x1xf32>
//   linalg.copy ins(%init) outs(%t)
//   scf.forall (%i) in (40) { ... %ti = memref.subview %t[%i, 0] [1, 1] ... }
//   linalg.copy ins(%t) outs(%out)
//
// Three loop nests in sequence: the kernel would run in one workgroup
// (GpuMapping::Workgroup), an invocation per row, and the tile loop is not
// the kernel's sole loop, so no cooperative step takes it. When every tile
// touches only its own element(s) of the temporary, the copies are done per
// tile instead, through a private temporary of the tile's shape:
//
//   scf.forall (%i) in (40) {
//     %p = memref.alloc() : memref<1x1xf32>
//     linalg.copy ins(%init[%i, 0] [1, 1]) outs(%p)
//     ... %p in place of %ti ...
//     linalg.copy ins(%p) outs(%out[%i, 0] [1, 1])
//   }
//
// which is the form tileForInvocations gives a reduction fused with its
// consumer, so that the row reduction goes cooperative and the kernel is
// spread over the whole grid.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuKernelSteps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Builders.h"

using namespace mlir;

namespace kiln {
namespace {

/// Whether `op` copies one whole buffer into another.
bool isWholeCopy(Operation *op, Value &source, Value &target) {
  if (auto copy = dyn_cast<linalg::CopyOp>(op)) {
    if (copy.getInputs().size() != 1 || copy.getOutputs().size() != 1 || copy->getNumResults() != 0)
      return false;
    source = copy.getInputs()[0];
    target = copy.getOutputs()[0];
    return true;
  }
  if (auto copy = dyn_cast<memref::CopyOp>(op)) {
    source = copy.getSource();
    target = copy.getTarget();
    return true;
  }
  return false;
}

/// Whether the tiles of `forall` (lower bounds 0, steps 1) see disjoint
/// parts of a `shape` buffer through `view` that together cover it: along
/// each dim either all of it (offset 0), or one element at the forall's
/// induction variable running over the dim, each variable used once.
bool viewPartitions(memref::SubViewOp view, scf::ForallOp forall, ArrayRef<int64_t> shape) {
  for (OpFoldResult lb : forall.getMixedLowerBound())
    if (getConstantIntValue(lb) != 0)
      return false;
  for (OpFoldResult step : forall.getMixedStep())
    if (getConstantIntValue(step) != 1)
      return false;
  if (!view.hasUnitStride() || static_cast<int64_t>(shape.size()) != view.getSourceType().getRank())
    return false;
  llvm::SmallDenseSet<Value> used;
  SmallVector<OpFoldResult> ubs = forall.getMixedUpperBound();
  for (auto [d, offset, size] : llvm::enumerate(view.getMixedOffsets(), view.getMixedSizes())) {
    std::optional<int64_t> s = getConstantIntValue(size);
    if (!s)
      return false;
    if (getConstantIntValue(offset) == 0 && *s == shape[d])
      continue;
    auto iv = dyn_cast_if_present<BlockArgument>(dyn_cast<Value>(offset));
    if (!iv || iv.getOwner() != forall.getBody() || *s != 1 || !used.insert(iv).second)
      return false;
    if (getConstantIntValue(ubs[iv.getArgNumber()]) != shape[d])
      return false;
  }
  // Every induction variable picks elements: no two tiles share one.
  return used.size() == forall.getInductionVars().size();
}

/// Whether every user of `view` accepts a buffer of the same shape with
/// another layout in its place (the tile's own temporary is contiguous).
bool usersTakeAnyLayout(memref::SubViewOp view) {
  return llvm::all_of(view->getUsers(), [](Operation *user) {
    return isa<linalg::LinalgOp, memref::LoadOp, memref::StoreOp, memref::CopyOp>(user);
  });
}

/// The one tile view of `alloc` in `forall`, when the temporary is used
/// only there and by a copy in before and a copy out after (both optional).
struct TileTemporary {
  memref::AllocOp alloc;
  memref::SubViewOp view;
  Operation *copyIn = nullptr, *copyOut = nullptr;
  Value source, target;
};

std::optional<TileTemporary> matchTemporary(memref::AllocOp alloc, scf::ForallOp forall) {
  MemRefType type = alloc.getType();
  if (!type.hasStaticShape() || !type.getLayout().isIdentity() || type.getMemorySpace() ||
      alloc->getBlock() != forall->getBlock() || !alloc->isBeforeInBlock(forall))
    return std::nullopt;
  TileTemporary t{alloc, nullptr};
  for (Operation *user : alloc->getUsers()) {
    Value source, target;
    if (auto view = dyn_cast<memref::SubViewOp>(user); view && view->getParentOp() == forall) {
      if (t.view)
        return std::nullopt;
      t.view = view;
    } else if (user->getBlock() == forall->getBlock() && isWholeCopy(user, source, target)) {
      if (target == alloc.getResult() && user->isBeforeInBlock(forall) && !t.copyIn) {
        t.copyIn = user;
        t.source = source;
      } else if (source == alloc.getResult() && forall->isBeforeInBlock(user) && !t.copyOut) {
        t.copyOut = user;
        t.target = target;
      } else {
        return std::nullopt;
      }
    } else {
      return std::nullopt;
    }
  }
  if (!t.view || !t.copyOut || !viewPartitions(t.view, forall, type.getShape()) ||
      !usersTakeAnyLayout(t.view))
    return std::nullopt;
  // Copied per tile, the input is read and the output written while the
  // loop runs: the loop must not touch either, and nothing between the
  // copies may read the output or write the input.
  auto touchedInside = [&](Value v) {
    return llvm::any_of(v.getUsers(), [&](Operation *u) { return forall->isAncestor(u); });
  };
  if ((t.source && touchedInside(t.source)) || touchedInside(t.target))
    return std::nullopt;
  for (Operation *user : t.target.getUsers())
    if (user != t.copyOut)
      return std::nullopt;
  if (t.source)
    for (Operation *op = t.copyIn->getNextNode(); op != t.copyOut; op = op->getNextNode())
      if (op != forall.getOperation() && !isMemoryEffectFree(op))
        return std::nullopt;
  return t;
}

void privatize(const TileTemporary &t, scf::ForallOp forall) {
  memref::SubViewOp view = t.view;
  Location loc = view.getLoc();
  OpBuilder b(forall.getBody(), forall.getBody()->begin());
  auto tileType = MemRefType::get(view.getType().getShape(), view.getType().getElementType());
  Value tile = memref::AllocOp::create(b, loc, tileType);
  auto subviewOf = [&](Value base) {
    return memref::SubViewOp::create(b, loc, base, view.getMixedOffsets(), view.getMixedSizes(),
                                     view.getMixedStrides());
  };
  if (t.copyIn) {
    // The offsets are the loop's induction variables: defined at the top.
    Value in = subviewOf(t.source);
    linalg::CopyOp::create(b, loc, in, tile);
  }
  b.setInsertionPoint(forall.getBody()->getTerminator());
  Value out = subviewOf(t.target);
  linalg::CopyOp::create(b, loc, tile, out);
  // The tile's users take any layout (usersTakeAnyLayout): no cast, which
  // could not turn an identity layout into the view's strides anyway.
  view.getResult().replaceAllUsesWith(tile);
  view->erase();
  if (t.copyIn)
    t.copyIn->erase();
  t.copyOut->erase();
  t.alloc->erase();
}

} // namespace

void privatizeTileTemporaries(func::FuncOp fn) {
  Block &body = fn.getBody().front();
  SmallVector<scf::ForallOp> loops;
  for (auto forall : body.getOps<scf::ForallOp>())
    loops.push_back(forall);
  for (scf::ForallOp forall : loops) {
    SmallVector<memref::AllocOp> allocs(body.getOps<memref::AllocOp>());
    for (memref::AllocOp alloc : allocs)
      if (std::optional<TileTemporary> t = matchTemporary(alloc, forall))
        privatize(*t, forall);
  }
}

} // namespace kiln
