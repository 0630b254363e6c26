//===- RaiseReport.cpp - kiln-compile --report ------------------------------===//
#include "compiler/transforms/RaiseLlm.h"

#include "dialects/llm/IR/LlmDialect.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace kiln {
namespace {

bool addsResidual(Operation *op) {
  if (auto m = dyn_cast<llm::MatmulOp>(op))
    return (bool)m.getResidual();
  if (auto g = dyn_cast<llm::GatedMlpOp>(op))
    return (bool)g.getResidual();
  if (auto g = dyn_cast<llm::GeluMlpOp>(op))
    return (bool)g.getResidual();
  return false;
}

std::string describe(Operation *op) {
  std::string s = op->getName().getStringRef().str();
  if (auto a = dyn_cast<llm::AttentionOp>(op)) {
    auto q = cast<RankedTensorType>(a.getQuery().getType());
    auto k = cast<RankedTensorType>(a.getKey().getType());
    s += "(" + std::to_string(q.getDimSize(1)) + " heads";
    if (k.getDimSize(1) != q.getDimSize(1))
      s += ", GQA " + std::to_string(k.getDimSize(1)) + " kv heads";
    if (a.getCausal())
      s += ", causal";
    if (a.getMask())
      s += ", padding mask";
    s += ")";
  } else if (auto m = dyn_cast<llm::MatmulOp>(op)) {
    SmallVector<std::string> parts;
    if (m.getBias())
      parts.push_back("bias");
    if (m.getActivation() != "none")
      parts.push_back(m.getActivation().str());
    if (m.getResidual())
      parts.push_back("residual");
    if (!parts.empty())
      s += "(+" + llvm::join(parts, ", +") + ")";
  } else if (auto g = dyn_cast<llm::GatedMlpOp>(op)) {
    s += "(" + g.getActivation().str() + (g.getResidual() ? ", +residual" : "") + ")";
  } else if (auto g = dyn_cast<llm::GeluMlpOp>(op)) {
    s += std::string("(") + (g.getResidual() ? "+residual" : "") + ")";
  }
  return s;
}

} // namespace

std::string formatRaiseReport(func::FuncOp fn, const RaiseReport &report) {
  // Ops that compute tensors, in program order, with their layer.
  struct Entry {
    std::string text;
    bool unfused;
  };
  std::vector<std::vector<Entry>> layers(1);
  std::vector<Entry> prologue, head;
  std::vector<Entry> pending;
  int residuals = 0;
  for (Operation &op : fn.getBody().front().without_terminator()) {
    bool isLlm = op.getName().getDialectNamespace() == "llm";
    bool isOnnx = op.getName().getDialectNamespace() == "onnx";
    if (!isLlm && !isOnnx)
      continue;
    StringRef k = op.getName().stripDialect();
    if (isOnnx && (k == "Constant" || k == "Shape"))
      continue;
    // A quantized or sparse weight is part of the matmul that reads it.
    if (isLlm && (k == "dequantize" || k == "sparse_24"))
      continue;
    // Unfused float math is what matters; index arithmetic is host work.
    bool floatMath = llvm::any_of(op.getResultTypes(), [](Type t) {
      auto st = dyn_cast<ShapedType>(t);
      return st && isa<FloatType>(st.getElementType());
    });
    if (isOnnx && !floatMath)
      continue;
    Entry e{isLlm ? describe(&op) : "onnx." + k.str(), isOnnx};
    if (isa<llm::EmbeddingOp>(op)) {
      prologue.push_back(e);
      continue;
    }
    pending.push_back(e);
    if (addsResidual(&op)) {
      int layer = residuals / 2;
      if ((int)layers.size() <= layer)
        layers.resize(layer + 1);
      for (Entry &p : pending)
        layers[layer].push_back(p);
      pending.clear();
      ++residuals;
    }
  }
  head = pending;
  std::string out;
  llvm::raw_string_ostream os(out);
  os << "raised:";
  for (const auto &[k, n] : report.raised)
    os << " " << k << " x" << n;
  os << "\n";
  auto line = [&](StringRef label, const std::vector<Entry> &entries) {
    os << label << ":";
    llvm::MapVector<StringRef, int> unfused;
    bool any = false;
    for (const Entry &e : entries) {
      if (e.unfused) {
        ++unfused[e.text];
        continue;
      }
      os << (any ? ", " : " ") << e.text;
      any = true;
    }
    if (!any)
      os << " (nothing fused)";
    if (!unfused.empty()) {
      os << "  | left unfused:";
      for (auto &[k, n] : unfused)
        os << " " << k << (n > 1 ? " x" + std::to_string(n) : "");
    }
    os << "\n";
  };
  line("embed", prologue);
  if (residuals > 0)
    for (size_t i = 0; i < layers.size(); ++i)
      line("layer " + std::to_string(i), layers[i]);
  line("head", head);
  return out;
}

} // namespace kiln
