//===- OnnxFolders.cpp - Folders for onnx ops -----------------------------===//
//
// LLM exports are mostly shape arithmetic (Shape -> Gather -> Concat ...).
// These folders collapse it when shapes are static so that later passes see
// plain constants.
//
//===----------------------------------------------------------------------===//
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/CommonFolders.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <algorithm>

using namespace mlir;
using namespace kiln::onnx;

namespace kiln::onnx {
/// Defined in OnnxShapeInference.cpp.
int64_t slicedLength(int64_t dim, int64_t start, int64_t end, int64_t step);
} // namespace kiln::onnx

/// Folders below build new constants only for small integer tensors: shape
/// arithmetic, never data.
static constexpr int64_t kMaxFoldElements = 64;

/// `type` as a static integer tensor type of at most `limit` elements.
static RankedTensorType smallIntType(Type type,
                                     int64_t limit = kMaxFoldElements) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || !t.hasStaticShape() || !isa<IntegerType>(t.getElementType()) ||
      t.getNumElements() > limit)
    return {};
  return t;
}

static bool zeroExtends(Type element) {
  return element.isUnsignedInteger() || element.isInteger(1);
}

/// The values of a constant integer tensor as int64.
static std::optional<SmallVector<int64_t>> toInts(Attribute attr) {
  auto d = dyn_cast_or_null<DenseIntElementsAttr>(attr);
  if (!d || d.getNumElements() > 4096)
    return std::nullopt;
  bool zext = zeroExtends(d.getElementType());
  SmallVector<int64_t> r;
  for (const APInt &x : d.getValues<APInt>())
    r.push_back(zext ? (int64_t)x.getZExtValue() : x.getSExtValue());
  return r;
}

/// The values of `a` broadcast (numpy-style) to `shape`.
static std::optional<SmallVector<APInt>>
broadcastValues(DenseIntElementsAttr a, ArrayRef<int64_t> shape) {
  ArrayRef<int64_t> in = a.getType().getShape();
  if (in.size() > shape.size())
    return std::nullopt;
  size_t off = shape.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i] != 1 && in[i] != shape[off + i])
      return std::nullopt;
  SmallVector<APInt> src(a.getValues<APInt>());
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  SmallVector<APInt> out;
  out.reserve(n);
  SmallVector<int64_t> idx(shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t linear = 0;
    for (size_t i = 0; i < in.size(); ++i)
      linear = linear * in[i] + (in[i] == 1 ? 0 : idx[off + i]);
    out.push_back(src[linear]);
    for (int64_t d = (int64_t)shape.size() - 1; d >= 0; --d) {
      if (++idx[d] < shape[d])
        break;
      idx[d] = 0;
    }
  }
  return out;
}

/// Folds an elementwise (broadcasting) op on integer constants of one element
/// type; `fn` maps the operands' values to the result's, or nullopt to give
/// up (division by zero).
template <typename Fn>
static OpFoldResult foldIntElementwise(ArrayRef<Attribute> operands,
                                       Type result, Fn fn) {
  bool sameTypes = llvm::all_of(operands, [&](Attribute a) {
    auto d = dyn_cast_or_null<DenseIntElementsAttr>(a);
    return d && d.getType() == result;
  });
  auto type = smallIntType(result, sameTypes ? 1 << 16 : kMaxFoldElements);
  if (!type || operands.empty())
    return {};
  SmallVector<SmallVector<APInt>> values;
  Type element;
  for (Attribute a : operands) {
    auto d = dyn_cast_or_null<DenseIntElementsAttr>(a);
    if (!d || (element && d.getElementType() != element))
      return {};
    element = d.getElementType();
    auto v = broadcastValues(d, type.getShape());
    if (!v)
      return {};
    values.push_back(std::move(*v));
  }
  SmallVector<APInt> out;
  SmallVector<APInt> args(operands.size());
  for (int64_t k = 0; k < type.getNumElements(); ++k) {
    for (size_t i = 0; i < operands.size(); ++i)
      args[i] = values[i][k];
    std::optional<APInt> r = fn(ArrayRef<APInt>(args), element);
    if (!r)
      return {};
    out.push_back(*r);
  }
  if (out.empty() || out.front().getBitWidth() !=
                         type.getElementType().getIntOrFloatBitWidth())
    return {};
  return DenseElementsAttr::get(type, out);
}

