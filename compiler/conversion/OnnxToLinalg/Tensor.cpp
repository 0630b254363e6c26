//===- Tensor.cpp - onnx Tensor ops -> linalg ------------------------------------===//
//
// Data-movement ops: reshapes, transposes, slicing, padding, tiling and the
// small index-generating ops.
//
// Shape-like inputs (Reshape's shape, Slice's starts, Pad's pads, ...) are
// usually runtime data in ONNX models even though the result shape is static,
// so the structure of every lowering is taken from the static result type and
// such inputs are only read as scalars (tensor.extract) where their values are
// needed inside the computation.
//
// Ops whose source index is not an affine function of the result index
// (Slice with runtime starts/steps, Tile, Pad, DepthToSpace, ...) become a
// linalg.generic over the result that reads the source with tensor.extract at
// computed (and clamped, so never out of bounds) indices.
//
//===----------------------------------------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"

#include <numeric>

using namespace mlir;

namespace kiln {
namespace {

using IndexFn = std::function<Value(OpBuilder &, Location, ValueRange ivs,
                                    ValueRange inputScalars)>;

RankedTensorType rankedOf(Value v) {
  return v ? dyn_cast<RankedTensorType>(v.getType()) : RankedTensorType();
}

Value cidx(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

std::optional<int64_t> optAttrInt(Operation *op, StringRef name) {
  if (auto a = op->getAttrOfType<IntegerAttr>(name))
    return a.getInt();
  return std::nullopt;
}

/// Size of dimension `d` of `t` as an index value.
Value dimOf(OpBuilder &b, Location loc, Value t, int64_t d) {
  auto type = cast<RankedTensorType>(t.getType());
  if (!type.isDynamicDim(d))
    return cidx(b, loc, type.getDimSize(d));
  return tensor::DimOp::create(b, loc, t, d);
}

/// Element `pos` of a rank-0 or rank-1 integer tensor, as an index.
Value readIndex(OpBuilder &b, Location loc, Value t, int64_t pos,
                bool isUnsigned) {
  auto type = cast<RankedTensorType>(t.getType());
  SmallVector<Value> idx;
  for (int64_t i = 0; i < type.getRank(); ++i)
    idx.push_back(cidx(b, loc, i == type.getRank() - 1 ? pos : 0));
  Value v = tensor::ExtractOp::create(b, loc, t, idx);
  if (v.getType().isIndex())
    return v;
  if (isUnsigned || v.getType().isInteger(1))
    return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), v);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

/// The first element of a (scalar-like) tensor.
Value readScalar(OpBuilder &b, Location loc, Value t) {
  auto type = cast<RankedTensorType>(t.getType());
  SmallVector<Value> idx(type.getRank(), cidx(b, loc, 0));
  return tensor::ExtractOp::create(b, loc, t, idx);
}

Value clampIndex(OpBuilder &b, Location loc, Value v, Value lo, Value hi) {
  v = arith::MaxSIOp::create(b, loc, v, lo);
  return arith::MinSIOp::create(b, loc, v, hi);
}

/// A linalg.generic over a new tensor of (static) `type`; `inputs` have the
/// result's shape and are read with identity maps. `fn` gets the loop indices
/// and the input scalars and returns the result element.
Value buildIndexGeneric(OpBuilder &b, Location loc, RankedTensorType type,
                        ValueRange inputs, const IndexFn &fn) {
  MLIRContext *ctx = b.getContext();
  int64_t rank = type.getRank();
  Value init = tensor::EmptyOp::create(b, loc, type.getShape(),
                                       type.getElementType(), ValueRange{});
  SmallVector<AffineMap> maps(inputs.size() + 1,
                              AffineMap::getMultiDimIdentityMap(rank, ctx));
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{type}, inputs, ValueRange{init}, maps, iterators,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        SmallVector<Value> ivs;
        for (int64_t i = 0; i < rank; ++i)
          ivs.push_back(linalg::IndexOp::create(nb, nloc, i));
        Value r = fn(nb, nloc, ivs, args.drop_back());
        linalg::YieldOp::create(nb, nloc, r);
      });
  return generic.getResult(0);
}

/// A zero-filled tensor of static `type` (a real kernel result, unlike a bare
/// tensor.empty, which cannot be returned from the host schedule).
Value zeroFilled(OpBuilder &b, Location loc, RankedTensorType type) {
  Value zero = scalarConstant(b, loc, type.getElementType(), 0);
  return linalg::FillOp::create(b, loc, zero, emptyLike(b, loc, type))
      ->getResult(0);
}

/// Reads `src` at `idx`, each index clamped into [0, dim - 1].
Value extractClamped(OpBuilder &b, Location loc, Value src,
                     ArrayRef<Value> idx) {
  auto type = cast<RankedTensorType>(src.getType());
  SmallVector<Value> clamped;
  Value zero = cidx(b, loc, 0);
  for (int64_t d = 0; d < type.getRank(); ++d) {
    Value hi = arith::SubIOp::create(b, loc, dimOf(b, loc, src, d),
                                     cidx(b, loc, 1));
    clamped.push_back(clampIndex(b, loc, idx[d], zero, hi));
  }
  return tensor::ExtractOp::create(b, loc, src, clamped);
}

/// Reshapes between static shapes with the same number of elements
/// (collapse to 1-D, expand to the result); null when not possible.
Value reshapeStatic(OpBuilder &b, Location loc, Value in,
                    RankedTensorType to) {
  auto from = cast<RankedTensorType>(in.getType());
  if (from == to)
    return in;
  if (from.getElementType() != to.getElementType() || !from.hasStaticShape() ||
      !to.hasStaticShape() || from.getNumElements() != to.getNumElements())
    return {};
  auto flatType =
      RankedTensorType::get({from.getNumElements()}, from.getElementType());
  Value flat = in;
  if (from.getRank() == 0) {
    flat = tensor::ExpandShapeOp::create(b, loc, flatType, in,
                                         ArrayRef<ReassociationIndices>{});
  } else if (from.getRank() > 1) {
    ReassociationIndices all(from.getRank());
    std::iota(all.begin(), all.end(), 0);
    flat = tensor::CollapseShapeOp::create(b, loc, flatType, in,
                                           ArrayRef<ReassociationIndices>{all});
  }
  if (to.getRank() == 1)
    return flat;
  if (to.getRank() == 0)
    return tensor::CollapseShapeOp::create(b, loc, to, flat,
                                           ArrayRef<ReassociationIndices>{});
  ReassociationIndices all(to.getRank());
  std::iota(all.begin(), all.end(), 0);
  return tensor::ExpandShapeOp::create(b, loc, to, flat,
                                       ArrayRef<ReassociationIndices>{all});
}

