//===- Calibrate.cpp - kiln-compile --calibration -------------------------===//
//
// A copy of the module, its LLM functions rewritten to return the
// activations their weights read, goes through the rest of the pipeline
// (the same passes compile() runs after quantization) for the host, into a
// temporary .kiln; kiln-tokenize encodes the text with the tokenizer
// embedded in it; CalibrateRun.cpp runs it and folds the activations into
// the statistics. The copy's weights are views of the original's blobs
// (lower-llm frees the blobs of the weights it packs, and the original
// still needs them), and the views are dropped at the end.
//
//===----------------------------------------------------------------------===//
#include "compiler/pipeline/Calibrate.h"

#include "compiler/artifact/ArtifactWriter.h"
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/dispatch/FormDispatches.h"
#include "compiler/pipeline/CalibrateRun.h"
#include "compiler/transforms/LowerLlm.h"
#include "dialects/llm/IR/LlmDialect.h"
#include "targets/TargetRegistry.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <unistd.h>

using namespace mlir;

namespace kiln {
namespace {

/// Points every resource constant of `module` at a new resource viewing
/// the same bytes.
void viewResources(ModuleOp module) {
  llvm::DenseMap<Attribute, Attribute> viewOf;
  module.walk([&](Operation *op) {
    SmallVector<NamedAttribute> replace;
    for (NamedAttribute na : op->getAttrs()) {
      auto res = dyn_cast<DenseResourceElementsAttr>(na.getValue());
      if (!res || !res.getRawHandle().getBlob())
        continue;
      Attribute &view = viewOf[res];
      if (!view) {
        AsmResourceBlob *blob = res.getRawHandle().getBlob();
        auto v = DenseResourceElementsAttr::get(
            res.getType(), "calibration." + res.getRawHandle().getKey().str(),
            UnmanagedAsmResourceBlob::allocateWithAlign(blob->getData(), blob->getDataAlignment()));
        view = v;
      }
      replace.push_back(NamedAttribute(na.getName(), view));
    }
    for (NamedAttribute na : replace)
      op->setAttr(na.getName(), na.getValue());
  });
}

/// compile()'s passes after quantization, then code for the host and the
/// artifact at `path`.
bool compileToArtifact(ModuleOp module, const std::map<std::string, std::string> &metadata,
                       StringRef path, std::string &error) {
  MLIRContext *ctx = module.getContext();
  {
    PassManager pm(ctx);
    pm.addPass(createConvertOnnxToLinalgPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createLinalgElementwiseOpFusionPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    if (failed(pm.run(module))) {
      error = "calibration: lowering the calibration copy to linalg failed";
      return false;
    }
    PackCache packs;
    for (auto fn : module.getOps<func::FuncOp>())
      if (failed(lowerLlmToUkernels(fn, &packs))) {
        error = "calibration: lowering the calibration copy's llm ops failed";
        return false;
      }
  }
  {
    PassManager pm(ctx);
    pm.addPass(createFormDispatchesPass());
    pm.addPass(createLowerAffinePass());
    pm.addPass(createCanonicalizerPass());
    if (failed(pm.run(module))) {
      error = "calibration: dispatch formation of the calibration copy failed";
      return false;
    }
  }
  const TargetDescription *host = lookupTarget("host");
  if (!host) {
    error = "calibration: no 'host' target";
    return false;
  }
  OwningOpRef<ModuleOp> kernels = module.clone();
  CompiledExecutable exe;
  if (failed(backendFor(host->kind).compile(*kernels, *host, exe, "", error)))
    return false;
  return succeeded(writeArtifact(module, exe, *host, metadata, path, error));
}

/// kiln-tokenize beside the running compiler.
std::string tokenizeTool() {
  std::string self = llvm::sys::fs::getMainExecutable(nullptr, nullptr);
  llvm::SmallString<256> path(self);
  llvm::sys::path::remove_filename(path);
  llvm::sys::path::append(path, "kiln-tokenize");
  return std::string(path);
}

} // namespace

bool collectCalibrationStats(ModuleOp module, const CalibrationOptions &options,
                             const std::map<std::string, std::string> &metadata,
                             CalibrationStats &stats, std::string &summary, std::string &error) {
  auto start = std::chrono::steady_clock::now();
  // Cheap checks first: the text, the tokenizer, an LLM to run.
  auto text = llvm::MemoryBuffer::getFile(options.text, /*IsText=*/false);
  if (!text) {
    error = "cannot read calibration text '" + options.text + "': " + text.getError().message();
    return false;
  }
  if ((*text)->getBuffer().trim().empty()) {
    error = "calibration text '" + options.text + "' is empty";
    return false;
  }
  bool anyLlm = false;
  module.walk([&](Operation *op) { anyLlm |= isa<llm::LlmDialect>(op->getDialect()); });
  if (!anyLlm) {
    error = "--calibration needs an LLM (no transformer layers were raised from the model)";
    return false;
  }
  if (!metadata.count("llm.tokenizer")) {
    error = "--calibration needs the model's tokenizer (none beside the model: pass --tokenizer)";
    return false;
  }
  int64_t window = std::max<int64_t>(2, options.window);
  if (auto it = metadata.find("llm.config"); it != metadata.end()) {
    llvm::Expected<llvm::json::Value> config = llvm::json::parse(it->second);
    if (!config) {
      llvm::consumeError(config.takeError());
    } else if (const llvm::json::Object *o = config->getAsObject()) {
      for (const char *key : {"max_position_embeddings", "n_positions"})
        if (std::optional<int64_t> n = o->getInteger(key); n && *n >= 2)
          window = std::min(window, *n);
    }
  }

  OwningOpRef<ModuleOp> copy = module.clone();
  std::vector<CalibrationSite> sites;
  llvm::DenseSet<Attribute> seen;
  int functions = 0;
  for (auto fn : llvm::make_early_inc_range(copy->getOps<func::FuncOp>())) {
    bool llm = false;
    fn.walk([&](Operation *op) { llm |= isa<llm::LlmDialect>(op->getDialect()); });
    bool paged = false;
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      if (auto name = fn.getArgAttrOfType<StringAttr>(i, "onnx.name"))
        paged |= name.getValue() == "tokens";
    if (llm && !paged) {
      error = "--calibration runs the paged forward; @" + fn.getSymName().str() +
              " is not one (drop --kv-cache=concat)";
      return false;
    }
    if (!llm || addCalibrationOutputs(fn, sites, seen) == 0) {
      fn.erase();
      continue;
    }
    ++functions;
  }
  if (sites.empty()) {
    error = "--calibration needs an LLM with constant f32 linear weights (none were raised "
            "from the model)";
    return false;
  }
  viewResources(*copy);
  // Whatever the copy holds (views, weights packed for it) goes with it.
  auto freeCopy = [&] {
    if (!copy)
      return;
    copy->walk([&](Operation *op) {
      for (NamedAttribute na : op->getAttrs())
        if (auto res = dyn_cast<DenseResourceElementsAttr>(na.getValue()))
          if (auto *r = res.getRawHandle().getResource())
            r->setBlob(HeapAsmResourceBlob::allocate(0, alignof(float)));
    });
    copy = nullptr;
  };
  llvm::scope_exit freeOnExit(freeCopy);

  llvm::SmallString<128> path;
  if (llvm::sys::fs::createTemporaryFile("kiln-calibration", "kiln", path)) {
    error = "calibration: cannot create a temporary file";
    return false;
  }
  llvm::scope_exit removeArtifact([&] { llvm::sys::fs::remove(path); });
  if (!compileToArtifact(*copy, metadata, path, error))
    return false;
  freeCopy();
  double compiled = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<int32_t> ids;
  if (!tokenizeWithArtifact(tokenizeTool(), std::string(path), options.text, ids, error))
    return false;
  if (ids.size() < 2) {
    error = "calibration text '" + options.text + "' encodes to " + std::to_string(ids.size()) +
            " token(s): need at least 2";
    return false;
  }
  if ((int64_t)ids.size() > options.maxTokens)
    ids.resize(std::max<int64_t>(2, options.maxTokens));

  std::vector<CalibrationOutput> outputs;
  for (const CalibrationSite &site : sites) {
    stats.inputs.push_back(std::make_unique<ActivationStats>(site.channels));
    ActivationStats *st = stats.inputs.back().get();
    outputs.push_back({site.function, site.result, st});
    for (Attribute w : site.weights)
      stats.byWeight[w] = st;
  }
  CalibrationRunOptions run;
  run.window = window;
  run.bar = isatty(2);
  run.lines = !run.bar && options.verbose;
  if (!runCalibration(std::string(path), ids, outputs, run, error))
    return false;
  for (auto &st : stats.inputs)
    st->finish();
  stats.tokens = (int64_t)ids.size();
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  llvm::raw_string_ostream os(summary);
  os << "calibrated on " << ids.size() << " tokens of " << options.text << " (windows of "
     << window << "): " << sites.size() << " activations of " << functions << " function"
     << (functions == 1 ? "" : "s") << llvm::format(", %.1f s (%.1f s compiling)", total, compiled);
  return true;
}

} // namespace kiln
