//===- Prune.h - llm-prune: 2:4 sparse weights for llm matmuls ---*- C++ -*-===//
#ifndef KILN_COMPILER_TRANSFORMS_PRUNE_H
#define KILN_COMPILER_TRANSFORMS_PRUNE_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "llvm/ADT/DenseMap.h"

#include <functional>

#include <string>
#include <vector>

namespace kiln {

/// How kiln-llm-prune chooses and stores the kept weights (kiln-compile
/// --prune=2:4 --prune-method=...).
struct PruneOptions {
  enum class Method { Magnitude, Wanda };
  /// magnitude: score |W[k, n]|; wanda: |W[k, n]| * ||x_k||_2 over the
  /// calibration activations (needs `channelNorms`).
  Method method = Method::Magnitude;
  /// Also prune the LM head (the matmul onto the vocabulary).
  bool head = false;
  /// 32: f32 kept values; 8: int8 kept values with one f16 scale per
  /// column (2:4 + w8), as an llm.dequantize under the llm.sparse_24.
  int valueBits = 32;
  /// Wanda: the calibration activations' norms ||x_k||_2 of the input
  /// channels of a weight (its f32 constant's attribute), K of them; empty
  /// when calibration saw no input of that weight.
  std::function<std::vector<double>(mlir::Attribute weight)> channelNorms;

  /// "2:4" or "2:4+w8" (and "/wanda" for the calibrated method).
  std::string name() const;
};

/// Parses a --prune-method name.
std::optional<PruneOptions::Method> parsePruneMethod(llvm::StringRef name);

/// What one pruned (or deliberately kept) weight was.
struct PrunedWeight {
  std::string layer;  // "layer N", "head" or "embed"
  std::string what;   // op and operand, e.g. "gated_mlp.down"
  std::string scheme; // "2:4", "2:4+w8", or "f32 (kept: ...)"
  int64_t bytesBefore = 0, bytesAfter = 0;
};

/// Pruned constants by their f32 original (and scheme), so that functions
/// of one module reading the same weight share one pruned copy.
using PruneCache = llvm::DenseMap<mlir::Attribute, mlir::Attribute>;

/// Rewrites every constant f32 weight [K, N] (K a multiple of 4) of an
/// llm.matmul / llm.gated_mlp / llm.gelu_mlp in `fn` into an llm.sparse_24
/// keeping the two best-scored weights of each group of 4 consecutive rows
/// of K per column. Embeddings and (unless options.head) the LM head are
/// left alone. Appends one entry per weight to `report`.
mlir::LogicalResult pruneWeights(mlir::func::FuncOp fn, const PruneOptions &options,
                                 std::vector<PrunedWeight> &report, PruneCache *cache = nullptr);

/// kiln-compile --report's pruning table.
std::string formatPruneReport(llvm::StringRef function, const std::vector<PrunedWeight> &report);

} // namespace kiln

#endif