OpFoldResult AddOp::fold(FoldAdaptor adaptor) {
  return foldIntElementwise(
      adaptor.getOperands(), getType(),
      [](ArrayRef<APInt> v, Type) -> std::optional<APInt> {
        return v[0] + v[1];
      });
}
OpFoldResult SubOp::fold(FoldAdaptor adaptor) {
  return foldIntElementwise(
      adaptor.getOperands(), getType(),
      [](ArrayRef<APInt> v, Type) -> std::optional<APInt> {
        return v[0] - v[1];
      });
}
OpFoldResult MulOp::fold(FoldAdaptor adaptor) {
  return foldIntElementwise(
      adaptor.getOperands(), getType(),
      [](ArrayRef<APInt> v, Type) -> std::optional<APInt> {
        return v[0] * v[1];
      });
}
OpFoldResult DivOp::fold(FoldAdaptor adaptor) {
  return foldIntElementwise(
      adaptor.getOperands(), getType(),
      [](ArrayRef<APInt> v, Type element) -> std::optional<APInt> {
        if (v[1].isZero())
          return std::nullopt;
        return zeroExtends(element) ? v[0].udiv(v[1]) : v[0].sdiv(v[1]);
      });
}
OpFoldResult EqualOp::fold(FoldAdaptor adaptor) {
  return foldIntElementwise(
      adaptor.getOperands(), getType(),
      [](ArrayRef<APInt> v, Type) -> std::optional<APInt> {
        return APInt(1, v[0] == v[1]);
      });
}

OpFoldResult WhereOp::fold(FoldAdaptor adaptor) {
  auto type = smallIntType(getType());
  auto cond = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getCondition());
  auto x = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getX());
  auto y = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getY());
  if (!type || !cond || !x || !y || !cond.getElementType().isInteger(1) ||
      x.getElementType() != type.getElementType() ||
      y.getElementType() != type.getElementType())
    return {};
  auto c = broadcastValues(cond, type.getShape());
  auto xv = broadcastValues(x, type.getShape());
  auto yv = broadcastValues(y, type.getShape());
  if (!c || !xv || !yv)
    return {};
  SmallVector<APInt> out;
  for (int64_t k = 0; k < type.getNumElements(); ++k)
    out.push_back((*c)[k].isZero() ? (*yv)[k] : (*xv)[k]);
  return DenseElementsAttr::get(type, out);
}

OpFoldResult SizeOp::fold(FoldAdaptor) {
  auto in = dyn_cast<RankedTensorType>(getData().getType());
  auto out = dyn_cast<RankedTensorType>(getType());
  if (!in || !in.hasStaticShape() || !out || out.getRank() != 0 ||
      !out.getElementType().isInteger(64))
    return {};
  return DenseElementsAttr::get(out, APInt(64, in.getNumElements()));
}

/// `in` reinterpreted with the static type `result` (same elements).
static OpFoldResult reshapeConstant(Attribute in, Type result) {
  auto d = dyn_cast_or_null<DenseIntElementsAttr>(in);
  auto type = dyn_cast<RankedTensorType>(result);
  if (!d || !type || !type.hasStaticShape() ||
      type.getElementType() != d.getElementType() ||
      type.getNumElements() != d.getNumElements() ||
      (!d.isSplat() && d.getNumElements() > kMaxFoldElements))
    return {};
  return d.reshape(type);
}

/// Reshape-like ops whose operand already has the result type are no-ops.
static Value sameTypeOperand(Value data, Type result) {
  auto t = dyn_cast<RankedTensorType>(result);
  if (t && t.hasStaticShape() && data.getType() == result)
    return data;
  return {};
}

