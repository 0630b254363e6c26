//===- Prune.cpp - llm-prune: 2:4 sparse weights for llm matmuls ------------===//
//
// Semi-structured 2:4 pruning on the llm dialect. In each column of a
// constant f32 weight W [K, N] (y = x @ W), every group of 4 consecutive rows
// of K keeps its two best-scored weights and loses the other two:
//
//   magnitude  score |W[k, n]|
//   wanda      score |W[k, n]| * ||x_k||_2 (Wanda, Sun et al. 2023): the
//              calibration activations' norm of input channel k
//
// The weight becomes
//
//   %w = llm.sparse_24 %values indices %indices : [K/2, N] f32, [K/2, N] i8
//
// with only the kept half stored; with valueBits = 8 the values are an
// llm.dequantize of int8 constants with one f16 scale per column (2:4 + w8,
// scale rounded to f16 before the integers are chosen, as kiln-llm-quantize
// does). lower-llm packs the op for the 2:4 kernels (sparse24.c), which
// never read or multiply the pruned half; the dense weight never exists
// again. Embeddings are never pruned, the LM head only on request.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/Prune.h"

#include "compiler/transforms/GraphMatch.h"
#include "compiler/transforms/LinearWeights.h"
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace mlir;

namespace kiln {

std::string PruneOptions::name() const {
  std::string s = "2:4";
  if (valueBits == 8)
    s += "+w8";
  if (method == Method::Wanda)
    s += " (wanda)";
  return s;
}

std::optional<PruneOptions::Method> parsePruneMethod(StringRef name) {
  if (name == "magnitude")
    return PruneOptions::Method::Magnitude;
  if (name == "wanda")
    return PruneOptions::Method::Wanda;
  return std::nullopt;
}

namespace {

/// The 2:4 selection of w [K, N]: values and positions [K/2, N].
void select24(ArrayRef<float> w, int64_t K, int64_t N, const std::vector<double> &channelNorm,
              std::vector<float> &values, std::vector<int8_t> &indices) {
  values.assign(K / 2 * N, 0.0f);
  indices.assign(K / 2 * N, 0);
  for (int64_t g = 0; g < K / 4; ++g)
    for (int64_t n = 0; n < N; ++n) {
      double score[4];
      for (int j = 0; j < 4; ++j) {
        int64_t k = 4 * g + j;
        score[j] = std::fabs((double)w[k * N + n]) * (channelNorm.empty() ? 1.0 : channelNorm[k]);
      }
      // The two best; ties go to the lower position.
      int a = 0;
      for (int j = 1; j < 4; ++j)
        if (score[j] > score[a])
          a = j;
      int b = a == 0 ? 1 : 0;
      for (int j = 0; j < 4; ++j)
        if (j != a && score[j] > score[b])
          b = j;
      if (a > b)
        std::swap(a, b);
      for (int i = 0; i < 2; ++i) {
        int j = i == 0 ? a : b;
        values[(2 * g + i) * N + n] = w[(4 * g + j) * N + n];
        indices[(2 * g + i) * N + n] = (int8_t)j;
      }
    }
}

/// Symmetric int8 per column of v [R, N]; false when a scale does not fit
/// in f16.
bool quantizeColumns(const std::vector<float> &v, int64_t R, int64_t N, std::vector<int8_t> &q,
                     std::vector<uint16_t> &scales) {
  q.assign(R * N, 0);
  scales.assign(N, 0);
  for (int64_t n = 0; n < N; ++n) {
    float hi = 0.0f;
    for (int64_t r = 0; r < R; ++r)
      hi = std::max(hi, std::fabs(v[r * N + n]));
    float s = hi / 127.0f;
    if (!std::isfinite(s))
      return false;
    uint16_t h = toHalf(s);
    if ((h & 0x7c00) == 0x7c00)
      return false;
    scales[n] = h;
    float sf = fromHalf(h);
    if (sf <= 0.0f)
      continue;
    for (int64_t r = 0; r < R; ++r)
      q[r * N + n] = (int8_t)std::clamp(std::nearbyint(v[r * N + n] / sf), -127.0f, 127.0f);
  }
  return true;
}

class Pruner {
public:
  Pruner(func::FuncOp fn, const PruneOptions &options, std::vector<PrunedWeight> &report,
         PruneCache *cache)
      : fn(fn), options(options), report(report), cache(cache), b(fn.getContext()) {}

