//===- GpuMatrixTiles.cpp - 16x16 tile products by a warp ------------------===//
#include "targets/gpu/GpuMatrixTiles.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

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

Value MatrixTiles::idx(int64_t v) { return arith::ConstantIndexOp::create(rw, loc, v); }

Value MatrixTiles::i32(int64_t v) {
  return arith::ConstantIntOp::create(rw, loc, rw.getI32Type(), v);
}

Value MatrixTiles::add(Value x, Value y) { return arith::AddIOp::create(rw, loc, x, y); }

Value MatrixTiles::mul(Value x, int64_t y) { return arith::MulIOp::create(rw, loc, x, idx(y)); }

Type MatrixTiles::operandType() const {
  return kind == GpuMatrixOps::Wmma ? operand : Type(rw.getF32Type());
}

bool MatrixTiles::mmaSync() const { return kind != GpuMatrixOps::None && operand.isBF16(); }

Value MatrixTiles::pair(Value buf, Value at, Value step) {
  // The element's bfloat16 bits in the low 16 bits of an i32.
  auto bits = [&](Value i) -> Value {
    Value v = memref::LoadOp::create(rw, loc, buf, ValueRange{i});
    if (v.getType().isF32()) {
      // Emulated staging keeps f32: round to nearest even as cvt.rn.bf16 does.
      Value w = arith::BitcastOp::create(rw, loc, rw.getI32Type(), v);
      Value odd = arith::AndIOp::create(rw, loc, arith::ShRUIOp::create(rw, loc, w, i32(16)),
                                        i32(1));
      w = arith::AddIOp::create(rw, loc, w, arith::AddIOp::create(rw, loc, odd, i32(0x7fff)));
      return arith::ShRUIOp::create(rw, loc, w, i32(16));
    }
    v = arith::BitcastOp::create(rw, loc, rw.getI16Type(), v);
    return arith::ExtUIOp::create(rw, loc, rw.getI32Type(), v);
  };
  Value hi = arith::ShLIOp::create(rw, loc, bits(arith::AddIOp::create(rw, loc, at, step)),
                                   i32(16));
  return arith::OrIOp::create(rw, loc, bits(at), hi);
}

Value MatrixTiles::accAt(Value acc, int64_t i) {
  if (isa<VectorType>(acc.getType()))
    return vector::ExtractOp::create(rw, loc, acc, ArrayRef<int64_t>{i});
  return memref::LoadOp::create(rw, loc, acc,
                                ValueRange{arith::ConstantIndexOp::create(rw, loc, i)});
}

Value MatrixTiles::accWith(Value acc, int64_t i, Value v) {
  if (isa<VectorType>(acc.getType()))
    return vector::InsertOp::create(rw, loc, v, acc, ArrayRef<int64_t>{i});
  memref::StoreOp::create(rw, loc, v, acc, ValueRange{arith::ConstantIndexOp::create(rw, loc, i)});
  return acc;
}

Value MatrixTiles::zero() {
  if (mmaSync() && kind == GpuMatrixOps::Wmma)
    return arith::ConstantOp::create(
        rw, loc, DenseElementsAttr::get(VectorType::get({8}, rw.getF32Type()), 0.0f));
  Value z = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0.0f));
  if (kind == GpuMatrixOps::Wmma)
    return gpu::SubgroupMmaConstantMatrixOp::create(rw, loc, tileType(rw.getF32Type(), "COp"), z);
  // A private buffer (allocated inside the kernel's cooperative loop, so
  // distributeKernel gives it to one invocation): the lane's 8 elements
  // (mma.sync) or the whole tile.
  int64_t n = mmaSync() ? 8 : kTile * kTile;
  Value acc = memref::AllocaOp::create(rw, loc, MemRefType::get({n}, rw.getF32Type()));
  Value c0 = arith::ConstantIndexOp::create(rw, loc, 0);
  forEach(rw, loc, c0, arith::ConstantIndexOp::create(rw, loc, n), 1,
          [&](Value i) { memref::StoreOp::create(rw, loc, z, acc, i); });
  return acc;
}

