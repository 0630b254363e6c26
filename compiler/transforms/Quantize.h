//===- Quantize.h - llm-quantize: integer weights for llm matmuls -*- C++ -*-===//
#ifndef KILN_COMPILER_TRANSFORMS_QUANTIZE_H
#define KILN_COMPILER_TRANSFORMS_QUANTIZE_H

#include "compiler/transforms/Calibrate.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "llvm/ADT/DenseMap.h"

#include <optional>
#include <string>
#include <vector>

namespace kiln {

/// A weight-quantization scheme (kiln-compile --quantize).
struct QuantScheme {
  /// 8: int8 symmetric; 4: int4 asymmetric with zero points.
  int bits = 0;
  /// Rows of K sharing a scale; 0 = all of K (per output channel).
  int64_t group = 0;
  /// Also quantize the LM head (the matmul onto the vocabulary).
  bool head = false;
  /// 8: the matmuls also quantize their input to int8 at run time, in the
  /// weight's groups along K (w8a8: per row; w4gNa8: per N inputs, as
  /// llama.cpp's Q4 x Q8 products); 0: activations stay f32.
  int activationBits = 0;
  /// Whether the name said a8 / a32; if not, kiln-compile picks int8
  /// activations for int4 weights on CPU targets (docs/compression.md).
  bool activationsGiven = false;

  /// "w8", "w4g32", "w4g128" (generally w4gN, N a multiple of 8), "w4"
  /// (int4 per output channel), "w8a8" (int8 weights per output channel and
  /// int8 activations per row); int4 schemes take a suffix "a8" (int8
  /// activations per group) or "a32" (f32 activations). The name shows a8
  /// only.
  std::string name() const;
};

/// Parses one weight scheme name; nullopt if it is not one.
std::optional<QuantScheme> parseWeightScheme(llvm::StringRef name);

/// How the integers are chosen (kiln-compile --quant-method).
enum class QuantMethod {
  /// Round to nearest, each group's range [min, max] as it is.
  Rtn,
  /// Activation-aware: per input channel scales s = mean|x|^a folded into
  /// the norm (or up projection) feeding the weight, a searched, then a
  /// clipping ratio per group searched; both minimize the output error
  /// under the calibration activations (docs/compression.md).
  Awq,
  /// GPTQ: rows of K quantized in order, each one's rounding error spread
  /// over the rows not yet quantized through the inverse Hessian of X^T X.
  Gptq,
  /// SmoothQuant (w8a8 only): per input channel scales
  /// s = max|x|^a / max|W|^(1-a) (a = smoothAlpha) move the activations'
  /// outlier channels into the weights, folded like AWQ's; then round to
  /// nearest.
  SmoothQuant,
};
std::optional<QuantMethod> parseQuantMethod(llvm::StringRef name);
llvm::StringRef quantMethodName(QuantMethod method);

/// What the calibrated methods need; the defaults are the usual ones.
struct QuantizeOptions {
  QuantMethod method = QuantMethod::Rtn;
  /// Activation statistics by weight (required for Awq and Gptq; a weight
  /// without statistics falls back to round to nearest, and says so).
  const CalibrationStats *stats = nullptr;
  /// GPTQ: dampening added to the Hessian's diagonal, as a fraction of its
  /// mean; rows per lazy block update; quantize rows in order of
  /// decreasing activation energy (act-order, with group scales fixed
  /// beforehand from the weights, so the groups stay contiguous rows of K).
  double dampening = 0.01;
  int64_t blockSize = 128;
  bool actOrder = true;
  /// AWQ: exponents a in [0, 1) tried for s = mean|x|^a.
  int awqGrid = 20;
  /// SmoothQuant: the migration strength a (0: nothing moves into the
  /// weights; 1: the activations' whole range does).
  double smoothAlpha = 0.5;
};

/// What one quantized (or deliberately kept) weight was.
struct QuantizedWeight {
  std::string layer; // "layer N", "head" or "embed"
  std::string what;  // op and operand, e.g. "gated_mlp.down"
  std::string scheme; // the scheme, or "f32 (kept: ...)" when left alone
  int64_t bytesBefore = 0, bytesAfter = 0;
  /// How it was quantized when calibration was asked for ("gptq",
  /// "awq(a=0.40)", "awq(clip)", "rtn (no calibration data)"); empty for
  /// plain round to nearest.
  std::string method;
};

/// Quantized constants by their f32 original, so that functions of one
/// module reading the same weight (a draft sharing the target's layers)
/// share one quantized copy.
using QuantCache = llvm::DenseMap<mlir::Attribute, mlir::Attribute>;

/// Rewrites every constant f32 weight of an llm.matmul / llm.gated_mlp /
/// llm.gelu_mlp in `fn` into an llm.dequantize of integer constants
/// (round to nearest, or `options`' calibrated method; AWQ also rewrites
/// the norm weights it folds its scales into). Appends one entry per weight
/// to `report`.
mlir::LogicalResult quantizeWeights(mlir::func::FuncOp fn, const QuantScheme &scheme,
                                    std::vector<QuantizedWeight> &report,
                                    QuantCache *cache = nullptr,
                                    const QuantizeOptions *options = nullptr);

/// kiln-compile --report's quantization table.
std::string formatQuantReport(llvm::StringRef function,
                              const std::vector<QuantizedWeight> &report);

} // namespace kiln

#endif