  LogicalResult run() {
    vocab = vocabularySize(fn);
    for (const EmbeddingTables &e : embeddingTables(fn))
      report.push_back({"embed", e.what, "f32 (kept: embeddings are not pruned)", e.bytes, e.bytes});
    for (const LinearWeight &w : linearWeights(fn))
      if (failed(pruneOperand(w.op, w.operand, w.layer, w.what)))
        return failure();
    return success();
  }

private:
  /// Why `w` of `op` stays f32, or "" when it can be pruned. A gated
  /// MLP's gate and up are pruned together or not at all (one kernel reads
  /// both).
  std::string keepReason(Operation *op, unsigned i) {
    std::string r = ownReason(op, i);
    if (r.empty() && isa<llm::GatedMlpOp>(op) && (i == 1 || i == 2) &&
        !op->getOperand(3 - i).getDefiningOp<llm::Sparse24Op>() && !ownReason(op, 3 - i).empty())
      return "the GLU's other weight stays f32";
    return r;
  }

  std::string ownReason(Operation *op, unsigned i) {
    Value w = op->getOperand(i);
    auto type = dyn_cast<RankedTensorType>(w.getType());
    if (!type || type.getRank() != 2 || !type.getElementType().isF32() || !match::constant(w))
      return "not a constant f32 weight";
    int64_t K = type.getDimSize(0), N = type.getDimSize(1);
    if (isa<llm::MatmulOp>(op) && vocab > 0 && N == vocab && !options.head)
      return "LM head; --prune-head";
    if (K % 4 != 0)
      return "K = " + std::to_string(K) + " is not a multiple of 4";
    if (options.method == PruneOptions::Method::Wanda) {
      ElementsAttr attr = match::constant(w);
      auto it = norms.find(attr);
      if (it == norms.end())
        it = norms.try_emplace(attr, options.channelNorms ? options.channelNorms(attr)
                                                          : std::vector<double>())
                 .first;
      if ((int64_t)it->second.size() != K)
        return "no calibration statistics for Wanda";
    }
    return "";
  }

  LogicalResult pruneOperand(Operation *op, unsigned i, StringRef layer, StringRef what) {
    Value w = op->getOperand(i);
    auto type = dyn_cast<RankedTensorType>(w.getType());
    int64_t bytes = type && type.hasStaticShape() && type.getElementType().isF32()
                        ? type.getNumElements() * 4
                        : 0;
    if (w.getDefiningOp<llm::Sparse24Op>())
      return success(); // shared with an operand pruned already
    std::string reason = keepReason(op, i);
    if (!reason.empty()) {
      report.push_back({layer.str(), what.str(), "f32 (kept: " + reason + ")", bytes, bytes});
      return success();
    }
    ElementsAttr attr = match::constant(w);
    int64_t K = type.getDimSize(0), N = type.getDimSize(1);
    Value sp = sparseOf.lookup(w);
    if (!sp) {
      FailureOr<Value> made = makeSparse(w, attr, K, N, op);
      if (failed(made))
        return failure();
      if (!*made) {
        report.push_back({layer.str(), what.str(), "f32 (kept: a scale does not fit in f16)", bytes, bytes});
        return success();
      }
      sp = *made;
      sparseOf[w] = sp;
    }
    op->setOperand(i, sp);
    // Kept values, one index byte per group of 4 and column (as packed),
    // and the int8 column scales.
    int64_t after = K / 2 * N * (options.valueBits == 8 ? 1 : 4) + K / 4 * N +
                    (options.valueBits == 8 ? 2 * N : 0);
    report.push_back({layer.str(), what.str(), options.name(), bytes, after});
    if (w.use_empty())
      release(w);
    return success();
  }