std::pair<Value, Value> MatrixTiles::groupOf(Value lane) {
  Value g = arith::DivUIOp::create(rw, loc, lane, idx(4));
  return {g, mul(arith::RemUIOp::create(rw, loc, lane, idx(4)), 2)};
}

// PTX ISA, mma.m16n8k16 with .bf16 operands: lane = 4 * g + t holds
//   A (row-major 16 x 16): registers (row g, k 2t), (g + 8, 2t), (g, 2t + 8),
//     (g + 8, 2t + 8), each with the next k in its high half;
//   B (16 x 8, "col"): (k 2t, column g), (k 2t + 8, g), with k + 1 in the
//     high half;
//   C, D (16 x 8 f32): (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1).
// Our 16x16 product is two of them, columns 0-7 and 8-15 (half h); the
// lane's accumulator elements 4h .. 4h + 3 are C and D of half h.
SmallVector<Value> MatrixTiles::fragmentA(Value a, Value aOff, int64_t lda, Value lane) {
  auto [g, t2] = groupOf(lane);
  SmallVector<Value> fa;
  for (int64_t kh = 0; kh < 2; ++kh)
    for (int64_t rh = 0; rh < 2; ++rh)
      fa.push_back(
          pair(a, add(aOff, add(mul(add(g, idx(8 * rh)), lda), add(t2, idx(8 * kh)))), idx(1)));
  return fa;
}

SmallVector<Value> MatrixTiles::fragmentB(Value b, Value bOff, int64_t ldb, Value lane,
                                          int64_t h) {
  auto [g, t2] = groupOf(lane);
  SmallVector<Value> fb;
  for (int64_t kh = 0; kh < 2; ++kh)
    fb.push_back(
        pair(b, add(bOff, add(mul(add(t2, idx(8 * kh)), ldb), add(g, idx(8 * h)))), idx(ldb)));
  return fb;
}

Value MatrixTiles::mmaSyncProduct(Value acc, Value a, Value aOff, int64_t lda, Value b, Value bOff,
                                  int64_t ldb, Value tid) {
  Value lane = arith::RemUIOp::create(rw, loc, tid, idx(kWarp));
  if (kind != GpuMatrixOps::Wmma) {
    emulateMmaSync(acc, a, aOff, lda, b, bOff, ldb, lane);
    return acc;
  }
  SmallVector<Value> fa = fragmentA(a, aOff, lda, lane);
  Type f32 = rw.getF32Type();
  auto result = LLVM::LLVMStructType::getLiteral(rw.getContext(), {f32, f32, f32, f32});
  Value out = acc;
  for (int64_t h = 0; h < 2; ++h) {
    SmallVector<Value> fc;
    for (int64_t i = 0; i < 4; ++i)
      fc.push_back(accAt(acc, 4 * h + i));
    Value d = NVVM::MmaOp::create(
        rw, loc, result, fa, fragmentB(b, bOff, ldb, lane, h), fc, ArrayRef<int64_t>{16, 8, 16},
        std::nullopt, std::nullopt,
        std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row, NVVM::MMALayout::col});
    for (int64_t i = 0; i < 4; ++i)
      out = accWith(out, 4 * h + i,
                    LLVM::ExtractValueOp::create(rw, loc, d, ArrayRef<int64_t>{i}));
  }
  return out;
}