//===----------------------------------------------------------------------===//
// Reshape, Flatten, Squeeze, Unsqueeze: all become a reshape to the result.
//===----------------------------------------------------------------------===//

template <typename OpTy>
struct ReshapeLike : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = resultType(*this->getTypeConverter(), op);
    Value in = adaptor.getOperands()[0];
    if (!type || !rankedOf(in))
      return rewriter.notifyMatchFailure(op, "unranked operand or result");
    if (std::is_same_v<OpTy, onnx::FlattenOp> && !type.hasStaticShape()) {
      // Flatten's result shape follows from the input shape alone.
      auto inType = rankedOf(in);
      int64_t r = inType.getRank();
      std::optional<int64_t> axis = intAttrOr(op, "axis", 1);
      if (*axis < 0)
        *axis += r;
      if (*axis < 0 || *axis > r)
        axis = std::nullopt;
      if (!axis || !inType.hasStaticShape())
        return rewriter.notifyMatchFailure(op, "dynamic flatten");
      int64_t outer = 1, inner = 1;
      for (int64_t i = 0; i < inType.getRank(); ++i)
        (i < *axis ? outer : inner) *= inType.getDimSize(i);
      type = RankedTensorType::get({outer, inner}, type.getElementType());
    }
    Value r = reshapeStatic(rewriter, op.getLoc(), in, type);
    if (!r)
      return rewriter.notifyMatchFailure(
          op, "needs static shapes with equal element counts");
    auto declared = resultType(*this->getTypeConverter(), op);
    if (r.getType() != declared)
      r = tensor::CastOp::create(rewriter, op.getLoc(), declared, r);
    rewriter.replaceOp(op, r);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Transpose
//===----------------------------------------------------------------------===//

struct TransposeLowering : OpConversionPattern<onnx::TransposeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::TransposeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value in = adaptor.getOperands()[0];
    auto inType = rankedOf(in);
    auto type = resultType(*getTypeConverter(), op);
    if (!inType || !type || type.getRank() != inType.getRank())
      return rewriter.notifyMatchFailure(op, "unranked or rank mismatch");
    int64_t rank = inType.getRank();
    SmallVector<int64_t> perm = intsAttr(op, "perm");
    if (perm.empty() && rank > 0) {
      perm.resize(rank);
      for (int64_t i = 0; i < rank; ++i)
        perm[i] = rank - 1 - i;
    }
    if ((int64_t)perm.size() != rank)
      return rewriter.notifyMatchFailure(op, "perm length != rank");
    SmallVector<bool> seen(rank, false);
    for (int64_t &p : perm) {
      auto a = normalizeAxis(p, rank);
      if (!a || seen[*a])
        return rewriter.notifyMatchFailure(op, "invalid perm");
      p = *a;
      seen[p] = true;
    }
    SmallVector<int64_t> shape;
    SmallVector<Value> dyn;
    for (int64_t i = 0; i < rank; ++i) {
      shape.push_back(inType.getDimSize(perm[i]));
      if (inType.isDynamicDim(perm[i]))
        dyn.push_back(tensor::DimOp::create(rewriter, loc, in, perm[i]));
    }
    auto outType = RankedTensorType::get(shape, inType.getElementType());
    if (failed(verifyCompatibleShape(outType.getShape(), type.getShape())))
      return rewriter.notifyMatchFailure(op, "result shape mismatch");
    Value init = tensor::EmptyOp::create(rewriter, loc, shape,
                                         inType.getElementType(), dyn);
    Value r = linalg::TransposeOp::create(rewriter, loc, in, init, perm)
                  ->getResult(0);
    if (r.getType() != type)
      r = tensor::CastOp::create(rewriter, loc, type, r);
    rewriter.replaceOp(op, r);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Concat: a chain of insert_slices into the result.
//===----------------------------------------------------------------------===//

