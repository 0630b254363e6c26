//===- Matmul.cpp - onnx contractions -> linalg ----------------------------===//
//
// MatMul, MatMulInteger, Gemm, Einsum, Det and com.microsoft::MatMulNBits (its
// constant weight dequantized at compile time). Plain 2-D (and same-batch 3-D)
// matmuls become linalg.matmul / linalg.batch_matmul; everything else
// (broadcast batches, 1-D operands, transposes, zero points, einsum
// equations) is one linalg.generic with reduction iterators into a
// zero-filled accumulator.
//
//===----------------------------------------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"
#include "dialects/onnx/IR/OnnxQuant.h"

#include "mlir/IR/AffineMap.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include <cmath>
#include <map>

using namespace mlir;

namespace kiln {
namespace {


bool numericType(Type t) {
  return isa<FloatType>(t) || (isa<IntegerType>(t) && !t.isInteger(1));
}

/// A zero-filled tensor of `type`; `sizes` gives a (value, dim) source for
/// each dynamic dim.
Value zeroFilled(OpBuilder &b, Location loc, RankedTensorType type,
                 ArrayRef<std::pair<Value, int64_t>> sources) {
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      dyn.push_back(tensor::DimOp::create(b, loc, sources[i].first,
                                          sources[i].second));
  Value empty = tensor::EmptyOp::create(b, loc, type.getShape(),
                                        type.getElementType(), dyn);
  Value zero = scalarConstant(b, loc, type.getElementType(), 0);
  return linalg::FillOp::create(b, loc, ValueRange{zero}, ValueRange{empty})
      .getResult(0);
}

bool sameOrDynamic(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// The loop structure of an ONNX (numpy) matmul of A and B: batch loops,
/// then m (unless A is 1-D), n (unless B is 1-D), then k.
struct MatmulPlan {
  int64_t numLoops = 0, nb = 0, mDim = -1, nDim = -1, kDim = 0;
  SmallVector<AffineExpr> aExprs, bExprs;
  AffineMap outMap;
  SmallVector<std::pair<Value, int64_t>> outSources; // per result dim
  SmallVector<int64_t> outShape;
};

FailureOr<MatmulPlan> planMatmul(MLIRContext *ctx, Value a, Value b) {
  auto aT = cast<RankedTensorType>(a.getType());
  auto bT = cast<RankedTensorType>(b.getType());
  int64_t ra = aT.getRank(), rb = bT.getRank();
  if (ra < 1 || rb < 1)
    return failure();
  bool aVec = ra == 1, bVec = rb == 1;
  int64_t batchA = aVec ? 0 : ra - 2, batchB = bVec ? 0 : rb - 2;
  MatmulPlan p;
  p.nb = std::max(batchA, batchB);
  int64_t next = p.nb;
  if (!aVec)
    p.mDim = next++;
  if (!bVec)
    p.nDim = next++;
  p.kDim = next;
  p.numLoops = next + 1;
  int64_t kA = aT.getDimSize(ra - 1), kB = bT.getDimSize(bVec ? 0 : rb - 2);
  if (!sameOrDynamic(kA, kB))
    return failure();

  auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
  auto zero = getAffineConstantExpr(0, ctx);
  // Batch dims: right-aligned numpy broadcasting.
  for (int64_t i = 0; i < p.nb; ++i) {
    int64_t ja = i - (p.nb - batchA), jb = i - (p.nb - batchB);
    int64_t da = ja >= 0 ? aT.getDimSize(ja) : 1;
    int64_t db = jb >= 0 ? bT.getDimSize(jb) : 1;
    if (da != 1 && db != 1 && !sameOrDynamic(da, db))
      return failure();
    // A dynamic dim broadcasting against a static one is not supported.
    if ((ShapedType::isDynamic(da) && db != 1 && ja >= 0 && jb >= 0 &&
         !ShapedType::isDynamic(db)) ||
        (ShapedType::isDynamic(db) && da != 1 && ja >= 0 && jb >= 0 &&
         !ShapedType::isDynamic(da)))
      return failure();
    int64_t size = da != 1 ? da : db;
    p.outShape.push_back(size);
    if (ja >= 0 && (da != 1 || jb < 0 || db == 1))
      p.outSources.push_back({a, ja});
    else
      p.outSources.push_back({b, jb});
  }
  for (int64_t j = 0; j < batchA; ++j) {
    int64_t i = p.nb - batchA + j;
    p.aExprs.push_back(aT.getDimSize(j) == 1 && p.outShape[i] != 1 ? zero : d(i));
  }
  for (int64_t j = 0; j < batchB; ++j) {
    int64_t i = p.nb - batchB + j;
    p.bExprs.push_back(bT.getDimSize(j) == 1 && p.outShape[i] != 1 ? zero : d(i));
  }
  if (!aVec) {
    p.aExprs.push_back(d(p.mDim));
    p.outShape.push_back(aT.getDimSize(ra - 2));
    p.outSources.push_back({a, ra - 2});
  }
  p.aExprs.push_back(d(p.kDim));
  p.bExprs.push_back(d(p.kDim));
  if (!bVec) {
    p.bExprs.push_back(d(p.nDim));
    p.outShape.push_back(bT.getDimSize(rb - 1));
    p.outSources.push_back({b, rb - 1});
  }
  SmallVector<AffineExpr> outExprs;
  for (int64_t i = 0; i < p.kDim; ++i)
    outExprs.push_back(d(i));
  p.outMap = AffineMap::get(p.numLoops, 0, outExprs, ctx);
  return p;
}

SmallVector<utils::IteratorType> contractionIterators(int64_t numLoops,
                                                      ArrayRef<int64_t> reductionDims) {
  SmallVector<utils::IteratorType> it(numLoops, utils::IteratorType::parallel);
  for (int64_t r : reductionDims)
    it[r] = utils::IteratorType::reduction;
  return it;
}

struct MatMulLowering : OpConversionPattern<onnx::MatMulOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::MatMulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value a = adaptor.getA(), b = adaptor.getB();
    auto aT = dyn_cast<RankedTensorType>(a.getType());
    auto bT = dyn_cast<RankedTensorType>(b.getType());
    auto outT = resultType(*getTypeConverter(), op);
    if (!aT || !bT || !outT)
      return rewriter.notifyMatchFailure(op, "unranked");
    Type elem = outT.getElementType();
    if (aT.getElementType() != elem || bT.getElementType() != elem ||
        !numericType(elem))
      return rewriter.notifyMatchFailure(op, "unsupported element types");
    auto plan = planMatmul(getContext(), a, b);
    if (failed(plan))
      return rewriter.notifyMatchFailure(op, "incompatible shapes");
    if (!compatible(plan->outShape, outT.getShape()))
      return rewriter.notifyMatchFailure(op, "result shape mismatch");
    Value init = zeroFilled(rewriter, loc, outT, plan->outSources);
    int64_t ra = aT.getRank(), rb = bT.getRank();
    Value r;
    if (ra == 2 && rb == 2) {
      r = linalg::MatmulOp::create(rewriter, loc, TypeRange{outT}, ValueRange{a, b},
                                   ValueRange{init})
              .getResult(0);
    } else if (ra == 3 && rb == 3 && !aT.isDynamicDim(0) &&
               aT.getDimSize(0) == bT.getDimSize(0)) {
      r = linalg::BatchMatmulOp::create(rewriter, loc, TypeRange{outT},
                                        ValueRange{a, b}, ValueRange{init})
              .getResult(0);
    } else {
      MLIRContext *ctx = getContext();
      SmallVector<AffineMap> maps{
          AffineMap::get(plan->numLoops, 0, plan->aExprs, ctx),
          AffineMap::get(plan->numLoops, 0, plan->bExprs, ctx), plan->outMap};
      r = linalg::GenericOp::create(
              rewriter, loc, TypeRange{outT}, ValueRange{a, b}, ValueRange{init},
              maps, contractionIterators(plan->numLoops, {plan->kDim}),
              [&](OpBuilder &nb, Location nl, ValueRange args) {
                Value prod = mulOf(nb, nl, args[0], args[1]);
                linalg::YieldOp::create(nb, nl, addOf(nb, nl, args[2], prod));
              })
              .getResult(0);
    }
    rewriter.replaceOp(op, r);
    return success();
  }
  static bool compatible(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
    if (a.size() != b.size())
      return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!sameOrDynamic(a[i], b[i]))
        return false;
    return true;
  }
};

