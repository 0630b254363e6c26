//===- Calibrate.cpp - llm-calibrate: activations of quantizable weights --===//
//
// addCalibrationOutputs makes the activations that linear weights read into
// results of their function:
//
//   %n = llm.rms_norm %x, %g                        (read by q, k and v)
//   %h = llm.gated_mlp %n2, %wg, %wu, %wd ...       (down reads silu(n2 wg) * (n2 wu))
//   return %logits
// becomes
//   %a = llm.matmul %n2, %wg {activation = "silu"}
//   %u = llm.matmul %n2, %wu
//   %p = linalg.generic {a * u}
//   %h = llm.matmul %p, %wd residual ...
//   return %logits, %n, %n2, %p {onnx.name = "calibration.0", ...}
//
// Only the calibration copy of a module is rewritten like this; the model
// that ships keeps its fused ops.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/Calibrate.h"

#include "compiler/transforms/GraphMatch.h"
#include "compiler/transforms/QuantizeMath.h"
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"

#include <cmath>

using namespace mlir;

namespace kiln {

void ActivationStats::accumulate(const float *x, int64_t rows) {
  if (rows <= 0)
    return;
  qmath::gemmTN(rows, channels, channels, 1.0f, x, channels, x, channels, xtx.data(), channels,
                /*upper=*/true);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t k = 0; k < channels; ++k) {
      const float a = std::fabs(x[t * channels + k]);
      sumAbs[k] += a;
      maxAbs[k] = std::max(maxAbs[k], a);
    }
  tokens += rows;
}

void ActivationStats::finish() {
  for (int64_t i = 0; i < channels; ++i)
    for (int64_t j = 0; j < i; ++j)
      xtx[i * channels + j] = xtx[j * channels + i];
}

namespace {

/// The constant f32 [K, N] weight behind `w`, or null.
ElementsAttr weightAttr(Value w) {
  auto t = dyn_cast<RankedTensorType>(w.getType());
  if (!t || t.getRank() != 2 || !t.getElementType().isF32())
    return {};
  return match::constant(w);
}

/// `t` with its last dim replaced by `last`.
RankedTensorType withLast(RankedTensorType t, int64_t last) {
  SmallVector<int64_t> shape(t.getShape());
  shape.back() = last;
  return RankedTensorType::get(shape, t.getElementType());
}

/// a * b elementwise (same type), as a linalg.generic.
Value multiply(OpBuilder &b, Location loc, Value x, Value y) {
  auto t = cast<RankedTensorType>(x.getType());
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < t.getRank(); ++i)
    if (t.isDynamicDim(i))
      dyn.push_back(tensor::DimOp::create(b, loc, x, i));
  Value init = tensor::EmptyOp::create(b, loc, t, dyn);
  AffineMap id = b.getMultiDimIdentityMap(t.getRank());
  SmallVector<utils::IteratorType> iters(t.getRank(), utils::IteratorType::parallel);
  return linalg::GenericOp::create(
             b, loc, TypeRange{t}, ValueRange{x, y}, ValueRange{init},
             ArrayRef<AffineMap>{id, id, id}, iters,
             [](OpBuilder &nb, Location l, ValueRange args) {
               Value p = arith::MulFOp::create(nb, l, args[0], args[1]);
               linalg::YieldOp::create(nb, l, p);
             })
      .getResult(0);
}

/// Splits a gated MLP whose down weight is to be exposed.
void splitGated(OpBuilder &b, llm::GatedMlpOp g) {
  b.setInsertionPoint(g);
  Location loc = g.getLoc();
  Value x = g.getInput();
  auto xt = cast<RankedTensorType>(x.getType());
  int64_t F = cast<RankedTensorType>(g.getGate().getType()).getDimSize(1);
  RankedTensorType ht = withLast(xt, F);
  Value a = llm::MatmulOp::create(b, loc, ht, x, g.getGate(), Value(), Value(), g.getActivation());
  Value u = llm::MatmulOp::create(b, loc, ht, x, g.getUp(), Value(), Value(), "none");
  Value p = multiply(b, loc, a, u);
  Value y = llm::MatmulOp::create(b, loc, g.getType(), p, g.getDown(), Value(), g.getResidual(), "none");
  g.getResult().replaceAllUsesWith(y);
  g.erase();
}