struct ConcatLowering : OpConversionPattern<onnx::ConcatOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ConcatOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = resultType(*getTypeConverter(), op);
    if (!type || !type.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs a static result shape");
    int64_t rank = type.getRank();
    auto axis = normalizeAxis(intAttrOr(op, "axis", 0), rank);
    if (!axis)
      return rewriter.notifyMatchFailure(op, "invalid axis");
    int64_t offset = 0;
    for (Value in : adaptor.getOperands()) {
      auto t = rankedOf(in);
      if (!t || !t.hasStaticShape() || t.getRank() != rank ||
          t.getElementType() != type.getElementType())
        return rewriter.notifyMatchFailure(op, "needs static operand shapes");
      for (int64_t d = 0; d < rank; ++d)
        if (d != *axis && t.getDimSize(d) != type.getDimSize(d))
          return rewriter.notifyMatchFailure(op, "operand shape mismatch");
      offset += t.getDimSize(*axis);
    }
    if (offset != type.getDimSize(*axis))
      return rewriter.notifyMatchFailure(op, "sizes do not add up");
    Value acc = tensor::EmptyOp::create(rewriter, loc, type.getShape(),
                                        type.getElementType(), ValueRange{});
    offset = 0;
    for (Value in : adaptor.getOperands()) {
      auto t = cast<RankedTensorType>(in.getType());
      if (t.getDimSize(*axis) == 0)
        continue;
      SmallVector<OpFoldResult> offsets(rank, rewriter.getIndexAttr(0));
      offsets[*axis] = rewriter.getIndexAttr(offset);
      SmallVector<OpFoldResult> sizes, strides(rank, rewriter.getIndexAttr(1));
      for (int64_t s : t.getShape())
        sizes.push_back(rewriter.getIndexAttr(s));
      acc = tensor::InsertSliceOp::create(rewriter, loc, in, acc, offsets,
                                          sizes, strides);
      offset += t.getDimSize(*axis);
    }
    rewriter.replaceOp(op, acc);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Split: one extract_slice per output.
//===----------------------------------------------------------------------===//

struct SplitLowering : OpConversionPattern<onnx::SplitOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::SplitOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value in = adaptor.getOperands()[0];
    auto inType = rankedOf(in);
    if (!inType || !inType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs a static input shape");
    int64_t rank = inType.getRank();
    auto axis = normalizeAxis(intAttrOr(op, "axis", 0), rank);
    if (!axis)
      return rewriter.notifyMatchFailure(op, "invalid axis");
    unsigned n = op->getNumResults();
    if (n == 0)
      return rewriter.notifyMatchFailure(op, "no outputs");
    int64_t total = inType.getDimSize(*axis);
    std::optional<SmallVector<int64_t>> split;
    if (op->getNumOperands() > 1 && !isNone(op->getOperand(1)))
      split = constantInts(op->getOperand(1));
    SmallVector<int64_t> sizes;
    for (unsigned i = 0; i < n; ++i) {
      auto t = resultType(*getTypeConverter(), op, i);
      if (!t || t.getRank() != rank)
        return rewriter.notifyMatchFailure(op, "unranked result");
      if (!t.isDynamicDim(*axis))
        sizes.push_back(t.getDimSize(*axis));
      else if (split && split->size() == n)
        sizes.push_back((*split)[i]);
      else if (!split && total % n == 0)
        sizes.push_back(total / n);
      else
        return rewriter.notifyMatchFailure(op, "cannot tell the split sizes");
    }
    int64_t sum = 0;
    for (int64_t s : sizes) {
      if (s < 0)
        return rewriter.notifyMatchFailure(op, "negative split size");
      sum += s;
    }
    if (sum != total)
      return rewriter.notifyMatchFailure(op, "split sizes do not add up");
    SmallVector<Value> results;
    int64_t offset = 0;
    for (unsigned i = 0; i < n; ++i) {
      SmallVector<int64_t> shape(inType.getShape());
      shape[*axis] = sizes[i];
      auto sliceType = RankedTensorType::get(shape, inType.getElementType());
      if (sliceType.getNumElements() == 0) {
        // extract_slice rejects offsets at the end of an empty dimension.
        Value r = zeroFilled(rewriter, loc, sliceType);
        auto t = resultType(*getTypeConverter(), op, i);
        if (r.getType() != t)
          r = tensor::CastOp::create(rewriter, loc, t, r);
        results.push_back(r);
        continue;
      }
      SmallVector<OpFoldResult> offsets(rank, rewriter.getIndexAttr(0));
      offsets[*axis] = rewriter.getIndexAttr(offset);
      SmallVector<OpFoldResult> ofrSizes, strides(rank, rewriter.getIndexAttr(1));
      for (int64_t s : shape)
        ofrSizes.push_back(rewriter.getIndexAttr(s));
      Value r = tensor::ExtractSliceOp::create(rewriter, loc, sliceType, in,
                                               offsets, ofrSizes, strides);
      auto t = resultType(*getTypeConverter(), op, i);
      if (r.getType() != t) {
        if (failed(verifyCompatibleShape(sliceType.getShape(), t.getShape())))
          return rewriter.notifyMatchFailure(op, "result shape mismatch");
        r = tensor::CastOp::create(rewriter, loc, t, r);
      }
      results.push_back(r);
      offset += sizes[i];
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Slice: runtime starts/steps (any sign), static result shape.
//===----------------------------------------------------------------------===//

struct SliceLowering : OpConversionPattern<onnx::SliceOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::SliceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    ValueRange operands = adaptor.getOperands();
    Value data = operands[0];
    Value starts = operands[1];
    Value axes = operands.size() > 3 ? operands[3] : Value();
    Value steps = operands.size() > 4 ? operands[4] : Value();
    auto dataType = rankedOf(data);
    auto type = resultType(*getTypeConverter(), op);
    auto startsType = rankedOf(starts);
    if (!dataType || !type || !type.hasStaticShape() ||
        type.getRank() != dataType.getRank())
      return rewriter.notifyMatchFailure(op, "needs a static result shape");
    if (!startsType || startsType.getRank() != 1 ||
        startsType.isDynamicDim(0))
      return rewriter.notifyMatchFailure(op, "starts must be a static 1-D tensor");
    int64_t rank = dataType.getRank();
    int64_t n = startsType.getDimSize(0);
    if (n > rank)
      return rewriter.notifyMatchFailure(op, "more starts than dimensions");
    bool hasAxes = !isNone(axes), hasSteps = !isNone(steps);
    if ((hasAxes && (!rankedOf(axes) || rankedOf(axes).getRank() != 1 ||
                     rankedOf(axes).getDimSize(0) != n)) ||
        (hasSteps && (!rankedOf(steps) || rankedOf(steps).getRank() != 1 ||
                      rankedOf(steps).getDimSize(0) != n)))
      return rewriter.notifyMatchFailure(op, "axes/steps length mismatch");
    // Static axes when known.
    SmallVector<std::optional<int64_t>> staticAxes(n);
    if (!hasAxes) {
      for (int64_t i = 0; i < n; ++i)
        staticAxes[i] = i;
    } else if (auto c = constantInts(op->getOperand(3))) {
      for (int64_t i = 0; i < n; ++i) {
        staticAxes[i] = normalizeAxis((*c)[i], rank);
        if (!staticAxes[i])
          return rewriter.notifyMatchFailure(op, "invalid axis");
      }
    }
    bool startsU = isUnsignedOnnx(op->getOperand(1));
    Value zero = cidx(rewriter, loc, 0), one = cidx(rewriter, loc, 1);
    SmallVector<Value> dimStart(rank, zero), dimStep(rank, one);
    for (int64_t i = 0; i < n; ++i) {
      Value s = readIndex(rewriter, loc, starts, i, startsU);
      Value st = hasSteps ? readIndex(rewriter, loc, steps, i,
                                      isUnsignedOnnx(op->getOperand(4)))
                          : one;
      Value axisV;
      if (!staticAxes[i]) {
        axisV = readIndex(rewriter, loc, axes, i, false);
        Value neg = arith::CmpIOp::create(rewriter, loc,
                                          arith::CmpIPredicate::slt, axisV, zero);
        axisV = arith::SelectOp::create(
            rewriter, loc, neg,
            arith::AddIOp::create(rewriter, loc, axisV, cidx(rewriter, loc, rank)),
            axisV);
      }
      Value posStep = arith::CmpIOp::create(rewriter, loc,
                                            arith::CmpIPredicate::sgt, st, zero);
      Value sNeg = arith::CmpIOp::create(rewriter, loc,
                                         arith::CmpIPredicate::slt, s, zero);
      for (int64_t d = 0; d < rank; ++d) {
        if (staticAxes[i] && *staticAxes[i] != d)
          continue;
        Value dim = dimOf(rewriter, loc, data, d);
        Value sn = arith::SelectOp::create(
            rewriter, loc, sNeg, arith::AddIOp::create(rewriter, loc, s, dim), s);
        Value hi = arith::SelectOp::create(
            rewriter, loc, posStep, dim,
            arith::SubIOp::create(rewriter, loc, dim, one));
        Value sc = clampIndex(rewriter, loc, sn, zero, hi);
        if (staticAxes[i]) {
          dimStart[d] = sc;
          dimStep[d] = st;
        } else {
          Value is = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq,
                                           axisV, cidx(rewriter, loc, d));
          dimStart[d] = arith::SelectOp::create(rewriter, loc, is, sc, dimStart[d]);
          dimStep[d] = arith::SelectOp::create(rewriter, loc, is, st, dimStep[d]);
        }
      }
    }
    Value r = buildIndexGeneric(
        rewriter, loc, type, {},
        [&](OpBuilder &b, Location l, ValueRange ivs, ValueRange) -> Value {
          SmallVector<Value> idx;
          for (int64_t d = 0; d < rank; ++d)
            idx.push_back(arith::AddIOp::create(
                b, l, dimStart[d], arith::MulIOp::create(b, l, ivs[d], dimStep[d])));
          return extractClamped(b, l, data, idx);
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Expand, Tile
//===----------------------------------------------------------------------===//

struct ExpandLowering : OpConversionPattern<onnx::ExpandOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ExpandOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value in = adaptor.getOperands()[0];
    auto inType = rankedOf(in);
    auto type = resultType(*getTypeConverter(), op);
    if (!inType || !type || !type.hasStaticShape() || !inType.hasStaticShape() ||
        inType.getRank() > type.getRank())
      return rewriter.notifyMatchFailure(op, "needs static shapes");
    int64_t off = type.getRank() - inType.getRank();
    for (int64_t i = 0; i < inType.getRank(); ++i)
      if (inType.getDimSize(i) != 1 &&
          inType.getDimSize(i) != type.getDimSize(off + i))
        return rewriter.notifyMatchFailure(op, "not a broadcast");
    rewriter.replaceOp(op, broadcastTo(rewriter, op.getLoc(), in, type));
    return success();
  }
};

struct TileLowering : OpConversionPattern<onnx::TileOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::TileOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value in = adaptor.getOperands()[0];
    auto inType = rankedOf(in);
    auto type = resultType(*getTypeConverter(), op);
    if (!inType || !type || !type.hasStaticShape() || !inType.hasStaticShape() ||
        inType.getRank() != type.getRank())
      return rewriter.notifyMatchFailure(op, "needs static shapes");
    for (int64_t i = 0; i < type.getRank(); ++i) {
      int64_t a = inType.getDimSize(i), r = type.getDimSize(i);
      if (a == 0 ? r != 0 : r % a != 0)
        return rewriter.notifyMatchFailure(op, "result is not a tiling");
    }
    if (type.getNumElements() == 0) {
      rewriter.replaceOp(op, zeroFilled(rewriter, op.getLoc(), type));
      return success();
    }
    Value r = buildIndexGeneric(
        rewriter, op.getLoc(), type, {},
        [&](OpBuilder &b, Location l, ValueRange ivs, ValueRange) -> Value {
          SmallVector<Value> idx;
          for (int64_t d = 0; d < type.getRank(); ++d)
            idx.push_back(inType.getDimSize(d) == type.getDimSize(d)
                              ? ivs[d]
                              : (Value)arith::RemUIOp::create(
                                    b, l, ivs[d], cidx(b, l, inType.getDimSize(d))));
          return tensor::ExtractOp::create(b, l, in, idx);
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Pad (constant, reflect, edge; runtime pads, static result shape)
//===----------------------------------------------------------------------===//

struct PadLowering : OpConversionPattern<onnx::PadOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::PadOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    ValueRange operands = adaptor.getOperands();
    Value data = operands[0], pads = operands[1];
    Value cv = operands.size() > 2 ? operands[2] : Value();
    auto dataType = rankedOf(data);
    auto type = resultType(*getTypeConverter(), op);
    if (!dataType || !type || !type.hasStaticShape() ||
        !dataType.hasStaticShape() || type.getRank() != dataType.getRank())
      return rewriter.notifyMatchFailure(op, "needs static shapes");
    if (op->getNumOperands() > 3)
      return rewriter.notifyMatchFailure(op, "pad axes are not supported");
    StringRef mode = "constant";
    if (auto m = op->getAttrOfType<StringAttr>("mode"))
      mode = m.getValue();
    else if (auto m = op->getAttrOfType<StringAttr>("mode_"))
      mode = m.getValue();
    if (mode != "constant" && mode != "reflect" && mode != "edge")
      return rewriter.notifyMatchFailure(op, "unsupported pad mode");
    int64_t rank = dataType.getRank();
    auto padsType = rankedOf(pads);
    if (!padsType || padsType.getRank() != 1 ||
        padsType.getDimSize(0) != 2 * rank)
      return rewriter.notifyMatchFailure(op, "pads must have 2 * rank entries");
    Type elem = type.getElementType();
    bool hasCv = !isNone(cv);
    if (hasCv && (!rankedOf(cv) || rankedOf(cv).getNumElements() != 1 ||
                  rankedOf(cv).getElementType() != elem))
      return rewriter.notifyMatchFailure(op, "constant_value must be a scalar");
    Value padValue = hasCv ? readScalar(rewriter, loc, cv)
                           : scalarConstant(rewriter, loc, elem, 0);
    if (dataType.getNumElements() == 0) {
      if (mode != "constant")
        return rewriter.notifyMatchFailure(op, "cannot reflect an empty tensor");
      Value init = emptyLike(rewriter, loc, type);
      rewriter.replaceOp(op, linalg::FillOp::create(rewriter, loc, padValue, init)
                                 ->getResult(0));
      return success();
    }
    // Static pads when they are constants; otherwise runtime reads.
    auto constPads = constantInts(op->getOperand(1));
    SmallVector<Value> begin;
    for (int64_t d = 0; d < rank; ++d)
      begin.push_back(constPads ? cidx(rewriter, loc, (*constPads)[d])
                                : readIndex(rewriter, loc, pads, d,
                                            isUnsignedOnnx(op->getOperand(1))));
    Value r = buildIndexGeneric(
        rewriter, loc, type, {},
        [&](OpBuilder &b, Location l, ValueRange ivs, ValueRange) -> Value {
          SmallVector<Value> idx;
          Value inside;
          Value zero = cidx(b, l, 0);
          for (int64_t d = 0; d < rank; ++d) {
            Value dim = cidx(b, l, dataType.getDimSize(d));
            Value i = arith::SubIOp::create(b, l, ivs[d], begin[d]);
            if (mode == "constant") {
              Value ge = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, i, zero);
              Value lt = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, dim);
              Value in = arith::AndIOp::create(b, l, ge, lt);
              inside = inside ? arith::AndIOp::create(b, l, inside, in) : in;
            } else if (mode == "reflect") {
              Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, zero);
              i = arith::SelectOp::create(b, l, neg,
                                          arith::SubIOp::create(b, l, zero, i), i);
              Value last = cidx(b, l, dataType.getDimSize(d) - 1);
              Value over = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sgt, i, last);
              Value mirrored = arith::SubIOp::create(
                  b, l, cidx(b, l, 2 * (dataType.getDimSize(d) - 1)), i);
              i = arith::SelectOp::create(b, l, over, mirrored, i);
            }
            idx.push_back(i);
          }
          Value v = extractClamped(b, l, data, idx);
          if (inside)
            v = arith::SelectOp::create(b, l, inside, v, padValue);
          return v;
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// ConstantOfShape, Shape, Size, Range, EyeLike
//===----------------------------------------------------------------------===//

struct ConstantOfShapeLowering : OpConversionPattern<onnx::ConstantOfShapeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ConstantOfShapeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = resultType(*getTypeConverter(), op);
    if (!type || !type.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs a static result shape");
    Type elem = type.getElementType();
    TypedAttr value;
    if (auto attr = op->getAttrOfType<ElementsAttr>("value")) {
      auto dense = dyn_cast<DenseElementsAttr>(attr);
      if (!dense || dense.getNumElements() != 1)
        return rewriter.notifyMatchFailure(op, "value must be a 1-element tensor");
      if (isa<FloatType>(elem) && isa<FloatType>(dense.getElementType()) &&
          dense.getElementType() == elem)
        value = FloatAttr::get(elem, *dense.getValues<APFloat>().begin());
      else if (isa<IntegerType>(elem) && isa<IntegerType>(dense.getElementType()) &&
               dense.getElementType().getIntOrFloatBitWidth() ==
                   elem.getIntOrFloatBitWidth())
        value = IntegerAttr::get(elem, *dense.getValues<APInt>().begin());
      else
        return rewriter.notifyMatchFailure(op, "value type differs from result");
    } else {
      if (!isa<FloatType>(elem) && !isa<IntegerType>(elem))
        return rewriter.notifyMatchFailure(op, "unsupported element type");
      value = cast<TypedAttr>(rewriter.getZeroAttr(elem));
    }
    Value scalar = arith::ConstantOp::create(rewriter, loc, value);
    Value init = emptyLike(rewriter, loc, type);
    rewriter.replaceOp(
        op, linalg::FillOp::create(rewriter, loc, scalar, init)->getResult(0));
    return success();
  }
};

struct ShapeLowering : OpConversionPattern<onnx::ShapeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ShapeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value in = adaptor.getOperands()[0];
    auto inType = rankedOf(in);
    auto type = resultType(*getTypeConverter(), op);
    if (!inType || !type || type.getRank() != 1 ||
        !type.getElementType().isInteger(64))
      return rewriter.notifyMatchFailure(op, "unranked or bad result type");
    int64_t rank = inType.getRank();
    auto clampDim = [&](int64_t v) {
      if (v < 0)
        v += rank;
      return std::clamp<int64_t>(v, 0, rank);
    };
    int64_t start = clampDim(intAttrOr(op, "start", 0));
    int64_t end = rank;
    if (auto e = optAttrInt(op, "end"))
      end = clampDim(*e);
    int64_t len = std::max<int64_t>(0, end - start);
    if (!type.isDynamicDim(0) && type.getDimSize(0) != len)
      return rewriter.notifyMatchFailure(op, "result length mismatch");
    auto outType = RankedTensorType::get({len}, type.getElementType());
    Value r;
    if (llvm::all_of(llvm::seq(start, start + len),
                     [&](int64_t d) { return !inType.isDynamicDim(d); })) {
      SmallVector<int64_t> dims;
      for (int64_t d = start; d < start + len; ++d)
        dims.push_back(inType.getDimSize(d));
      r = arith::ConstantOp::create(
          rewriter, loc, DenseIntElementsAttr::get(outType, ArrayRef(dims)));
    } else {
      SmallVector<Value> elems;
      for (int64_t d = start; d < start + len; ++d)
        elems.push_back(arith::IndexCastOp::create(
            rewriter, loc, rewriter.getI64Type(), dimOf(rewriter, loc, in, d)));
      r = tensor::FromElementsOp::create(rewriter, loc, outType, elems);
    }
    if (r.getType() != type)
      r = tensor::CastOp::create(rewriter, loc, type, r);
    rewriter.replaceOp(op, r);
    return success();
  }
};