void MatrixTiles::emulateMmaSync(Value acc, Value a, Value aOff, int64_t lda, Value b, Value bOff,
                                 int64_t ldb, Value lane) {
  // Where the ISA puts an element, read backwards: A (row, k) is in lane
  // 4 (row % 8) + (k % 8) / 2, register row / 8 + 2 (k / 8); B (k, n) in
  // lane 4 n + (k % 8) / 2, register k / 8 of its half; k % 2 picks the
  // 16-bit half. This lane's D elements are (g + 8 (i / 2), 2t + i % 2) of
  // each half, so per k it needs A's registers of lane 4g + (k % 8) / 2 and
  // B's of lanes 4 (2t + ci) + (k % 8) / 2: it gathers them as those lanes
  // would (fragmentA / fragmentB for their lane numbers).
  auto [g, t2] = groupOf(lane);
  SmallVector<Value> init;
  for (int64_t i = 0; i < 8; ++i)
    init.push_back(accAt(acc, i));
  auto f = scf::ForOp::create(rw, loc, idx(0), idx(kTile), idx(1), init);
  {
    OpBuilder::InsertionGuard guard(rw);
    rw.setInsertionPointToStart(f.getBody());
    Value k = f.getInductionVar();
    Value upperK = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::uge, k, idx(8));
    Value odd = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ne,
                                      arith::RemUIOp::create(rw, loc, k, idx(2)), idx(0));
    Value pairLane = arith::DivUIOp::create(rw, loc, arith::RemUIOp::create(rw, loc, k, idx(8)),
                                            idx(2));
    // The f32 that register `w` holds for this k.
    auto element = [&](Value w) -> Value {
      Value lo = arith::ShLIOp::create(rw, loc, w, i32(16));
      Value hi = arith::AndIOp::create(rw, loc, w, i32(0xffff0000));
      return arith::BitcastOp::create(rw, loc, rw.getF32Type(),
                                      arith::SelectOp::create(rw, loc, odd, hi, lo));
    };
    SmallVector<Value> fa = fragmentA(a, aOff, lda, add(mul(g, 4), pairLane));
    Value x[2];
    for (int64_t rh = 0; rh < 2; ++rh)
      x[rh] = element(arith::SelectOp::create(rw, loc, upperK, fa[rh + 2], fa[rh]));
    // D element 4h + 2rh + ci: row g + 8rh, column 2t + ci of half h.
    SmallVector<Value> sums(8);
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t ci = 0; ci < 2; ++ci) {
        SmallVector<Value> fb =
            fragmentB(b, bOff, ldb, add(mul(add(t2, idx(ci)), 4), pairLane), h);
        Value y = element(arith::SelectOp::create(rw, loc, upperK, fb[1], fb[0]));
        for (int64_t rh = 0; rh < 2; ++rh) {
          int64_t i = 4 * h + 2 * rh + ci;
          sums[i] = math::FmaOp::create(rw, loc, x[rh], y, f.getRegionIterArgs()[i]);
        }
      }
    scf::YieldOp::create(rw, loc, sums);
  }
  for (int64_t i = 0; i < 8; ++i)
    accWith(acc, i, f.getResult(i));
}

Value MatrixTiles::multiplyAdd(Value acc, Value a, Value aOff, int64_t lda, Value b, Value bOff,
                               int64_t ldb, Value tid) {
  if (mmaSync())
    return mmaSyncProduct(acc, a, aOff, lda, b, bOff, ldb, tid);
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

void MatrixTiles::store(Value acc, Value c, Value off, int64_t ldc, Value tid) {
  Value lane = arith::RemUIOp::create(rw, loc, tid, idx(kWarp));
  if (mmaSync()) {
    // Element 4h + i of the lane's accumulator: row g + 8 (i / 2), column
    // 8h + 2t + i % 2 (mmaSyncProduct).
    auto [g, t2] = groupOf(lane);
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 4; ++i) {
        Value row = add(g, idx(8 * (i / 2)));
        Value col = add(t2, idx(8 * h + i % 2));
        Value at = add(off, add(mul(row, ldc), col));
        memref::StoreOp::create(rw, loc, accAt(acc, 4 * h + i), c, ValueRange{at});
      }
    return;
  }
  if (kind == GpuMatrixOps::Wmma) {
    gpu::SubgroupMmaStoreMatrixOp::create(rw, loc, acc, c, ValueRange{off},
                                          rw.getIndexAttr(ldc), UnitAttr());
    return;
  }
  // Every lane holds the whole tile; lane l writes elements l, l + 32, ...
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
