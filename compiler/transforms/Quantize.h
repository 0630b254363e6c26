//===- Quantize.h - llm-quantize: integer weights for llm matmuls -*- C++ -*-===//
#ifndef KILN_COMPILER_TRANSFORMS_QUANTIZE_H
#define KILN_COMPILER_TRANSFORMS_QUANTIZE_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "llvm/ADT/DenseMap.h"

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

  /// "w8", "w4g32", "w4g128" (generally w4gN, N a multiple of 8).
  std::string name() const;
};

/// Parses one weight scheme name; nullopt if it is not one.
std::optional<QuantScheme> parseWeightScheme(llvm::StringRef name);

/// What one quantized (or deliberately kept) weight was.
struct QuantizedWeight {
  std::string layer; // "layer N", "head" or "embed"
  std::string what;  // op and operand, e.g. "gated_mlp.down"
  std::string scheme; // the scheme, or "f32 (kept: ...)" when left alone
  int64_t bytesBefore = 0, bytesAfter = 0;
};

/// Quantized constants by their f32 original, so that functions of one
/// module reading the same weight (a draft sharing the target's layers)
/// share one quantized copy.
using QuantCache = llvm::DenseMap<mlir::Attribute, mlir::Attribute>;

/// Rewrites every constant f32 weight of an llm.matmul / llm.gated_mlp /
/// llm.gelu_mlp in `fn` into an llm.dequantize of integer constants
/// (round to nearest). Appends one entry per weight to `report`.
mlir::LogicalResult quantizeWeights(mlir::func::FuncOp fn, const QuantScheme &scheme,
                                    std::vector<QuantizedWeight> &report,
                                    QuantCache *cache = nullptr);

/// kiln-compile --report's quantization table.
std::string formatQuantReport(llvm::StringRef function,
                              const std::vector<QuantizedWeight> &report);

} // namespace kiln

#endif
