//===- Indexing.cpp - onnx indexing ops -> linalg/tensor/scf --------------===//
//
// Gathers are one linalg.generic over the output that reads the data tensor
// with tensor.extract (indices wrapped when negative and clamped into range).
// Scatters, TopK, Compress and NonZero are serial scf.for nests over tensors
// (tensor.extract/tensor.insert through iter_args): duplicate indices and
// data-dependent output positions then follow the reference semantics
// exactly. Output sizes that depend on runtime data (TopK's k, OneHot's
// depth, the number of selected elements) come from the static result types.
//
//===----------------------------------------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;

namespace kiln {
namespace {

Value cidx(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// Size of dim `i` of tensor `t` as an index value.
Value dimOf(OpBuilder &b, Location loc, Value t, int64_t i) {
  auto type = cast<RankedTensorType>(t.getType());
  if (!type.isDynamicDim(i))
    return cidx(b, loc, type.getDimSize(i));
  return tensor::DimOp::create(b, loc, t, i);
}

/// An index scalar (any int width, unsigned, or float) as `index`; negative
/// values count from the end of a dim of `size`; the result is clamped into
/// [0, size - 1] so a bad index never reads or writes out of bounds.
Value toIndex(OpBuilder &b, Location loc, Value v, bool isUnsigned,
              Value size) {
  if (isa<FloatType>(v.getType()))
    v = arith::FPToSIOp::create(b, loc, b.getI64Type(), v);
  Value i = isUnsigned
                ? (Value)arith::IndexCastUIOp::create(b, loc, b.getIndexType(), v)
                : (Value)arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  Value zero = cidx(b, loc, 0);
  if (!isUnsigned) {
    Value neg = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, i, zero);
    i = arith::SelectOp::create(b, loc, neg,
                                arith::AddIOp::create(b, loc, i, size), i);
  }
  Value last = arith::SubIOp::create(b, loc, size, cidx(b, loc, 1));
  i = arith::MaxSIOp::create(b, loc, i, zero);
  return arith::MinSIOp::create(b, loc, i, last);
}

bool isRanked(Value v) { return isa<RankedTensorType>(v.getType()); }

/// tensor.empty of `type`, dynamic dims from `dimFor(d)`.
Value emptyWith(OpBuilder &b, Location loc, RankedTensorType type,
                llvm::function_ref<Value(int64_t)> dimFor) {
  SmallVector<Value> dyn;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dyn.push_back(dimFor(d));
  return tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType(),
                                 dyn);
}

Value filled(OpBuilder &b, Location loc, Value empty, double v) {
  Type et = cast<RankedTensorType>(empty.getType()).getElementType();
  Value c = scalarConstant(b, loc, et, v);
  return linalg::FillOp::create(b, loc, ValueRange{c}, ValueRange{empty})
      .getResult(0);
}

//===----------------------------------------------------------------------===//
// Gathers
//===----------------------------------------------------------------------===//

struct GatherLowering : OpConversionPattern<onnx::GatherOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::GatherOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value data = adaptor.getData(), indices = adaptor.getIndices();
    auto outT = resultType(*getTypeConverter(), op);
    if (!outT || !isRanked(data) || !isRanked(indices))
      return rewriter.notifyMatchFailure(op, "unranked operands");
    auto dataT = cast<RankedTensorType>(data.getType());
    auto idxT = cast<RankedTensorType>(indices.getType());
    int64_t r = dataT.getRank(), q = idxT.getRank();
    auto axisOpt = normalizeAxis(op.getAxis(), r);
    if (!axisOpt || outT.getRank() != q + r - 1 ||
        outT.getElementType() != dataT.getElementType())
      return rewriter.notifyMatchFailure(op, "bad axis or result type");
    int64_t axis = *axisOpt;
    Value init = emptyWith(rewriter, loc, outT, [&](int64_t d) {
      if (d < axis)
        return dimOf(rewriter, loc, data, d);
      if (d < axis + q)
        return dimOf(rewriter, loc, indices, d - axis);
      return dimOf(rewriter, loc, data, d - q + 1);
    });
    Value axisSize = dimOf(rewriter, loc, data, axis);
    bool uns = isUnsignedOnnx(op->getOperand(1));
    MLIRContext *ctx = rewriter.getContext();
    SmallVector<AffineExpr> idxExprs;
    for (int64_t j = 0; j < q; ++j)
      idxExprs.push_back(getAffineDimExpr(axis + j, ctx));
    int64_t rank = outT.getRank();
    SmallVector<AffineMap> maps{AffineMap::get(rank, 0, idxExprs, ctx),
                                AffineMap::getMultiDimIdentityMap(rank, ctx)};
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{outT}, ValueRange{indices}, ValueRange{init},
        maps, iters, [&](OpBuilder &b, Location l, ValueRange args) {
          SmallVector<Value> coords;
          for (int64_t d = 0; d < axis; ++d)
            coords.push_back(linalg::IndexOp::create(b, l, d));
          coords.push_back(toIndex(b, l, args[0], uns, axisSize));
          for (int64_t d = axis + 1; d < r; ++d)
            coords.push_back(linalg::IndexOp::create(b, l, d - 1 + q));
          Value v = tensor::ExtractOp::create(b, l, data, coords);
          linalg::YieldOp::create(b, l, v);
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

struct GatherElementsLowering : OpConversionPattern<onnx::GatherElementsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::GatherElementsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value data = adaptor.getData(), indices = adaptor.getIndices();
    auto outT = resultType(*getTypeConverter(), op);
    if (!outT || !isRanked(data) || !isRanked(indices))
      return rewriter.notifyMatchFailure(op, "unranked operands");
    auto dataT = cast<RankedTensorType>(data.getType());
    int64_t r = dataT.getRank();
    auto axisOpt = normalizeAxis(op.getAxis(), r);
    if (!axisOpt || outT.getRank() != r ||
        cast<RankedTensorType>(indices.getType()).getRank() != r ||
        outT.getElementType() != dataT.getElementType())
      return rewriter.notifyMatchFailure(op, "bad axis or result type");
    int64_t axis = *axisOpt;
    Value init = emptyWith(rewriter, loc, outT, [&](int64_t d) {
      return dimOf(rewriter, loc, indices, d);
    });
    Value axisSize = dimOf(rewriter, loc, data, axis);
    bool uns = isUnsignedOnnx(op->getOperand(1));
    MLIRContext *ctx = rewriter.getContext();
    SmallVector<AffineMap> maps(2, AffineMap::getMultiDimIdentityMap(r, ctx));
    SmallVector<utils::IteratorType> iters(r, utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{outT}, ValueRange{indices}, ValueRange{init},
        maps, iters, [&](OpBuilder &b, Location l, ValueRange args) {
          SmallVector<Value> coords;
          for (int64_t d = 0; d < r; ++d)
            coords.push_back(d == axis
                                 ? toIndex(b, l, args[0], uns, axisSize)
                                 : (Value)linalg::IndexOp::create(b, l, d));
          Value v = tensor::ExtractOp::create(b, l, data, coords);
          linalg::YieldOp::create(b, l, v);
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

struct GatherNDLowering : OpConversionPattern<onnx::GatherNDOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::GatherNDOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value data = adaptor.getData(), indices = adaptor.getIndices();
    auto outT = resultType(*getTypeConverter(), op);
    if (!outT || !isRanked(data) || !isRanked(indices))
      return rewriter.notifyMatchFailure(op, "unranked operands");
    auto dataT = cast<RankedTensorType>(data.getType());
    auto idxT = cast<RankedTensorType>(indices.getType());
    int64_t r = dataT.getRank(), q = idxT.getRank();
    int64_t bd = op.getBatchDims();
    if (q < 1 || idxT.isDynamicDim(q - 1))
      return rewriter.notifyMatchFailure(op, "index tuple size must be static");
    int64_t m = idxT.getDimSize(q - 1);
    if (bd < 0 || bd >= q || bd + m > r ||
        outT.getRank() != q - 1 + r - bd - m ||
        outT.getElementType() != dataT.getElementType())
      return rewriter.notifyMatchFailure(op, "bad batch_dims or result type");
    Value init = emptyWith(rewriter, loc, outT, [&](int64_t d) {
      if (d < q - 1)
        return dimOf(rewriter, loc, indices, d);
      return dimOf(rewriter, loc, data, d - (q - 1) + bd + m);
    });
    SmallVector<Value> sizes;
    for (int64_t k = 0; k < m; ++k)
      sizes.push_back(dimOf(rewriter, loc, data, bd + k));
    bool uns = isUnsignedOnnx(op->getOperand(1));
    MLIRContext *ctx = rewriter.getContext();
    int64_t rank = outT.getRank();
    SmallVector<AffineMap> maps{AffineMap::getMultiDimIdentityMap(rank, ctx)};
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{outT}, ValueRange{}, ValueRange{init}, maps,
        iters, [&](OpBuilder &b, Location l, ValueRange) {
          SmallVector<Value> outer;
          for (int64_t d = 0; d < q - 1; ++d)
            outer.push_back(linalg::IndexOp::create(b, l, d));
          SmallVector<Value> coords(outer.begin(), outer.begin() + bd);
          for (int64_t k = 0; k < m; ++k) {
            SmallVector<Value> ic(outer);
            ic.push_back(cidx(b, l, k));
            Value iv = tensor::ExtractOp::create(b, l, indices, ic);
            coords.push_back(toIndex(b, l, iv, uns, sizes[k]));
          }
          for (int64_t d = q - 1; d < rank; ++d)
            coords.push_back(linalg::IndexOp::create(b, l, d));
          Value v = tensor::ExtractOp::create(b, l, data, coords);
          linalg::YieldOp::create(b, l, v);
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Scatters
//===----------------------------------------------------------------------===//

enum class Reduction { None, Add, Mul, Max, Min };

std::optional<Reduction> parseReduction(StringRef s) {
  if (s == "none" || s.empty())
    return Reduction::None;
  if (s == "add")
    return Reduction::Add;
  if (s == "mul")
    return Reduction::Mul;
  if (s == "max")
    return Reduction::Max;
  if (s == "min")
    return Reduction::Min;
  return std::nullopt;
}

Value combine(OpBuilder &b, Location loc, Reduction red, Value old, Value upd,
              bool uns) {
  bool f = isa<FloatType>(upd.getType());
  switch (red) {
  case Reduction::None:
    return upd;
  case Reduction::Add:
    if (upd.getType().isInteger(1))
      return arith::OrIOp::create(b, loc, old, upd);
    return f ? (Value)arith::AddFOp::create(b, loc, old, upd)
             : (Value)arith::AddIOp::create(b, loc, old, upd);
  case Reduction::Mul:
    if (upd.getType().isInteger(1))
      return arith::AndIOp::create(b, loc, old, upd);
    return f ? (Value)arith::MulFOp::create(b, loc, old, upd)
             : (Value)arith::MulIOp::create(b, loc, old, upd);
  case Reduction::Max:
    if (f)
      return arith::MaximumFOp::create(b, loc, old, upd);
    return uns || upd.getType().isInteger(1)
               ? (Value)arith::MaxUIOp::create(b, loc, old, upd)
               : (Value)arith::MaxSIOp::create(b, loc, old, upd);
  case Reduction::Min:
    if (f)
      return arith::MinimumFOp::create(b, loc, old, upd);
    return uns || upd.getType().isInteger(1)
               ? (Value)arith::MinUIOp::create(b, loc, old, upd)
               : (Value)arith::MinSIOp::create(b, loc, old, upd);
  }
  return upd;
}

/// Serial loops over every element of `updates`; `target` maps the loop ivs
/// to the data coordinates that element goes to.
Value scatterLoops(
    OpBuilder &b, Location loc, Value data, Value updates, Reduction red,
    bool uns,
    llvm::function_ref<SmallVector<Value>(OpBuilder &, Location, ValueRange)>
        target) {
  auto updT = cast<RankedTensorType>(updates.getType());
  SmallVector<Value> lbs, ubs, steps;
  for (int64_t d = 0; d < updT.getRank(); ++d) {
    lbs.push_back(cidx(b, loc, 0));
    ubs.push_back(dimOf(b, loc, updates, d));
    steps.push_back(cidx(b, loc, 1));
  }
  scf::LoopNest nest = scf::buildLoopNest(
      b, loc, lbs, ubs, steps, ValueRange{data},
      [&](OpBuilder &nb, Location l, ValueRange ivs,
          ValueRange acc) -> scf::ValueVector {
        Value upd = tensor::ExtractOp::create(nb, l, updates, ivs);
        SmallVector<Value> coords = target(nb, l, ivs);
        Value v = upd;
        if (red != Reduction::None) {
          Value old = tensor::ExtractOp::create(nb, l, acc[0], coords);
          v = combine(nb, l, red, old, upd, uns);
        }
        return {tensor::InsertOp::create(nb, l, v, acc[0], coords)};
      });
  return nest.results[0];
}

template <typename OpTy>
struct ScatterElementsLowering : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value data = adaptor.getData(), indices = adaptor.getIndices(),
          updates = adaptor.getUpdates();
    auto outT = resultType(*this->getTypeConverter(), op);
    if (!outT || !isRanked(data) || !isRanked(indices) || !isRanked(updates))
      return rewriter.notifyMatchFailure(op, "unranked operands");
    auto dataT = cast<RankedTensorType>(data.getType());
    int64_t r = dataT.getRank();
    auto axisOpt = normalizeAxis(op.getAxis(), r);
    auto red = parseReduction(op.getReduction());
    if (!axisOpt || !red || outT != dataT ||
        cast<RankedTensorType>(indices.getType()).getRank() != r ||
        cast<RankedTensorType>(updates.getType()).getRank() != r)
      return rewriter.notifyMatchFailure(op, "bad axis, reduction or types");
    int64_t axis = *axisOpt;
    Value axisSize = dimOf(rewriter, loc, data, axis);
    bool idxUns = isUnsignedOnnx(op->getOperand(1));
    bool uns = isUnsignedOnnx(op->getOperand(0));
    Value result = scatterLoops(
        rewriter, loc, data, updates, *red, uns,
        [&](OpBuilder &b, Location l, ValueRange ivs) {
          SmallVector<Value> coords(ivs.begin(), ivs.end());
          Value iv = tensor::ExtractOp::create(b, l, indices, ivs);
          coords[axis] = toIndex(b, l, iv, idxUns, axisSize);
          return coords;
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct ScatterNDLowering : OpConversionPattern<onnx::ScatterNDOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ScatterNDOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value data = adaptor.getData(), indices = adaptor.getIndices(),
          updates = adaptor.getUpdates();
    auto outT = resultType(*getTypeConverter(), op);
    if (!outT || !isRanked(data) || !isRanked(indices) || !isRanked(updates))
      return rewriter.notifyMatchFailure(op, "unranked operands");
    auto dataT = cast<RankedTensorType>(data.getType());
    auto idxT = cast<RankedTensorType>(indices.getType());
    auto updT = cast<RankedTensorType>(updates.getType());
    int64_t r = dataT.getRank(), q = idxT.getRank();
    auto red = parseReduction(op.getReduction());
    if (q < 1 || idxT.isDynamicDim(q - 1))
      return rewriter.notifyMatchFailure(op, "index tuple size must be static");
    int64_t m = idxT.getDimSize(q - 1);
    if (!red || outT != dataT || m > r || updT.getRank() != q - 1 + r - m)
      return rewriter.notifyMatchFailure(op, "bad reduction or types");
    SmallVector<Value> sizes;
    for (int64_t k = 0; k < m; ++k)
      sizes.push_back(dimOf(rewriter, loc, data, k));
    bool idxUns = isUnsignedOnnx(op->getOperand(1));
    bool uns = isUnsignedOnnx(op->getOperand(0));
    Value result = scatterLoops(
        rewriter, loc, data, updates, *red, uns,
        [&](OpBuilder &b, Location l, ValueRange ivs) {
          SmallVector<Value> outer(ivs.begin(), ivs.begin() + (q - 1));
          SmallVector<Value> coords;
          for (int64_t k = 0; k < m; ++k) {
            SmallVector<Value> ic(outer);
            ic.push_back(cidx(b, l, k));
            Value iv = tensor::ExtractOp::create(b, l, indices, ic);
            coords.push_back(toIndex(b, l, iv, idxUns, sizes[k]));
          }
          for (Value v : ivs.drop_front(q - 1))
            coords.push_back(v);
          return coords;
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// OneHot
//===----------------------------------------------------------------------===//

struct OneHotLowering : OpConversionPattern<onnx::OneHotOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::OneHotOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value indices = adaptor.getIndices(), values = adaptor.getValues();
    auto outT = resultType(*getTypeConverter(), op);
    if (!outT || !isRanked(indices) || !isRanked(values))
      return rewriter.notifyMatchFailure(op, "unranked operands");
    auto idxT = cast<RankedTensorType>(indices.getType());
    auto valT = cast<RankedTensorType>(values.getType());
    int64_t r = idxT.getRank();
    auto axisOpt = normalizeAxis(op.getAxis(), r + 1);
    if (!axisOpt || outT.getRank() != r + 1 || valT.getRank() != 1 ||
        valT.getElementType() != outT.getElementType())
      return rewriter.notifyMatchFailure(op, "bad axis or types");
    int64_t axis = *axisOpt;
    if (outT.isDynamicDim(axis))
      return rewriter.notifyMatchFailure(op, "depth must be static in the result type");
    int64_t depth = outT.getDimSize(axis);
    Value init = emptyWith(rewriter, loc, outT, [&](int64_t d) {
      return dimOf(rewriter, loc, indices, d < axis ? d : d - 1);
    });
    Value off = tensor::ExtractOp::create(rewriter, loc, values,
                                          ValueRange{cidx(rewriter, loc, 0)});
    Value on = tensor::ExtractOp::create(rewriter, loc, values,
                                         ValueRange{cidx(rewriter, loc, 1)});
    bool uns = isUnsignedOnnx(op->getOperand(0));
    MLIRContext *ctx = rewriter.getContext();
    SmallVector<AffineExpr> idxExprs;
    for (int64_t d = 0; d <= r; ++d)
      if (d != axis)
        idxExprs.push_back(getAffineDimExpr(d, ctx));
    SmallVector<AffineMap> maps{AffineMap::get(r + 1, 0, idxExprs, ctx),
                                AffineMap::getMultiDimIdentityMap(r + 1, ctx)};
    SmallVector<utils::IteratorType> iters(r + 1, utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{outT}, ValueRange{indices}, ValueRange{init},
        maps, iters, [&](OpBuilder &b, Location l, ValueRange args) {
          Value v = args[0];
          Type i64 = b.getI64Type();
          if (isa<FloatType>(v.getType()))
            v = arith::FPToSIOp::create(b, l, i64, v);
          else
            v = castScalar(b, l, v, i64, uns, false);
          Value zero = arith::ConstantIntOp::create(b, l, i64, 0);
          Value dep = arith::ConstantIntOp::create(b, l, i64, depth);
          Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, v, zero);
          v = arith::SelectOp::create(b, l, neg,
                                      arith::AddIOp::create(b, l, v, dep), v);
          Value pos = arith::IndexCastOp::create(
              b, l, i64, linalg::IndexOp::create(b, l, axis));
          Value hit = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, v, pos);
          Value res = arith::SelectOp::create(b, l, hit, on, off);
          linalg::YieldOp::create(b, l, res);
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// TopK
//===----------------------------------------------------------------------===//

/// Whether (av, ai) comes before (bv, bi): better value first, then lower
/// index.
Value before(OpBuilder &b, Location loc, Value av, Value ai, Value bv, Value bi,
             bool largest, bool uns) {
  Value better, equal;
  if (isa<FloatType>(av.getType())) {
    better = arith::CmpFOp::create(
        b, loc, largest ? arith::CmpFPredicate::OGT : arith::CmpFPredicate::OLT,
        av, bv);
    equal = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, av, bv);
  } else {
    arith::CmpIPredicate p =
        largest ? (uns ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::sgt)
                : (uns ? arith::CmpIPredicate::ult : arith::CmpIPredicate::slt);
    better = arith::CmpIOp::create(b, loc, p, av, bv);
    equal = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, av, bv);
  }
  Value lower = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, ai, bi);
  return arith::OrIOp::create(b, loc, better,
                              arith::AndIOp::create(b, loc, equal, lower));
}

struct TopKLowering : OpConversionPattern<onnx::TopKOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::TopKOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getX();
    auto valT = resultType(*getTypeConverter(), op, 0);
    auto idxT = resultType(*getTypeConverter(), op, 1);
    if (!valT || !idxT || !isRanked(x))
      return rewriter.notifyMatchFailure(op, "unranked operands");
    auto xT = cast<RankedTensorType>(x.getType());
    int64_t r = xT.getRank();
    auto axisOpt = normalizeAxis(op.getAxis(), r);
    if (!axisOpt || valT.getRank() != r || idxT.getRank() != r ||
        valT.getElementType() != xT.getElementType() ||
        !idxT.getElementType().isInteger(64))
      return rewriter.notifyMatchFailure(op, "bad axis or types");
    int64_t axis = *axisOpt;
    if (valT.isDynamicDim(axis))
      return rewriter.notifyMatchFailure(op, "k must be static in the result type");
    int64_t k = valT.getDimSize(axis);
    if (!xT.isDynamicDim(axis) && k > xT.getDimSize(axis))
      return rewriter.notifyMatchFailure(op, "k larger than the axis");
    bool largest = op.getLargest() != 0;
    bool uns = isUnsignedOnnx(op->getOperand(0));
    auto dimFor = [&](int64_t d) { return dimOf(rewriter, loc, x, d); };
    // Filled (not bare tensor.empty) inits: empty-tensor elimination into the
    // kernel outs otherwise leaves the loop nest unbufferizable.
    Value vInit = filled(rewriter, loc, emptyWith(rewriter, loc, valT, dimFor), 0);
    Value iInit = filled(rewriter, loc, emptyWith(rewriter, loc, idxT, dimFor), 0);
    Value n = dimOf(rewriter, loc, x, axis);
    Value c0 = cidx(rewriter, loc, 0), c1 = cidx(rewriter, loc, 1);
    Value ck = cidx(rewriter, loc, k);
    SmallVector<Value> lbs, ubs, steps;
    for (int64_t d = 0; d < r; ++d) {
      if (d == axis)
        continue;
      lbs.push_back(c0);
      ubs.push_back(dimOf(rewriter, loc, x, d));
      steps.push_back(c1);
    }
    Type et = xT.getElementType();
    scf::LoopNest nest = scf::buildLoopNest(
        rewriter, loc, lbs, ubs, steps, ValueRange{vInit, iInit},
        [&](OpBuilder &b, Location l, ValueRange outer,
            ValueRange outs) -> scf::ValueVector {
          auto coordsAt = [&](Value a) {
            SmallVector<Value> c(outer.begin(), outer.end());
            c.insert(c.begin() + axis, a);
            return c;
          };
          Value zeroV = scalarConstant(b, l, et, 0);
          auto rankLoop = scf::ForOp::create(
              b, l, c0, ck, c1, ValueRange{outs[0], outs[1], zeroV, c0},
              [&](OpBuilder &rb, Location rl, Value rIv, ValueRange st) {
                Value first = arith::CmpIOp::create(
                    rb, rl, arith::CmpIPredicate::eq, rIv, c0);
                Value falseV = arith::ConstantIntOp::create(rb, rl, 0, 1);
                auto scan = scf::ForOp::create(
                    rb, rl, c0, n, c1, ValueRange{st[2], c0, falseV},
                    [&](OpBuilder &sb, Location sl, Value j, ValueRange best) {
                      Value xv = tensor::ExtractOp::create(sb, sl, x, coordsAt(j));
                      Value eligible = arith::OrIOp::create(
                          sb, sl, first,
                          before(sb, sl, st[2], st[3], xv, j, largest, uns));
                      Value trueV = arith::ConstantIntOp::create(sb, sl, 1, 1);
                      Value noBest = arith::XOrIOp::create(sb, sl, best[2], trueV);
                      Value better = arith::OrIOp::create(
                          sb, sl, noBest,
                          before(sb, sl, xv, j, best[0], best[1], largest, uns));
                      Value take = arith::AndIOp::create(sb, sl, eligible, better);
                      Value nv = arith::SelectOp::create(sb, sl, take, xv, best[0]);
                      Value ni = arith::SelectOp::create(sb, sl, take, j, best[1]);
                      Value nh = arith::OrIOp::create(sb, sl, best[2], take);
                      scf::YieldOp::create(sb, sl, ValueRange{nv, ni, nh});
                    });
                Value bv = scan.getResult(0), bi = scan.getResult(1);
                Value v = tensor::InsertOp::create(rb, rl, bv, st[0], coordsAt(rIv));
                Value bi64 =
                    arith::IndexCastOp::create(rb, rl, rb.getI64Type(), bi);
                Value i = tensor::InsertOp::create(rb, rl, bi64, st[1], coordsAt(rIv));
                scf::YieldOp::create(rb, rl, ValueRange{v, i, bv, bi});
              });
          return {rankLoop.getResult(0), rankLoop.getResult(1)};
        });
    rewriter.replaceOp(op, ValueRange{nest.results[0], nest.results[1]});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Compress and NonZero (data-dependent sizes, static in the result types)
//===----------------------------------------------------------------------===//

Value isTrue(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isInteger(1))
    return v;
  Value zero = scalarConstant(b, loc, v.getType(), 0);
  if (isa<FloatType>(v.getType()))
    return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, v, zero);
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, v, zero);
}

struct CompressLowering : OpConversionPattern<onnx::CompressOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::CompressOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value input = adaptor.getInput(), cond = adaptor.getCondition();
    auto outT = resultType(*getTypeConverter(), op);
    if (!outT || !isRanked(input) || !isRanked(cond))
      return rewriter.notifyMatchFailure(op, "unranked operands");
    auto inT = cast<RankedTensorType>(input.getType());
    if (cast<RankedTensorType>(cond.getType()).getRank() != 1 ||
        inT.getRank() < 1 || outT.getElementType() != inT.getElementType())
      return rewriter.notifyMatchFailure(op, "bad types");
    int64_t axis = 0;
    if (auto a = op.getAxis()) {
      auto n = normalizeAxis(*a, inT.getRank());
      if (!n)
        return rewriter.notifyMatchFailure(op, "bad axis");
      axis = *n;
    } else if (inT.getRank() != 1) {
      SmallVector<ReassociationIndices> reassoc(1);
      for (int64_t d = 0; d < inT.getRank(); ++d)
        reassoc[0].push_back(d);
      input = tensor::CollapseShapeOp::create(rewriter, loc, input, reassoc);
      inT = cast<RankedTensorType>(input.getType());
    }
    int64_t r = inT.getRank();
    if (outT.getRank() != r || outT.isDynamicDim(axis))
      return rewriter.notifyMatchFailure(op, "output size must be static");
    Value out = filled(rewriter, loc,
                       emptyWith(rewriter, loc, outT, [&](int64_t d) {
                         return dimOf(rewriter, loc, input, d);
                       }),
                       0);
    Value c0 = cidx(rewriter, loc, 0), c1 = cidx(rewriter, loc, 1);
    Value outLen = cidx(rewriter, loc, outT.getDimSize(axis));
    Value ub = arith::MinSIOp::create(rewriter, loc, dimOf(rewriter, loc, cond, 0),
                                      dimOf(rewriter, loc, input, axis));
    auto loop = scf::ForOp::create(
        rewriter, loc, c0, ub, c1, ValueRange{out, c0},
        [&](OpBuilder &b, Location l, Value j, ValueRange st) {
          Value c = isTrue(b, l, tensor::ExtractOp::create(b, l, cond, ValueRange{j}));
          Value room = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult,
                                             st[1], outLen);
          Value ok = arith::AndIOp::create(b, l, c, room);
          auto ifOp = scf::IfOp::create(
              b, l, ok,
              [&](OpBuilder &tb, Location tl) {
                SmallVector<OpFoldResult> srcOff, dstOff, sizes, strides;
                for (int64_t d = 0; d < r; ++d) {
                  srcOff.push_back(d == axis ? OpFoldResult(j) : tb.getIndexAttr(0));
                  dstOff.push_back(d == axis ? OpFoldResult(st[1])
                                             : tb.getIndexAttr(0));
                  sizes.push_back(d == axis ? tb.getIndexAttr(1)
                                  : inT.isDynamicDim(d)
                                      ? OpFoldResult(dimOf(tb, tl, input, d))
                                      : tb.getIndexAttr(inT.getDimSize(d)));
                  strides.push_back(tb.getIndexAttr(1));
                }
                Value slice = tensor::ExtractSliceOp::create(tb, tl, input, srcOff,
                                                             sizes, strides);
                Value res = tensor::InsertSliceOp::create(tb, tl, slice, st[0],
                                                          dstOff, sizes, strides);
                scf::YieldOp::create(tb, tl, res);
              },
              [&](OpBuilder &eb, Location el) {
                scf::YieldOp::create(eb, el, st[0]);
              });
          Value cnt = arith::SelectOp::create(
              b, l, c, arith::AddIOp::create(b, l, st[1], c1), st[1]);
          scf::YieldOp::create(b, l, ValueRange{ifOp.getResult(0), cnt});
        });
    rewriter.replaceOp(op, loop.getResult(0));
    return success();
  }
};