OpFoldResult ReshapeOp::fold(FoldAdaptor adaptor) {
  if (Value v = sameTypeOperand(getData(), getType()))
    return v;
  return reshapeConstant(adaptor.getData(), getType());
}
OpFoldResult UnsqueezeOp::fold(FoldAdaptor adaptor) {
  if (Value v = sameTypeOperand(getData(), getType()))
    return v;
  return reshapeConstant(adaptor.getData(), getType());
}
OpFoldResult SqueezeOp::fold(FoldAdaptor adaptor) {
  if (Value v = sameTypeOperand(getData(), getType()))
    return v;
  return reshapeConstant(adaptor.getData(), getType());
}

OpFoldResult ConstantOfShapeOp::fold(FoldAdaptor) {
  auto type = dyn_cast<RankedTensorType>(getType());
  if (!type || !type.hasStaticShape() || type.getNumElements() == 0 ||
      type.getNumElements() > kMaxFoldElements)
    return {};
  Attribute element;
  if (auto value = getValueAttr()) {
    auto d = dyn_cast<DenseElementsAttr>(value);
    if (!d || d.getNumElements() != 1 ||
        d.getElementType() != type.getElementType())
      return {};
    element = *d.getValues<Attribute>().begin();
  } else {
    if (!type.getElementType().isF32())
      return {};
    element = FloatAttr::get(type.getElementType(), 0.0);
  }
  return DenseElementsAttr::get(type, ArrayRef<Attribute>(element));
}

OpFoldResult GatherOp::fold(FoldAdaptor adaptor) {
  auto type = smallIntType(getType());
  auto data = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getData());
  auto indices = toInts(adaptor.getIndices());
  if (!type || !data || !indices ||
      data.getElementType() != type.getElementType() ||
      data.getNumElements() > (1 << 16))
    return {};
  ArrayRef<int64_t> shape = data.getType().getShape();
  int64_t rank = shape.size(), axis = getAxis();
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank)
    return {};
  int64_t outer = 1, inner = 1, n = shape[axis];
  for (int64_t i = 0; i < axis; ++i)
    outer *= shape[i];
  for (int64_t i = axis + 1; i < rank; ++i)
    inner *= shape[i];
  SmallVector<APInt> src(data.getValues<APInt>());
  SmallVector<APInt> out;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t idx : *indices) {
      if (idx < 0)
        idx += n;
      if (idx < 0 || idx >= n)
        return {};
      for (int64_t j = 0; j < inner; ++j)
        out.push_back(src[(o * n + idx) * inner + j]);
    }
  }
  if ((int64_t)out.size() != type.getNumElements())
    return {};
  return DenseElementsAttr::get(type, out);
}

OpFoldResult ConcatOp::fold(FoldAdaptor adaptor) {
  auto type = smallIntType(getType());
  if (!type || type.getRank() == 0)
    return {};
  int64_t rank = type.getRank(), axis = getAxis();
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank)
    return {};
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i)
    outer *= type.getDimSize(i);
  for (int64_t i = axis + 1; i < rank; ++i)
    inner *= type.getDimSize(i);
  SmallVector<SmallVector<APInt>> inputs;
  SmallVector<int64_t> chunks;
  for (Attribute a : adaptor.getInputs()) {
    auto d = dyn_cast_or_null<DenseIntElementsAttr>(a);
    if (!d || d.getElementType() != type.getElementType() ||
        d.getType().getRank() != rank)
      return {};
    inputs.emplace_back(d.getValues<APInt>());
    chunks.push_back(d.getType().getDimSize(axis) * inner);
  }
  SmallVector<APInt> out;
  for (int64_t o = 0; o < outer; ++o)
    for (size_t i = 0; i < inputs.size(); ++i)
      for (int64_t t = 0; t < chunks[i]; ++t)
        out.push_back(inputs[i][o * chunks[i] + t]);
  if ((int64_t)out.size() != type.getNumElements())
    return {};
  return DenseElementsAttr::get(type, out);
}

