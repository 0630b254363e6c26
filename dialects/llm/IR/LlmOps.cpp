//===- LlmOps.cpp - Verifiers of the llm ops -------------------------------===//
//
// Verifiers check ranks and the static sizes that must agree; dynamic dims
// are checked by the kernels' callers at run time.
//
//===----------------------------------------------------------------------===//
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace kiln::llm;

#define GET_OP_CLASSES
#include "LlmOps.cpp.inc"

namespace {
RankedTensorType rt(Value v) { return cast<RankedTensorType>(v.getType()); }

/// Two dims agree when either is dynamic or they are equal.
bool agree(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

LogicalResult expectRank(Operation *op, Value v, int64_t rank, StringRef what) {
  if (rt(v).getRank() != rank)
    return op->emitOpError() << what << " must have rank " << rank << ", got "
                             << rt(v).getRank();
  return success();
}

LogicalResult expectLastDim(Operation *op, Value v, int64_t size, StringRef what) {
  auto t = rt(v);
  if (t.getRank() < 1 || !agree(t.getShape().back(), size))
    return op->emitOpError() << what << " last dim does not match (" << size
                             << ")";
  return success();
}

LogicalResult verifyActivation(Operation *op, StringRef act) {
  if (!activationCode(act))
    return op->emitOpError() << "unknown activation '" << act << "'";
  return success();
}
} // namespace

LogicalResult EmbeddingOp::verify() {
  if (failed(expectRank(*this, getTable(), 2, "table")))
    return failure();
  if (!rt(getIds()).getElementType().isInteger(64))
    return emitOpError("ids must be i64");
  if (rt(getResult()).getRank() != rt(getIds()).getRank() + 1)
    return emitOpError("result rank must be ids rank + 1");
  if (getPosTable() && (rt(getPosTable()).getRank() != 2 ||
                        !agree(rt(getPosTable()).getDimSize(1),
                               rt(getTable()).getDimSize(1))))
    return emitOpError("position table must be [max_pos, D] like the table");
  return expectLastDim(*this, getResult(), rt(getTable()).getDimSize(1), "result");
}

LogicalResult RmsNormOp::verify() {
  if (failed(expectRank(*this, getWeight(), 1, "weight")))
    return failure();
  if (rt(getResult()) != rt(getInput()))
    return emitOpError("result type must equal the input type");
  return expectLastDim(*this, getInput(), rt(getWeight()).getDimSize(0), "input");
}

LogicalResult LayerNormOp::verify() {
  if (failed(expectRank(*this, getWeight(), 1, "weight")))
    return failure();
  if (getBias() && rt(getBias()) != rt(getWeight()))
    return emitOpError("bias must have the weight's type");
  if (rt(getResult()) != rt(getInput()))
    return emitOpError("result type must equal the input type");
  return expectLastDim(*this, getInput(), rt(getWeight()).getDimSize(0), "input");
}

LogicalResult MatmulOp::verify() {
  if (failed(expectRank(*this, getWeight(), 2, "weight")) ||
      failed(verifyActivation(*this, getActivation())))
    return failure();
  int64_t k = rt(getWeight()).getDimSize(0), n = rt(getWeight()).getDimSize(1);
  if (failed(expectLastDim(*this, getInput(), k, "input")) ||
      failed(expectLastDim(*this, getResult(), n, "result")))
    return failure();
  if (rt(getResult()).getRank() != rt(getInput()).getRank())
    return emitOpError("result rank must equal the input rank");
  if (getBias() && (rt(getBias()).getRank() != 1 ||
                    !agree(rt(getBias()).getDimSize(0), n)))
    return emitOpError("bias must be [N]");
  if (getResidual() && rt(getResidual()).getRank() != rt(getResult()).getRank())
    return emitOpError("residual must have the result's rank");
  return success();
}

LogicalResult DequantizeOp::verify() {
  auto data = rt(getData()), scales = rt(getScales()), result = rt(getResult());
  if (data.getRank() != 2 || !data.hasStaticShape())
    return emitOpError("data must be a static [K, N] tensor");
  Type et = data.getElementType();
  if (!et.isSignlessInteger(8) && !et.isSignlessInteger(4))
    return emitOpError("data must be i8 or i4, got ") << et;
  int64_t K = data.getDimSize(0), N = data.getDimSize(1);
  int64_t g = getGroupSize();
  if (g <= 0 || K % g != 0)
    return emitOpError() << "group_size " << g << " must divide K = " << K;
  SmallVector<int64_t> want{K / g, N};
  if (scales.getShape() != ArrayRef<int64_t>(want) || !scales.getElementType().isF16())
    return emitOpError() << "scales must be f16 [" << K / g << ", " << N << "]";
  if (getZeroPoints()) {
    auto z = rt(getZeroPoints());
    if (z.getShape() != ArrayRef<int64_t>(want) || !z.getElementType().isSignlessInteger(8))
      return emitOpError() << "zero_points must be i8 [" << K / g << ", " << N << "]";
  }
  if (result.getShape() != data.getShape() || !result.getElementType().isF32())
    return emitOpError("result must be f32 of the data's shape");
  if (std::optional<int64_t> ab = getActivationBits()) {
    if (*ab != 8)
      return emitOpError() << "activation_bits must be 8, got " << *ab;
    if (et.isSignlessInteger(8) && (g != K || getZeroPoints()))
      return emitOpError("activation_bits = 8 takes i8 data with one scale per column "
                         "(group_size = K) and no zero points, or i4 data");
  }
  return success();
}

LogicalResult GatedMlpOp::verify() {
  if (failed(verifyActivation(*this, getActivation())))
    return failure();
  for (Value w : {getGate(), getUp(), getDown()})
    if (failed(expectRank(*this, w, 2, "weights")))
      return failure();
  auto g = rt(getGate()), u = rt(getUp()), d = rt(getDown());
  if (g.getShape() != u.getShape())
    return emitOpError("gate and up weights must have the same shape");
  if (!agree(g.getDimSize(1), d.getDimSize(0)) ||
      !agree(g.getDimSize(0), d.getDimSize(1)))
    return emitOpError("down weight must be [ffn, hidden]");
  if (rt(getResult()) != rt(getInput()))
    return emitOpError("result type must equal the input type");
  return expectLastDim(*this, getInput(), g.getDimSize(0), "input");
}

LogicalResult GeluMlpOp::verify() {
  if (getApproximate() != "tanh" && getApproximate() != "none")
    return emitOpError("approximate must be 'tanh' or 'none'");
  for (Value w : {getFc(), getProj()})
    if (failed(expectRank(*this, w, 2, "weights")))
      return failure();
  if (!agree(rt(getFc()).getDimSize(1), rt(getProj()).getDimSize(0)))
    return emitOpError("fc and proj weights do not chain");
  if (rt(getResult()) != rt(getInput()))
    return emitOpError("result type must equal the input type");
  return expectLastDim(*this, getInput(), rt(getFc()).getDimSize(0), "input");
}

LogicalResult SplitHeadsOp::verify() {
  if (failed(expectRank(*this, getInput(), 3, "input")) ||
      failed(expectRank(*this, getResult(), 4, "result")))
    return failure();
  int64_t h = getNumHeads();
  auto in = rt(getInput()), out = rt(getResult());
  if (h <= 0 || !agree(out.getDimSize(1), h))
    return emitOpError("result dim 1 must be num_heads");
  if (!in.isDynamicDim(2) && !out.isDynamicDim(3) &&
      in.getDimSize(2) != h * out.getDimSize(3))
    return emitOpError("input last dim must be num_heads * head_dim");
  return success();
}

LogicalResult MergeHeadsOp::verify() {
  if (failed(expectRank(*this, getInput(), 4, "input")) ||
      failed(expectRank(*this, getResult(), 3, "result")))
    return failure();
  auto in = rt(getInput()), out = rt(getResult());
  if (!in.isDynamicDim(1) && !in.isDynamicDim(3) && !out.isDynamicDim(2) &&
      in.getDimSize(1) * in.getDimSize(3) != out.getDimSize(2))
    return emitOpError("result last dim must be heads * head_dim");
  return success();
}

LogicalResult RotaryOp::verify() {
  if (failed(expectRank(*this, getInput(), 4, "input")) ||
      failed(expectRank(*this, getCos(), 2, "cos table")) ||
      failed(expectRank(*this, getSin(), 2, "sin table")) ||
      failed(expectRank(*this, getPositions(), 2, "positions")))
    return failure();
  if (rt(getCos()) != rt(getSin()))
    return emitOpError("cos and sin tables must have the same type");
  if (rt(getResult()) != rt(getInput()))
    return emitOpError("result type must equal the input type");
  int64_t hd = rt(getInput()).getDimSize(3);
  if (!agree(rt(getCos()).getDimSize(1), hd) || (!ShapedType::isDynamic(hd) && hd % 2))
    return emitOpError("tables must be [max_pos, head_dim] with an even head_dim");
  return success();
}

LogicalResult KvAppendOp::verify() {
  for (Value v : {getPast(), getNewValue(), getResult()})
    if (failed(expectRank(*this, v, 4, "operands and result")))
      return failure();
  auto p = rt(getPast()), n = rt(getNewValue());
  for (int i : {1, 3})
    if (!agree(p.getDimSize(i), n.getDimSize(i)))
      return emitOpError("past and new differ in dim ") << i;
  return success();
}

LogicalResult AttentionOp::verify() {
  for (Value v : {getQuery(), getKey(), getValue()})
    if (failed(expectRank(*this, v, 4, "q, k and v")))
      return failure();
  auto q = rt(getQuery()), k = rt(getKey()), v = rt(getValue());
  if (!agree(q.getDimSize(3), k.getDimSize(3)) ||
      !agree(k.getDimSize(3), v.getDimSize(3)))
    return emitOpError("q, k and v must share head_dim");
  int64_t h = q.getDimSize(1), kvh = k.getDimSize(1);
  if (!ShapedType::isDynamic(h) && !ShapedType::isDynamic(kvh) &&
      (kvh == 0 || h % kvh))
    return emitOpError("query heads must be a multiple of kv heads");
  if (getMask() && (rt(getMask()).getRank() != 2 ||
                    !rt(getMask()).getElementType().isInteger(64)))
    return emitOpError("mask must be i64 [B, T]");
  if (rt(getResult()) != q)
    return emitOpError("result type must equal the query type");
  return success();
}

/// An i32 tensor of rank `rank`.
static LogicalResult expectI32(Operation *op, Value v, int64_t rank, StringRef what) {
  auto t = rt(v);
  if (t.getRank() != rank || !t.getElementType().isInteger(32))
    return op->emitOpError(what) << " must be an i32 tensor of rank " << rank;
  return success();
}

LogicalResult KvCacheWriteOp::verify() {
  for (Value v : {getNewValue(), getCache()})
    if (failed(expectRank(*this, v, 4, "new values and cache")))
      return failure();
  if (failed(expectI32(*this, getSlots(), 1, "slots")))
    return failure();
  auto n = rt(getNewValue()), c = rt(getCache());
  if (!agree(n.getDimSize(0), 1))
    return emitOpError("new values must be [1, KVH, N, hd]");
  // An int8 cache (kv8) stores each row as hd int8 values and an f32 scale.
  bool int8 = c.getElementType().isSignlessInteger(8) && n.getElementType().isF32();
  int64_t rowDim = c.getDimSize(3);
  if (int8 && !ShapedType::isDynamic(rowDim))
    rowDim -= 4;
  if (!agree(n.getDimSize(1), c.getDimSize(2)) || !agree(n.getDimSize(3), rowDim))
    return emitOpError(int8 ? "new values [1, KVH, N, hd] and int8 cache [blocks, block_size, KVH, hd + 4] disagree"
                            : "new values [1, KVH, N, hd] and cache [blocks, block_size, KVH, hd] disagree");
  if (!agree(n.getDimSize(2), rt(getSlots()).getDimSize(0)))
    return emitOpError("one slot per new token");
  if (!int8 && n.getElementType() != c.getElementType())
    return emitOpError("new values and cache differ in element type");
  return success();
}

LogicalResult PagedAttentionOp::verify() {
  for (Value v : {getQuery(), getKeyCache(), getValueCache()})
    if (failed(expectRank(*this, v, 4, "q and the caches")))
      return failure();
  if (failed(expectI32(*this, getBlockTables(), 2, "block_tables")) ||
      failed(expectI32(*this, getSeqLens(), 1, "seq_lens")) ||
      failed(expectI32(*this, getQueryStart(), 1, "query_start")))
    return failure();
  auto q = rt(getQuery()), k = rt(getKeyCache()), v = rt(getValueCache());
  if (k != v)
    return emitOpError("key and value caches must have the same type");
  if (!agree(q.getDimSize(0), 1))
    return emitOpError("q must be [1, H, N, hd] (a flattened batch)");
  bool int8 = k.getElementType().isSignlessInteger(8);
  int64_t rowDim = k.getDimSize(3);
  if (int8 && !ShapedType::isDynamic(rowDim))
    rowDim -= 4; // hd int8 values and an f32 scale per row
  if (!int8 && k.getElementType() != q.getElementType())
    return emitOpError("the caches must be f32 like q, or i8 (kv8)");
  if (!agree(q.getDimSize(3), rowDim))
    return emitOpError(int8 ? "int8 caches must hold head_dim + 4 bytes per row"
                            : "q and the caches must share head_dim");
  int64_t h = q.getDimSize(1), kvh = k.getDimSize(2);
  if (!ShapedType::isDynamic(h) && !ShapedType::isDynamic(kvh) && (kvh == 0 || h % kvh))
    return emitOpError("query heads must be a multiple of kv heads");
  int64_t b = rt(getSeqLens()).getDimSize(0), b1 = rt(getQueryStart()).getDimSize(0);
  if (!agree(rt(getBlockTables()).getDimSize(0), b) ||
      (!ShapedType::isDynamic(b) && !ShapedType::isDynamic(b1) && b1 != b + 1))
    return emitOpError("block_tables [B, M], seq_lens [B] and query_start [B+1] disagree");
  return success();
}

LogicalResult UkernelOp::verify() {
  int64_t n = getInputs().size() + getOutputs().size();
  for (Attribute a : getArgs()) {
    if (auto ref = dyn_cast<DenseI64ArrayAttr>(a)) {
      if (ref.empty() || ref[0] >= n)
        return emitOpError("argument refers to a missing operand");
      if (ref[0] < 0 && ref.size() != 1)
        return emitOpError("a null pointer takes no dims");
      if (ref[0] >= 0)
        for (int64_t d : ref.asArrayRef().drop_front())
          if (d < 0 ||
              d >= cast<ShapedType>(getOperand(ref[0]).getType()).getRank())
            return emitOpError("argument refers to a missing dim");
      continue;
    }
    if (!isa<IntegerAttr, FloatAttr>(a))
      return emitOpError("arguments are operand refs, integers or floats");
  }
  return success();
}

LogicalResult UkernelOp::reifyResultShapes(
    OpBuilder &b, ReifiedRankedShapedTypeDims &shapes) {
  for (Value out : getOutputs()) {
    auto t = cast<RankedTensorType>(out.getType());
    SmallVector<OpFoldResult> dims;
    for (int64_t i = 0; i < t.getRank(); ++i)
      dims.push_back(t.isDynamicDim(i)
                         ? OpFoldResult(b.createOrFold<tensor::DimOp>(getLoc(), out, i))
                         : OpFoldResult(b.getIndexAttr(t.getDimSize(i))));
    shapes.push_back(dims);
  }
  return success();
}

void UkernelOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>> &effects) {
  // On buffers the call reads its inputs and writes its outputs; on tensors
  // it is a pure function of its operands.
  for (OpOperand &o : getInputsMutable())
    if (isa<MemRefType>(o.get().getType()))
      effects.emplace_back(MemoryEffects::Read::get(), &o,
                           SideEffects::DefaultResource::get());
  for (OpOperand &o : getOutputsMutable())
    if (isa<MemRefType>(o.get().getType()))
      effects.emplace_back(MemoryEffects::Write::get(), &o,
                           SideEffects::DefaultResource::get());
}