struct NonZeroLowering : OpConversionPattern<onnx::NonZeroOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::NonZeroOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getX();
    auto outT = resultType(*getTypeConverter(), op);
    if (!outT || !isRanked(x))
      return rewriter.notifyMatchFailure(op, "unranked operands");
    auto xT = cast<RankedTensorType>(x.getType());
    int64_t r = xT.getRank();
    if (r < 1 || outT.getRank() != 2 || !outT.hasStaticShape() ||
        outT.getDimSize(0) != r || !outT.getElementType().isInteger(64))
      return rewriter.notifyMatchFailure(op, "output shape must be static");
    Value out = filled(rewriter, loc, emptyWith(rewriter, loc, outT, nullptr), 0);
    Value c0 = cidx(rewriter, loc, 0), c1 = cidx(rewriter, loc, 1);
    Value outLen = cidx(rewriter, loc, outT.getDimSize(1));
    SmallVector<Value> lbs(r, c0), ubs, steps(r, c1);
    for (int64_t d = 0; d < r; ++d)
      ubs.push_back(dimOf(rewriter, loc, x, d));
    scf::LoopNest nest = scf::buildLoopNest(
        rewriter, loc, lbs, ubs, steps, ValueRange{out, c0},
        [&](OpBuilder &b, Location l, ValueRange ivs,
            ValueRange st) -> scf::ValueVector {
          Value nz = isTrue(b, l, tensor::ExtractOp::create(b, l, x, ivs));
          Value room = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult,
                                             st[1], outLen);
          Value ok = arith::AndIOp::create(b, l, nz, room);
          auto ifOp = scf::IfOp::create(
              b, l, ok,
              [&](OpBuilder &tb, Location tl) {
                Value res = st[0];
                for (int64_t d = 0; d < r; ++d) {
                  Value v = arith::IndexCastOp::create(tb, tl, tb.getI64Type(),
                                                       ivs[d]);
                  res = tensor::InsertOp::create(
                      tb, tl, v, res, ValueRange{cidx(tb, tl, d), st[1]});
                }
                scf::YieldOp::create(tb, tl, res);
              },
              [&](OpBuilder &eb, Location el) {
                scf::YieldOp::create(eb, el, st[0]);
              });
          Value cnt = arith::SelectOp::create(
              b, l, nz, arith::AddIOp::create(b, l, st[1], c1), st[1]);
          return {ifOp.getResult(0), cnt};
        });
    rewriter.replaceOp(op, nest.results[0]);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Unique (serial O(n^2) over the items along the axis; sizes from the types)
