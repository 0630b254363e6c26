//===- PruneHeads.h - llm-prune-heads: structured attention head pruning -*- C++ -*-===//
#ifndef KILN_COMPILER_TRANSFORMS_PRUNEHEADS_H
#define KILN_COMPILER_TRANSFORMS_PRUNEHEADS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <functional>
#include <string>
#include <vector>

namespace kiln {

struct PruneHeadsOptions {
  /// Query heads removed from every layer: a multiple of the GQA group
  /// (query heads per kv head), less than the layer's heads.
  int64_t heads = 0;
  /// Calibration: the mean square of each input channel of a weight (its
  /// f32 constant's attribute; for o_proj, one channel per head dimension),
  /// or empty when calibration did not see that weight. Without it the
  /// value projection's column norms stand in for the activations.
  std::function<std::vector<double>(mlir::Attribute weight)> channelEnergy;
};

/// What pruning did to one layer.
struct PrunedHeads {
  int layer = 0;
  int64_t headsBefore = 0, headsAfter = 0, kvHeadsBefore = 0, kvHeadsAfter = 0;
  std::vector<int64_t> removedKvHeads; // kv heads (with their query groups) removed
  int64_t bytesBefore = 0, bytesAfter = 0; // q, k, v, o weights and biases
  bool calibrated = false;
};

/// Removes `options.heads` query heads (whole GQA groups: a kv head and
/// the query heads reading it) from every llm.paged_attention of `fn`: the
/// least important ones, importance of a group being
/// sum over its channels c of E[x_c^2] * ||W_o[c, :]||^2 (the mean square
/// of what it adds to the residual stream if channels are uncorrelated),
/// with E[x_c^2] from calibration or, without it, ||W_v[:, c]||^2. Shrinks
/// the q, k, v projections (columns and biases), o_proj's rows, the
/// split_heads / rotary / attention / merge_heads types and the layer's
/// K/V pool arguments (the KV cache shrinks with them). Errors name the
/// layer and what does not fit.
mlir::LogicalResult pruneAttentionHeads(mlir::func::FuncOp fn, const PruneHeadsOptions &options,
                                        std::vector<PrunedHeads> &report, std::string &error);

/// kiln-compile --report's head pruning table.
std::string formatPrunedHeads(llvm::StringRef function, const std::vector<PrunedHeads> &report);

} // namespace kiln

#endif
