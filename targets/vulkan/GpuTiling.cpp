//===- GpuTiling.cpp - One tile per invocation, producers fused ------------===//
//
// A GPU wants thousands of independent pieces of work where a CPU wants a
// few dozen. The op that produces a kernel's result is tiled by 1 along the
// parallel dims that every fused producer also iterates over, so a tile is
// one output element (elementwise ops, matmul) or one row (softmax,
// reductions along the last axis) and no invocation recomputes a producer's
// reduction for its neighbours.
//
//===----------------------------------------------------------------------===//
#include "targets/vulkan/GpuKernelSteps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/TilingInterface.h"

using namespace mlir;

namespace kiln {

void tileForInvocations(func::FuncOp fn) {
  auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
  if (ret.getNumOperands() != 1)
    return;
  auto mat = ret.getOperand(0)
                 .getDefiningOp<bufferization::MaterializeInDestinationOp>();
  Value result = mat ? mat.getSource() : ret.getOperand(0);
  auto consumer = result.getDefiningOp<TilingInterface>();
  auto linalgConsumer =
      consumer ? dyn_cast<linalg::LinalgOp>(consumer.getOperation()) : nullptr;
  if (!linalgConsumer)
    return;
  // The same restrictions as the CPU's workgroup tiling: plain linalg only.
  WalkResult plain = fn.walk([](Operation *op) {
    if (isa<tensor::PadOp, tensor::ExtractSliceOp, tensor::InsertSliceOp,
            tensor::InsertOp, scf::ForOp, scf::IfOp, scf::WhileOp>(op))
      return WalkResult::interrupt();
    for (Type t : op->getResultTypes())
      if (auto shaped = dyn_cast<ShapedType>(t);
          shaped && shaped.hasRank() &&
          llvm::is_contained(shaped.getShape(), 0))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (plain.wasInterrupted())
    return;
  WalkResult simpleMaps = fn.walk([&](linalg::LinalgOp op) {
    if (op.getOperation() == consumer.getOperation())
      return WalkResult::advance();
    for (AffineMap m : op.getIndexingMapsArray())
      if (!m.isProjectedPermutation())
        return WalkResult::interrupt();
    // A data-dependent read in a producer would be fused per element: fine,
    // but its extract indices must come from the tile; keep such producers
    // unfused by not tiling at all.
    bool extracts = false;
    op->walk([&](tensor::ExtractOp) { extracts = true; });
    return extracts ? WalkResult::interrupt() : WalkResult::advance();
  });
  if (simpleMaps.wasInterrupted())
    return;
  SmallVector<AffineMap> maps = linalgConsumer.getIndexingMapsArray();
  SmallVector<utils::IteratorType> iterators = consumer.getLoopIteratorTypes();
  // Operands computed inside the kernel (fused producers): a dim their map
  // does not use would make every tile recompute them.
  SmallVector<AffineMap> producedMaps;
  for (OpOperand &operand : linalgConsumer->getOpOperands())
    if (Operation *def = operand.get().getDefiningOp();
        def && isa<linalg::LinalgOp>(def) &&
        !isa<linalg::FillOp>(def))
      producedMaps.push_back(linalgConsumer.getMatchingIndexingMap(&operand));
  auto tileable = [&](unsigned d) {
    if (iterators[d] != utils::IteratorType::parallel)
      return false;
    for (AffineMap m : maps)
      for (AffineExpr e : m.getResults())
        if (e.isFunctionOfDim(d) && !isa<AffineDimExpr>(e))
          return false;
    for (AffineMap m : producedMaps)
      if (!m.isFunctionOfDim(d))
        return false;
    return true;
  };
  IRRewriter rewriter(fn.getContext());
  rewriter.setInsertionPoint(consumer);
  SmallVector<OpFoldResult> sizes(iterators.size(), rewriter.getIndexAttr(0));
  bool any = false;
  for (unsigned d = 0; d < iterators.size(); ++d)
    if (tileable(d)) {
      sizes[d] = rewriter.getIndexAttr(1);
      any = true;
    }
  if (!any)
    return;
  scf::SCFTilingOptions tiling;
  tiling.setTileSizes(sizes).setLoopType(
      scf::SCFTilingOptions::LoopType::ForallOp);
  scf::SCFTileAndFuseOptions options;
  options.setTilingOptions(tiling);
  FailureOr<scf::SCFTileAndFuseResult> tiled =
      scf::tileConsumerAndFuseProducersUsingSCF(rewriter, consumer, options);
  if (failed(tiled))
    return;
  for (OpResult r : consumer->getResults())
    if (Value repl = tiled->replacements.lookup(r))
      rewriter.replaceAllUsesWith(r, repl);
}

} // namespace kiln