/// Splits a GELU MLP whose proj weight is to be exposed.
void splitGelu(OpBuilder &b, llm::GeluMlpOp g) {
  b.setInsertionPoint(g);
  Location loc = g.getLoc();
  Value x = g.getInput();
  int64_t F = cast<RankedTensorType>(g.getFc().getType()).getDimSize(1);
  RankedTensorType ht = withLast(cast<RankedTensorType>(x.getType()), F);
  StringRef act = g.getApproximate() == "tanh" ? "gelu_tanh" : "gelu_erf";
  Value h = llm::MatmulOp::create(b, loc, ht, x, g.getFc(), g.getFcBias(), Value(), act);
  Value y = llm::MatmulOp::create(b, loc, g.getType(), h, g.getProj(), g.getProjBias(),
                                  g.getResidual(), "none");
  g.getResult().replaceAllUsesWith(y);
  g.erase();
}

} // namespace

int addCalibrationOutputs(func::FuncOp fn, std::vector<CalibrationSite> &sites,
                          llvm::DenseSet<Attribute> &seen) {
  if (fn.isExternal())
    return 0;
  OpBuilder b(fn.getContext());
  Block &body = fn.getBody().front();
  auto fresh = [&](Value w) {
    ElementsAttr a = weightAttr(w);
    return a && !seen.contains(a);
  };
  // First make the hidden activations of the MLPs values.
  for (Operation &op : llvm::make_early_inc_range(body.without_terminator())) {
    if (auto g = dyn_cast<llm::GatedMlpOp>(op); g && fresh(g.getDown()))
      splitGated(b, g);
    else if (auto g = dyn_cast<llm::GeluMlpOp>(op); g && fresh(g.getProj()))
      splitGelu(b, g);
  }
  // Then every input of a fresh weight, in program order.
  llvm::MapVector<Value, SmallVector<Attribute>> inputs;
  for (Operation &op : body.without_terminator()) {
    auto add = [&](Value x, Value w) {
      ElementsAttr a = weightAttr(w);
      auto xt = dyn_cast<RankedTensorType>(x.getType());
      if (!a || seen.contains(a) || !xt || !xt.getElementType().isF32() || xt.getRank() < 1 ||
          xt.getShape().back() != cast<RankedTensorType>(w.getType()).getDimSize(0))
        return;
      seen.insert(a);
      inputs[x].push_back(a);
    };
    if (auto m = dyn_cast<llm::MatmulOp>(op)) {
      add(m.getInput(), m.getWeight());
    } else if (auto g = dyn_cast<llm::GatedMlpOp>(op)) {
      add(g.getInput(), g.getGate());
      add(g.getInput(), g.getUp());
    } else if (auto g = dyn_cast<llm::GeluMlpOp>(op)) {
      add(g.getInput(), g.getFc());
    }
  }
  if (inputs.empty())
    return 0;
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  SmallVector<Value> results(ret.getOperands());
  for (auto &[x, weights] : inputs) {
    CalibrationSite site;
    site.function = fn.getSymName().str();
    site.result = fn.getNumResults();
    site.channels = cast<RankedTensorType>(x.getType()).getShape().back();
    site.weights = weights;
    auto name = b.getNamedAttr("onnx.name",
                               b.getStringAttr("calibration." + std::to_string(sites.size())));
    (void)fn.insertResult(fn.getNumResults(), x.getType(), b.getDictionaryAttr({name}));
    results.push_back(x);
    sites.push_back(std::move(site));
  }
  ret->setOperands(results);
  return (int)inputs.size();
}

} // namespace kiln