OpFoldResult SliceOp::fold(FoldAdaptor adaptor) {
  auto type = smallIntType(getType());
  auto data = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getData());
  if (!type || !data || data.getType().getRank() != 1 || type.getRank() != 1 ||
      data.getElementType() != type.getElementType())
    return {};
  auto starts = toInts(adaptor.getStarts()), ends = toInts(adaptor.getEnds());
  if (!starts || !ends || starts->size() != 1 || ends->size() != 1)
    return {};
  if (!isa<NoneType>(getAxes().getType())) {
    auto axes = toInts(adaptor.getAxes());
    if (!axes || axes->size() != 1 || ((*axes)[0] != 0 && (*axes)[0] != -1))
      return {};
  }
  int64_t step = 1;
  if (!isa<NoneType>(getSteps().getType())) {
    auto steps = toInts(adaptor.getSteps());
    if (!steps || steps->size() != 1 || (*steps)[0] == 0)
      return {};
    step = (*steps)[0];
  }
  int64_t dim = data.getNumElements();
  int64_t start = (*starts)[0], end = (*ends)[0];
  int64_t count = slicedLength(dim, start, end, step);
  if (count != type.getDimSize(0))
    return {};
  if (start < 0)
    start += dim;
  start = step > 0 ? std::clamp<int64_t>(start, 0, dim)
                   : std::clamp<int64_t>(start, 0, dim - 1);
  SmallVector<APInt> src(data.getValues<APInt>());
  SmallVector<APInt> out;
  for (int64_t k = 0; k < count; ++k)
    out.push_back(src[start + k * step]);
  return DenseElementsAttr::get(type, out);
}

OpFoldResult IdentityOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType())
    return getInput();
  return {};
}

OpFoldResult ShapeOp::fold(FoldAdaptor) {
  auto in = dyn_cast<RankedTensorType>(getData().getType());
  auto out = dyn_cast<RankedTensorType>(getType());
  if (!in || !out || !in.hasStaticShape() || !out.hasStaticShape())
    return {};
  int64_t rank = in.getRank();
  int64_t start = getStart(), end = getEnd() ? *getEnd() : rank;
  if (start < 0)
    start += rank;
  if (end < 0)
    end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  SmallVector<int64_t> dims;
  for (int64_t i = start; i < end; ++i)
    dims.push_back(in.getDimSize(i));
  if ((int64_t)dims.size() != out.getDimSize(0))
    return {};
  return DenseIntElementsAttr::get(out, dims);
}

OpFoldResult CastOp::fold(FoldAdaptor adaptor) {
  auto out = dyn_cast<RankedTensorType>(getType());
  auto in = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getInput());
  if (getInput().getType() == getType())
    return getInput();
  if (!in || !out || !isa<IntegerType>(out.getElementType()) ||
      in.getType().getShape() != out.getShape())
    return {};
  unsigned width = out.getElementType().getIntOrFloatBitWidth();
  bool isUnsigned = in.getType().getElementType().isUnsignedInteger();
  SmallVector<APInt> values;
  for (const APInt &v : in.getValues<APInt>())
    values.push_back(isUnsigned ? v.zextOrTrunc(width) : v.sextOrTrunc(width));
  return DenseIntElementsAttr::get(out, values);
}

OpFoldResult ConstantOp::fold(FoldAdaptor) {
  if (auto value = getValueAttr())
    return value;
  return {};
}

OpFoldResult NegOp::fold(FoldAdaptor adaptor) {
  auto type = smallIntType(getType(), 1 << 16);
  auto in = dyn_cast_or_null<DenseIntElementsAttr>(adaptor.getX());
  if (!type || !in || in.getType() != type ||
      zeroExtends(type.getElementType()))
    return {};
  SmallVector<APInt> out;
  for (const APInt &v : in.getValues<APInt>())
    out.push_back(-v);
  return DenseElementsAttr::get(type, out);
}
