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

#include "targets/common/KernelPrep.h"

using namespace mlir;

namespace kiln {

void tileForInvocations(func::FuncOp fn) {
  linalg::LinalgOp consumer = tileableResultOp(fn, /*consumerMayExtract=*/true);
  if (!consumer)
    return;
  SmallVector<AffineMap> maps = consumer.getIndexingMapsArray();
  SmallVector<utils::IteratorType> iterators = consumer.getIteratorTypesArray();
  // Operands computed inside the kernel (fused producers): a dim their map
  // does not use would make every tile recompute them.
  SmallVector<AffineMap> producedMaps;
  for (OpOperand &operand : consumer->getOpOperands())
    if (Operation *def = operand.get().getDefiningOp();
        def && isa<linalg::LinalgOp>(def) && !isa<linalg::FillOp>(def))
      producedMaps.push_back(consumer.getMatchingIndexingMap(&operand));
  auto tileable = [&](unsigned d) {
    return iterators[d] == utils::IteratorType::parallel &&
           isPlainDimIn(maps, d) &&
           llvm::all_of(producedMaps,
                        [&](AffineMap m) { return m.isFunctionOfDim(d); });
  };
  Builder b(fn.getContext());
  SmallVector<OpFoldResult> sizes(iterators.size(), b.getIndexAttr(0));
  bool any = false;
  for (unsigned d = 0; d < iterators.size(); ++d)
    if (tileable(d)) {
      sizes[d] = b.getIndexAttr(1);
      any = true;
    }
  if (any)
    tileAndFuseIntoForall(consumer, sizes);
}

} // namespace kiln