struct MatMulIntegerLowering : OpConversionPattern<onnx::MatMulIntegerOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::MatMulIntegerOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    Value a = adaptor.getA(), b = adaptor.getB();
    auto aT = dyn_cast<RankedTensorType>(a.getType());
    auto bT = dyn_cast<RankedTensorType>(b.getType());
    auto outT = resultType(*getTypeConverter(), op);
    if (!aT || !bT || !outT)
      return rewriter.notifyMatchFailure(op, "unranked");
    Type acc = outT.getElementType();
    if (!acc.isInteger(32) || !isa<IntegerType>(aT.getElementType()) ||
        !isa<IntegerType>(bT.getElementType()))
      return rewriter.notifyMatchFailure(op, "integer inputs, i32 result");
    auto plan = planMatmul(ctx, a, b);
    if (failed(plan) || !MatMulLowering::compatible(plan->outShape, outT.getShape()))
      return rewriter.notifyMatchFailure(op, "incompatible shapes");
    bool aU = isUnsignedOnnx(op.getA()), bU = isUnsignedOnnx(op.getB());
    int64_t n = plan->numLoops;
    auto zero = getAffineConstantExpr(0, ctx);

    SmallVector<Value> inputs{a, b};
    SmallVector<AffineMap> maps{AffineMap::get(n, 0, plan->aExprs, ctx),
                                AffineMap::get(n, 0, plan->bExprs, ctx)};
    // Zero points: scalar, per-row of A (per-column of B), or N-D with the
    // contracted dim of size 1.
    auto zpMap = [&](Value zp, RankedTensorType opT, ArrayRef<AffineExpr> opExprs,
                     int64_t rowDim, int64_t kPos) -> std::optional<AffineMap> {
      auto zT = dyn_cast<RankedTensorType>(zp.getType());
      if (!zT)
        return std::nullopt;
      if (zT.getRank() == 0)
        return AffineMap::get(n, 0, {}, ctx);
      if (zT.getRank() == 1) {
        if (zT.getDimSize(0) == 1)
          return AffineMap::get(n, 0, {zero}, ctx);
        if (rowDim >= 0)
          return AffineMap::get(n, 0, {getAffineDimExpr(rowDim, ctx)}, ctx);
        return std::nullopt;
      }
      if (zT.getRank() == opT.getRank() && zT.getDimSize(kPos) == 1) {
        SmallVector<AffineExpr> exprs(opExprs);
        exprs[kPos] = zero;
        for (int64_t i = 0; i < zT.getRank(); ++i)
          if (zT.getDimSize(i) == 1)
            exprs[i] = zero;
        return AffineMap::get(n, 0, exprs, ctx);
      }
      return std::nullopt;
    };
    Value azp = adaptor.getAZeroPoint(), bzp = adaptor.getBZeroPoint();
    bool hasA = !isa<NoneType>(azp.getType()), hasB = !isa<NoneType>(bzp.getType());
    if (hasA) {
      auto m = zpMap(azp, aT, plan->aExprs, plan->mDim, aT.getRank() - 1);
      if (!m)
        return rewriter.notifyMatchFailure(op, "unsupported a_zero_point shape");
      inputs.push_back(azp);
      maps.push_back(*m);
    }
    if (hasB) {
      auto m = zpMap(bzp, bT, plan->bExprs, plan->nDim,
                     bT.getRank() == 1 ? 0 : bT.getRank() - 2);
      if (!m)
        return rewriter.notifyMatchFailure(op, "unsupported b_zero_point shape");
      inputs.push_back(bzp);
      maps.push_back(*m);
    }
    maps.push_back(plan->outMap);
    Value init = zeroFilled(rewriter, loc, outT, plan->outSources);
    Value r =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{outT}, inputs, ValueRange{init}, maps,
            contractionIterators(n, {plan->kDim}),
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              size_t i = 2;
              Value x = castScalar(nb, nl, args[0], acc, aU, false);
              Value y = castScalar(nb, nl, args[1], acc, bU, false);
              if (hasA)
                x = arith::SubIOp::create(nb, nl, x, castScalar(nb, nl, args[i++], acc, aU, false));
              if (hasB)
                y = arith::SubIOp::create(nb, nl, y, castScalar(nb, nl, args[i++], acc, bU, false));
              Value prod = arith::MulIOp::create(nb, nl, x, y);
              Value sum = arith::AddIOp::create(nb, nl, args.back(), prod);
              linalg::YieldOp::create(nb, nl, sum);
            })
            .getResult(0);
    rewriter.replaceOp(op, r);
    return success();
  }
};

