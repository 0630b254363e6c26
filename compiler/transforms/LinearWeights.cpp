//===- LinearWeights.cpp - What the weight-rewriting passes share ----------===//
#include "compiler/transforms/LinearWeights.h"

#include "compiler/transforms/GraphMatch.h"
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>

using namespace mlir;

namespace kiln {

SmallVector<LinearWeight> linearWeights(func::FuncOp fn) {
  struct Item {
    LinearWeight w;
    int residualsBefore;
    bool addsResidual;
  };
  SmallVector<Item> items;
  int residuals = 0;
  for (Operation &op : fn.getBody().front().without_terminator()) {
    auto add = [&](unsigned i, StringRef what, Value residual) {
      items.push_back({{&op, i, what.str(), ""}, residuals, (bool)residual});
    };
    Value residual;
    if (auto m = dyn_cast<llm::MatmulOp>(op)) {
      residual = m.getResidual();
      add(1, "matmul", residual);
    } else if (auto g = dyn_cast<llm::GatedMlpOp>(op)) {
      residual = g.getResidual();
      add(1, "gated_mlp.gate", residual);
      add(2, "gated_mlp.up", residual);
      add(3, "gated_mlp.down", residual);
    } else if (auto g = dyn_cast<llm::GeluMlpOp>(op)) {
      residual = g.getResidual();
      add(1, "gelu_mlp.fc", residual);
      add(3, "gelu_mlp.proj", residual);
    }
    residuals += (bool)residual;
  }
  // What follows the last residual add is the head.
  SmallVector<LinearWeight> out;
  for (Item &it : items) {
    it.w.layer = (it.residualsBefore == residuals && !it.addsResidual)
                     ? "head"
                     : "layer " + std::to_string(it.residualsBefore / 2);
    out.push_back(std::move(it.w));
  }
  return out;
}

int64_t vocabularySize(func::FuncOp fn) {
  int64_t vocab = -1;
  fn.walk([&](llm::EmbeddingOp e) {
    vocab = cast<RankedTensorType>(e.getTable().getType()).getDimSize(0);
  });
  return vocab;
}

SmallVector<EmbeddingTables> embeddingTables(func::FuncOp fn) {
  SmallVector<EmbeddingTables> out;
  for (auto e : fn.getBody().front().getOps<llm::EmbeddingOp>()) {
    int64_t bytes = cast<RankedTensorType>(e.getTable().getType()).getNumElements() * 4;
    if (e.getPosTable())
      bytes += cast<RankedTensorType>(e.getPosTable().getType()).getNumElements() * 4;
    out.push_back({e.getPosTable() ? "embedding+positions" : "embedding", bytes});
  }
  return out;
}

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

uint16_t toBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  // Adding 0x7fff plus the kept part's lowest bit rounds to nearest even;
  // a carry into the exponent is the right result (up to infinity).
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
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

DenseResourceElementsAttr blobAttr(RankedTensorType type, StringRef name, const void *bytes,
                                   size_t size) {
  auto blob = HeapAsmResourceBlob::allocate(size, 64);
  std::memcpy(blob.getMutableData().data(), bytes, size);
  return DenseResourceElementsAttr::get(type, name, std::move(blob));
}

void eraseConstant(Operation *op) {
  auto res = dyn_cast_or_null<DenseResourceElementsAttr>(match::constant(op->getResult(0)));
  Operation *top = op->getParentOfType<ModuleOp>();
  op->erase();
  if (!res || !res.getRawHandle().getResource())
    return;
  // The blob may still be read by another function (a draft sharing this
  // weight): free it only when no op holds it any more.
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

std::string formatWeightTable(StringRef heading, StringRef function, ArrayRef<WeightLine> lines) {
  std::string out;
  llvm::raw_string_ostream os(out);
  auto mib = [](int64_t bytes) { return llvm::format("%.2f MiB", bytes / 1048576.0); };
  os << heading << " of @" << function << " (layer: weight scheme, bytes before -> after):\n";
  llvm::MapVector<StringRef, std::pair<int64_t, int64_t>> bytes;
  llvm::MapVector<StringRef, SmallVector<std::string>> texts;
  int64_t before = 0, after = 0;
  for (const WeightLine &w : lines) {
    bytes[w.layer].first += w.bytesBefore;
    bytes[w.layer].second += w.bytesAfter;
    texts[w.layer].push_back(w.text);
    before += w.bytesBefore;
    after += w.bytesAfter;
  }
  for (auto &[layer, list] : texts)
    os << "  " << layer << ": " << llvm::join(list, ", ") << "; " << mib(bytes[layer].first)
       << " -> " << mib(bytes[layer].second) << "\n";
  os << "  total: " << mib(before) << " -> " << mib(after);
  if (after > 0)
    os << llvm::format(" (%.2fx smaller)", double(before) / double(after));
  os << "\n";
  return out;
}

} // namespace kiln
