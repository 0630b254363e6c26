//===- RaiseLlm.cpp - onnx transformer graphs -> llm ops -------------------===//
//
// Recognizes the blocks a transformer export is made of — embeddings,
// RMSNorm/LayerNorm, linear layers (+bias, +activation, +residual), gated
// and GELU MLPs, head split/merge, rotary embeddings, the KV-cache concat and
// scaled-dot-product attention with GQA and causal/padding masks — by the
// structure of the graph (op kinds, data flow, constants, static dims),
// never by names, and replaces them with llm ops. The mask and shape
// arithmetic the export built around them becomes dead and is erased.
//
// A weight may be an f32 constant or pre-quantized: DequantizeLinear of
// integer constants (QDQ) or com.microsoft::MatMulNBits. Quantized weights
// become llm.dequantize of arith.constant integers, scales and zero points,
// the form kiln-llm-quantize writes (docs/compression.md).
//
// Matching runs in sweeps over the entry function: each sweep raises what it
// can in program order, then shapes are re-inferred so that the next sweep
// sees the static head sizes that raising made known.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/RaiseLlm.h"

#include "compiler/transforms/GraphMatch.h"
#include "compiler/transforms/LinearWeights.h"
#include "dialects/llm/IR/LlmDialect.h"
#include "dialects/onnx/IR/OnnxQuant.h"
#include "dialects/onnx/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"

#include <cmath>
#include <cstring>

using namespace mlir;
using namespace kiln::match;
using kiln::onnx::floatValues;
using kiln::onnx::intValues;
using kiln::onnx::rawBytes;

namespace kiln {
namespace {

constexpr int64_t kDyn = ShapedType::kDynamic;

RankedTensorType withLastDim(RankedTensorType t, int64_t n) {
  SmallVector<int64_t> shape(t.getShape());
  shape.back() = n;
  return RankedTensorType::get(shape, t.getElementType());
}

bool isF32(Value v) {
  auto t = ranked(v);
  return t && t.getElementType().isF32();
}

/// A new constant op holding `data` (as a resource blob when large).
Value makeConstant(OpBuilder &b, Location loc, RankedTensorType type,
                   ArrayRef<float> data, StringRef name) {
  ElementsAttr attr;
  if (data.size() > 16) {
    auto blob = HeapAsmResourceBlob::allocateAndCopyInferAlign<float>(data);
    attr = DenseResourceElementsAttr::get(type, name, std::move(blob));
  } else {
    attr = DenseElementsAttr::get(type, data);
  }
  OperationState st(loc, "onnx.Constant");
  st.addAttribute("value", attr);
  st.addTypes(type);
  return b.create(st)->getResult(0);
}

/// Records what was raised, for --report.
struct Tally {
  llvm::StringMap<int> raised;
  void note(StringRef what) { ++raised[what]; }
};

class Raiser {
public:
  Raiser(func::FuncOp fn, Tally &tally)
      : fn(fn), tally(tally), rewriter(fn.getContext()) {}

  /// One sweep in program order; true if anything changed.
  bool sweep() {
    bool changed = false;
    SmallVector<Operation *> ops;
    fn.walk([&](Operation *op) {
      if (op->getName().getDialectNamespace() == "onnx")
        ops.push_back(op);
    });
    erased.clear();
    for (Operation *op : ops) {
      if (erased.contains(op))
        continue;
      if (op->use_empty() && op->getNumResults() > 0)
        continue;
      rewriter.setInsertionPoint(op);
      Operation *raised = tryRaise(op);
      if (!raised)
        continue;
      changed = true;
      // Replaced ops may still have other users; erase only what is dead.
      eraseDead(op);
    }
    return changed;
  }

private:
  Operation *tryRaise(Operation *op) {
    StringRef k = op->getName().stripDialect();
    if (k == "Gather")
      return raiseEmbedding(op);
    if (k == "Mul")
      return raiseRmsNorm(op);
    if (k == "LayerNormalization")
      return raiseLayerNorm(op);
    if (k == "MatMul")
      return raiseMatmul(op);
    if (k == "MatMulNBits")
      return raiseMatmulNBits(op);
    if (k == "Add") {
      if (Operation *r = raiseEmbeddingPositions(op))
        return r;
      if (Operation *r = raiseBias(op))
        return r;
      if (Operation *r = raiseRotary(op))
        return r;
      return raiseResidual(op);
    }
    if (k == "Split")
      return raiseSplitLinear(op);
    if (k == "Transpose")
      return raiseSplitHeads(op);
    if (k == "Reshape")
      return raiseMergeHeads(op);
    if (k == "Concat")
      return raiseKvAppend(op);
    return nullptr;
  }

  Operation *replace(Operation *op, Operation *with, StringRef what) {
    op->getResult(0).replaceAllUsesWith(with->getResult(0));
    tally.note(what);
    return with;
  }

  // --- embedding ----------------------------------------------------------
  Operation *raiseEmbedding(Operation *op) {
    ElementsAttr table = weight(op->getOperand(0), 2);
    auto ids = ranked(op->getOperand(1));
    if (!table || intAttr(op, "axis", 0) != 0 || !ids ||
        !ids.getElementType().isInteger(64) || !isF32(op->getOperand(0)))
      return nullptr;
    auto tt = cast<RankedTensorType>(op->getOperand(0).getType());
    SmallVector<int64_t> shape(ids.getShape());
    shape.push_back(tt.getDimSize(1));
    auto type = RankedTensorType::get(shape, tt.getElementType());
    auto e = llm::EmbeddingOp::create(rewriter, op->getLoc(), type,
                                      op->getOperand(0), op->getOperand(1),
                                      Value(), Value());
    return replace(op, e, "embedding");
  }

  /// token embedding + position embedding -> one embedding op.
  Operation *raiseEmbeddingPositions(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value a, Value b) {
      auto ea = a.getDefiningOp<llm::EmbeddingOp>();
      auto eb = b.getDefiningOp<llm::EmbeddingOp>();
      if (!ea || !eb || ea.getPosTable() || eb.getPosTable() ||
          ea.getType() != eb.getType() || !a.hasOneUse() || !b.hasOneUse())
        return false;
      auto e = llm::EmbeddingOp::create(rewriter, op->getLoc(), ea.getType(),
                                        ea.getTable(), ea.getIds(),
                                        eb.getTable(), eb.getIds());
      result = replace(op, e, "embedding+positions");
      return true;
    });
    return result;
  }