//===----------------------------------------------------------------------===//

/// Lexicographic comparison of items `ia` and `ib` of `x` along `axis` (the
/// slices in row-major order): returns (ia < ib, ia == ib).
std::pair<Value, Value> compareItems(OpBuilder &b, Location loc, Value x,
                                     int64_t axis, Value ia, Value ib,
                                     bool uns) {
  auto xT = cast<RankedTensorType>(x.getType());
  SmallVector<Value> lbs, ubs, steps;
  for (int64_t d = 0; d < xT.getRank(); ++d) {
    if (d == axis)
      continue;
    lbs.push_back(cidx(b, loc, 0));
    ubs.push_back(dimOf(b, loc, x, d));
    steps.push_back(cidx(b, loc, 1));
  }
  Value f = arith::ConstantIntOp::create(b, loc, 0, 1);
  scf::LoopNest nest = scf::buildLoopNest(
      b, loc, lbs, ubs, steps, ValueRange{f, f},
      [&](OpBuilder &nb, Location l, ValueRange ivs,
          ValueRange st) -> scf::ValueVector {
        SmallVector<Value> ca(ivs.begin(), ivs.end()), cb(ca);
        ca.insert(ca.begin() + axis, ia);
        cb.insert(cb.begin() + axis, ib);
        Value va = tensor::ExtractOp::create(nb, l, x, ca);
        Value vb = tensor::ExtractOp::create(nb, l, x, cb);
        Value lt, gt;
        if (isa<FloatType>(va.getType())) {
          lt = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OLT, va, vb);
          gt = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT, va, vb);
        } else {
          lt = arith::CmpIOp::create(
              nb, l, uns ? arith::CmpIPredicate::ult : arith::CmpIPredicate::slt,
              va, vb);
          gt = arith::CmpIOp::create(
              nb, l, uns ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::sgt,
              va, vb);
        }
        Value newLt = arith::SelectOp::create(nb, l, st[0], st[1], lt);
        Value decided = arith::OrIOp::create(
            nb, l, st[0], arith::OrIOp::create(nb, l, lt, gt));
        return {decided, newLt};
      });
  Value t = arith::ConstantIntOp::create(b, loc, 1, 1);
  Value eq = arith::XOrIOp::create(b, loc, nest.results[0], t);
  return {nest.results[1], eq};
}