struct GemmLowering : OpConversionPattern<onnx::GemmOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::GemmOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    Value a = adaptor.getA(), b = adaptor.getB(), c = adaptor.getC();
    auto aT = dyn_cast<RankedTensorType>(a.getType());
    auto bT = dyn_cast<RankedTensorType>(b.getType());
    auto outT = resultType(*getTypeConverter(), op);
    if (!aT || !bT || !outT || aT.getRank() != 2 || bT.getRank() != 2 ||
        outT.getRank() != 2)
      return rewriter.notifyMatchFailure(op, "2-D operands only");
    Type elem = outT.getElementType();
    if (aT.getElementType() != elem || bT.getElementType() != elem ||
        !numericType(elem))
      return rewriter.notifyMatchFailure(op, "unsupported element types");
    bool hasC = !isa<NoneType>(c.getType());
    auto cT = hasC ? dyn_cast<RankedTensorType>(c.getType()) : RankedTensorType();
    if (hasC && (!cT || cT.getElementType() != elem || cT.getRank() > 2))
      return rewriter.notifyMatchFailure(op, "unsupported C");
    bool transA = false, transB = false;
    if (auto t = op->getAttrOfType<IntegerAttr>("transA"))
      transA = t.getInt() != 0;
    if (auto t = op->getAttrOfType<IntegerAttr>("transB"))
      transB = t.getInt() != 0;
    double alpha = 1.0, beta = 1.0;
    if (auto f = op->getAttrOfType<FloatAttr>("alpha"))
      alpha = f.getValueAsDouble();
    if (auto f = op->getAttrOfType<FloatAttr>("beta"))
      beta = f.getValueAsDouble();
    bool isF = isa<FloatType>(elem);
    if (!isF && (alpha != std::trunc(alpha) || beta != std::trunc(beta)))
      return rewriter.notifyMatchFailure(op, "fractional alpha/beta on integers");

    int64_t m = aT.getDimSize(transA ? 1 : 0), kA = aT.getDimSize(transA ? 0 : 1);
    int64_t kB = bT.getDimSize(transB ? 1 : 0), n = bT.getDimSize(transB ? 0 : 1);
    if (!sameOrDynamic(kA, kB) || !sameOrDynamic(m, outT.getDimSize(0)) ||
        !sameOrDynamic(n, outT.getDimSize(1)))
      return rewriter.notifyMatchFailure(op, "incompatible shapes");
    if (hasC)
      for (int64_t i = 0; i < cT.getRank(); ++i) {
        int64_t d = cT.getDimSize(i), o = outT.getDimSize(2 - cT.getRank() + i);
        if (d != 1 && !sameOrDynamic(d, o))
          return rewriter.notifyMatchFailure(op, "C does not broadcast");
      }
    Value init = zeroFilled(rewriter, loc, outT,
                            {{a, transA ? 1 : 0}, {b, transB ? 0 : 1}});
    Value ab;
    if (!transA && !transB) {
      ab = linalg::MatmulOp::create(rewriter, loc, TypeRange{outT}, ValueRange{a, b},
                                    ValueRange{init})
               .getResult(0);
    } else {
      auto d = [&](int64_t i) { return getAffineDimExpr(i, ctx); };
      // Loops (m, n, k).
      SmallVector<AffineMap> maps{
          AffineMap::get(3, 0, transA ? ArrayRef<AffineExpr>{d(2), d(0)}
                                      : ArrayRef<AffineExpr>{d(0), d(2)}, ctx),
          AffineMap::get(3, 0, transB ? ArrayRef<AffineExpr>{d(1), d(2)}
                                      : ArrayRef<AffineExpr>{d(2), d(1)}, ctx),
          AffineMap::get(3, 0, {d(0), d(1)}, ctx)};
      ab = linalg::GenericOp::create(
               rewriter, loc, TypeRange{outT}, ValueRange{a, b}, ValueRange{init},
               maps, contractionIterators(3, {2}),
               [&](OpBuilder &nb, Location nl, ValueRange args) {
                 Value prod = mulOf(nb, nl, args[0], args[1]);
                 linalg::YieldOp::create(nb, nl, addOf(nb, nl, args[2], prod));
               })
               .getResult(0);
    }
    Value r = ab;
    if (alpha != 1.0 || (hasC && beta != 0.0)) {
      SmallVector<Value> ins{ab};
      bool useC = hasC && beta != 0.0;
      if (useC)
        ins.push_back(c);
      r = buildElementwise(rewriter, loc, outT, ins,
                           [&](OpBuilder &nb, Location nl, ValueRange s) {
                             Value v = s[0];
                             if (alpha != 1.0)
                               v = mulOf(nb, nl, v, scalarConstant(nb, nl, elem, alpha));
                             if (useC) {
                               Value cv = s[1];
                               if (beta != 1.0)
                                 cv = mulOf(nb, nl, cv, scalarConstant(nb, nl, elem, beta));
                               v = addOf(nb, nl, v, cv);
                             }
                             return v;
                           });
    }
    rewriter.replaceOp(op, r);
    return success();
  }
};