  FailureOr<Value> makeSparse(Value w, ElementsAttr attr, int64_t K, int64_t N, Operation *user) {
    MLIRContext *ctx = fn.getContext();
    auto half = [&](Type t) { return RankedTensorType::get({K / 2, N}, t); };
    Attribute key = ArrayAttr::get(ctx, {attr, b.getStringAttr(options.name())});
    SmallVector<Attribute, 3> parts;
    if (cache)
      if (auto shared = dyn_cast_or_null<ArrayAttr>(cache->lookup(key)))
        parts.assign(shared.begin(), shared.end());
    if (parts.empty()) {
      SmallVector<float> storage;
      std::optional<ArrayRef<float>> data = match::floatData(attr, storage);
      if (!data || (int64_t)data->size() != K * N)
        return user->emitOpError("weight data is missing");
      std::vector<double> none;
      const std::vector<double> &channelNorm =
          options.method == PruneOptions::Method::Wanda ? norms[attr] : none;
      std::vector<float> values;
      std::vector<int8_t> indices;
      select24(*data, K, N, channelNorm, values, indices);
      std::string base = "w" + std::to_string(counter++);
      if (auto res = dyn_cast<DenseResourceElementsAttr>(attr))
        base = res.getRawHandle().getKey().str();
      base += options.valueBits == 8 ? ".s24w8" : ".s24";
      auto blob = [&](RankedTensorType t, StringRef suffix, const void *p, size_t n) {
        return blobAttr(t, base + suffix.str(), p, n);
      };
      parts.push_back(blob(half(IntegerType::get(ctx, 8)), ".indices", indices.data(),
                               indices.size()));
      if (options.valueBits == 8) {
        std::vector<int8_t> q;
        std::vector<uint16_t> scales;
        if (!quantizeColumns(values, K / 2, N, q, scales))
          return Value();
        parts.push_back(blob(half(IntegerType::get(ctx, 8)), ".q", q.data(), q.size()));
        parts.push_back(blob(RankedTensorType::get({1, N}, Float16Type::get(ctx)), ".scales",
                                 scales.data(), scales.size() * 2));
      } else {
        parts.push_back(blob(half(Float32Type::get(ctx)), ".values", values.data(),
                                 values.size() * 4));
      }
      if (cache)
        (*cache)[key] = ArrayAttr::get(ctx, parts);
    }
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointAfterValue(w);
    Location loc = w.getLoc();
    auto cst = [&](Attribute a) {
      auto t = cast<TypedAttr>(a);
      return arith::ConstantOp::create(b, loc, t.getType(), t).getResult();
    };
    Value idx = cst(parts[0]);
    Value values = cst(parts[1]);
    if (parts.size() > 2)
      values = llm::DequantizeOp::create(b, loc, half(b.getF32Type()), values, cst(parts[2]),
                                         Value(), b.getI64IntegerAttr(K / 2), IntegerAttr())
                   .getResult();
    return llm::Sparse24Op::create(b, loc, RankedTensorType::get({K, N}, b.getF32Type()), values,
                                   idx)
        .getResult();
  }

  /// Erases the unread f32 constant w and frees its blob.
  void release(Value w) {
    if (Operation *op = w.getDefiningOp())
      eraseConstant(op);
  }

  func::FuncOp fn;
  const PruneOptions &options;
  std::vector<PrunedWeight> &report;
  PruneCache *cache;
  OpBuilder b;
  int64_t vocab = -1;
  int counter = 0;
  llvm::DenseMap<Value, Value> sparseOf;
  /// Wanda's channel norms by weight.
  llvm::DenseMap<Attribute, std::vector<double>> norms;
};

} // namespace

LogicalResult pruneWeights(func::FuncOp fn, const PruneOptions &options,
                           std::vector<PrunedWeight> &report, PruneCache *cache) {
  return Pruner(fn, options, report, cache).run();
}

std::string formatPruneReport(StringRef function, const std::vector<PrunedWeight> &report) {
  SmallVector<WeightLine> lines;
  for (const PrunedWeight &w : report)
    lines.push_back({w.layer, w.what + " " + w.scheme, w.bytesBefore, w.bytesAfter});
  return formatWeightTable("pruned weights", function, lines);
}

} // namespace kiln
