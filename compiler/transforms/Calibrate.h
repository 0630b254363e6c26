//===- Calibrate.h - llm-calibrate: activations of quantizable weights -*- C++ -*-===//
//
// Calibration runs the f32 model on sample text and records, for every
// constant weight of an llm linear layer, statistics of the activations it
// reads (CalibrationStats.h). The IR part is here: a function gains one
// result per distinct input of such weights, so that a compiled copy of it
// hands those activations back to the host. compiler/pipeline/Calibrate.cpp
// compiles and runs that copy.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_COMPILER_TRANSFORMS_CALIBRATE_H
#define KILN_COMPILER_TRANSFORMS_CALIBRATE_H

#include "compiler/transforms/CalibrationStats.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <memory>
#include <string>
#include <vector>

namespace kiln {

/// One activation exposed by addCalibrationOutputs: result `result` of
/// `function`, [..., channels], read by `weights` (their constant
/// attributes, f32 [channels, N]).
struct CalibrationSite {
  std::string function;
  unsigned result = 0;
  int64_t channels = 0;
  llvm::SmallVector<mlir::Attribute> weights;
};

/// Adds to `fn` one result (named `calibration.N`) per distinct input of a
/// constant f32 weight [K, N] of llm.matmul, llm.gated_mlp or llm.gelu_mlp
/// and appends a site for each. llm.gated_mlp and llm.gelu_mlp are split
/// into llm.matmul ops (and, for the gated form, a linalg product) so that
/// the input of their down/proj weight is a value. Weights already in
/// `seen` (exposed by another function: a draft sharing the target's
/// layers) are skipped; the others are added to it. Returns the number of
/// results added.
int addCalibrationOutputs(mlir::func::FuncOp fn, std::vector<CalibrationSite> &sites,
                          llvm::DenseSet<mlir::Attribute> &seen);

/// What calibration learnt, by weight (the f32 constant's attribute, as the
/// quantizer finds it on the weight operand).
struct CalibrationStats {
  std::vector<std::unique_ptr<ActivationStats>> inputs;
  llvm::DenseMap<mlir::Attribute, ActivationStats *> byWeight;
  /// Tokens the model ran over.
  int64_t tokens = 0;

  const ActivationStats *lookup(mlir::Attribute weight) const {
    return byWeight.lookup(weight);
  }
};

} // namespace kiln

#endif