/// Einsum: one linalg.generic whose loops are the output labels followed by
/// the summed ones; `...` stands for right-aligned broadcast dims.
struct EinsumLowering : OpConversionPattern<onnx::EinsumOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::EinsumOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    auto outT = resultType(*getTypeConverter(), op);
    if (!outT)
      return rewriter.notifyMatchFailure(op, "unranked result");
    Type elem = outT.getElementType();
    if (!numericType(elem))
      return rewriter.notifyMatchFailure(op, "unsupported element type");
    SmallVector<Value> inputs(adaptor.getInputs());
    SmallVector<RankedTensorType> types;
    for (Value v : inputs) {
      auto t = dyn_cast<RankedTensorType>(v.getType());
      if (!t || t.getElementType() != elem)
        return rewriter.notifyMatchFailure(op, "operand type mismatch");
      types.push_back(t);
    }
    if (inputs.empty())
      return rewriter.notifyMatchFailure(op, "no operands");

    // Parse. Labels are letters; ellipsis dims get labels 256 + position.
    std::string eq;
    for (char ch : op.getEquation())
      if (!std::isspace((unsigned char)ch))
        eq.push_back(ch);
    std::string lhs = eq, rhs;
    bool explicitOut = false;
    if (size_t arrow = eq.find("->"); arrow != std::string::npos) {
      lhs = eq.substr(0, arrow);
      rhs = eq.substr(arrow + 2);
      explicitOut = true;
    }
    SmallVector<std::string> terms;
    {
      std::string cur;
      for (char ch : lhs) {
        if (ch == ',') {
          terms.push_back(cur);
          cur.clear();
        } else {
          cur.push_back(ch);
        }
      }
      terms.push_back(cur);
    }
    if (terms.size() != inputs.size())
      return rewriter.notifyMatchFailure(op, "operand count mismatch");

    // Splits a term into letters around at most one "...".
    auto split = [](const std::string &t, std::string &pre, std::string &post,
                    bool &hasDots) -> bool {
      size_t dots = t.find("...");
      hasDots = dots != std::string::npos;
      pre = hasDots ? t.substr(0, dots) : t;
      post = hasDots ? t.substr(dots + 3) : "";
      for (char ch : pre + post)
        if (!std::isalpha((unsigned char)ch))
          return false;
      return true;
    };
    int64_t ellRank = 0;
    SmallVector<SmallVector<int>> labels;
    SmallVector<int64_t> termEll;
    for (size_t i = 0; i < terms.size(); ++i) {
      std::string pre, post;
      bool dots;
      if (!split(terms[i], pre, post, dots))
        return rewriter.notifyMatchFailure(op, "bad equation");
      int64_t rank = types[i].getRank();
      int64_t letters = pre.size() + post.size();
      int64_t e = dots ? rank - letters : 0;
      if (e < 0 || (!dots && letters != rank))
        return rewriter.notifyMatchFailure(op, "equation does not match ranks");
      termEll.push_back(e);
      ellRank = std::max(ellRank, e);
    }
    for (size_t i = 0; i < terms.size(); ++i) {
      std::string pre, post;
      bool dots;
      split(terms[i], pre, post, dots);
      SmallVector<int> l;
      for (char ch : pre)
        l.push_back((unsigned char)ch);
      for (int64_t j = 0; j < termEll[i]; ++j)
        l.push_back(256 + (ellRank - termEll[i]) + j);
      for (char ch : post)
        l.push_back((unsigned char)ch);
      labels.push_back(l);
    }
    // Loop sizes per label.
    std::map<int, int64_t> sizes;
    for (size_t i = 0; i < labels.size(); ++i)
      for (size_t j = 0; j < labels[i].size(); ++j) {
        int lab = labels[i][j];
        int64_t s = types[i].getDimSize(j);
        auto it = sizes.find(lab);
        if (it == sizes.end() || it->second == 1) {
          sizes[lab] = s;
          continue;
        }
        if (s == 1 && lab >= 256)
          continue;
        if (!sameOrDynamic(s, it->second))
          return rewriter.notifyMatchFailure(op, "inconsistent label sizes");
      }
    SmallVector<int> outLabels;
    if (explicitOut) {
      std::string pre, post;
      bool dots;
      if (!split(rhs, pre, post, dots))
        return rewriter.notifyMatchFailure(op, "bad output term");
      for (char ch : pre)
        outLabels.push_back((unsigned char)ch);
      if (dots)
        for (int64_t j = 0; j < ellRank; ++j)
          outLabels.push_back(256 + j);
      for (char ch : post)
        outLabels.push_back((unsigned char)ch);
    } else {
      for (int64_t j = 0; j < ellRank; ++j)
        outLabels.push_back(256 + j);
      std::map<int, int> counts;
      for (auto &l : labels)
        for (int lab : l)
          if (lab < 256)
            counts[lab]++;
      for (auto [lab, cnt] : counts) // std::map: ASCII order
        if (cnt == 1)
          outLabels.push_back(lab);
    }
    // Loops: output labels, then the summed ones in order of appearance.
    std::map<int, int64_t> loopOf;
    SmallVector<int> loopLabels;
    for (int lab : outLabels) {
      if (loopOf.count(lab) || !sizes.count(lab))
        return rewriter.notifyMatchFailure(op, "bad output labels");
      loopOf[lab] = loopLabels.size();
      loopLabels.push_back(lab);
    }
    SmallVector<int64_t> reductions;
    for (auto &l : labels)
      for (int lab : l)
        if (!loopOf.count(lab)) {
          loopOf[lab] = loopLabels.size();
          reductions.push_back(loopLabels.size());
          loopLabels.push_back(lab);
        }
    int64_t numLoops = loopLabels.size();
    if ((int64_t)outLabels.size() != outT.getRank())
      return rewriter.notifyMatchFailure(op, "result rank mismatch");
    SmallVector<std::pair<Value, int64_t>> sources(outT.getRank());
    for (int64_t i = 0; i < outT.getRank(); ++i) {
      if (!sameOrDynamic(sizes[outLabels[i]], outT.getDimSize(i)))
        return rewriter.notifyMatchFailure(op, "result shape mismatch");
      for (size_t t = 0; t < labels.size() && !sources[i].first; ++t)
        for (size_t j = 0; j < labels[t].size(); ++j)
          if (labels[t][j] == outLabels[i] && types[t].getDimSize(j) != 1) {
            sources[i] = {inputs[t], (int64_t)j};
            break;
          }
      if (!sources[i].first && outT.isDynamicDim(i))
        return rewriter.notifyMatchFailure(op, "unknown dynamic dim");
    }
    SmallVector<AffineMap> maps;
    for (size_t t = 0; t < labels.size(); ++t) {
      SmallVector<AffineExpr> exprs;
      for (size_t j = 0; j < labels[t].size(); ++j) {
        int lab = labels[t][j];
        if (lab >= 256 && types[t].getDimSize(j) == 1 && sizes[lab] != 1)
          exprs.push_back(getAffineConstantExpr(0, ctx));
        else
          exprs.push_back(getAffineDimExpr(loopOf[lab], ctx));
      }
      maps.push_back(AffineMap::get(numLoops, 0, exprs, ctx));
    }
    SmallVector<AffineExpr> outExprs;
    for (size_t i = 0; i < outLabels.size(); ++i)
      outExprs.push_back(getAffineDimExpr(i, ctx));
    maps.push_back(AffineMap::get(numLoops, 0, outExprs, ctx));
    // Every loop must be reachable from some operand dim.
    for (int64_t l = 0; l < numLoops; ++l) {
      bool seen = false;
      for (AffineMap m : maps)
        for (AffineExpr e : m.getResults())
          if (auto de = dyn_cast<AffineDimExpr>(e); de && de.getPosition() == l)
            seen = true;
      if (!seen)
        return rewriter.notifyMatchFailure(op, "unbounded loop");
    }
    Value init = zeroFilled(rewriter, loc, outT, sources);
    Value r = linalg::GenericOp::create(
                  rewriter, loc, TypeRange{outT}, inputs, ValueRange{init}, maps,
                  contractionIterators(numLoops, reductions),
                  [&](OpBuilder &nb, Location nl, ValueRange args) {
                    Value p = args[0];
                    for (Value v : args.drop_front().drop_back())
                      p = mulOf(nb, nl, p, v);
                    linalg::YieldOp::create(nb, nl, addOf(nb, nl, args.back(), p));
                  })
                  .getResult(0);
    rewriter.replaceOp(op, r);
    return success();
  }
};

