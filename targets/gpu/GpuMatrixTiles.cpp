//===- GpuMatrixTiles.cpp - 16x16 tile products by a warp ------------------===//
#include "targets/gpu/GpuMatrixTiles.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;

namespace kiln {
namespace {

constexpr int64_t kTile = MatrixTiles::kTile;

gpu::MMAMatrixType tileType(Type element, StringRef operand) {
  return gpu::MMAMatrixType::get({kTile, kTile}, element, operand);
}

/// for i in [0, n): body(i), an scf.for without results.
void forEach(RewriterBase &rw, Location loc, Value lb, Value ub, int64_t step,
             function_ref<void(Value)> body) {
  Value s = arith::ConstantIndexOp::create(rw, loc, step);
  auto f = scf::ForOp::create(rw, loc, lb, ub, s);
  OpBuilder::InsertionGuard g(rw);
  rw.setInsertionPoint(f.getBody()->getTerminator());
  body(f.getInductionVar());
}

} // namespace

Type MatrixTiles::operandType() const {
  return kind == GpuMatrixOps::Wmma ? Type(rw.getF16Type()) : Type(rw.getF32Type());
}

Value MatrixTiles::zero() {
  Value z = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f));
  if (kind == GpuMatrixOps::Wmma)
    return gpu::SubgroupMmaConstantMatrixOp::create(rw, loc, tileType(rw.getF32Type(), "COp"), z);
  // A private buffer (allocated inside the kernel's cooperative loop, so
  // distributeKernel gives it to one invocation).
  Value acc = memref::AllocaOp::create(
      rw, loc, MemRefType::get({kTile * kTile}, rw.getF32Type()));
  Value c0 = arith::ConstantIndexOp::create(rw, loc, 0);
  Value n = arith::ConstantIndexOp::create(rw, loc, kTile * kTile);
  forEach(rw, loc, c0, n, 1, [&](Value i) { memref::StoreOp::create(rw, loc, z, acc, i); });
  return acc;
}

Value MatrixTiles::multiplyAdd(Value acc, Value a, Value aOff, int64_t lda, Value b, Value bOff,
                               int64_t ldb) {
  if (kind == GpuMatrixOps::Wmma) {
    Type f16 = rw.getF16Type();
    Value ta = gpu::SubgroupMmaLoadMatrixOp::create(rw, loc, tileType(f16, "AOp"), a,
                                                    ValueRange{aOff}, rw.getIndexAttr(lda),
                                                    UnitAttr());
    Value tb = gpu::SubgroupMmaLoadMatrixOp::create(rw, loc, tileType(f16, "BOp"), b,
                                                    ValueRange{bOff}, rw.getIndexAttr(ldb),
                                                    UnitAttr());
    return gpu::SubgroupMmaComputeOp::create(rw, loc, acc.getType(), ta, tb, acc, UnitAttr(),
                                             UnitAttr());
  }
  // acc[i][j] += sum_k A[i][k] * B[k][j], k in order.
  auto idx = [&](int64_t v) { return arith::ConstantIndexOp::create(rw, loc, v); };
  Value c0 = idx(0), n = idx(kTile);
  forEach(rw, loc, c0, n, 1, [&](Value i) {
    forEach(rw, loc, c0, n, 1, [&](Value j) {
      Value at = arith::AddIOp::create(rw, loc, arith::MulIOp::create(rw, loc, i, n), j);
      Value init = memref::LoadOp::create(rw, loc, acc, ValueRange{at});
      auto f = scf::ForOp::create(rw, loc, c0, n, idx(1), ValueRange{init});
      {
        OpBuilder::InsertionGuard g(rw);
        rw.setInsertionPointToStart(f.getBody());
        Value k = f.getInductionVar();
        Value ai = arith::AddIOp::create(
            rw, loc, aOff,
            arith::AddIOp::create(rw, loc, arith::MulIOp::create(rw, loc, i, idx(lda)), k));
        Value bi = arith::AddIOp::create(
            rw, loc, bOff,
            arith::AddIOp::create(rw, loc, arith::MulIOp::create(rw, loc, k, idx(ldb)), j));
        Value x = memref::LoadOp::create(rw, loc, a, ValueRange{ai});
        Value y = memref::LoadOp::create(rw, loc, b, ValueRange{bi});
        Value s = math::FmaOp::create(rw, loc, x, y, f.getRegionIterArgs()[0]);
        scf::YieldOp::create(rw, loc, s);
      }
      memref::StoreOp::create(rw, loc, f.getResult(0), acc, ValueRange{at});
    });
  });
  return acc;
}

void MatrixTiles::store(Value acc, Value c, Value off, int64_t ldc, Value lane) {
  if (kind == GpuMatrixOps::Wmma) {
    gpu::SubgroupMmaStoreMatrixOp::create(rw, loc, acc, c, ValueRange{off},
                                          rw.getIndexAttr(ldc), UnitAttr());
    return;
  }
  // Every lane holds the whole tile; lane l writes elements l, l + 32, ...
  auto idx = [&](int64_t v) { return arith::ConstantIndexOp::create(rw, loc, v); };
  forEach(rw, loc, lane, idx(kTile * kTile), kWarp, [&](Value e) {
    Value i = arith::DivUIOp::create(rw, loc, e, idx(kTile));
    Value j = arith::RemUIOp::create(rw, loc, e, idx(kTile));
    Value at = arith::AddIOp::create(
        rw, loc, off,
        arith::AddIOp::create(rw, loc, arith::MulIOp::create(rw, loc, i, idx(ldc)), j));
    Value v = memref::LoadOp::create(rw, loc, acc, ValueRange{e});
    memref::StoreOp::create(rw, loc, v, c, ValueRange{at});
  });
}

} // namespace kiln
