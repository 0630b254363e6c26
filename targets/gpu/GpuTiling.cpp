//===- GpuTiling.cpp - One tile per invocation, producers fused ------------===//
//
// A GPU wants thousands of independent pieces of work where a CPU wants a
// few dozen. The op that produces a kernel's result is tiled by 1 along the
// parallel dims that every fused producer also iterates over, so a tile is
// one output element (elementwise ops, matmul) or one row (softmax,
// reductions along the last axis) and no invocation recomputes a producer's
// reduction for its neighbours.
//
// A reduction with few outputs (a full reduction has one) would leave most
// invocations idle and have one walk the whole input. Its longest reduction
// dim is split instead: one workgroup's invocations each reduce a slice
// into a partial result (in workgroup memory), and a merge step combines
// the partials.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuKernelSteps.h"

#include "targets/common/KernelPrep.h"

#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/IR/TypeUtilities.h"

#include <limits>

using namespace mlir;

namespace kiln {

/// Splits the reduction of `consumer` over `threads` invocations when it has
/// fewer static outputs than a quarter of them and a reduction at least
/// twice as long as there are invocations; returns whether it did.
static bool splitSmallReduction(linalg::LinalgOp consumer, int64_t threads,
                                int64_t maxSharedBytes) {
  if (consumer->getNumResults() != 1 || consumer.getNumDpsInits() != 1)
    return false;
  auto resultType = dyn_cast<RankedTensorType>(consumer->getResult(0).getType());
  if (!resultType || !resultType.hasStaticShape() ||
      !resultType.getElementType().isIntOrFloat())
    return false;
  SmallVector<utils::IteratorType> iterators = consumer.getIteratorTypesArray();
  SmallVector<int64_t> ranges = consumer.getStaticLoopRanges();
  int64_t outputs = 1, reduced = 1;
  int split = -1;
  for (auto [d, it] : llvm::enumerate(iterators)) {
    bool dynamic = ShapedType::isDynamic(ranges[d]);
    if (it == utils::IteratorType::parallel) {
      if (dynamic)
        return false;
      outputs *= ranges[d];
      continue;
    }
    reduced = dynamic ? std::numeric_limits<int64_t>::max() : reduced * ranges[d];
    if (split < 0 || dynamic ||
        (!ShapedType::isDynamic(ranges[split]) && ranges[d] > ranges[split]))
      split = d;
  }
  int64_t elemBytes = (resultType.getElementTypeBitWidth() + 7) / 8;
  if (split < 0 || outputs * 4 > threads || reduced < 2 * threads ||
      outputs * threads * elemBytes * 2 > maxSharedBytes)
    return false;
  Builder b(consumer.getContext());
  SmallVector<OpFoldResult> numThreads(iterators.size(), b.getIndexAttr(0));
  numThreads[split] = b.getIndexAttr(threads);
  scf::SCFTilingOptions tiling;
  tiling.setLoopType(scf::SCFTilingOptions::LoopType::ForallOp)
      .setNumThreads(numThreads)
      .setReductionTilingStrategy(ReductionTilingStrategy::PartialReductionOuterParallel)
      .setReductionDims({static_cast<unsigned>(split)});
  IRRewriter rewriter(consumer.getContext());
  rewriter.setInsertionPoint(consumer);
  FailureOr<scf::SCFTilingResult> result =
      scf::tileUsingSCF(rewriter, cast<TilingInterface>(consumer.getOperation()), tiling);
  if (failed(result))
    return false;
  rewriter.replaceOp(consumer, result->replacements);
  return true;
}

bool hasDefaultMatmulIndexing(linalg::LinalgOp op) {
  if (!isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op.getOperation()))
    return false;
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  unsigned n = op.getNumLoops();
  MLIRContext *ctx = op.getContext();
  auto dims = [&](std::initializer_list<unsigned> last) {
    SmallVector<AffineExpr> e;
    for (unsigned d = 0; d + 3 < n; ++d)
      e.push_back(getAffineDimExpr(d, ctx));
    for (unsigned d : last)
      e.push_back(getAffineDimExpr(n - 3 + d, ctx));
    return AffineMap::get(n, 0, e, ctx);
  };
  return maps == SmallVector<AffineMap>{dims({0, 2}), dims({2, 1}), dims({0, 1})};
}

/// Whether the body of `op` is out + in0 * in1 (in either order).
static bool isMulAddBody(linalg::LinalgOp op) {
  Block &body = op->getRegion(0).front();
  if (body.getOperations().size() != 3)
    return false;
  auto mul = dyn_cast<arith::MulFOp>(body.front());
  auto add = dyn_cast<arith::AddFOp>(*std::next(body.begin()));
  auto yield = body.getTerminator();
  if (!mul || !add || yield->getNumOperands() != 1 || yield->getOperand(0) != add.getResult())
    return false;
  Value in0 = body.getArgument(0), in1 = body.getArgument(1), out = body.getArgument(2);
  bool ins = (mul.getLhs() == in0 && mul.getRhs() == in1) ||
             (mul.getLhs() == in1 && mul.getRhs() == in0);
  bool acc = (add.getLhs() == out && add.getRhs() == mul.getResult()) ||
             (add.getRhs() == out && add.getLhs() == mul.getResult());
  return ins && acc;
}