/// Det of small static matrices: a linalg.generic over the batch dims whose
/// body reads the N x N matrix with tensor.extract and runs an unrolled
/// Gaussian elimination with partial pivoting (via selects).
struct DetLowering : OpConversionPattern<onnx::DetOp> {
  using OpConversionPattern::OpConversionPattern;
  static constexpr int64_t kMaxN = 8;
  LogicalResult
  matchAndRewrite(onnx::DetOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getX();
    auto xT = dyn_cast<RankedTensorType>(x.getType());
    auto outT = resultType(*getTypeConverter(), op);
    if (!xT || !outT || xT.getRank() < 2)
      return rewriter.notifyMatchFailure(op, "needs [..., N, N]");
    Type elem = xT.getElementType();
    if (!isa<FloatType>(elem) || outT.getElementType() != elem)
      return rewriter.notifyMatchFailure(op, "float element types only");
    int64_t r = xT.getRank(), n = xT.getDimSize(r - 1);
    if (ShapedType::isDynamic(n) || xT.getDimSize(r - 2) != n || n < 1 ||
        n > kMaxN)
      return rewriter.notifyMatchFailure(op, "static square matrices up to 8x8");
    if (outT.getRank() != r - 2)
      return rewriter.notifyMatchFailure(op, "result rank mismatch");
    for (int64_t i = 0; i < r - 2; ++i)
      if (!sameOrDynamic(outT.getDimSize(i), xT.getDimSize(i)))
        return rewriter.notifyMatchFailure(op, "result shape mismatch");
    Type acc = cast<FloatType>(elem).getWidth() < 32 ? (Type)rewriter.getF32Type()
                                                     : elem;
    SmallVector<Value> dyn;
    for (int64_t i = 0; i < r - 2; ++i)
      if (outT.isDynamicDim(i))
        dyn.push_back(tensor::DimOp::create(rewriter, loc, x, i));
    Value init = tensor::EmptyOp::create(rewriter, loc, outT.getShape(), elem, dyn);
    int64_t nbatch = r - 2;
    SmallVector<AffineMap> maps{
        AffineMap::getMultiDimIdentityMap(nbatch, getContext())};
    SmallVector<utils::IteratorType> it(nbatch, utils::IteratorType::parallel);
    Value res = linalg::GenericOp::create(
                    rewriter, loc, TypeRange{outT}, ValueRange{}, ValueRange{init},
                    maps, it,
                    [&](OpBuilder &b, Location l, ValueRange) {
                      SmallVector<Value> idx;
                      for (int64_t i = 0; i < nbatch; ++i)
                        idx.push_back(linalg::IndexOp::create(b, l, i));
                      SmallVector<SmallVector<Value>> a(n, SmallVector<Value>(n));
                      for (int64_t i = 0; i < n; ++i)
                        for (int64_t j = 0; j < n; ++j) {
                          SmallVector<Value> ij(idx);
                          ij.push_back(arith::ConstantIndexOp::create(b, l, i));
                          ij.push_back(arith::ConstantIndexOp::create(b, l, j));
                          Value v = tensor::ExtractOp::create(b, l, x, ij);
                          a[i][j] = castScalar(b, l, v, acc, false, false);
                        }
                      linalg::YieldOp::create(b, l, castScalar(b, l, det(b, l, a, acc), elem, false, false));
                    })
                    .getResult(0);
    rewriter.replaceOp(op, res);
    return success();
  }

