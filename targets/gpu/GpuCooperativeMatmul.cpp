//===- GpuCooperativeMatmul.cpp - Matmul tiles staged in workgroup memory --===//
//
// tileForInvocations gives an f32 matmul of a generic model (ONNX MatMul of
// any rank, Gemm; isTileableContraction) square tiles of kMatmulTile x
// kMatmulTile outputs, with an elementwise epilogue fused (Gemm's bias and
// scales). After bufferization each tile is a fill and the contraction on
// subviews (then the epilogue, through a tile buffer); here the tile loop
// becomes a cooperative loop (GpuWorkgroup.h), a workgroup per tile:
//
//   for each block of kMatmulTile k:
//     the invocations copy the tile's A block [16 x 16] and B block
//     [16 x 16] into workgroup memory (each operand read through its
//     indexing map, so a transposed one too; zeros past the matrix edges),
//     barrier, each invocation adds its outputs' products over the block
//     from workgroup memory, barrier;
//   each invocation stores its outputs (16 * 16 / workgroup size of them),
//   through the epilogue's body when there is one (its other operands read
//   per element, the tile buffer between the two never written).
//
// Every element of A and B is read from device memory once per tile
// instead of once per output, and neighbouring invocations read
// neighbouring elements. Each output is still summed over k in order. A
// kernel of another form, or a workgroup size that does not divide the
// tile, keeps what tileForInvocations made of it (one invocation per tile).
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

using namespace mlir;

