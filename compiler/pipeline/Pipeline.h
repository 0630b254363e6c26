//===- Pipeline.h - kiln-compile's phases -------------------------*- C++ -*-===//
#ifndef KILN_COMPILER_PIPELINE_PIPELINE_H
#define KILN_COMPILER_PIPELINE_PIPELINE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"

#include <string>

namespace kiln {

/// Phases in pipeline order; --compile-to=PHASE stops after one.
enum class Phase { Import, Llm, Linalg, Dispatch, Bufferized, Loops, Llvm, Artifact };

/// Parses a phase name ("import", "linalg", "dispatch", "bufferized", "loops",
/// "llvm", "artifact").
std::optional<Phase> parsePhase(llvm::StringRef name);
llvm::StringRef phaseNames();

struct CompileOptions {
  std::string input;
  std::string output;
  std::string target = "host";
  Phase compileTo = Phase::Artifact;
  bool emitMlir = false;
  /// Write the target's executable itself (ELF shared object, SPIR-V
  /// module) instead of an artifact: for spirv-val, objdump, a vendor's tools.
  bool emitExecutable = false;
  bool verbose = false; // progress lines on stderr
  bool report = false;  // per-layer fusion report on stdout
  /// LLM extras embedded in the artifact; empty = look beside the model for
  /// tokenizer.model / tokenizer.json and config.json.
  std::string tokenizer;
  std::string modelConfig;
  /// LLMs get the paged `forward` entry (DESIGN.md, LLM runtime ABI);
  /// false keeps the concat-style `main` with past/present tensors.
  bool pagedKv = true;
  /// Speculative decoding: "" (none), "ngram" (recorded for the runtime) or
  /// "layer-skip:N" (adds draft_forward, the first N layers).
  std::string speculative;
  /// A draft model (ONNX) compiled in as draft_forward.
  std::string draft;
  /// A chat template (kiln-serve's JSON form) to embed as llm.chat_template.
  std::string chatTemplate;
  /// Weight quantization (kiln-llm-quantize): "" (none), "w8", "w4g32", ...
  std::string quantize;
  /// Quantize the LM head too.
  bool quantizeHead = false;
  /// Pruning (kiln-llm-prune): "" (none) or "2:4"; how the kept weights
  /// are chosen: "" / "magnitude" or "wanda"; prune the LM head too.
  std::string prune;
  std::string pruneMethod;
  bool pruneHead = false;
  /// How the integers are chosen: "" (rtn, or gptq with a calibration
  /// text), "rtn", "awq", "gptq" (docs/compression.md).
  std::string quantMethod;
  /// Plain text the f32 model runs on to calibrate awq/gptq, and how many
  /// of its tokens to use.
  std::string calibration;
  int64_t calibrationTokens = 8192;
};

/// Every dialect kiln's compiler uses.
void registerKilnDialects(mlir::DialectRegistry &registry);
/// Every kiln pass and the upstream passes the pipelines use (for kiln-opt).
void registerKilnPasses();

/// Runs the whole compile. Returns 0 on success, 1 with `error` set (one
/// line) on failure.
int compile(const CompileOptions &options, std::string &error);

} // namespace kiln

#endif
