//===- Calibrate.h - kiln-compile --calibration -------------------*- C++ -*-===//
#ifndef KILN_COMPILER_PIPELINE_CALIBRATE_H
#define KILN_COMPILER_PIPELINE_CALIBRATE_H

#include "compiler/transforms/Calibrate.h"

#include "mlir/IR/BuiltinOps.h"

#include <map>
#include <string>

namespace kiln {

struct CalibrationOptions {
  /// Plain text, tokenized with the model's tokenizer.
  std::string text;
  /// Tokens of it to run (the text's first ones); fewer when it is shorter.
  int64_t maxTokens = 8192;
  /// Ids per window (capped by the model's max_position_embeddings).
  int64_t window = 256;
  /// Progress lines on stderr when it is not a terminal (a bar is drawn
  /// when it is).
  bool verbose = false;
};

/// Runs the f32 LLM functions of `module` (raised, paged `forward`, not yet
/// quantized) on the calibration text and fills `stats` for every constant
/// weight of their linear layers: a copy of the module gains the
/// activations as results (addCalibrationOutputs), is compiled for the host
/// into a temporary .kiln with `metadata` (its tokenizer), and is run by the
/// runtime over windows of the text. `module` is left as it was. False
/// with `error` (one line) on failure; `summary` says what was run.
bool collectCalibrationStats(mlir::ModuleOp module, const CalibrationOptions &options,
                             const std::map<std::string, std::string> &metadata,
                             CalibrationStats &stats, std::string &summary, std::string &error);

} // namespace kiln

#endif