namespace kiln {
namespace {

constexpr int64_t kT = kMatmulTile;

struct TileOps {
  linalg::LinalgOp matmul;
  linalg::FillOp fill; // may be null: the output's old values are added to
  /// An elementwise op reading the matmul's result element for element
  /// (Gemm's bias; epilogueMatmul), and the tile's buffer in between.
  linalg::GenericOp epilogue;
  memref::AllocOp temp;
};

/// Whether `g` is an elementwise epilogue of the matmul writing `temp`:
/// all loops parallel, `temp` read through the identity, the output written
/// through it, any other operand read through a projected permutation.
bool isEpilogueOf(linalg::GenericOp g, Value temp) {
  if (g.getNumReductionLoops() != 0 || g.getNumDpsInits() != 1 ||
      !g.getMatchingIndexingMap(g.getDpsInitOperand(0)).isIdentity())
    return false;
  bool readsTemp = false;
  for (OpOperand *in : g.getDpsInputOperands()) {
    AffineMap map = g.getMatchingIndexingMap(in);
    if (in->get() == temp) {
      if (readsTemp || !map.isIdentity())
        return false;
      readsTemp = true;
    } else if (!map.isProjectedPermutation() || !isa<MemRefType>(in->get().getType())) {
      return false;
    }
  }
  return readsTemp;
}

/// The tile body: views, then an optional fill of the matmul's output, then
/// the matmul (f32, default indexing), then optionally an elementwise
/// epilogue reading the matmul's output (a buffer of the tile's own);
/// nothing else with effects.
std::optional<TileOps> matchTile(Block &body) {
  TileOps t{};
  for (Operation &op : body.without_terminator()) {
    if (isa<memref::SubViewOp>(op) || isMemoryEffectFree(&op))
      continue;
    if (auto alloc = dyn_cast<memref::AllocOp>(op); alloc && !t.temp && !t.fill && !t.matmul) {
      t.temp = alloc;
      continue;
    }
    if (auto fill = dyn_cast<linalg::FillOp>(op); fill && !t.fill && !t.matmul) {
      t.fill = fill;
      continue;
    }
    if (auto l = dyn_cast<linalg::LinalgOp>(op); l && !t.matmul && isTileableContraction(l)) {
      t.matmul = l;
      continue;
    }
    if (auto g = dyn_cast<linalg::GenericOp>(op); g && t.matmul && t.temp && !t.epilogue &&
                                                  g.hasPureBufferSemantics()) {
      t.epilogue = g;
      continue;
    }
    if (isa<memref::DeallocOp>(op) && t.temp && op.getOperand(0) == t.temp.getResult())
      continue;
    return std::nullopt;
  }
  // A tile buffer goes with an epilogue: the matmul writes it (after the
  // fill), the epilogue reads it, nothing else touches it.
  if (bool(t.temp) != bool(t.epilogue) || (t.temp && !t.fill))
    return std::nullopt;
  if (t.temp) {
    if (t.matmul.getDpsInits()[0] != t.temp.getResult() ||
        t.epilogue.getDpsInits()[0] == t.temp.getResult() ||
        !isEpilogueOf(t.epilogue, t.temp.getResult()))
      return std::nullopt;
    for (Operation *user : t.temp->getUsers())
      if (user != t.matmul && user != t.fill && user != t.epilogue && !isa<memref::DeallocOp>(user))
        return std::nullopt;
    auto outType = dyn_cast<MemRefType>(t.epilogue.getDpsInits()[0].getType());
    if (!outType || !outType.getElementType().isF32())
      return std::nullopt;
  }
  if (!t.matmul || !t.matmul.hasPureBufferSemantics())
    return std::nullopt;
  if (t.fill && t.fill.getDpsInits()[0] != t.matmul.getDpsInits()[0])
    return std::nullopt;
  for (Value v : t.matmul->getOperands()) {
    auto type = dyn_cast<MemRefType>(v.getType());
    if (!type || !type.getElementType().isF32())
      return std::nullopt;
  }
  return t;
}

/// Element (row, col) of a rank-2 view or of a rank-3 view whose leading
/// (batch) dim has one element.
SmallVector<Value> at(RewriterBase &rw, Location loc, Value view, Value row, Value col) {
  SmallVector<Value> idx;
  int64_t rank = cast<MemRefType>(view.getType()).getRank();
  for (int64_t d = 0; d + 2 < rank; ++d)
    idx.push_back(arith::ConstantIndexOp::create(rw, loc, 0));
  idx.push_back(row);
  idx.push_back(col);
  return idx;
}

Value dim(RewriterBase &rw, Location loc, Value view, int64_t fromEnd) {
  int64_t rank = cast<MemRefType>(view.getType()).getRank();
  return memref::DimOp::create(rw, loc, view, rank - fromEnd);
}

/// Operand `which` (0: A, 1: B) of the matmul at loop point (m, n, k) of the
/// tile (batch 0): when its two loop values are below their extents, its
/// element through its indexing map (a transposed operand reads [n, k]),
/// else 0.
Value loadOrZero(RewriterBase &rw, Location loc, linalg::LinalgOp mm, unsigned which, Value m,
                 Value n, Value k, Value mExtent, Value nExtent, Value kExtent) {
  Value first = which == 0 ? m : k, second = which == 0 ? k : n;
  Value firstExtent = which == 0 ? mExtent : kExtent, secondExtent = which == 0 ? kExtent : nExtent;
  Value inRow = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, first, firstExtent);
  Value inCol = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, second, secondExtent);
  Value in = arith::AndIOp::create(rw, loc, inRow, inCol);
  auto branch = scf::IfOp::create(rw, loc, TypeRange{rw.getF32Type()}, in, /*withElse=*/true);
  OpBuilder::InsertionGuard g(rw);
  rw.setInsertionPointToStart(branch.thenBlock());
  unsigned loops = mm.getNumLoops();
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  SmallVector<Value> dims(loops - 3, zero);
  dims.append({m, n, k});
  OpOperand *operand = mm.getDpsInputOperand(which);
  SmallVector<Value> idx = applyMap(rw, loc, mm.getMatchingIndexingMap(operand), dims);
  scf::YieldOp::create(rw, loc, ValueRange{memref::LoadOp::create(rw, loc, operand->get(), idx)});
  rw.setInsertionPointToStart(branch.elseBlock());
  scf::YieldOp::create(rw, loc, ValueRange{arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f)).getResult()});
  return branch.getResult(0);
}

