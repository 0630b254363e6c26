//===- CalibrateRun.h - Run a calibration artifact with the runtime -*- C++ -*-===//
//
// The host side of calibration: the compiler's calibration copy of a model
// (paged `forward` with extra `calibration.N` results, see
// compiler/transforms/Calibrate.h) compiled to a .kiln file, run by the
// runtime's Executor over token windows, each activation result folded into
// its ActivationStats. No MLIR here (the runtime headers stay apart from the
// compiler's).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_COMPILER_PIPELINE_CALIBRATERUN_H
#define KILN_COMPILER_PIPELINE_CALIBRATERUN_H

#include "compiler/transforms/CalibrationStats.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

/// Result `result` of `function` accumulates into `stats` (borrowed).
struct CalibrationOutput {
  std::string function;
  unsigned result = 0;
  ActivationStats *stats = nullptr;
};

struct CalibrationRunOptions {
  /// Ids per window; every window runs from an empty KV cache.
  int64_t window = 256;
  /// cpu worker threads; 0 = all cores.
  int threads = 0;
  /// A progress bar redrawn in place on stderr (for a terminal).
  bool bar = false;
  /// A progress line per quarter on stderr (for logs).
  bool lines = false;
};

/// Runs each function named in `outputs` of the artifact at `path` over
/// `ids` cut into consecutive windows (the last one shorter), binding the
/// paged ABI's inputs for one sequence, and accumulates the outputs. False
/// with `error` (one line) on failure.
bool runCalibration(const std::string &path, const std::vector<int32_t> &ids,
                    const std::vector<CalibrationOutput> &outputs,
                    const CalibrationRunOptions &options, std::string &error);

/// Ids of the text file `text` under the tokenizer embedded in the artifact
/// at `path`, computed by the `kiln-tokenize` tool at `tool` in a process of
/// its own: libsentencepiece carries its own protobuf, which cannot share a
/// process with the libprotobuf the ONNX importer loads.
bool tokenizeWithArtifact(const std::string &tool, const std::string &path,
                          const std::string &text, std::vector<int32_t> &ids,
                          std::string &error);

} // namespace kiln

#endif