struct UniqueLowering : OpConversionPattern<onnx::UniqueOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::UniqueOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getX();
    auto yT = resultType(*getTypeConverter(), op, 0);
    auto indT = resultType(*getTypeConverter(), op, 1);
    auto invT = resultType(*getTypeConverter(), op, 2);
    auto cntT = resultType(*getTypeConverter(), op, 3);
    if (!yT || !indT || !invT || !cntT || !isRanked(x))
      return rewriter.notifyMatchFailure(op, "all four outputs must be tensors");
    auto xT = cast<RankedTensorType>(x.getType());
    int64_t axis = 0;
    if (auto a = op.getAxis()) {
      auto n = normalizeAxis(*a, xT.getRank());
      if (!n)
        return rewriter.notifyMatchFailure(op, "bad axis");
      axis = *n;
    } else if (xT.getRank() != 1) {
      if (xT.getRank() == 0)
        return rewriter.notifyMatchFailure(op, "scalar input");
      SmallVector<ReassociationIndices> reassoc(1);
      for (int64_t d = 0; d < xT.getRank(); ++d)
        reassoc[0].push_back(d);
      x = tensor::CollapseShapeOp::create(rewriter, loc, x, reassoc);
      xT = cast<RankedTensorType>(x.getType());
    }
    int64_t r = xT.getRank();
    auto isI64Vec = [](RankedTensorType t) {
      return t.getRank() == 1 && t.getElementType().isInteger(64);
    };
    if (yT.getRank() != r || yT.getElementType() != xT.getElementType() ||
        !isI64Vec(indT) || !isI64Vec(invT) || !isI64Vec(cntT) ||
        yT.isDynamicDim(axis) || indT.isDynamicDim(0) || cntT.isDynamicDim(0))
      return rewriter.notifyMatchFailure(op, "unique count must be static");
    int64_t u = yT.getDimSize(axis);
    if (indT.getDimSize(0) != u || cntT.getDimSize(0) != u)
      return rewriter.notifyMatchFailure(op, "inconsistent result types");
    bool sorted = op.getSorted() != 0;
    bool uns = isUnsignedOnnx(op->getOperand(0));
    Value c0 = cidx(rewriter, loc, 0), c1 = cidx(rewriter, loc, 1);
    Value n = dimOf(rewriter, loc, x, axis);
    Type i64 = rewriter.getI64Type();
    auto i64Vec = RankedTensorType::get({xT.getDimSize(axis)}, i64);
    auto vecOfN = [&](OpBuilder &b, Location l) {
      return filled(b, l, emptyWith(b, l, i64Vec, [&](int64_t) { return n; }),
                    0);
    };
    auto toI64 = [](OpBuilder &b, Location l, Value v) -> Value {
      return arith::IndexCastOp::create(b, l, b.getI64Type(), v);
    };
    auto toIdx = [](OpBuilder &b, Location l, Value v) -> Value {
      return arith::IndexCastOp::create(b, l, b.getIndexType(), v);
    };

    // 1. first[i]: the first item equal to item i.
    auto firstLoop = scf::ForOp::create(
        rewriter, loc, c0, n, c1, ValueRange{vecOfN(rewriter, loc)},
        [&](OpBuilder &b, Location l, Value i, ValueRange st) {
          Value f = arith::ConstantIntOp::create(b, l, 0, 1);
          Value end = arith::AddIOp::create(b, l, i, c1);
          auto scan = scf::ForOp::create(
              b, l, c0, end, c1, ValueRange{f, i},
              [&](OpBuilder &sb, Location sl, Value j, ValueRange s) {
                Value eq = compareItems(sb, sl, x, axis, j, i, uns).second;
                Value t = arith::ConstantIntOp::create(sb, sl, 1, 1);
                Value take = arith::AndIOp::create(
                    sb, sl, eq, arith::XOrIOp::create(sb, sl, s[0], t));
                Value nf = arith::OrIOp::create(sb, sl, s[0], take);
                Value nj = arith::SelectOp::create(sb, sl, take, j, s[1]);
                scf::YieldOp::create(sb, sl, ValueRange{nf, nj});
              });
          Value res = tensor::InsertOp::create(
              b, l, toI64(b, l, scan.getResult(1)), st[0], ValueRange{i});
          scf::YieldOp::create(b, l, res);
        });
    Value first = firstLoop.getResult(0);

    // 2. pos[i] for first occurrences: unique items before it in the order.
    auto posLoop = scf::ForOp::create(
        rewriter, loc, c0, n, c1, ValueRange{vecOfN(rewriter, loc)},
        [&](OpBuilder &b, Location l, Value i, ValueRange st) {
          auto scan = scf::ForOp::create(
              b, l, c0, n, c1, ValueRange{c0},
              [&](OpBuilder &sb, Location sl, Value j, ValueRange s) {
                Value fj = toIdx(sb, sl,
                                 tensor::ExtractOp::create(sb, sl, first, ValueRange{j}));
                Value isFirst = arith::CmpIOp::create(
                    sb, sl, arith::CmpIPredicate::eq, fj, j);
                Value earlier =
                    sorted ? compareItems(sb, sl, x, axis, j, i, uns).first
                           : (Value)arith::CmpIOp::create(
                                 sb, sl, arith::CmpIPredicate::ult, j, i);
                Value hit = arith::AndIOp::create(sb, sl, isFirst, earlier);
                Value cnt = arith::SelectOp::create(
                    sb, sl, hit, arith::AddIOp::create(sb, sl, s[0], c1), s[0]);
                scf::YieldOp::create(sb, sl, cnt);
              });
          Value res = tensor::InsertOp::create(
              b, l, toI64(b, l, scan.getResult(0)), st[0], ValueRange{i});
          scf::YieldOp::create(b, l, res);
        });
    Value pos = posLoop.getResult(0);

    // 3. Outputs.
    auto dimFor = [&](int64_t d) { return dimOf(rewriter, loc, x, d); };
    Value yInit = filled(rewriter, loc, emptyWith(rewriter, loc, yT, dimFor), 0);
    Value indInit = filled(rewriter, loc, emptyWith(rewriter, loc, indT, nullptr), 0);
    Value invInit = filled(rewriter, loc,
                           emptyWith(rewriter, loc, invT,
                                     [&](int64_t) { return n; }),
                           0);
    Value cntInit = filled(rewriter, loc, emptyWith(rewriter, loc, cntT, nullptr), 0);
    Value last = cidx(rewriter, loc, u - 1);
    auto outLoop = scf::ForOp::create(
        rewriter, loc, c0, n, c1, ValueRange{yInit, indInit, invInit, cntInit},
        [&](OpBuilder &b, Location l, Value i, ValueRange st) {
          Value f = toIdx(b, l, tensor::ExtractOp::create(b, l, first, ValueRange{i}));
          Value p = toIdx(b, l, tensor::ExtractOp::create(b, l, pos, ValueRange{f}));
          p = arith::MinSIOp::create(b, l, p, last);
          Value pI64 = toI64(b, l, p);
          Value inv = tensor::InsertOp::create(b, l, pI64, st[2], ValueRange{i});
          Value oldCnt = tensor::ExtractOp::create(b, l, st[3], ValueRange{p});
          Value one = arith::ConstantIntOp::create(b, l, b.getI64Type(), 1);
          Value cnt = tensor::InsertOp::create(
              b, l, arith::AddIOp::create(b, l, oldCnt, one), st[3],
              ValueRange{p});
          Value isFirst = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, f, i);
          auto ifOp = scf::IfOp::create(
              b, l, isFirst,
              [&](OpBuilder &tb, Location tl) {
                SmallVector<OpFoldResult> srcOff, dstOff, sizes, strides;
                for (int64_t d = 0; d < r; ++d) {
                  srcOff.push_back(d == axis ? OpFoldResult(i) : tb.getIndexAttr(0));
                  dstOff.push_back(d == axis ? OpFoldResult(p) : tb.getIndexAttr(0));
                  sizes.push_back(d == axis ? tb.getIndexAttr(1)
                                  : xT.isDynamicDim(d)
                                      ? OpFoldResult(dimOf(tb, tl, x, d))
                                      : tb.getIndexAttr(xT.getDimSize(d)));
                  strides.push_back(tb.getIndexAttr(1));
                }
                Value slice = tensor::ExtractSliceOp::create(tb, tl, x, srcOff,
                                                             sizes, strides);
                Value y = tensor::InsertSliceOp::create(tb, tl, slice, st[0],
                                                        dstOff, sizes, strides);
                Value ind = tensor::InsertOp::create(tb, tl, toI64(tb, tl, i),
                                                     st[1], ValueRange{p});
                scf::YieldOp::create(tb, tl, ValueRange{y, ind});
              },
              [&](OpBuilder &eb, Location el) {
                scf::YieldOp::create(eb, el, ValueRange{st[0], st[1]});
              });
          scf::YieldOp::create(
              b, l, ValueRange{ifOp.getResult(0), ifOp.getResult(1), inv, cnt});
        });
    rewriter.replaceOp(op, outLoop.getResults());
    return success();
  }
};

} // namespace

void populateOnnxIndexingPatterns(RewritePatternSet &patterns,
                                  const TypeConverter &converter) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<GatherLowering, GatherElementsLowering, GatherNDLowering,
               ScatterElementsLowering<onnx::ScatterElementsOp>,
               ScatterNDLowering, OneHotLowering, TopKLowering,
               CompressLowering, NonZeroLowering, UniqueLowering>(converter, ctx);
}

} // namespace kiln