struct SizeLowering : OpConversionPattern<onnx::SizeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::SizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value in = adaptor.getOperands()[0];
    auto inType = rankedOf(in);
    auto type = resultType(*getTypeConverter(), op);
    if (!inType || !type || type.getRank() != 0 ||
        !type.getElementType().isInteger(64))
      return rewriter.notifyMatchFailure(op, "unranked or bad result type");
    Value r;
    if (inType.hasStaticShape()) {
      r = arith::ConstantOp::create(
          rewriter, loc,
          DenseIntElementsAttr::get(type, ArrayRef<int64_t>{inType.getNumElements()}));
    } else {
      Value n = cidx(rewriter, loc, 1);
      for (int64_t d = 0; d < inType.getRank(); ++d)
        n = arith::MulIOp::create(rewriter, loc, n, dimOf(rewriter, loc, in, d));
      n = arith::IndexCastOp::create(rewriter, loc, rewriter.getI64Type(), n);
      r = tensor::FromElementsOp::create(rewriter, loc, type, ValueRange{n});
    }
    rewriter.replaceOp(op, r);
    return success();
  }
};

struct RangeLowering : OpConversionPattern<onnx::RangeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::RangeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value start = adaptor.getOperands()[0], delta = adaptor.getOperands()[2];
    auto type = resultType(*getTypeConverter(), op);
    if (!type || type.getRank() != 1 || !type.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs a static 1-D result");
    Type elem = type.getElementType();
    for (Value v : {start, delta})
      if (!rankedOf(v) || rankedOf(v).getNumElements() != 1 ||
          rankedOf(v).getElementType() != elem)
        return rewriter.notifyMatchFailure(op, "start/delta must be scalars");
    if (!isa<FloatType, IntegerType>(elem))
      return rewriter.notifyMatchFailure(op, "unsupported element type");
    Value s = readScalar(rewriter, loc, start);
    Value d = readScalar(rewriter, loc, delta);
    Value r = buildIndexGeneric(
        rewriter, loc, type, {},
        [&](OpBuilder &b, Location l, ValueRange ivs, ValueRange) -> Value {
          Value i = arith::IndexCastOp::create(b, l, b.getI64Type(), ivs[0]);
          if (auto ft = dyn_cast<FloatType>(elem)) {
            // Compute in at least f32 (f16/bf16 would lose the index).
            Type wide = ft.getWidth() < 32 ? b.getF32Type() : elem;
            Value fi = arith::SIToFPOp::create(b, l, wide, i);
            Value ws = castScalar(b, l, s, wide, false, false);
            Value wd = castScalar(b, l, d, wide, false, false);
            Value v = arith::AddFOp::create(b, l, ws,
                                            arith::MulFOp::create(b, l, fi, wd));
            return castScalar(b, l, v, elem, false, false);
          }
          Value ii = castScalar(b, l, i, elem, false, false);
          return arith::AddIOp::create(b, l, s, arith::MulIOp::create(b, l, ii, d));
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

struct EyeLikeLowering : OpConversionPattern<onnx::EyeLikeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::EyeLikeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = resultType(*getTypeConverter(), op);
    if (!type || type.getRank() != 2 || !type.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs a static 2-D result");
    Type elem = type.getElementType();
    if (!isa<FloatType, IntegerType>(elem))
      return rewriter.notifyMatchFailure(op, "unsupported element type");
    int64_t k = intAttrOr(op, "k", 0);
    Value r = buildIndexGeneric(
        rewriter, op.getLoc(), type, {},
        [&](OpBuilder &b, Location l, ValueRange ivs, ValueRange) -> Value {
          Value ik = arith::AddIOp::create(b, l, ivs[0], cidx(b, l, k));
          Value on = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, ivs[1], ik);
          return arith::SelectOp::create(b, l, on, scalarConstant(b, l, elem, 1),
                                         scalarConstant(b, l, elem, 0));
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Trilu
//===----------------------------------------------------------------------===//

struct TriluLowering : OpConversionPattern<onnx::TriluOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::TriluOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value in = adaptor.getOperands()[0];
    Value kv = adaptor.getOperands().size() > 1 ? adaptor.getOperands()[1] : Value();
    auto inType = rankedOf(in);
    auto type = resultType(*getTypeConverter(), op);
    if (!inType || !type || !type.hasStaticShape() || inType != type ||
        type.getRank() < 2)
      return rewriter.notifyMatchFailure(op, "needs a static rank >= 2 input");
    Value k = cidx(rewriter, loc, 0);
    if (!isNone(kv)) {
      if (!rankedOf(kv) || rankedOf(kv).getNumElements() != 1)
        return rewriter.notifyMatchFailure(op, "k must be a scalar");
      if (auto c = constantInts(op->getOperand(1)))
        k = cidx(rewriter, loc, (*c)[0]);
      else
        k = readIndex(rewriter, loc, kv, 0, false);
    }
    bool upper = intAttrOr(op, "upper", 1) != 0;
    int64_t rank = type.getRank();
    Type elem = type.getElementType();
    if (type.getNumElements() == 0) {
      rewriter.replaceOp(op, in);
      return success();
    }
    Value r = buildIndexGeneric(
        rewriter, loc, type, {in},
        [&](OpBuilder &b, Location l, ValueRange ivs, ValueRange x) -> Value {
          Value ik = arith::AddIOp::create(b, l, ivs[rank - 2], k);
          Value keep = arith::CmpIOp::create(
              b, l, upper ? arith::CmpIPredicate::sge : arith::CmpIPredicate::sle,
              ivs[rank - 1], ik);
          return arith::SelectOp::create(b, l, keep, x[0],
                                         scalarConstant(b, l, elem, 0));
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// DepthToSpace, SpaceToDepth
//===----------------------------------------------------------------------===//

template <typename OpTy>
struct BlockShuffle : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;
  static constexpr bool toSpace = std::is_same_v<OpTy, onnx::DepthToSpaceOp>;
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value in = adaptor.getOperands()[0];
    auto inType = rankedOf(in);
    auto type = resultType(*this->getTypeConverter(), op);
    if (!inType || !type || inType.getRank() != 4 || !inType.hasStaticShape() ||
        !type.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs static 4-D shapes");
    int64_t bs = intAttrOr(op, "blocksize", 0);
    if (bs <= 0 || bs > (1 << 15))
      return rewriter.notifyMatchFailure(op, "invalid blocksize");
    bool crd = false;
    if (auto m = op->template getAttrOfType<StringAttr>("mode"))
      crd = m.getValue() == "CRD";
    else if (auto m = op->template getAttrOfType<StringAttr>("mode_"))
      crd = m.getValue() == "CRD";
    auto s = inType.getShape();
    SmallVector<int64_t> expect;
    if (toSpace) {
      if (s[1] % (bs * bs) != 0)
        return rewriter.notifyMatchFailure(op, "channels not divisible");
      expect = {s[0], s[1] / (bs * bs), s[2] * bs, s[3] * bs};
    } else {
      if (s[2] % bs != 0 || s[3] % bs != 0)
        return rewriter.notifyMatchFailure(op, "spatial dims not divisible");
      expect = {s[0], s[1] * bs * bs, s[2] / bs, s[3] / bs};
    }
    if (ArrayRef<int64_t>(expect) != type.getShape())
      return rewriter.notifyMatchFailure(op, "result shape mismatch");
    if (type.getNumElements() == 0) {
      rewriter.replaceOp(op, zeroFilled(rewriter, op.getLoc(), type));
      return success();
    }
    Value r = buildIndexGeneric(
        rewriter, op.getLoc(), type, {},
        [&](OpBuilder &b, Location l, ValueRange ivs, ValueRange) -> Value {
          Value B = cidx(b, l, bs);
          auto div = [&](Value a, Value c) -> Value {
            return arith::DivUIOp::create(b, l, a, c);
          };
          auto rem = [&](Value a, Value c) -> Value {
            return arith::RemUIOp::create(b, l, a, c);
          };
          auto add = [&](Value a, Value c) -> Value {
            return arith::AddIOp::create(b, l, a, c);
          };
          auto mul = [&](Value a, Value c) -> Value {
            return arith::MulIOp::create(b, l, a, c);
          };
          Value n = ivs[0], c = ivs[1], h = ivs[2], w = ivs[3];
          if (toSpace) {
            int64_t cOut = type.getDimSize(1);
            Value bh = rem(h, B), bw = rem(w, B);
            Value blk = add(mul(bh, B), bw);
            Value ch = crd ? add(mul(c, cidx(b, l, bs * bs)), blk)
                           : add(mul(blk, cidx(b, l, cOut)), c);
            return tensor::ExtractOp::create(
                b, l, in, ValueRange{n, ch, div(h, B), div(w, B)});
          }
          // SpaceToDepth (DCR order).
          Value C = cidx(b, l, s[1]);
          Value blk = div(c, C), ch = rem(c, C);
          Value bh = div(blk, B), bw = rem(blk, B);
          return tensor::ExtractOp::create(
              b, l, in, ValueRange{n, ch, add(mul(h, B), bh), add(mul(w, B), bw)});
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Dropout (inference)
//===----------------------------------------------------------------------===//

struct DropoutLowering : OpConversionPattern<onnx::DropoutOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::DropoutOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    ValueRange operands = adaptor.getOperands();
    Value in = operands[0];
    auto type = resultType(*getTypeConverter(), op);
    if (!rankedOf(in) || !type)
      return rewriter.notifyMatchFailure(op, "unranked");
    if (op->getNumOperands() > 2 && !isNone(op->getOperand(2))) {
      auto training = constantInts(op->getOperand(2));
      if (!training || training->size() != 1 || (*training)[0] != 0)
        return rewriter.notifyMatchFailure(op, "training mode is not supported");
    }
    Value out = in;
    if (out.getType() != type)
      out = tensor::CastOp::create(rewriter, loc, type, out);
    SmallVector<Value> results{out};
    for (unsigned i = 1; i < op->getNumResults(); ++i) {
      auto maskType = resultType(*getTypeConverter(), op, i);
      if (!maskType) {
        if (!op->getResult(i).use_empty())
          return rewriter.notifyMatchFailure(op, "unranked mask");
        results.push_back(Value());
        continue;
      }
      if (!maskType.hasStaticShape() || !maskType.getElementType().isInteger(1))
        return rewriter.notifyMatchFailure(op, "mask must be a static bool tensor");
      Value t = arith::ConstantOp::create(rewriter, loc, rewriter.getBoolAttr(true));
      Value init = emptyLike(rewriter, loc, maskType);
      results.push_back(linalg::FillOp::create(rewriter, loc, t, init)->getResult(0));
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// CumSum: a reduction over an extra loop along the (possibly runtime) axis.
//===----------------------------------------------------------------------===//

struct CumSumLowering : OpConversionPattern<onnx::CumSumOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::CumSumOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value in = adaptor.getOperands()[0], axisV = adaptor.getOperands()[1];
    auto inType = rankedOf(in);
    auto type = resultType(*getTypeConverter(), op);
    if (!inType || !type || inType != type || !type.hasStaticShape() ||
        type.getRank() == 0)
      return rewriter.notifyMatchFailure(op, "needs a static ranked input");
    if (!rankedOf(axisV) || rankedOf(axisV).getNumElements() != 1)
      return rewriter.notifyMatchFailure(op, "axis must be a scalar");
    Type elem = type.getElementType();
    if (!isa<FloatType, IntegerType>(elem) || elem.isInteger(1))
      return rewriter.notifyMatchFailure(op, "unsupported element type");
    int64_t rank = type.getRank();
    bool exclusive = intAttrOr(op, "exclusive", 0) != 0;
    bool reverse = intAttrOr(op, "reverse", 0) != 0;
    std::optional<int64_t> axis;
    if (auto c = constantInts(op->getOperand(1))) {
      axis = normalizeAxis((*c)[0], rank);
      if (!axis)
        return rewriter.notifyMatchFailure(op, "invalid axis");
    }
    Value runtimeAxis;
    int64_t extent;
    if (axis) {
      extent = type.getDimSize(*axis);
    } else {
      extent = *llvm::max_element(type.getShape());
      Value a = readIndex(rewriter, loc, axisV, 0, false);
      Value neg = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::slt, a,
                                        cidx(rewriter, loc, 0));
      runtimeAxis = arith::SelectOp::create(
          rewriter, loc, neg,
          arith::AddIOp::create(rewriter, loc, a, cidx(rewriter, loc, rank)), a);
    }
    if (type.getNumElements() == 0) {
      rewriter.replaceOp(op, in);
      return success();
    }
    MLIRContext *ctx = rewriter.getContext();
    Value zero = scalarConstant(rewriter, loc, elem, 0);
    Value init = linalg::FillOp::create(rewriter, loc, zero,
                                        emptyLike(rewriter, loc, type))
                     ->getResult(0);
    SmallVector<AffineExpr> outExprs;
    for (int64_t d = 0; d < rank; ++d)
      outExprs.push_back(getAffineDimExpr(d, ctx));
    SmallVector<AffineMap> maps{AffineMap::get(rank + 1, 0, outExprs, ctx)};
    SmallVector<utils::IteratorType> iterators(rank, utils::IteratorType::parallel);
    iterators.push_back(utils::IteratorType::reduction);
    // The reduction extent is set by a dummy input of that size.
    Value extentT = tensor::EmptyOp::create(rewriter, loc, ArrayRef<int64_t>{extent},
                                            rewriter.getI8Type(), ValueRange{});
    maps.insert(maps.begin(),
                AffineMap::get(rank + 1, 0, {getAffineDimExpr(rank, ctx)}, ctx));
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{type}, ValueRange{extentT}, ValueRange{init}, maps,
        iterators, [&](OpBuilder &b, Location l, ValueRange args) {
          SmallVector<Value> ivs;
          for (int64_t d = 0; d <= rank; ++d)
            ivs.push_back(linalg::IndexOp::create(b, l, d));
          Value k = ivs[rank];
          Value pos, axisDim;
          SmallVector<Value> isAxis(rank);
          if (axis) {
            pos = ivs[*axis];
            axisDim = cidx(b, l, type.getDimSize(*axis));
          } else {
            pos = cidx(b, l, 0);
            axisDim = cidx(b, l, 1);
            for (int64_t d = 0; d < rank; ++d) {
              isAxis[d] = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq,
                                                runtimeAxis, cidx(b, l, d));
              pos = arith::SelectOp::create(b, l, isAxis[d], ivs[d], pos);
              axisDim = arith::SelectOp::create(
                  b, l, isAxis[d], cidx(b, l, type.getDimSize(d)), axisDim);
            }
          }
          using P = arith::CmpIPredicate;
          P pred = reverse ? (exclusive ? P::sgt : P::sge)
                           : (exclusive ? P::slt : P::sle);
          Value take = arith::CmpIOp::create(b, l, pred, k, pos);
          Value kClamped = arith::MinSIOp::create(
              b, l, k, arith::SubIOp::create(b, l, axisDim, cidx(b, l, 1)));
          if (!axis) {
            Value inRange = arith::CmpIOp::create(b, l, P::slt, k, axisDim);
            take = arith::AndIOp::create(b, l, take, inRange);
          }
          SmallVector<Value> idx;
          for (int64_t d = 0; d < rank; ++d) {
            if (axis)
              idx.push_back(d == *axis ? kClamped : ivs[d]);
            else
              idx.push_back(
                  arith::SelectOp::create(b, l, isAxis[d], kClamped, ivs[d]));
          }
          Value x = tensor::ExtractOp::create(b, l, in, idx);
          x = arith::SelectOp::create(b, l, take, x, scalarConstant(b, l, elem, 0));
          Value acc = args[1];
          Value sum = isa<FloatType>(elem)
                          ? (Value)arith::AddFOp::create(b, l, acc, x)
                          : (Value)arith::AddIOp::create(b, l, acc, x);
          linalg::YieldOp::create(b, l, sum);
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// ReverseSequence
//===----------------------------------------------------------------------===//

struct ReverseSequenceLowering : OpConversionPattern<onnx::ReverseSequenceOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ReverseSequenceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value in = adaptor.getOperands()[0], lens = adaptor.getOperands()[1];
    auto inType = rankedOf(in);
    auto type = resultType(*getTypeConverter(), op);
    if (!inType || !type || inType != type || !type.hasStaticShape() ||
        type.getRank() < 2)
      return rewriter.notifyMatchFailure(op, "needs a static rank >= 2 input");
    int64_t rank = type.getRank();
    auto batch = normalizeAxis(intAttrOr(op, "batch_axis", 1), rank);
    auto time = normalizeAxis(intAttrOr(op, "time_axis", 0), rank);
    if (!batch || !time || *batch == *time)
      return rewriter.notifyMatchFailure(op, "invalid axes");
    auto lensType = rankedOf(lens);
    if (!lensType || lensType.getRank() != 1 ||
        lensType.getDimSize(0) != type.getDimSize(*batch))
      return rewriter.notifyMatchFailure(op, "sequence_lens shape mismatch");
    if (type.getNumElements() == 0) {
      rewriter.replaceOp(op, in);
      return success();
    }
    Value r = buildIndexGeneric(
        rewriter, op.getLoc(), type, {},
        [&](OpBuilder &b, Location l, ValueRange ivs, ValueRange) -> Value {
          Value len = tensor::ExtractOp::create(b, l, lens, ValueRange{ivs[*batch]});
          len = arith::IndexCastOp::create(b, l, b.getIndexType(), len);
          Value t = ivs[*time];
          Value inSeq = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, t, len);
          Value rev = arith::SubIOp::create(
              b, l, arith::SubIOp::create(b, l, len, cidx(b, l, 1)), t);
          SmallVector<Value> idx(ivs.begin(), ivs.end());
          idx[*time] = arith::SelectOp::create(b, l, inSeq, rev, t);
          return extractClamped(b, l, in, idx);
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

} // namespace

void populateOnnxTensorPatterns(RewritePatternSet &patterns,
                                const TypeConverter &converter) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<ReshapeLike<onnx::ReshapeOp>, ReshapeLike<onnx::FlattenOp>,
               ReshapeLike<onnx::SqueezeOp>, ReshapeLike<onnx::UnsqueezeOp>,
               TransposeLowering, ConcatLowering, SplitLowering, SliceLowering,
               ExpandLowering, TileLowering, PadLowering,
               ConstantOfShapeLowering, ShapeLowering, SizeLowering,
               RangeLowering, EyeLikeLowering, TriluLowering,
               BlockShuffle<onnx::DepthToSpaceOp>,
               BlockShuffle<onnx::SpaceToDepthOp>, DropoutLowering,
               CumSumLowering, ReverseSequenceLowering>(converter, ctx);
}

} // namespace kiln