  static Value det(OpBuilder &b, Location l, SmallVector<SmallVector<Value>> a,
                   Type t) {
    int64_t n = a.size();
    if (n == 1)
      return a[0][0];
    if (n == 2)
      return arith::SubFOp::create(b, l, arith::MulFOp::create(b, l, a[0][0], a[1][1]),
                                   arith::MulFOp::create(b, l, a[0][1], a[1][0]));
    Value zero = scalarConstant(b, l, t, 0);
    Value result = scalarConstant(b, l, t, 1);
    for (int64_t k = 0; k < n; ++k) {
      // Partial pivoting: bubble the largest |a[r][k]| into row k.
      for (int64_t r = k + 1; r < n; ++r) {
        Value pk = math_abs(b, l, a[k][k]), pr = math_abs(b, l, a[r][k]);
        Value swap = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, pr, pk);
        for (int64_t j = k; j < n; ++j) {
          Value vk = a[k][j], vr = a[r][j];
          a[k][j] = arith::SelectOp::create(b, l, swap, vr, vk);
          a[r][j] = arith::SelectOp::create(b, l, swap, vk, vr);
        }
        result = arith::SelectOp::create(b, l, swap,
                                         arith::NegFOp::create(b, l, result), result);
      }
      Value pivot = a[k][k];
      result = arith::MulFOp::create(b, l, result, pivot);
      Value isZero = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, pivot, zero);
      for (int64_t r = k + 1; r < n; ++r) {
        Value f = arith::DivFOp::create(b, l, a[r][k], pivot);
        f = arith::SelectOp::create(b, l, isZero, zero, f);
        for (int64_t j = k + 1; j < n; ++j)
          a[r][j] = arith::SubFOp::create(b, l, a[r][j],
                                          arith::MulFOp::create(b, l, f, a[k][j]));
      }
    }
    return result;
  }
  static Value math_abs(OpBuilder &b, Location l, Value v) {
    Value neg = arith::NegFOp::create(b, l, v);
    return arith::MaximumFOp::create(b, l, v, neg);
  }
};