bool isTileableContraction(linalg::LinalgOp op) {
  if (hasDefaultMatmulIndexing(op))
    return true;
  if (!isa<linalg::GenericOp>(op.getOperation()) || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1)
    return false;
  unsigned n = op.getNumLoops();
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  if (n < 3 || iterators[n - 1] != utils::IteratorType::reduction ||
      llvm::count(iterators, utils::IteratorType::reduction) != 1)
    return false;
  MLIRContext *ctx = op.getContext();
  auto dim = [&](unsigned d) { return getAffineDimExpr(d, ctx); };
  // batch dims first and in order, then the two others in either order
  auto matches = [&](AffineMap map, unsigned a, unsigned b) {
    if (map.getNumResults() != n - 1)
      return false;
    for (unsigned d = 0; d + 3 < n; ++d)
      if (map.getResult(d) != dim(d))
        return false;
    AffineExpr x = map.getResult(n - 3), y = map.getResult(n - 2);
    return (x == dim(a) && y == dim(b)) || (x == dim(b) && y == dim(a));
  };
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  AffineMap out = maps[2];
  if (out.getNumResults() != n - 1)
    return false;
  for (unsigned d = 0; d + 1 < n; ++d)
    if (out.getResult(d) != dim(d))
      return false;
  return matches(maps[0], n - 3, n - 1) && matches(maps[1], n - 1, n - 2) && isMulAddBody(op);
}

bool isWorkgroupMatmul(linalg::LinalgOp op) {
  if (!isTileableContraction(op) || !op.hasPureTensorSemantics() || op->getNumResults() != 1 ||
      !getElementTypeOrSelf(op->getResult(0).getType()).isF32())
    return false;
  // Operands read from memory, the output at most filled in the kernel: a
  // producer computed in the kernel would be recomputed by every tile.
  for (OpOperand &operand : op->getOpOperands()) {
    Operation *def = operand.get().getDefiningOp();
    if (def && isa<linalg::LinalgOp>(def) &&
        !(isa<linalg::FillOp>(def) && op.isDpsInit(&operand)))
      return false;
  }
  return true;
}

linalg::LinalgOp epilogueMatmul(linalg::LinalgOp op) {
  if (!isa<linalg::GenericOp>(op.getOperation()) || !op.hasPureTensorSemantics() ||
      op->getNumResults() != 1 || op.getNumDpsInits() != 1 ||
      op.getNumReductionLoops() != 0 || op.getNumLoops() < 2 ||
      !getElementTypeOrSelf(op->getResult(0).getType()).isF32() ||
      !op.getMatchingIndexingMap(op.getDpsInitOperand(0)).isIdentity())
    return {};
  linalg::LinalgOp matmul;
  for (OpOperand *in : op.getDpsInputOperands()) {
    AffineMap map = op.getMatchingIndexingMap(in);
    Operation *def = in->get().getDefiningOp();
    auto producer = dyn_cast_or_null<linalg::LinalgOp>(def);
    if (producer && !isa<linalg::FillOp>(def)) {
      // The one operand computed in the kernel: the matmul, element for
      // element (its other uses would need it whole).
      if (matmul || !map.isIdentity() || !isWorkgroupMatmul(producer) ||
          producer.getNumLoops() != op.getNumLoops() + 1 || !def->hasOneUse())
        return {};
      matmul = producer;
      continue;
    }
    // Read from memory (or a constant), at most broadcast: the bias.
    if (!map.isProjectedPermutation())
      return {};
  }
  return matmul;
}

void tileForInvocations(func::FuncOp fn, int64_t workgroupSize, int64_t maxSharedBytes) {
  linalg::LinalgOp consumer = tileableResultOp(fn, /*consumerMayExtract=*/true);
  if (!consumer)
    return;
  if (splitSmallReduction(consumer, workgroupSize, maxSharedBytes))
    return;
  if (isWorkgroupMatmul(consumer) || epilogueMatmul(consumer)) {
    // Square tiles of outputs, a workgroup each (cooperateTiledMatmuls); an
    // elementwise epilogue is tiled alike (its loops are the matmul's
    // parallel ones) and the matmul fused into its tiles.
    Builder b(fn.getContext());
    const unsigned parallel = isWorkgroupMatmul(consumer) ? consumer.getNumLoops() - 1
                                                          : consumer.getNumLoops();
    SmallVector<OpFoldResult> sizes(consumer.getNumLoops(), b.getIndexAttr(0));
    for (unsigned d = 0; d + 2 < parallel; ++d)
      sizes[d] = b.getIndexAttr(1); // batch
    sizes[parallel - 2] = b.getIndexAttr(kMatmulTile);
    sizes[parallel - 1] = b.getIndexAttr(kMatmulTile);
    tileAndFuseIntoForall(consumer, sizes);
    return;
  }
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