/// The epilogue's body for the output element at `idx` (the matmul's
/// loops, batch first), its matmul operand being `value`: the other
/// operands' elements loaded through their maps, the result stored.
void storeEpilogue(RewriterBase &rw, TileOps t, Value value, ArrayRef<Value> idx) {
  linalg::GenericOp g = t.epilogue;
  Location loc = g.getLoc();
  IRMapping map;
  Block &body = g.getRegion().front();
  for (OpOperand &operand : g->getOpOperands()) {
    BlockArgument arg = body.getArgument(operand.getOperandNumber());
    if (operand.get() == t.temp.getResult()) {
      map.map(arg, value);
      continue;
    }
    if (arg.use_empty())
      continue;
    SmallVector<Value> at = applyMap(rw, loc, g.getMatchingIndexingMap(&operand), idx);
    map.map(arg, memref::LoadOp::create(rw, loc, operand.get(), at));
  }
  for (Operation &op : body.without_terminator())
    rw.clone(op, map);
  Value result = map.lookup(body.getTerminator()->getOperand(0));
  memref::StoreOp::create(rw, loc, result, g.getDpsInits()[0], idx);
}

/// The tile's fill and matmul as workgroup code (see the file comment).
void expandTile(RewriterBase &rw, WorkgroupBuilder &wg, TileOps t, Value aBlock,
                Value bBlock) {
  linalg::LinalgOp mm = t.matmul;
  Location loc = mm.getLoc();
  // After the epilogue's operand views too (they follow the matmul).
  rw.setInsertionPoint(t.epilogue ? t.epilogue.getOperation() : mm.getOperation());
  Value A = mm.getDpsInputs()[0], C = mm.getDpsInits()[0];
  // The output's shape (the epilogue's output: the tile buffer goes away),
  // and K where A's map has it (last, or first of the two if transposed).
  Value out = t.epilogue ? t.epilogue.getDpsInits()[0] : C;
  Value rows = dim(rw, loc, out, 2), cols = dim(rw, loc, out, 1);
  AffineMap aMap = mm.getMatchingIndexingMap(mm.getDpsInputOperand(0));
  const bool aTransposed = aMap.getResult(aMap.getNumResults() - 1) !=
                           getAffineDimExpr(mm.getNumLoops() - 1, rw.getContext());
  Value K = dim(rw, loc, A, aTransposed ? 2 : 1);
  auto c = [&](int64_t v) { return arith::ConstantIndexOp::create(rw, loc, v).getResult(); };
  Value tile = c(kT), tid = wg.tid();
  // Elements of a 16 x 16 block per invocation: the outputs it sums, and
  // the elements it stages of each of A's and B's blocks.
  const int64_t per = kT * kT / wg.size();
  Value zerof = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f));
  // Its j-th element is tid + j * size, row-major, for every k block:
  // computed once.
  SmallVector<Value> flat(per), row(per), col(per), rowBase(per);
  for (int64_t j = 0; j < per; ++j) {
    flat[j] = arith::AddIOp::create(rw, loc, tid, c(j * wg.size()));
    row[j] = arith::DivUIOp::create(rw, loc, flat[j], tile);
    col[j] = arith::RemUIOp::create(rw, loc, flat[j], tile);
    rowBase[j] = arith::MulIOp::create(rw, loc, row[j], tile);
  }
  SmallVector<Value> inits(per, zerof);
  auto loop = scf::ForOp::create(rw, loc, c(0), K, tile, inits);
  {
    OpBuilder::InsertionGuard g(rw);
    openBlock(rw, loop.getBody());
    Value k0 = loop.getInductionVar();
    // Stage the blocks: A's [row r][k q], B's [k r][col q].
    Value zero = c(0);
    for (int64_t j = 0; j < per; ++j) {
      Value r = row[j], q = col[j];
      Value a = loadOrZero(rw, loc, mm, 0, r, zero, arith::AddIOp::create(rw, loc, k0, q), rows,
                           cols, K);
      memref::StoreOp::create(rw, loc, a, aBlock, ValueRange{flat[j]});
      Value b = loadOrZero(rw, loc, mm, 1, zero, q, arith::AddIOp::create(rw, loc, k0, r), rows,
                           cols, K);
      memref::StoreOp::create(rw, loc, b, bBlock, ValueRange{flat[j]});
    }
    wg.barrier();
    // The block's k in order, as on the CPU.
    auto inner = scf::ForOp::create(rw, loc, c(0), tile, c(1), loop.getRegionIterArgs());
    {
      OpBuilder::InsertionGuard g2(rw);
      openBlock(rw, inner.getBody());
      Value kk = inner.getInductionVar();
      SmallVector<Value> next;
      for (int64_t j = 0; j < per; ++j) {
        Value av = memref::LoadOp::create(rw, loc, aBlock,
                                          ValueRange{arith::AddIOp::create(rw, loc, rowBase[j], kk)});
        Value bv = memref::LoadOp::create(
            rw, loc, bBlock,
            ValueRange{arith::AddIOp::create(rw, loc, arith::MulIOp::create(rw, loc, kk, tile), col[j])});
        next.push_back(arith::AddFOp::create(rw, loc, inner.getRegionIterArgs()[j],
                                             arith::MulFOp::create(rw, loc, av, bv)));
      }
      scf::YieldOp::create(rw, loc, next);
    }
    wg.barrier();
    scf::YieldOp::create(rw, loc, inner.getResults());
  }
  // C = (the fill's value, or C's old value) + the sum, inside the matrix;
  // with an epilogue, its body on that value and the other operands' elements
  // is stored into its output instead (the tile buffer is never written).
  for (int64_t j = 0; j < per; ++j) {
    Value r = row[j], q = col[j];
    Value inRow = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, r, rows);
    Value inCol = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, q, cols);
    auto guard = scf::IfOp::create(rw, loc, arith::AndIOp::create(rw, loc, inRow, inCol), false);
    OpBuilder::InsertionGuard g(rw);
    rw.setInsertionPoint(guard.thenBlock()->getTerminator());
    SmallVector<Value> idx = at(rw, loc, C, r, q);
    Value init = t.fill ? t.fill.getInputs()[0] : memref::LoadOp::create(rw, loc, C, idx).getResult();
    Value value = arith::AddFOp::create(rw, loc, init, loop.getResult(j));
    if (!t.epilogue) {
      memref::StoreOp::create(rw, loc, value, C, idx);
      continue;
    }
    storeEpilogue(rw, t, value, idx);
  }
  rw.eraseOp(mm);
  if (t.fill)
    rw.eraseOp(t.fill);
  if (t.epilogue) {
    rw.eraseOp(t.epilogue);
    for (Operation *user : llvm::make_early_inc_range(t.temp->getUsers()))
      rw.eraseOp(user);
    rw.eraseOp(t.temp);
  }
}

} // namespace

void cooperateTiledMatmuls(func::FuncOp fn, const GpuKernelConfig &config) {
  if (config.workgroupSize <= 0 || config.workgroupSize > kT * kT ||
      (kT * kT) % config.workgroupSize != 0)
    return;
  // A matmul within one tile was not tiled (no loop): it keeps one
  // invocation per output.
  scf::ForallOp forall = soleTileLoop(fn);
  if (!forall)
    return;
  std::optional<TileOps> t = matchTile(*forall.getBody());
  if (!t)
    return;
  IRRewriter rw(fn.getContext());
  Location loc = forall.getLoc();
  rw.setInsertionPoint(forall);
  // The blocks of A and B, in workgroup memory.
  Value aBlock = workgroupBuffer(rw, loc, kT * kT, rw.getF32Type());
  Value bBlock = workgroupBuffer(rw, loc, kT * kT, rw.getF32Type());
  WorkgroupBuilder wg(rw, loc, config);
  if (!tileLoopToItems(rw, wg, forall)) {
    rw.eraseOp(aBlock.getDefiningOp());
    rw.eraseOp(bBlock.getDefiningOp());
    return;
  }
  expandTile(rw, wg, *t, aBlock, bBlock);
}

} // namespace kiln
