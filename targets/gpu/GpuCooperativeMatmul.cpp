//===- GpuCooperativeMatmul.cpp - Matmul tiles staged in workgroup memory --===//
//
// tileForInvocations gives an f32 matmul of a generic model (ONNX MatMul,
// Gemm without transposes or epilogue) square tiles of kMatmulTile x
// kMatmulTile outputs. After bufferization each tile is a fill and a
// linalg.matmul on subviews; here the tile loop becomes a cooperative loop
// (GpuWorkgroup.h), a workgroup per tile:
//
//   for each block of kMatmulTile k:
//     the invocations copy the tile's A block [16 x 16] and B block
//     [16 x 16] into workgroup memory (zeros past the matrix edges),
//     barrier, each invocation adds its outputs' products over the block
//     from workgroup memory, barrier;
//   each invocation stores its outputs (16 * 16 / workgroup size of them).
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
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;

namespace kiln {
namespace {

constexpr int64_t kT = kMatmulTile;

struct TileOps {
  linalg::LinalgOp matmul;
  linalg::FillOp fill; // may be null: the output's old values are added to
};

/// The tile body: views, then an optional fill of the matmul's output, then
/// the matmul (f32, default indexing), nothing else with effects.
std::optional<TileOps> matchTile(Block &body) {
  TileOps t{};
  for (Operation &op : body.without_terminator()) {
    if (isa<memref::SubViewOp>(op) || isMemoryEffectFree(&op))
      continue;
    if (auto fill = dyn_cast<linalg::FillOp>(op); fill && !t.fill && !t.matmul) {
      t.fill = fill;
      continue;
    }
    if (isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op) && !t.matmul) {
      t.matmul = cast<linalg::LinalgOp>(op);
      continue;
    }
    return std::nullopt;
  }
  // The indexing is checked again: a transposed matmul was tiled by 1 and
  // must not be read as a plain one.
  if (!t.matmul || !t.matmul.hasPureBufferSemantics() || !hasDefaultMatmulIndexing(t.matmul))
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

/// view[row, col] when row < rows and col < cols, else 0.
Value loadOrZero(RewriterBase &rw, Location loc, Value view, Value row, Value col, Value rows,
                 Value cols) {
  Value inRow = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, row, rows);
  Value inCol = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, col, cols);
  Value in = arith::AndIOp::create(rw, loc, inRow, inCol);
  auto branch = scf::IfOp::create(rw, loc, TypeRange{rw.getF32Type()}, in, /*withElse=*/true);
  OpBuilder::InsertionGuard g(rw);
  rw.setInsertionPointToStart(branch.thenBlock());
  scf::YieldOp::create(rw, loc, ValueRange{memref::LoadOp::create(rw, loc, view, at(rw, loc, view, row, col))});
  rw.setInsertionPointToStart(branch.elseBlock());
  scf::YieldOp::create(rw, loc, ValueRange{arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f)).getResult()});
  return branch.getResult(0);
}

/// The tile's fill and matmul as workgroup code (see the file comment).
void expandTile(RewriterBase &rw, WorkgroupBuilder &wg, TileOps t, Value aBlock,
                Value bBlock) {
  linalg::LinalgOp mm = t.matmul;
  Location loc = mm.getLoc();
  rw.setInsertionPoint(mm);
  Value A = mm.getDpsInputs()[0], B = mm.getDpsInputs()[1], C = mm.getDpsInits()[0];
  Value rows = dim(rw, loc, C, 2), cols = dim(rw, loc, C, 1), K = dim(rw, loc, A, 1);
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
    for (int64_t j = 0; j < per; ++j) {
      Value r = row[j], q = col[j];
      Value a = loadOrZero(rw, loc, A, r, arith::AddIOp::create(rw, loc, k0, q), rows, K);
      memref::StoreOp::create(rw, loc, a, aBlock, ValueRange{flat[j]});
      Value b = loadOrZero(rw, loc, B, arith::AddIOp::create(rw, loc, k0, r), q, K, cols);
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
  // C = (the fill's value, or C's old value) + the sum, inside the matrix.
  for (int64_t j = 0; j < per; ++j) {
    Value r = row[j], q = col[j];
    Value inRow = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, r, rows);
    Value inCol = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, q, cols);
    auto guard = scf::IfOp::create(rw, loc, arith::AndIOp::create(rw, loc, inRow, inCol), false);
    OpBuilder::InsertionGuard g(rw);
    rw.setInsertionPoint(guard.thenBlock()->getTerminator());
    SmallVector<Value> idx = at(rw, loc, C, r, q);
    Value init = t.fill ? t.fill.getInputs()[0] : memref::LoadOp::create(rw, loc, C, idx).getResult();
    memref::StoreOp::create(rw, loc, arith::AddFOp::create(rw, loc, init, loop.getResult(j)), C, idx);
  }
  rw.eraseOp(mm);
  if (t.fill)
    rw.eraseOp(t.fill);
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
  auto block = [&] {
    auto alloc = memref::AllocOp::create(rw, loc, MemRefType::get({kT * kT}, rw.getF32Type()));
    alloc->setAttr("kiln.gpu_memory", rw.getStringAttr("workgroup"));
    return alloc.getResult();
  };
  Value aBlock = block(), bBlock = block();
  WorkgroupBuilder wg(rw, loc, config);
  if (!tileLoopToItems(rw, wg, forall)) {
    rw.eraseOp(aBlock.getDefiningOp());
    rw.eraseOp(bBlock.getDefiningOp());
    return;
  }
  expandTile(rw, wg, *t, aBlock, bBlock);
}

} // namespace kiln