/// MatMulNBits outside an LLM (kiln-raise-llm turns the LLM case into
/// llm.matmul of llm.dequantize): B, scales, zero points and g_idx are
/// constants, so the f32 weight [K, N] is computed here and the op becomes
/// onnx.MatMul (+ onnx.Add of the bias), lowered by the patterns above. Exact,
/// not fast: the weight is stored in f32.
struct MatMulNBitsLowering : OpConversionPattern<onnx::MatMulNBitsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::MatMulNBitsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto aType = dyn_cast<RankedTensorType>(adaptor.getA().getType());
    auto yType = resultType(*getTypeConverter(), op);
    if (!aType || !yType || !aType.getElementType().isF32() || aType.getRank() < 2)
      return rewriter.notifyMatchFailure(op, "f32 activations of rank >= 2 only");
    std::string why;
    FailureOr<onnx::UnpackedNBits> u = onnx::unpackMatMulNBits(op, why);
    if (failed(u))
      return rewriter.notifyMatchFailure(op, why);
    int64_t K = u->K, N = u->N;
    std::vector<float> w(K * N);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) {
        int64_t g = u->groupOf[k] * N + n;
        w[k * N + n] = ((float)u->codes[k * N + n] - u->zeroPoints[g]) * u->scales[g];
      }
    Location loc = op.getLoc();
    auto wType = RankedTensorType::get({K, N}, rewriter.getF32Type());
    auto blob = HeapAsmResourceBlob::allocateAndCopyInferAlign<float>(w);
    auto attr = DenseResourceElementsAttr::get(wType, "matmulnbits_weight", std::move(blob));
    Value weight = arith::ConstantOp::create(rewriter, loc, attr);
    Value y = onnx::MatMulOp::create(rewriter, loc, yType, adaptor.getA(), weight);
    if (!isNone(adaptor.getBias()))
      y = onnx::AddOp::create(rewriter, loc, yType, y, adaptor.getBias());
    rewriter.replaceOp(op, y);
    return success();
  }
};

} // namespace

void populateOnnxMatmulPatterns(RewritePatternSet &patterns,
                                const TypeConverter &converter) {
  patterns.add<MatMulLowering, MatMulIntegerLowering, GemmLowering,
               EinsumLowering, DetLowering, MatMulNBitsLowering>(
      converter, patterns.getContext());
}

} // namespace kiln
