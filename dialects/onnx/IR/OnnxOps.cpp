//===- OnnxOps.cpp - onnx op verifiers ------------------------------------===//
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace kiln::onnx;

#define GET_OP_CLASSES
#include "OnnxOps.cpp.inc"

static bool isRanked(Value v) { return isa<RankedTensorType>(v.getType()); }

LogicalResult MatMulOp::verify() {
  auto a = dyn_cast<RankedTensorType>(getA().getType());
  auto b = dyn_cast<RankedTensorType>(getB().getType());
  if (!a || !b)
    return success();
  if (a.getRank() == 0 || b.getRank() == 0)
    return emitOpError("operands must have rank >= 1");
  int64_t k1 = a.getShape().back();
  int64_t k2 = b.getRank() == 1 ? b.getDimSize(0) : b.getDimSize(b.getRank() - 2);
  if (!ShapedType::isDynamic(k1) && !ShapedType::isDynamic(k2) && k1 != k2)
    return emitOpError("contraction dims differ: ") << k1 << " vs " << k2;
  return success();
}

LogicalResult TransposeOp::verify() {
  auto type = dyn_cast<RankedTensorType>(getData().getType());
  if (!type || !getPerm())
    return success();
  auto perm = *getPerm();
  if ((int64_t)perm.size() != type.getRank())
    return emitOpError("perm has ") << perm.size() << " entries for rank "
                                    << type.getRank();
  llvm::SmallVector<bool> seen(perm.size(), false);
  for (Attribute a : perm) {
    int64_t p = cast<IntegerAttr>(a).getInt();
    if (p < 0 || p >= type.getRank() || seen[p])
      return emitOpError("perm is not a permutation");
    seen[p] = true;
  }
  return success();
}

LogicalResult ShapeOp::verify() {
  auto type = dyn_cast<RankedTensorType>(getShape().getType());
  if (!type || type.getRank() != 1 || !type.getElementType().isInteger(64))
    return emitOpError("result must be a 1-D tensor of i64");
  return success();
}

LogicalResult ConstantOp::verify() {
  int count = 0;
  for (StringRef name : {"value", "sparse_value", "value_float", "value_floats",
                         "value_int", "value_ints", "value_string",
                         "value_strings"})
    count += (*this)->hasAttr(name);
  if (count != 1)
    return emitOpError("needs exactly one value attribute, has ") << count;
  return success();
}

LogicalResult GemmOp::verify() {
  for (Value v : {getA(), getB()})
    if (auto t = dyn_cast<RankedTensorType>(v.getType()); t && t.getRank() != 2)
      return emitOpError("A and B must be 2-D, got rank ") << t.getRank();
  return success();
}

LogicalResult SoftmaxOp::verify() {
  auto type = dyn_cast<RankedTensorType>(getInput().getType());
  if (!type)
    return success();
  int64_t axis = getAxis();
  if (axis < -type.getRank() || axis >= std::max<int64_t>(type.getRank(), 1))
    return emitOpError("axis ") << axis << " out of range for rank "
                                << type.getRank();
  return success();
}

LogicalResult ConcatOp::verify() {
  if (getInputs().empty())
    return emitOpError("needs at least one input");
  int64_t rank = -1;
  for (Value v : getInputs()) {
    if (!isRanked(v))
      continue;
    int64_t r = cast<RankedTensorType>(v.getType()).getRank();
    if (rank >= 0 && r != rank)
      return emitOpError("inputs have different ranks");
    rank = r;
  }
  if (rank >= 0 && (getAxis() < -rank || getAxis() >= rank))
    return emitOpError("axis ") << getAxis() << " out of range for rank "
                                << rank;
  return success();
}

LogicalResult MatMulNBitsOp::verify() {
  int64_t K = getK(), N = getN(), bits = getBits(), bs = getBlockSize();
  if (K <= 0 || N <= 0)
    return emitOpError("K and N must be positive, got K = ") << K << ", N = " << N;
  if (bits != 4)
    return emitOpError("only 4-bit weights are supported, got bits = ") << bits;
  if (bs < 16 || (bs & (bs - 1)) != 0)
    return emitOpError("block_size must be a power of two >= 16, got ") << bs;
  int64_t blocks = (K + bs - 1) / bs;
  if (auto a = dyn_cast<RankedTensorType>(getA().getType());
      a && (a.getRank() == 0 || (!a.isDynamicDim(a.getRank() - 1) &&
                                 a.getShape().back() != K)))
    return emitOpError("A's last dim must be K = ") << K;
  if (auto b = dyn_cast<RankedTensorType>(getB().getType())) {
    SmallVector<int64_t> want{N, blocks, bs * bits / 8};
    if (b.hasStaticShape() && b.getShape() != ArrayRef<int64_t>(want))
      return emitOpError("B must be [N, ceil(K / block_size), block_size * bits / 8] = [")
             << N << ", " << blocks << ", " << want[2] << "]";
  }
  if (auto s = dyn_cast<RankedTensorType>(getScales().getType());
      s && s.hasStaticShape() && s.getNumElements() != N * blocks)
    return emitOpError("scales must have N * n_blocks = ") << N * blocks << " elements";
  return success();
}
