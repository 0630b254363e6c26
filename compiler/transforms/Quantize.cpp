//===- Quantize.cpp - llm-quantize: integer weights for llm matmuls ---------===//
//
// Round-to-nearest weight quantization on the llm dialect. Each constant f32
// weight [K, N] of a linear layer becomes
//
//   %w = llm.dequantize %q scales %s [zero_points %z] {group_size = G}
//
// over integer constants, and the matmul reads %w. Schemes:
//   w8     int8, symmetric, one scale per output column (G = K):
//          s = max|W| / 127, q = round(W / s) in [-127, 127];
//   w4gG   int4, asymmetric, one scale and zero point per G rows of K and
//          per column: the range [min(W, 0), max(W, 0)] (zero is always
//          exactly representable) in 15 steps, z = round(-min / s),
//          q = round(W / s) + z in [0, 15].
// Scales are rounded to f16 before the integers are chosen, so q is the
// best integer for the scale the kernels actually use.
//
// The f32 weight is released as soon as it is quantized; lower-llm fuses the
// dequantize into the matmul kernel, so the f32 weight never exists again.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/Quantize.h"

#include "compiler/transforms/GraphMatch.h"
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>

using namespace mlir;

namespace kiln {

std::string QuantScheme::name() const {
  std::string s = "w" + std::to_string(bits);
  if (group)
    s += "g" + std::to_string(group);
  return s;
}

std::optional<QuantScheme> parseWeightScheme(StringRef name) {
  QuantScheme s;
  if (name == "w8") {
    s.bits = 8;
    return s;
  }
  if (name.consume_front("w4g"))
    s.bits = 4;
  else if (name.consume_front("w8g"))
    s.bits = 8;
  else
    return std::nullopt;
  if (name.getAsInteger(10, s.group) || s.group <= 0 || (s.bits == 4 && s.group % 8))
    return std::nullopt;
  return s;
}

namespace {

/// IEEE half bits of f, rounded to nearest even (finite inputs below
/// 65520; larger ones become infinity, which the caller refuses).
uint16_t toHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  x &= 0x7fffffff;
  if (x >= 0x477ff000)
    return sign | 0x7c00;
  if (x < 0x38800000) { // below the smallest normal half: a multiple of 2^-24
    float a;
    std::memcpy(&a, &x, 4);
    return sign | (uint16_t)std::nearbyint(a * 16777216.0f);
  }
  x += 0xfff + ((x >> 13) & 1);
  return sign | (uint16_t)((x - 0x38000000) >> 13);
}

float fromHalf(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, mag = uint32_t(h & 0x7fff) << 13;
  float f;
  std::memcpy(&f, &mag, 4);
  f *= 0x1p112f;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits |= sign;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct Quantized {
  std::vector<int8_t> q;        // [K, N]
  std::vector<uint16_t> scales; // [G, N] f16 bits
  std::vector<int8_t> zeros;    // [G, N], empty when symmetric
};

/// Round-to-nearest quantization of w [K, N]; false when a scale does not
/// fit in f16.
bool quantizeRtn(ArrayRef<float> w, int64_t K, int64_t N, int bits, int64_t group,
                 Quantized &out) {
  const int64_t G = K / group;
  const bool asym = bits == 4;
  out.q.assign(K * N, 0);
  out.scales.assign(G * N, 0);
  if (asym)
    out.zeros.assign(G * N, 0);
  std::vector<float> lo(N), hi(N), scale(N), zero(N);
  for (int64_t g = 0; g < G; ++g) {
    std::fill(lo.begin(), lo.end(), 0.0f);
    std::fill(hi.begin(), hi.end(), 0.0f);
    for (int64_t k = g * group; k < (g + 1) * group; ++k)
      for (int64_t n = 0; n < N; ++n) {
        float v = w[k * N + n];
        if (asym) {
          lo[n] = std::min(lo[n], v);
          hi[n] = std::max(hi[n], v);
        } else {
          hi[n] = std::max(hi[n], std::fabs(v));
        }
      }
    for (int64_t n = 0; n < N; ++n) {
      float s = asym ? (hi[n] - lo[n]) / 15.0f : hi[n] / 127.0f;
      if (!std::isfinite(s))
        return false;
      uint16_t h = toHalf(s);
      if ((h & 0x7c00) == 0x7c00)
        return false;
      out.scales[g * N + n] = h;
      scale[n] = fromHalf(h);
      zero[n] = 0.0f;
      if (asym && scale[n] > 0.0f) {
        zero[n] = std::clamp(std::nearbyint(-lo[n] / scale[n]), 0.0f, 15.0f);
        out.zeros[g * N + n] = (int8_t)zero[n];
      }
    }
    for (int64_t k = g * group; k < (g + 1) * group; ++k)
      for (int64_t n = 0; n < N; ++n) {
        if (scale[n] <= 0.0f)
          continue; // an all-zero group column: q = z = 0
        float r = std::nearbyint(w[k * N + n] / scale[n]);
        float q = asym ? std::clamp(r + zero[n], 0.0f, 15.0f) : std::clamp(r, -127.0f, 127.0f);
        out.q[k * N + n] = (int8_t)q;
      }
  }
  return true;
}

class Quantizer {
public:
  Quantizer(func::FuncOp fn, const QuantScheme &scheme, std::vector<QuantizedWeight> &report,
            QuantCache *cache)
      : fn(fn), scheme(scheme), report(report), cache(cache), b(fn.getContext()) {}

  LogicalResult run() {
    // The vocabulary: rows of the token embedding; a matmul onto it is the
    // LM head.
    fn.walk([&](llm::EmbeddingOp e) {
      vocab = cast<RankedTensorType>(e.getTable().getType()).getDimSize(0);
    });
    // Layers as --report counts them: two residual adds per layer; what
    // follows the last one is the head.
    struct Item {
      Operation *op;
      unsigned operand;
      std::string what;
      int residualsBefore;
      bool addsResidual;
    };
    SmallVector<Item> items;
    int residuals = 0;
    for (Operation &op : fn.getBody().front().without_terminator()) {
      auto add = [&](unsigned i, StringRef what, bool res) {
        items.push_back({&op, i, what.str(), residuals, res});
      };
      if (auto m = dyn_cast<llm::MatmulOp>(op)) {
        add(1, "matmul", (bool)m.getResidual());
        residuals += (bool)m.getResidual();
      } else if (auto g = dyn_cast<llm::GatedMlpOp>(op)) {
        add(1, "gated_mlp.gate", (bool)g.getResidual());
        add(2, "gated_mlp.up", (bool)g.getResidual());
        add(3, "gated_mlp.down", (bool)g.getResidual());
        residuals += (bool)g.getResidual();
      } else if (auto g = dyn_cast<llm::GeluMlpOp>(op)) {
        add(1, "gelu_mlp.fc", (bool)g.getResidual());
        add(3, "gelu_mlp.proj", (bool)g.getResidual());
        residuals += (bool)g.getResidual();
      } else if (auto e = dyn_cast<llm::EmbeddingOp>(op)) {
        int64_t bytes = cast<RankedTensorType>(e.getTable().getType()).getNumElements() * 4;
        if (e.getPosTable())
          bytes += cast<RankedTensorType>(e.getPosTable().getType()).getNumElements() * 4;
        report.push_back({"embed", e.getPosTable() ? "embedding+positions" : "embedding",
                          "f32 (kept: embeddings stay f32)", bytes, bytes});
      }
    }
    for (Item &it : items) {
      std::string layer = (it.residualsBefore == residuals && !it.addsResidual)
                              ? "head"
                              : "layer " + std::to_string(it.residualsBefore / 2);
      if (failed(quantizeOperand(it.op, it.operand, layer, it.what)))
        return failure();
    }
    return success();
  }

private:
  LogicalResult quantizeOperand(Operation *op, unsigned i, StringRef layer, StringRef what) {
    Value w = op->getOperand(i);
    auto type = dyn_cast<RankedTensorType>(w.getType());
    ElementsAttr attr = match::constant(w);
    if (!type || type.getRank() != 2 || !type.getElementType().isF32() || !attr) {
      if (!w.getDefiningOp<llm::DequantizeOp>())
        report.push_back({layer.str(), what.str(), "f32 (kept: not a constant f32 weight)", 0, 0});
      return success(); // already quantized (imported) or not a constant
    }
    int64_t K = type.getDimSize(0), N = type.getDimSize(1);
    int64_t bytes = K * N * 4;
    bool isHead = isa<llm::MatmulOp>(op) && vocab > 0 && N == vocab;
    if (isHead && !scheme.head) {
      report.push_back({layer.str(), what.str(), "f32 (kept: LM head; --quantize-head)", bytes, bytes});
      return success();
    }
    int64_t group = scheme.group ? scheme.group : K;
    if (K % group != 0) {
      report.push_back({layer.str(), what.str(),
                        "f32 (kept: group " + std::to_string(group) + " does not divide K = " +
                            std::to_string(K) + ")",
                        bytes, bytes});
      return success();
    }
    Value dq = dequantOf.lookup(w);
    if (!dq) {
      FailureOr<Value> made = makeDequantize(w, attr, K, N, group, op);
      if (failed(made))
        return failure();
      if (!*made) {
        report.push_back({layer.str(), what.str(), "f32 (kept: a scale does not fit in f16)", bytes, bytes});
        return success();
      }
      dq = *made;
      dequantOf[w] = dq;
    }
    op->setOperand(i, dq);
    int64_t G = K / group;
    int64_t after = K * N * scheme.bits / 8 + G * N * 2 + (scheme.bits == 4 ? G * N : 0);
    report.push_back({layer.str(), what.str(), scheme.name(), bytes, after});
    if (w.use_empty())
      release(w);
    return success();
  }

  /// The llm.dequantize of w's quantized form; a null Value when w cannot
  /// be quantized with this scheme.
  FailureOr<Value> makeDequantize(Value w, ElementsAttr attr, int64_t K, int64_t N, int64_t group,
                                  Operation *user) {
    MLIRContext *ctx = fn.getContext();
    Type dataElt = IntegerType::get(ctx, scheme.bits);
    auto dataType = RankedTensorType::get({K, N}, dataElt);
    auto scaleType = RankedTensorType::get({K / group, N}, Float16Type::get(ctx));
    auto zeroType = RankedTensorType::get({K / group, N}, IntegerType::get(ctx, 8));
    Attribute key = ArrayAttr::get(ctx, {attr, b.getStringAttr(scheme.name())});
    SmallVector<Attribute, 3> parts;
    if (cache)
      if (auto shared = dyn_cast_or_null<ArrayAttr>(cache->lookup(key)))
        parts.assign(shared.begin(), shared.end());
    if (parts.empty()) {
      SmallVector<float> storage;
      std::optional<ArrayRef<float>> data = match::floatData(attr, storage);
      if (!data || (int64_t)data->size() != K * N)
        return user->emitOpError("weight data is missing");
      Quantized qz;
      if (!quantizeRtn(*data, K, N, scheme.bits, group, qz))
        return Value();
      std::string base = "w" + std::to_string(counter++);
      if (auto res = dyn_cast<DenseResourceElementsAttr>(attr))
        base = res.getRawHandle().getKey().str();
      base += "." + scheme.name();
      auto blobAttr = [&](RankedTensorType t, StringRef suffix, const void *p, size_t n) {
        auto blob = HeapAsmResourceBlob::allocate(n, 64);
        std::memcpy(blob.getMutableData().data(), p, n);
        return DenseResourceElementsAttr::get(t, base + suffix.str(), std::move(blob));
      };
      parts.push_back(blobAttr(dataType, ".q", qz.q.data(), qz.q.size()));
      parts.push_back(blobAttr(scaleType, ".scales", qz.scales.data(), qz.scales.size() * 2));
      if (!qz.zeros.empty())
        parts.push_back(blobAttr(zeroType, ".zero_points", qz.zeros.data(), qz.zeros.size()));
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
    Value q = cst(parts[0]), s = cst(parts[1]);
    Value z = parts.size() > 2 ? cst(parts[2]) : Value();
    return llm::DequantizeOp::create(b, loc, RankedTensorType::get({K, N}, b.getF32Type()), q, s,
                                     z, b.getI64IntegerAttr(group))
        .getResult();
  }

  /// Erases the unread f32 constant and frees its blob when no op of the
  /// module still holds it.
  void release(Value w) {
    Operation *op = w.getDefiningOp();
    if (!op)
      return;
    auto res = dyn_cast_or_null<DenseResourceElementsAttr>(match::constant(w));
    op->erase();
    if (!res || !res.getRawHandle().getResource())
      return;
    Operation *top = fn->getParentOp();
    bool held = false;
    if (top)
      top->walk([&](Operation *o) {
        for (NamedAttribute a : o->getAttrs())
          if (a.getValue() == res) {
            held = true;
            return WalkResult::interrupt();
          }
        return WalkResult::advance();
      });
    if (!held)
      res.getRawHandle().getResource()->setBlob(HeapAsmResourceBlob::allocate(0, alignof(float)));
  }

  func::FuncOp fn;
  const QuantScheme &scheme;
  std::vector<QuantizedWeight> &report;
  QuantCache *cache;
  OpBuilder b;
  int64_t vocab = -1;
  int counter = 0;
  llvm::DenseMap<Value, Value> dequantOf;
};

} // namespace

LogicalResult quantizeWeights(func::FuncOp fn, const QuantScheme &scheme,
                              std::vector<QuantizedWeight> &report, QuantCache *cache) {
  return Quantizer(fn, scheme, report, cache).run();
}

std::string formatQuantReport(StringRef function, const std::vector<QuantizedWeight> &report) {
  std::string out;
  llvm::raw_string_ostream os(out);
  auto mib = [](int64_t bytes) { return llvm::format("%.2f MiB", bytes / 1048576.0); };
  os << "quantized weights of @" << function << " (layer: weight scheme, bytes before -> after):\n";
  // One line per layer: each weight's scheme, and the layer's bytes.
  llvm::MapVector<StringRef, std::pair<int64_t, int64_t>> bytes;
  llvm::MapVector<StringRef, SmallVector<std::string>> schemes;
  int64_t before = 0, after = 0;
  for (const QuantizedWeight &w : report) {
    bytes[w.layer].first += w.bytesBefore;
    bytes[w.layer].second += w.bytesAfter;
    schemes[w.layer].push_back(w.what + " " + w.scheme);
    before += w.bytesBefore;
    after += w.bytesAfter;
  }
  for (auto &[layer, list] : schemes)
    os << "  " << layer << ": " << llvm::join(list, ", ") << "; " << mib(bytes[layer].first)
       << " -> " << mib(bytes[layer].second) << "\n";
  os << "  total: " << mib(before) << " -> " << mib(after);
  if (after > 0)
    os << llvm::format(" (%.2fx smaller)", double(before) / double(after));
  os << "\n";
  return out;
}

} // namespace kiln