LogicalResult Sparse24Op::verify() {
  auto values = rt(getValues()), indices = rt(getIndices()), result = rt(getResult());
  if (result.getRank() != 2 || !result.hasStaticShape() || !result.getElementType().isF32())
    return emitOpError("result must be a static f32 [K, N] tensor");
  int64_t K = result.getDimSize(0), N = result.getDimSize(1);
  if (K % 4 != 0)
    return emitOpError() << "K = " << K << " must be a multiple of 4";
  SmallVector<int64_t> half{K / 2, N};
  if (values.getShape() != ArrayRef<int64_t>(half) || !values.getElementType().isF32())
    return emitOpError() << "values must be f32 [" << K / 2 << ", " << N << "]";
  if (indices.getShape() != ArrayRef<int64_t>(half) ||
      !indices.getElementType().isSignlessInteger(8))
    return emitOpError() << "indices must be i8 [" << K / 2 << ", " << N << "]";
  // Constant indices written inline are checked; resources are trusted.
  Operation *def = getIndices().getDefiningOp();
  if (def && def->hasTrait<OpTrait::ConstantLike>())
    if (auto dense = def->getAttrOfType<DenseIntElementsAttr>("value")) {
      SmallVector<int64_t> idx;
      for (const APInt &v : dense.getValues<APInt>())
        idx.push_back(v.getSExtValue());
      for (int64_t g = 0; g < K / 4; ++g)
        for (int64_t n = 0; n < N; ++n) {
          int64_t a = idx[(2 * g) * N + n], b = idx[(2 * g + 1) * N + n];
          if (a < 0 || b > 3 || a >= b)
            return emitOpError() << "indices of group " << g << ", column " << n
                                 << " must be two increasing positions in 0..3, got " << a
                                 << ", " << b;
        }
    }
  return success();
}