  // --- norms --------------------------------------------------------------
  /// weight * (x * 1/sqrt(mean(x^2, -1) + eps)), in any operand order, with
  /// the reciprocal as Div(1, .) or Reciprocal(.), or x / sqrt(.).
  Operation *raiseRmsNorm(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value w, Value normed) {
      ElementsAttr wAttr = weight(w, 1);
      if (!wAttr || !isF32(w))
        return false;
      Value x;
      std::optional<double> eps;
      auto matchInvRms = [&](Value inv, Value xCand) {
        Value sq;
        if (Operation *d = def(inv, "Div")) {
          auto one = scalarFloat(d->getOperand(0));
          if (!one || *one != 1.0)
            return false;
          sq = d->getOperand(1);
        } else if (Operation *r = def(inv, "Reciprocal")) {
          sq = r->getOperand(0);
        } else {
          return false;
        }
        return matchSqrtMean(sq, xCand, eps);
      };
      if (Operation *m = def(normed, "Mul")) {
        eitherOrder(m, [&](Value a, Value inv) {
          if (!matchInvRms(inv, a))
            return false;
          x = a;
          return true;
        });
      } else if (Operation *d = def(normed, "Div")) {
        if (matchSqrtMean(d->getOperand(1), d->getOperand(0), eps))
          x = d->getOperand(0);
      }
      auto xt = ranked(x);
      if (!x || !xt || !isF32(x) || xt.getRank() < 1 ||
          xt.getShape().back() != cast<ShapedType>(wAttr.getType()).getDimSize(0))
        return false;
      auto n = llm::RmsNormOp::create(rewriter, op->getLoc(), xt, x, w,
                                      rewriter.getF32FloatAttr(*eps));
      result = replace(op, n, "rms_norm");
      return true;
    });
    return result;
  }

  /// sqrt(mean(x*x or x^2, last axis, keepdims) + eps)
  bool matchSqrtMean(Value sq, Value x, std::optional<double> &eps) {
    Operation *s = def(sq, "Sqrt");
    if (!s)
      return false;
    Operation *add = def(s->getOperand(0), "Add");
    if (!add)
      return false;
    bool ok = eitherOrder(add, [&](Value mean, Value e) {
      auto ev = scalarFloat(e);
      Operation *rm = def(mean, "ReduceMean");
      if (!ev || !rm || intAttr(rm, "keepdims", 1) != 1)
        return false;
      auto xt = ranked(x);
      auto axes = axesOf(rm);
      if (!xt || axes.size() != 1 ||
          (axes[0] != -1 && axes[0] != xt.getRank() - 1))
        return false;
      Value p = rm->getOperand(0);
      bool squared = false;
      if (Operation *pw = def(p, "Pow")) {
        auto two = scalarFloat(pw->getOperand(1));
        squared = pw->getOperand(0) == x && two && *two == 2.0;
      } else if (Operation *m = def(p, "Mul")) {
        squared = m->getOperand(0) == x && m->getOperand(1) == x;
      }
      if (!squared)
        return false;
      eps = *ev;
      return true;
    });
    return ok;
  }

  Operation *raiseLayerNorm(Operation *op) {
    Value x = op->getOperand(0), w = op->getOperand(1), b = op->getOperand(2);
    auto xt = ranked(x);
    int64_t axis = intAttr(op, "axis", -1);
    if (!xt || !isF32(x) || !weight(w, 1) ||
        (axis != -1 && axis != xt.getRank() - 1) || !op->getResult(1).use_empty() ||
        !op->getResult(2).use_empty())
      return nullptr;
    if (b && !isa<NoneType>(b.getType()) && !weight(b, 1))
      return nullptr;
    if (b && isa<NoneType>(b.getType()))
      b = Value();
    auto n = llm::LayerNormOp::create(
        rewriter, op->getLoc(), xt, x, w, b,
        rewriter.getF32FloatAttr(floatAttr(op, "epsilon", 1e-5)));
    return replace(op, n, "layer_norm");
  }

  // --- linear layers and MLPs ----------------------------------------------
  Operation *raiseMatmul(Operation *op) {
    if (def(skipNoops(op->getOperand(0)), "Softmax"))
      return raiseAttention(op);
    Value x = op->getOperand(0), w = op->getOperand(1);
    auto xt = ranked(x);
    if (!xt || !isF32(x) || xt.getRank() < 2)
      return nullptr;
    if (weight(w, 2) && isF32(w)) {
      auto wt = cast<RankedTensorType>(w.getType());
      if (xt.getShape().back() != wt.getDimSize(0))
        return nullptr;
      return raiseLinear(op, x, w, Value());
    }
    // A weight read through DequantizeLinear (QDQ).
    std::optional<QuantWeight> q = dequantizeLinearWeight(w, xt.getShape().back());
    if (!q)
      return nullptr;
    tally.note("dequantize(int8, QDQ)");
    return raiseLinear(op, x, materialize(*q, w.getLoc()), Value());
  }

  /// x @ w (+ bias) for a weight `w` [K, N] that is an f32 constant or an
  /// llm.dequantize: a gated MLP when `op` is its down projection, else an
  /// llm.matmul, GELU epilogue included when the bias is given here.
  Operation *raiseLinear(Operation *op, Value x, Value w, Value bias) {
    auto xt = ranked(x);
    auto type = withLastDim(xt, cast<RankedTensorType>(w.getType()).getDimSize(1));
    if (!bias)
      if (Operation *g = raiseGatedMlp(op, x, w))
        return g;
    auto m = llm::MatmulOp::create(rewriter, op->getLoc(), type, x, w, bias,
                                   Value(), rewriter.getStringAttr("none"));
    Operation *result = replace(op, m, bias ? "matmul+bias" : "matmul");
    if (bias)
      if (Operation *g = raiseGelu(m))
        result = g;
    return result;
  }

  // --- quantized weights -----------------------------------------------------
  /// The operands of an llm.dequantize, worked out from onnx constants.
  struct QuantWeight {
    ElementsAttr data, scales, zeroPoints; // zeroPoints may be null
    int64_t groupSize = 0;
    std::string name; // for resource blobs
  };

  /// Scales as f16 bits. Scales are rounded to nearest: f16 holds ~3
  /// decimal digits, a relative error below 2^-11 per group that is small
  /// against the quantization itself (int8: 2^-8, int4: 2^-4 of the range).
  /// Scales that f16 cannot hold that well (overflow, below its normal
  /// range) leave the weight alone.
  static std::optional<std::vector<uint16_t>> toF16(ArrayRef<float> scales) {
    std::vector<uint16_t> out(scales.size());
    for (size_t i = 0; i < scales.size(); ++i) {
      float s = scales[i];
      if (!std::isfinite(s))
        return std::nullopt;
      uint16_t h = toHalf(s);
      float back = fromHalf(h);
      if (!std::isfinite(back) || std::abs(back - s) > std::abs(s) * (1.0f / 1024))
        return std::nullopt;
      out[i] = h;
    }
    return out;
  }

  /// A constant of `type` over `bytes` (one byte per i4/i8 element, two per
  /// f16): a resource blob for large i8 data, dense otherwise (i4 and f16
  /// always dense, as kiln-llm-quantize writes them).
  ElementsAttr constantAttr(RankedTensorType type, ArrayRef<char> bytes,
                            StringRef name) {
    if (type.getElementType().isInteger(8) && type.getNumElements() > 64) {
      auto blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes, 64);
      return DenseResourceElementsAttr::get(type, name, std::move(blob));
    }
    return DenseElementsAttr::getFromRawBuffer(type, bytes);
  }

  Value materialize(const QuantWeight &q, Location loc) {
    auto c = [&](ElementsAttr a) -> Value {
      if (!a)
        return Value();
      return arith::ConstantOp::create(rewriter, loc, cast<TypedAttr>(a));
    };
    auto dt = cast<RankedTensorType>(q.data.getType());
    auto type = RankedTensorType::get(dt.getShape(), rewriter.getF32Type());
    return llm::DequantizeOp::create(rewriter, loc, type, c(q.data), c(q.scales),
                                     c(q.zeroPoints),
                                     rewriter.getI64IntegerAttr(q.groupSize), IntegerAttr());
  }

  static std::string nameOf(Value v, StringRef dflt) {
    if (Operation *d = v.getDefiningOp())
      if (auto n = dyn_cast<NameLoc>(d->getLoc()))
        return n.getName().str();
    return dflt.str();
  }

  /// DequantizeLinear(q, scale, zero_point) of a constant int8/uint8 matrix,
  /// per tensor or per output channel, read as [K, N] — directly or through a
  /// Transpose (perm [1, 0]) on either side, for exporters that store
  /// [N, K]. uint8 codes become int8 (q - 128) with zero point zp - 128;
  /// zero points that are all 0 are left out; group_size = K.
  std::optional<QuantWeight> dequantizeLinearWeight(Value w, int64_t K) {
    bool transposed = false;
    auto throughTranspose = [&](Value v) {
      v = skipNoops(v);
      if (Operation *t = def(v, "Transpose")) {
        auto perm = intList(t, "perm");
        if (!perm.empty() && perm != SmallVector<int64_t>{1, 0})
          return Value();
        transposed = !transposed;
        return skipNoops(t->getOperand(0));
      }
      return v;
    };
    Value v = throughTranspose(w);
    Operation *dq = v ? def(v, "DequantizeLinear") : nullptr;
    if (!dq || !isF32(dq->getResult(0)))
      return std::nullopt;
    bool outerT = transposed;
    Value x = throughTranspose(dq->getOperand(0));
    ElementsAttr c = x ? constant(x) : ElementsAttr();
    auto ct = c ? cast<RankedTensorType>(c.getType()) : RankedTensorType();
    if (!ct || ct.getRank() != 2 || !ct.getElementType().isInteger(8))
      return std::nullopt;
    bool isUnsigned = ct.getElementType().isUnsignedInteger(8);
    // The weight is [K, N] = C or C^T.
    int64_t k = transposed ? ct.getDimSize(1) : ct.getDimSize(0);
    int64_t n = transposed ? ct.getDimSize(0) : ct.getDimSize(1);
    if (k != K)
      return std::nullopt;
    // Scale and zero point: one value, or one per N. The DQ's own input is
    // [N, K] when a Transpose follows it.
    int64_t nAxis = outerT ? 0 : 1;
    int64_t axis = intAttr(dq, "axis", 1);
    if (axis < 0)
      axis += 2;
    auto scales = floatValues(constant(skipNoops(dq->getOperand(1))));
    if (!scales || (scales->size() != 1 && ((int64_t)scales->size() != n || axis != nAxis)))
      return std::nullopt;
    std::vector<int64_t> zps(scales->size(), 0);
    Value zpv = dq->getNumOperands() > 2 ? dq->getOperand(2) : Value();
    if (zpv && !isa<NoneType>(zpv.getType())) {
      ElementsAttr za = constant(skipNoops(zpv));
      auto z = za ? intValues(za) : std::nullopt;
      if (!z || z->size() != scales->size() ||
          cast<ShapedType>(za.getType()).getElementType() != ct.getElementType())
        return std::nullopt;
      zps = *z;
    }
    auto s16 = toF16(*scales);
    if (!s16)
      return std::nullopt;

    std::vector<char> storage;
    auto bytes = rawBytes(c, storage);
    if (!bytes)
      return std::nullopt;
    MLIRContext *ctx = rewriter.getContext();
    auto i8 = IntegerType::get(ctx, 8);
    QuantWeight q;
    q.groupSize = K;
    q.name = nameOf(x, "qweight");
    auto dataType = RankedTensorType::get({k, n}, i8);
    int shift = isUnsigned ? 128 : 0;
    if (!transposed && !isUnsigned && ct.getElementType().isSignlessInteger(8)) {
      q.data = c; // the imported blob itself, not a copy
    } else {
      std::vector<char> out(k * n);
      for (int64_t r = 0; r < k; ++r)
        for (int64_t col = 0; col < n; ++col) {
          uint8_t b = (uint8_t)(*bytes)[transposed ? col * k + r : r * n + col];
          out[r * n + col] = (char)(uint8_t)(b - shift); // uint8 - 128 == int8
        }
      q.data = constantAttr(dataType, out, q.name);
    }
    auto groupType = [&](Type e) { return RankedTensorType::get({1, n}, e); };
    std::vector<uint16_t> sRow(n);
    std::vector<char> zRow(n);
    bool anyZp = false;
    for (int64_t col = 0; col < n; ++col) {
      size_t i = scales->size() == 1 ? 0 : col;
      sRow[col] = (*s16)[i];
      int64_t z = zps[i] - shift;
      zRow[col] = (char)(int8_t)z;
      anyZp |= z != 0;
    }
    q.scales = DenseElementsAttr::getFromRawBuffer(
        groupType(Float16Type::get(ctx)),
        ArrayRef<char>(reinterpret_cast<const char *>(sRow.data()), 2 * n));
    if (anyZp)
      q.zeroPoints = DenseElementsAttr::getFromRawBuffer(groupType(i8), zRow);
    return q;
  }

  /// com.microsoft::MatMulNBits with constant operands and the default
  /// groups: i4 codes [K, N] (transposed from B's [N, K] order), f16 scales
  /// [K / block_size, N], i8 zero points (8 where the model has none),
  /// group_size = block_size. K must be a multiple of block_size.
  Operation *raiseMatmulNBits(Operation *op) {
    auto nb = cast<onnx::MatMulNBitsOp>(op);
    Value x = nb.getA();
    auto xt = ranked(x);
    int64_t K = nb.getK(), N = nb.getN(), bs = nb.getBlockSize();
    if (!xt || !isF32(x) || xt.getRank() < 2 || xt.getShape().back() != K ||
        bs <= 0 || K % bs != 0)
      return nullptr;
    Value bias = nb.getBias();
    if (isa<NoneType>(bias.getType()))
      bias = Value();
    else if (!weight(bias, 1) || !isF32(bias) ||
             cast<RankedTensorType>(bias.getType()).getDimSize(0) != N)
      return nullptr;
    std::string why;
    FailureOr<onnx::UnpackedNBits> u = onnx::unpackMatMulNBits(nb, why);
    if (failed(u) || !u->defaultGroups || !u->integerZeroPoints)
      return nullptr;
    auto s16 = toF16(u->scales);
    if (!s16)
      return nullptr;
    MLIRContext *ctx = rewriter.getContext();
    int64_t G = K / bs;
    QuantWeight q;
    q.groupSize = bs;
    q.name = nameOf(nb.getB(), "qweight");
    std::vector<char> codes(u->codes.begin(), u->codes.end());
    q.data = constantAttr(RankedTensorType::get({K, N}, IntegerType::get(ctx, 4)),
                          codes, q.name);
    q.scales = DenseElementsAttr::getFromRawBuffer(
        RankedTensorType::get({G, N}, Float16Type::get(ctx)),
        ArrayRef<char>(reinterpret_cast<const char *>(s16->data()), 2 * G * N));
    std::vector<char> zp(G * N);
    for (int64_t i = 0; i < G * N; ++i)
      zp[i] = (char)(int8_t)u->zeroPoints[i];
    q.zeroPoints = DenseElementsAttr::getFromRawBuffer(
        RankedTensorType::get({G, N}, IntegerType::get(ctx, 8)), zp);
    tally.note("dequantize(int4, MatMulNBits)");
    return raiseLinear(op, x, materialize(q, op->getLoc()), bias);
  }

  static bool isPlainMatmul(Value v) {
    auto m = v.getDefiningOp<llm::MatmulOp>();
    return m && !m.getBias() && !m.getResidual() && m.getActivation() == "none";
  }

  /// down(silu(x @ gate) * (x @ up)), silu(g) written g * sigmoid(g).
  Operation *raiseGatedMlp(Operation *op, Value h, Value down) {
    Operation *mul = def(h, "Mul");
    Operation *result = nullptr;
    eitherOrder(mul, [&](Value act, Value up) {
      Operation *silu = def(act, "Mul");
      Value g;
      eitherOrder(silu, [&](Value a, Value s) {
        Operation *sig = def(s, "Sigmoid");
        if (!sig || sig->getOperand(0) != a)
          return false;
        g = a;
        return true;
      });
      if (!g || !isPlainMatmul(g) || !isPlainMatmul(up))
        return false;
      auto gm = g.getDefiningOp<llm::MatmulOp>();
      auto um = up.getDefiningOp<llm::MatmulOp>();
      if (gm.getInput() != um.getInput() ||
          gm.getWeight().getType() != um.getWeight().getType())
        return false;
      auto dt = cast<RankedTensorType>(down.getType());
      auto gt = cast<RankedTensorType>(gm.getWeight().getType());
      if (dt.getDimSize(0) != gt.getDimSize(1) ||
          dt.getDimSize(1) != gt.getDimSize(0))
        return false;
      auto x = gm.getInput();
      auto mlp = llm::GatedMlpOp::create(rewriter, op->getLoc(), x.getType(), x,
                                         gm.getWeight(), um.getWeight(), down,
                                         Value(), rewriter.getStringAttr("silu"));
      result = replace(op, mlp, "gated_mlp");
      return true;
    });
    return result;
  }

  /// matmul + bias vector, then (when the matmul feeds it) GELU activation.
  Operation *raiseBias(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value mm, Value bias) {
      auto m = mm.getDefiningOp<llm::MatmulOp>();
      ElementsAttr bAttr = weight(bias, 1);
      if (!m || m.getBias() || m.getResidual() || m.getActivation() != "none" ||
          !bAttr || !mm.hasOneUse())
        return false;
      auto wt = cast<RankedTensorType>(m.getWeight().getType());
      if (cast<ShapedType>(bAttr.getType()).getDimSize(0) != wt.getDimSize(1))
        return false;
      Value out = op->getResult(0);
      auto nm = llm::MatmulOp::create(rewriter, op->getLoc(), m.getType(),
                                      m.getInput(), m.getWeight(), bias, Value(),
                                      rewriter.getStringAttr("none"));
      m->getResult(0).replaceAllUsesWith(nm.getResult());
      m->erase();
      out.replaceAllUsesWith(nm.getResult());
      tally.note("matmul+bias");
      result = nm;
      // gelu(matmul) -> activation epilogue.
      if (Operation *g = raiseGelu(nm))
        result = g;
      return true;
    });
    return result;
  }

  /// 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) on the single
  /// user chain of `m`; folds it into m's activation.
  Operation *raiseGelu(llm::MatmulOp m) {
    Value x = m.getResult();
    // Find the outermost Mul whose value is gelu(x): walk users of x.
    for (Operation *u : x.getUsers()) {
      if (u->getNumResults() != 1 || !def(u->getResult(0), "Mul"))
        continue;
      // u = x * (1 + tanh(...)) ; root = 0.5 * u (either order)
      Value inner;
      eitherOrder(u, [&](Value a, Value onePlus) {
        if (a != x)
          return false;
        Operation *add = def(onePlus, "Add");
        bool ok = eitherOrder(add, [&](Value one, Value th) {
          auto c = scalarFloat(one);
          Operation *t = def(th, "Tanh");
          return c && *c == 1.0 && t && isGeluTanhArg(t->getOperand(0), x);
        });
        if (ok)
          inner = u->getResult(0);
        return ok;
      });
      if (!inner || !inner.hasOneUse())
        continue;
      Operation *root = *inner.getUsers().begin();
      bool half = def(root->getResult(0), "Mul") &&
                  eitherOrder(root, [&](Value a, Value c) {
                    auto h = scalarFloat(c);
                    return a == inner && h && *h == 0.5;
                  });
      if (!half)
        continue;
      m.setActivation("gelu_tanh");
      root->getResult(0).replaceAllUsesWith(x);
      eraseDead(root);
      tally.note("gelu");
      return m;
    }
    return nullptr;
  }

  /// sqrt(2/pi) * (x + 0.044715 * x^3), x^3 as Pow(x,3) or x*(x*x).
  bool isGeluTanhArg(Value v, Value x) {
    Operation *mul = def(v, "Mul");
    return eitherOrder(mul, [&](Value c, Value sum) {
      auto k = scalarFloat(c);
      if (!k || std::abs(*k - 0.7978845608) > 1e-4)
        return false;
      Operation *add = def(sum, "Add");
      return eitherOrder(add, [&](Value a, Value cubeTerm) {
        if (a != x)
          return false;
        Operation *cm = def(cubeTerm, "Mul");
        return eitherOrder(cm, [&](Value c2, Value cube) {
          auto k2 = scalarFloat(c2);
          return k2 && std::abs(*k2 - 0.044715) < 1e-6 && isCube(cube, x);
        });
      });
    });
  }

  bool isCube(Value v, Value x) {
    if (Operation *p = def(v, "Pow")) {
      auto e = scalarFloat(p->getOperand(1));
      return p->getOperand(0) == x && e && *e == 3.0;
    }
    Operation *m = def(v, "Mul");
    return eitherOrder(m, [&](Value a, Value sq) {
      Operation *s = def(sq, "Mul");
      return a == x && s && s->getOperand(0) == x && s->getOperand(1) == x;
    });
  }

  /// x + f(x) where f is a matmul/MLP used only here: the residual epilogue.
  /// A matmul with bias whose input is a GELU matmul with bias becomes a
  /// gelu_mlp first.
  Operation *raiseResidual(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value res, Value f) {
      Operation *producer = f.getDefiningOp();
      if (!producer || !f.hasOneUse() || !isF32(res) || ranked(res) != ranked(f))
        return false;
      if (auto m = dyn_cast<llm::MatmulOp>(producer)) {
        if (m.getResidual())
          return false;
        auto fc = m.getInput().getDefiningOp<llm::MatmulOp>();
        if (fc && m.getBias() && fc.getBias() && !fc.getResidual() &&
            fc.getActivation() == "gelu_tanh" && fc->hasOneUse() &&
            m.getActivation() == "none") {
          auto mlp = llm::GeluMlpOp::create(
              rewriter, op->getLoc(), m.getType(), fc.getInput(), fc.getWeight(),
              fc.getBias(), m.getWeight(), m.getBias(), res,
              rewriter.getStringAttr("tanh"));
          m->getResult(0).replaceAllUsesWith(mlp.getResult());
          result = replace(op, mlp, "gelu_mlp+residual");
          return true;
        }
        m.getResidualMutable().assign(res);
        op->getResult(0).replaceAllUsesWith(m.getResult());
        tally.note("residual");
        result = m;
        return true;
      }
      if (auto g = dyn_cast<llm::GatedMlpOp>(producer)) {
        if (g.getResidual())
          return false;
        g.getResidualMutable().assign(res);
        op->getResult(0).replaceAllUsesWith(g.getResult());
        tally.note("residual");
        result = g;
        return true;
      }
      return false;
    });
    return result;
  }

  /// Split(x @ W + b) along the output features -> one matmul per part, the
  /// weight and bias cut at compile time (fused QKV projections).
  Operation *raiseSplitLinear(Operation *op) {
    auto m = op->getOperand(0).getDefiningOp<llm::MatmulOp>();
    if (!m || m.getResidual() || m.getActivation() != "none" ||
        !m->hasOneUse())
      return nullptr;
    auto type = m.getType();
    int64_t axis = intAttr(op, "axis", 0);
    if (axis < 0)
      axis += type.getRank();
    if (axis != type.getRank() - 1)
      return nullptr;
    auto wt = cast<RankedTensorType>(m.getWeight().getType());
    int64_t K = wt.getDimSize(0), N = wt.getDimSize(1);
    SmallVector<int64_t> sizes;
    if (op->getNumOperands() > 1 && !isa<NoneType>(op->getOperand(1).getType())) {
      auto v = evalInts(op->getOperand(1));
      if (!v)
        return nullptr;
      for (auto s : *v) {
        if (!s)
          return nullptr;
        sizes.push_back(*s);
      }
    } else {
      int64_t parts = op->getNumResults();
      if (N % parts)
        return nullptr;
      sizes.assign(parts, N / parts);
    }
    int64_t total = 0;
    for (int64_t s : sizes)
      total += s;
    if (total != N || (int64_t)sizes.size() != op->getNumResults())
      return nullptr;
    if (auto dq = m.getWeight().getDefiningOp<llm::DequantizeOp>())
      return splitQuantizedLinear(op, m, dq, sizes);
    SmallVector<float> wStore, bStore;
    auto wData = floatData(constant(m.getWeight()), wStore);
    std::optional<ArrayRef<float>> bData;
    if (m.getBias())
      bData = floatData(constant(m.getBias()), bStore);
    if (!wData || (int64_t)wData->size() != K * N || (m.getBias() && !bData))
      return nullptr;
    int64_t offset = 0;
    Operation *first = nullptr;
    for (auto [i, n] : llvm::enumerate(sizes)) {
      SmallVector<float> part(K * n);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < n; ++j)
          part[k * n + j] = (*wData)[k * N + offset + j];
      auto pwt = RankedTensorType::get({K, n}, rewriter.getF32Type());
      std::string base = "split" + std::to_string(splitCounter);
      Value pw = makeConstant(rewriter, op->getLoc(), pwt, part,
                              base + ".w" + std::to_string(i));
      Value pb;
      if (bData)
        pb = makeConstant(rewriter, op->getLoc(),
                          RankedTensorType::get({n}, rewriter.getF32Type()),
                          bData->slice(offset, n), base + ".b" + std::to_string(i));
      auto pm = llm::MatmulOp::create(rewriter, op->getLoc(),
                                      withLastDim(type, n), m.getInput(), pw, pb,
                                      Value(), rewriter.getStringAttr("none"));
      op->getResult(i).replaceAllUsesWith(pm.getResult());
      if (!first)
        first = pm;
      offset += n;
    }
    ++splitCounter;
    tally.note("split-linear");
    return first;
  }

  /// raiseSplitLinear for a quantized weight: data, scales and zero points
  /// are cut along N like the f32 weight would be.
  Operation *splitQuantizedLinear(Operation *op, llm::MatmulOp m,
                                  llm::DequantizeOp dq, ArrayRef<int64_t> sizes) {
    ElementsAttr data = constant(dq.getData()), scales = constant(dq.getScales());
    ElementsAttr zps = dq.getZeroPoints() ? constant(dq.getZeroPoints()) : ElementsAttr();
    SmallVector<float> bStore;
    std::optional<ArrayRef<float>> bData;
    if (m.getBias())
      bData = floatData(constant(m.getBias()), bStore);
    if (!data || !scales || (dq.getZeroPoints() && !zps) || (m.getBias() && !bData))
      return nullptr;
    // One byte per element in i4 and i8 storage, two in f16.
    std::vector<char> dStore, sStore, zStore;
    auto dBytes = rawBytes(data, dStore);
    auto sBytes = rawBytes(scales, sStore);
    std::optional<ArrayRef<char>> zBytes;
    if (zps)
      zBytes = rawBytes(zps, zStore);
    if (!dBytes || !sBytes || (zps && !zBytes))
      return nullptr;
    auto dt = cast<RankedTensorType>(data.getType());
    auto st = cast<RankedTensorType>(scales.getType());
    int64_t K = dt.getDimSize(0), N = dt.getDimSize(1), G = st.getDimSize(0);
    auto columns = [](ArrayRef<char> src, int64_t rows, int64_t cols, int64_t width,
                      int64_t off, int64_t n) {
      std::vector<char> out(rows * n * width);
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(out.data() + r * n * width, src.data() + (r * cols + off) * width,
                    n * width);
      return out;
    };
    Location loc = op->getLoc();
    int64_t offset = 0;
    Operation *first = nullptr;
    for (auto [i, n] : llvm::enumerate(sizes)) {
      std::string base = "split" + std::to_string(splitCounter) + ".q" + std::to_string(i);
      QuantWeight q;
      q.groupSize = dq.getGroupSize();
      q.data = constantAttr(RankedTensorType::get({K, n}, dt.getElementType()),
                            columns(*dBytes, K, N, 1, offset, n), base);
      q.scales = DenseElementsAttr::getFromRawBuffer(
          RankedTensorType::get({G, n}, st.getElementType()),
          columns(*sBytes, G, N, 2, offset, n));
      if (zps)
        q.zeroPoints = DenseElementsAttr::getFromRawBuffer(
            RankedTensorType::get({G, n}, IntegerType::get(rewriter.getContext(), 8)),
            columns(*zBytes, G, N, 1, offset, n));
      Value pw = materialize(q, loc);
      Value pb;
      if (bData)
        pb = makeConstant(rewriter, loc, RankedTensorType::get({n}, rewriter.getF32Type()),
                          bData->slice(offset, n), base + ".b");
      auto pm = llm::MatmulOp::create(rewriter, loc, withLastDim(m.getType(), n),
                                      m.getInput(), pw, pb, Value(),
                                      rewriter.getStringAttr("none"));
      op->getResult(i).replaceAllUsesWith(pm.getResult());
      if (!first)
        first = pm;
      offset += n;
    }
    ++splitCounter;
    tally.note("split-linear");
    return first;
  }

  // --- attention layout ----------------------------------------------------
  /// Transpose(Reshape(x [B,S,H*hd] -> [B,S,H,hd]), perm [0,2,1,3]).
  Operation *raiseSplitHeads(Operation *op) {
    // [0,2,3,1] is the head split fused with the keys' transpose for q @ k^T.
    auto perm = intList(op, "perm");
    bool keysT = perm == SmallVector<int64_t>{0, 2, 3, 1};
    if (perm != SmallVector<int64_t>{0, 2, 1, 3} && !keysT)
      return nullptr;
    Operation *r = def(op->getOperand(0), "Reshape");
    if (!r)
      return nullptr;
    Value x = r->getOperand(0);
    auto xt = ranked(x);
    auto shape = evalInts(r->getOperand(1));
    if (!xt || !isF32(x) || xt.getRank() != 3 || !shape || shape->size() != 4 ||
        xt.isDynamicDim(2))
      return nullptr;
    if (!keepsDim(r->getOperand(1), 0, xt) || !keepsDim(r->getOperand(1), 1, xt))
      return nullptr;
    int64_t D = xt.getDimSize(2);
    auto h = (*shape)[2], hd = (*shape)[3];
    if (h && *h == -1 && hd && *hd > 0 && D % *hd == 0)
      h = D / *hd;
    if (hd && *hd == -1 && h && *h > 0 && D % *h == 0)
      hd = D / *h;
    if (!h || !hd || *h <= 0 || *hd <= 0 || *h * *hd != D)
      return nullptr;
    auto type = RankedTensorType::get({xt.getDimSize(0), *h, xt.getDimSize(1), *hd},
                                      xt.getElementType());
    auto s = llm::SplitHeadsOp::create(rewriter, op->getLoc(), type, x,
                                       rewriter.getI64IntegerAttr(*h));
    if (!keysT)
      return replace(op, s, "split_heads");
    OperationState st(op->getLoc(), "onnx.Transpose");
    st.addOperands(s.getResult());
    st.addAttribute("perm", rewriter.getI64ArrayAttr({0, 1, 3, 2}));
    st.addTypes(RankedTensorType::get({type.getDimSize(0), *h, *hd, type.getDimSize(2)},
                                      type.getElementType()));
    Operation *t = rewriter.create(st);
    op->getResult(0).replaceAllUsesWith(t->getResult(0));
    tally.note("split_heads");
    return t;
  }

  /// Element `i` of a reshape target keeps dim i of `x`: 0 (ONNX's "copy"),
  /// x's static size, or Shape(y)[i] of some y.
  bool keepsDim(Value shape, int64_t i, RankedTensorType xt) {
    auto vals = evalInts(shape);
    if (vals && (*vals)[i] &&
        (*(*vals)[i] == 0 || (!xt.isDynamicDim(i) && *(*vals)[i] == xt.getDimSize(i))))
      return true;
    Operation *concat = def(skipNoops(shape), "Concat");
    if (!concat || concat->getNumOperands() <= (unsigned)i)
      return false;
    Value piece = skipNoops(concat->getOperand(i));
    if (Operation *u = def(piece, "Unsqueeze"))
      piece = skipNoops(u->getOperand(0));
    Operation *g = def(piece, "Gather");
    if (!g || !def(skipNoops(g->getOperand(0)), "Shape"))
      return false;
    auto idx = evalInt(g->getOperand(1));
    return idx && *idx == i;
  }

  /// Reshape(Transpose(a [B,H,S,hd], perm [0,2,1,3]) -> [B,S,H*hd]).
  Operation *raiseMergeHeads(Operation *op) {
    Operation *t = def(op->getOperand(0), "Transpose");
    if (!t || intList(t, "perm") != SmallVector<int64_t>{0, 2, 1, 3})
      return nullptr;
    Value a = t->getOperand(0);
    auto at = ranked(a);
    auto shape = evalInts(op->getOperand(1));
    if (!at || !isF32(a) || at.getRank() != 4 || at.isDynamicDim(1) ||
        at.isDynamicDim(3) || !shape || shape->size() != 3)
      return nullptr;
    int64_t D = at.getDimSize(1) * at.getDimSize(3);
    auto last = (*shape)[2];
    if (!last || (*last != D && *last != -1))
      return nullptr;
    // Dims 0 and 1 of the target must be B and S (of the transposed tensor).
    auto tt = RankedTensorType::get({at.getDimSize(0), at.getDimSize(2),
                                     at.getDimSize(1), at.getDimSize(3)},
                                    at.getElementType());
    if (!keepsDim(op->getOperand(1), 0, tt) || !keepsDim(op->getOperand(1), 1, tt))
      return nullptr;
    auto type = RankedTensorType::get({at.getDimSize(0), at.getDimSize(2), D},
                                      at.getElementType());
    auto m = llm::MergeHeadsOp::create(rewriter, op->getLoc(), type, a);
    return replace(op, m, "merge_heads");
  }

  // --- rotary ---------------------------------------------------------------
  /// x * cos + rotate_half(x) * sin, with cos/sin = Unsqueeze(Gather(table,
  /// positions), 1) and rotate_half(x) = Concat(-x[.., hd/2:], x[.., :hd/2]).
  Operation *raiseRotary(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value a, Value b) {
      Operation *ma = def(a, "Mul"), *mb = def(b, "Mul");
      if (!ma || !mb)
        return false;
      Value x, cosT, sinT, pos, pos2;
      bool okA = eitherOrder(ma, [&](Value xv, Value c) {
        auto t = ranked(xv);
        if (!t || t.getRank() != 4 || t.isDynamicDim(3) || !isF32(xv))
          return false;
        if (!tableLookup(c, cosT, pos))
          return false;
        x = xv;
        return true;
      });
      if (!okA)
        return false;
      bool okB = eitherOrder(mb, [&](Value rh, Value s) {
        return isRotateHalf(rh, x) && tableLookup(s, sinT, pos2);
      });
      if (!okB || pos != pos2 || cosT.getType() != sinT.getType())
        return false;
      auto xt = ranked(x);
      if (cast<RankedTensorType>(cosT.getType()).getDimSize(1) != xt.getDimSize(3))
        return false;
      auto r = llm::RotaryOp::create(rewriter, op->getLoc(), xt, x, cosT, sinT, pos);
      result = replace(op, r, "rotary");
      return true;
    });
    return result;
  }

  /// Unsqueeze(Gather(table [P, hd], positions [B,S]), axes=[1]).
  bool tableLookup(Value v, Value &table, Value &positions) {
    Operation *u = def(v, "Unsqueeze");
    if (!u)
      return false;
    auto axes = axesOf(u);
    if (axes != SmallVector<int64_t>{1})
      return false;
    // The row lookup may already be raised to an embedding.
    Value t, p;
    if (auto e = u->getOperand(0).getDefiningOp<llm::EmbeddingOp>()) {
      if (e.getPosTable())
        return false;
      t = e.getTable();
      p = e.getIds();
    } else if (Operation *g = def(u->getOperand(0), "Gather")) {
      if (intAttr(g, "axis", 0) != 0)
        return false;
      t = g->getOperand(0);
      p = g->getOperand(1);
    } else {
      return false;
    }
    auto pt = ranked(p);
    if (!weight(t, 2) || !isF32(t) || !pt || pt.getRank() != 2 ||
        !pt.getElementType().isInteger(64))
      return false;
    table = t;
    positions = p;
    return true;
  }

  bool isRotateHalf(Value v, Value x) {
    Operation *c = def(v, "Concat");
    auto xt = ranked(x);
    if (!c || c->getNumOperands() != 2 || !xt)
      return false;
    int64_t axis = intAttr(c, "axis", 0);
    if (axis != -1 && axis != 3)
      return false;
    int64_t hd = xt.getDimSize(3), half = hd / 2;
    Operation *neg = def(c->getOperand(0), "Neg");
    return neg && isLastDimSlice(neg->getOperand(0), x, half, hd) &&
           isLastDimSlice(c->getOperand(1), x, 0, half);
  }

  bool isLastDimSlice(Value v, Value x, int64_t start, int64_t end) {
    Operation *s = def(v, "Slice");
    if (!s || s->getOperand(0) != x || s->getNumOperands() < 3)
      return false;
    auto starts = evalInts(s->getOperand(1)), ends = evalInts(s->getOperand(2));
    if (!starts || !ends || starts->size() != 1 || ends->size() != 1 ||
        !(*starts)[0] || !(*ends)[0])
      return false;
    if (s->getNumOperands() > 3 && !isa<NoneType>(s->getOperand(3).getType())) {
      auto axes = evalInts(s->getOperand(3));
      if (!axes || axes->size() != 1 || !(*axes)[0] ||
          (*(*axes)[0] != -1 && *(*axes)[0] != 3))
        return false;
    }
    if (s->getNumOperands() > 4 && !isa<NoneType>(s->getOperand(4).getType())) {
      auto steps = evalInts(s->getOperand(4));
      if (!steps || steps->size() != 1 || (*steps)[0] != std::optional<int64_t>(1))
        return false;
    }
    int64_t hd = ranked(x).getDimSize(3);
    int64_t e = *(*ends)[0];
    if (e < 0)
      e += hd;
    return *(*starts)[0] == start && std::min(e, hd) == end;
  }

  // --- KV cache and attention ----------------------------------------------
  Operation *raiseKvAppend(Operation *op) {
    if (op->getNumOperands() != 2)
      return nullptr;
    Value past = op->getOperand(0), cur = op->getOperand(1);
    auto pt = ranked(past), ct = ranked(cur);
    int64_t axis = intAttr(op, "axis", 0);
    if (!pt || !ct || pt.getRank() != 4 || ct.getRank() != 4 || !isF32(past) ||
        !isF32(cur) || (axis != 2 && axis != -2))
      return nullptr;
    if (ct.isDynamicDim(1) || ct.isDynamicDim(3))
      return nullptr; // the new entries must come from raised heads
    auto type = RankedTensorType::get(
        {ct.getDimSize(0), ct.getDimSize(1), kDyn, ct.getDimSize(3)},
        ct.getElementType());
    auto k = llm::KvAppendOp::create(rewriter, op->getLoc(), type, past, cur);
    op->getResult(0).replaceAllUsesWith(k.getResult());
    tally.note("kv_append");
    return k;
  }

  /// Undoes GQA's repeat_kv: Reshape(Expand(Unsqueeze(k, 2), ..), ..) -> k.
  Value stripRepeatKv(Value v) {
    Operation *r = def(v, "Reshape");
    if (!r)
      return v;
    Operation *e = def(r->getOperand(0), "Expand");
    if (!e)
      return v;
    Operation *u = def(e->getOperand(0), "Unsqueeze");
    if (!u)
      return v;
    auto axes = evalInts(u->getOperand(1));
    if (!axes || axes->size() != 1 || (*axes)[0] != std::optional<int64_t>(2))
      return v;
    auto kt = ranked(u->getOperand(0));
    if (!kt || kt.getRank() != 4)
      return v;
    return u->getOperand(0);
  }

  Operation *raiseAttention(Operation *pv) {
    Value v = stripRepeatKv(pv->getOperand(1));
    Value p = skipNoops(pv->getOperand(0));
    Operation *sm = def(p, "Softmax");
    if (!sm)
      return nullptr;
    int64_t axis = intAttr(sm, "axis", -1);
    if (axis != -1 && axis != 3)
      return nullptr;
    Value s = sm->getOperand(0);
    // Mask: Where(cond, -big, scores) or Add(scores, additive).
    Value scores = s, maskCond;
    bool additive = false;
    if (Operation *w = def(s, "Where")) {
      auto fill = scalarFloat(w->getOperand(1));
      if (!fill || *fill > -1e4)
        return nullptr;
      maskCond = w->getOperand(0);
      scores = w->getOperand(2);
    } else if (Operation *a = def(s, "Add")) {
      Value sc, m;
      eitherOrder(a, [&](Value x, Value y) {
        if (!def(x, "Div") && !def(x, "Mul") && !def(x, "MatMul"))
          return false;
        sc = x;
        m = y;
        return true;
      });
      if (!sc)
        return nullptr;
      scores = sc;
      maskCond = m;
      additive = true;
    }
    // Scale: Div(qk, c) | Mul(qk, c) | qk.
    double scale = 1.0;
    Value qk = scores;
    if (Operation *d = def(scores, "Div")) {
      auto c = scalarFloat(d->getOperand(1));
      if (!c || *c == 0)
        return nullptr;
      scale = 1.0 / *c;
      qk = d->getOperand(0);
    } else if (Operation *m = def(scores, "Mul")) {
      bool ok = eitherOrder(m, [&](Value x, Value c) {
        auto cv = scalarFloat(c);
        if (!cv || !def(x, "MatMul"))
          return false;
        scale = *cv;
        qk = x;
        return true;
      });
      if (!ok)
        return nullptr;
    }
    Operation *qkm = def(qk, "MatMul");
    if (!qkm)
      return nullptr;
    Operation *kT = def(qkm->getOperand(1), "Transpose");
    if (!kT || intList(kT, "perm") != SmallVector<int64_t>{0, 1, 3, 2})
      return nullptr;
    Value q = qkm->getOperand(0), k = stripRepeatKv(kT->getOperand(0));
    auto qt = ranked(q), kt = ranked(k), vt = ranked(v);
    if (!qt || !kt || !vt || qt.getRank() != 4 || kt.getRank() != 4 ||
        vt.getRank() != 4 || qt.isDynamicDim(1) || kt.isDynamicDim(1) ||
        qt.isDynamicDim(3) || !isF32(q) || !isF32(k) || !isF32(v))
      return nullptr;
    if (kt.getDimSize(1) == 0 || qt.getDimSize(1) % kt.getDimSize(1) ||
        kt.getDimSize(3) != qt.getDimSize(3) || vt.getDimSize(1) != kt.getDimSize(1))
      return nullptr;
    Value mask;
    bool causal = false;
    if (maskCond && !analyzeMask(maskCond, additive, mask, causal))
      return nullptr;
    auto a = llm::AttentionOp::create(rewriter, pv->getLoc(), qt, q, k, v, mask,
                                      rewriter.getF32FloatAttr(scale),
                                      causal ? rewriter.getUnitAttr() : UnitAttr());
    pv->getResult(0).replaceAllUsesWith(a.getResult());
    tally.note(causal ? (mask ? "attention(causal+padding)" : "attention(causal)")
                      : (mask ? "attention(padding)" : "attention"));
    return a;
  }

  /// A mask is understood when it is computed only from an i64 [B, T]
  /// argument (the padding mask) and index arithmetic; a comparison of
  /// positions in it (j <= i + past) makes it causal. Anything else — float
  /// tensors, large constants — and the attention is left alone.
  bool analyzeMask(Value cond, bool additive, Value &mask, bool &causal) {
    llvm::SetVector<Value> work;
    work.insert(cond);
    for (unsigned i = 0; i < work.size(); ++i) {
      Value v = work[i];
      if (auto arg = dyn_cast<BlockArgument>(v)) {
        auto t = ranked(arg);
        if (!t || t.getRank() != 2 || !t.getElementType().isInteger(64))
          return false;
        if (mask && mask != arg)
          return false;
        mask = arg;
        continue;
      }
      Operation *op = v.getDefiningOp();
      if (!op || op->getName().getDialectNamespace() != "onnx")
        return false;
      StringRef k = op->getName().stripDialect();
      if (k == "Shape")
        continue; // sizes only, not data
      if (k == "Constant") {
        auto c = constant(v);
        if (!c || c.getNumElements() > 64)
          return false;
        continue;
      }
      static const llvm::StringSet<llvm::MallocAllocator> allowed = {
          "Cast", "Not", "And", "Or", "Equal", "Unsqueeze", "Squeeze", "Expand",
          "Reshape", "Range", "Gather", "Concat", "Add", "Sub", "Mul", "Div",
          "Where", "Slice", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
          "Trilu", "ConstantOfShape", "Min", "Max"};
      if (!allowed.contains(k))
        return false;
      if (k == "Less" || k == "LessOrEqual" || k == "Greater" ||
          k == "GreaterOrEqual" || k == "Trilu")
        causal = true;
      // Float data is only allowed as the -inf/0 fill of an additive mask.
      for (Type t : op->getResultTypes())
        if (auto st = dyn_cast<ShapedType>(t);
            st && isa<FloatType>(st.getElementType()) && !additive)
          return false;
      for (Value o : op->getOperands())
        if (!isa<NoneType>(o.getType()))
          work.insert(o);
    }
    return mask || causal;
  }

  /// Erases `op` if dead, then producers that became dead, remembering
  /// them so the sweep does not visit freed ops.
  void eraseDead(Operation *op) {
    if (!op || erased.contains(op) || !op->use_empty() ||
        op->hasTrait<OpTrait::IsTerminator>() || !isMemoryEffectFree(op))
      return;
    SmallVector<Operation *> producers;
    for (Value o : op->getOperands())
      if (Operation *d = o.getDefiningOp())
        producers.push_back(d);
    erased.insert(op);
    op->erase();
    for (Operation *d : producers)
      eraseDead(d);
  }

  func::FuncOp fn;
  Tally &tally;
  IRRewriter rewriter;
  llvm::DenseSet<Operation *> erased;
  int splitCounter = 0;
};

} // namespace

LogicalResult raiseLlm(func::FuncOp fn, RaiseReport &report) {
  Tally tally;
  MLIRContext *ctx = fn.getContext();
  // Quantized weights are arith.constant operands of llm.dequantize.
  ctx->getOrLoadDialect<arith::ArithDialect>();
  for (int round = 0; round < 8; ++round) {
    Raiser raiser(fn, tally);
    bool changed = raiser.sweep();
    // Dead shape arithmetic and masks go; shapes are re-inferred so that
    // the next sweep sees the head sizes that raising made static.
    PassManager pm(ctx);
    pm.addPass(createCanonicalizerPass());
    if (auto refine = onnx::createRefineShapesPass())
      pm.addPass(std::move(refine));
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    if (failed(pm.run(fn->getParentOfType<ModuleOp>())))
      return failure();
    if (!changed)
      break;
  }
  for (auto &e : tally.raised)
    report.raised[e.getKey().str()] += e.getValue();
  return success();
}

} // namespace kiln
