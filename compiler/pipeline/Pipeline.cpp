//===- Pipeline.cpp - kiln-compile's phases -------------------------------===//
#include "compiler/pipeline/Pipeline.h"

#include "compiler/artifact/ArtifactWriter.h"
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/dispatch/FormDispatches.h"
#include "compiler/importer/OnnxImporter.h"
#include "compiler/pipeline/Calibrate.h"
#include "compiler/transforms/LowerLlm.h"
#include "compiler/transforms/LayerSkip.h"
#include "compiler/transforms/PagedKv.h"
#include "compiler/transforms/Prune.h"
#include "compiler/transforms/PruneHeads.h"
#include "compiler/transforms/Quantize.h"
#include "compiler/transforms/RaiseLlm.h"
#include "dialects/llm/IR/LlmDialect.h"
#include "dialects/onnx/Transforms/Passes.h"
#include "targets/TargetRegistry.h"

#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/Format.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/FileSystem.h"

#include <chrono>

using namespace mlir;

namespace kiln {

std::optional<Phase> parsePhase(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<Phase>>(name)
      .Case("import", Phase::Import)
      .Case("onnx", Phase::Import)
      .Case("llm", Phase::Llm)
      .Case("linalg", Phase::Linalg)
      .Case("dispatch", Phase::Dispatch)
      .Case("exec", Phase::Dispatch)
      .Case("bufferized", Phase::Bufferized)
      .Case("loops", Phase::Loops)
      .Case("llvm", Phase::Llvm)
      .Case("artifact", Phase::Artifact)
      .Default(std::nullopt);
}

llvm::StringRef phaseNames() {
  return "import, llm, linalg, dispatch, bufferized, loops, llvm, artifact";
}

namespace {

/// Collects the first error diagnostic as a one-line message.
struct FirstError {
  explicit FirstError(MLIRContext &ctx)
      : handler(ctx.getDiagEngine().registerHandler([this](Diagnostic &d) {
          if (d.getSeverity() == DiagnosticSeverity::Error && message.empty()) {
            std::string loc;
            llvm::raw_string_ostream os(loc);
            if (auto name = dyn_cast<NameLoc>(d.getLocation()))
              os << " (node '" << name.getName().getValue() << "')";
            message = d.str() + loc;
            // The conversion driver's wording, in kiln's words.
            llvm::StringRef m(message);
            if (m.consume_front("failed to legalize operation 'onnx.")) {
              auto op = m.take_until([](char c) { return c == '\''; });
              message = "unsupported op '" + op.str() +
                        "' for lowering: this form (types, shapes or "
                        "attributes) is not supported yet" + loc;
            }
            auto nl = message.find('\n');
            if (nl != std::string::npos)
              message = message.substr(0, nl);
          }
          return success();
        })),
        ctx(ctx) {}
  ~FirstError() { ctx.getDiagEngine().eraseHandler(handler); }
  DiagnosticEngine::HandlerID handler;
  MLIRContext &ctx;
  std::string message;
};

LogicalResult emitModule(ModuleOp module, const std::string &path,
                         std::string &error) {
  std::string errorMessage;
  auto out = openOutputFile(path.empty() ? "-" : path, &errorMessage);
  if (!out) {
    error = errorMessage;
    return failure();
  }
  module.print(out->os());
  out->os() << "\n";
  out->keep();
  return success();
}

class Progress {
public:
  explicit Progress(bool on) : on(on), start(clock::now()) {}
  void step(llvm::StringRef what) {
    if (!on)
      return;
    double s = std::chrono::duration<double>(clock::now() - start).count();
    llvm::errs() << llvm::format("[%6.2fs] ", s) << what << "\n";
  }

private:
  using clock = std::chrono::steady_clock;
  bool on;
  clock::time_point start;
};

/// Reads the tokenizer and model config into artifact metadata: the files
/// named on the command line, else the ones a Hugging Face/optimum export
/// folder keeps beside the model.
LogicalResult collectLlmMetadata(const CompileOptions &options,
                                 std::map<std::string, std::string> &metadata,
                                 std::string &error) {
  llvm::SmallString<256> dir(options.input);
  llvm::sys::path::remove_filename(dir);
  auto beside = [&](llvm::StringRef name) {
    llvm::SmallString<256> p(dir);
    llvm::sys::path::append(p, name);
    return llvm::sys::fs::exists(p) ? std::string(p) : std::string();
  };
  auto read = [&](const std::string &path, std::string &out) {
    auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false);
    if (!buf) {
      error = "cannot read '" + path + "': " + buf.getError().message();
      return failure();
    }
    out = (*buf)->getBuffer().str();
    return success();
  };
  std::string config = options.modelConfig.empty() ? beside("config.json")
                                                   : options.modelConfig;
  if (!config.empty() && failed(read(config, metadata["llm.config"])))
    return failure();
  std::string tok = options.tokenizer;
  if (tok.empty())
    tok = beside("tokenizer.model");
  if (tok.empty())
    tok = beside("tokenizer.json");
  if (!tok.empty()) {
    if (failed(read(tok, metadata["llm.tokenizer"])))
      return failure();
    llvm::StringRef data = metadata["llm.tokenizer"];
    bool json = data.ltrim().starts_with("{");
    metadata["llm.tokenizer.kind"] = json ? "hf-tokenizer-json" : "sentencepiece";
  }
  return success();
}

} // namespace

int compile(const CompileOptions &options, std::string &error) {
  // A registered name, or a vendor's description file (NAME.json).
  const TargetDescription *target = lookupTarget(options.target);
  std::optional<TargetDescription> fromFile;
  if (!target && llvm::StringRef(options.target).ends_with(".json")) {
    fromFile = loadTargetFile(options.target, error);
    if (!fromFile)
      return 1;
    target = &*fromFile;
  }
  if (!target) {
    error = "unknown target '" + options.target + "' (known:";
    for (const auto &t : allTargets())
      error += " " + t.name;
    error += "; or a target description file NAME.json)";
    return 1;
  }
  std::optional<QuantScheme> quant;
  bool kv8 = false;
  FloatWeights floatWeights = FloatWeights::F32;
  llvm::StringRef floatName; // "f16" or "bf16" when one is asked for
  if (!options.quantize.empty()) {
    for (llvm::StringRef part : llvm::split(llvm::StringRef(options.quantize), ',')) {
      if (std::optional<QuantScheme> s = parseWeightScheme(part)) {
        if (quant) {
          error = "--quantize: give one weight scheme, got '" + options.quantize + "'";
          return 1;
        }
        quant = s;
      } else if (part == "kv8") {
        kv8 = true;
      } else if (part == "f16" || part == "bf16") {
        if (!floatName.empty() && floatName != part) {
          error = "--quantize: give one of f16 and bf16, got '" + options.quantize + "'";
          return 1;
        }
        floatName = part;
        floatWeights = part == "f16" ? FloatWeights::F16 : FloatWeights::BF16;
      } else {
        error = "unknown --quantize scheme '" + part.str() +
                "' (known: w8, w8a8, w4g32, w4g128, w4gN, w8gN, f16, bf16, kv8; w4 schemes take "
                "a8 or a32)";
        return 1;
      }
    }
    if (!floatName.empty() && quant) {
      error = "--quantize: " + floatName.str() + " stores the weights as " +
              (floatWeights == FloatWeights::F16 ? "half floats" : "bfloat16") +
              "; it does not combine with '" + quant->name() + "'";
      return 1;
    }
    if (!floatName.empty() && target->kind == TargetKind::Cpu) {
      error = "--quantize=" + floatName.str() + ": " +
              (floatWeights == FloatWeights::F16 ? "half-float" : "bfloat16") +
              " weights have GPU kernels only (cuda-sm80, cuda-sm90, vulkan targets); on " +
              target->name + " use w8 or w4g32";
      return 1;
    }
    if (quant) {
      quant->head = options.quantizeHead;
      // int4 weights on a CPU with an int8 dot product (x86 AVX2's
      // vpmaddubsw, Arm's sdot): the matmuls quantize their input per group
      // to int8 unless the scheme says a32 (there the int4 unpacking to
      // floats, not memory, bounds an f32 decode; docs/compression.md).
      // Elsewhere a8 is asked for by name.
      auto features = llvm::split(target->features, ',');
      if (quant->bits == 4 && !quant->activationsGiven && target->kind == TargetKind::Cpu &&
          (llvm::is_contained(features, "+avx2") || llvm::is_contained(features, "+dotprod")))
        quant->activationBits = 8;
    }
  }
  if (options.quantizeHead && !quant) {
    error = "--quantize-head needs a weight scheme (--quantize=w8, w4g32, ...)";
    return 1;
  }
  if (kv8 && !options.pagedKv) {
    error = "--quantize=kv8 needs the paged KV cache (not --kv-cache=concat)";
    return 1;
  }
  // --quant-method / --calibration: rtn by default; with a calibration
  // text, gptq (smoothquant for w8a8).
  std::optional<QuantMethod> method;
  if (!options.quantMethod.empty() && !(method = parseQuantMethod(options.quantMethod))) {
    error = "unknown --quant-method '" + options.quantMethod +
            "' (known: rtn, awq, gptq, smoothquant)";
    return 1;
  }
  // Wanda pruning reads the same calibration run (its channel norms).
  const bool wanda = !options.prune.empty() && options.pruneMethod == "wanda";
  if (method && !quant) {
    error = "--quant-method needs a weight scheme (--quantize=w8, w4g32, ...)";
    return 1;
  }
  const bool headsPrune = llvm::StringRef(options.prune).starts_with("heads:");
  if (!options.calibration.empty() && !quant && !wanda && !headsPrune) {
    error = "--calibration needs a weight scheme (--quantize=w8, w4g32, ...), "
            "--prune=2:4 --prune-method=wanda or --prune=heads:N";
    return 1;
  }
  if (wanda && options.calibration.empty()) {
    error = "--prune-method=wanda needs --calibration FILE.txt (text to run the f32 model on)";
    return 1;
  }
  if (method == QuantMethod::SmoothQuant && (quant->bits != 8 || !quant->activationBits)) {
    error = "--quant-method=smoothquant smooths int8 activations: it needs --quantize=w8a8";
    return 1;
  }
  if (method && *method != QuantMethod::Rtn && options.calibration.empty()) {
    error = "--quant-method=" + options.quantMethod +
            " needs --calibration FILE.txt (text to run the f32 model on)";
    return 1;
  }
  if (method == QuantMethod::Rtn && !options.calibration.empty() && !wanda && !headsPrune) {
    error = "--quant-method=rtn does not use --calibration (use awq, gptq or smoothquant)";
    return 1;
  }
  // With --prune the quantizer only sees what pruning left (2:4+w8 quantizes
  // the kept values itself): rtn unless asked.
  if (!method)
    method = options.calibration.empty() || !options.prune.empty() ? QuantMethod::Rtn
             : quant->bits == 8 && quant->activationBits           ? QuantMethod::SmoothQuant
                                                                     : QuantMethod::Gptq;
  // --prune=2:4 (docs/compression.md, "Pruning"): semi-structured 2:4 of
  // the linear layers, magnitude or wanda; with --quantize=w8 the kept
  // values are int8 (2:4+w8).
  std::optional<PruneOptions> prune;
  // --prune=heads:N: structured, N query heads (whole GQA groups) per layer.
  int64_t pruneHeads = 0;
  if (llvm::StringRef heads = options.prune; heads.consume_front("heads:")) {
    if (heads.getAsInteger(10, pruneHeads) || pruneHeads <= 0) {
      error = "--prune=heads:N needs a number of heads > 0, got '" + options.prune + "'";
      return 1;
    }
    if (!options.pruneMethod.empty() || options.pruneHead) {
      error = std::string(options.pruneHead ? "--prune-head" : "--prune-method") +
              " applies to --prune=2:4, not to head pruning";
      return 1;
    }
    if (llvm::StringRef(options.speculative).starts_with("layer-skip")) {
      error = "--prune=heads:N does not combine with --speculative=layer-skip (the draft shares the "
              "target's weights)";
      return 1;
    }
    if (!options.pagedKv) {
      error = "--prune=heads:N needs the paged KV cache (not --kv-cache=concat)";
      return 1;
    }
  } else if (!options.prune.empty()) {
    if (options.prune != "2:4") {
      error = "unknown --prune '" + options.prune + "' (known: 2:4, heads:N)";
      return 1;
    }
    prune.emplace();
    prune->head = options.pruneHead;
    if (!options.pruneMethod.empty()) {
      std::optional<PruneOptions::Method> m = parsePruneMethod(options.pruneMethod);
      if (!m) {
        error = "unknown --prune-method '" + options.pruneMethod + "' (known: magnitude, wanda)";
        return 1;
      }
      prune->method = *m;
    }
    if (quant) {
      if (quant->bits != 8 || quant->group != 0 || quant->activationBits) {
        error = "--prune=2:4 combines with --quantize=w8 only (got " + quant->name() + ")";
        return 1;
      }
      prune->valueBits = 8;
    }
  } else if (options.prune.empty() && (!options.pruneMethod.empty() || options.pruneHead)) {
    error = std::string(options.pruneHead ? "--prune-head" : "--prune-method") +
            " needs --prune=2:4";
    return 1;
  }
  registerKilnPasses();
  DialectRegistry registry;
  registerKilnDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  FirstError diag(ctx);
  Progress progress(options.verbose);

  ImportOptions importOptions;
  auto module = importOnnxFile(ctx, options.input, importOptions, error);
  if (!module)
    return 1;
  progress.step("imported " + options.input);
  auto fail = [&](llvm::StringRef fallback) {
    error = diag.message.empty() ? fallback.str() : diag.message;
    return 1;
  };
  if (failed(verify(*module)))
    return fail("imported module does not verify");
  auto stopHere = [&](Phase p) { return options.compileTo == p; };
  if (stopHere(Phase::Import))
    return failed(emitModule(*module, options.output, error));

  std::map<std::string, std::string> metadata;
  if (failed(collectLlmMetadata(options, metadata, error)))
    return 1;
  if (!options.chatTemplate.empty()) {
    // Checked here so that a bad template fails the compile, not the server.
    auto buf = llvm::MemoryBuffer::getFile(options.chatTemplate, /*IsText=*/true);
    if (!buf) {
      error = "cannot read '" + options.chatTemplate + "': " + buf.getError().message();
      return 1;
    }
    llvm::Expected<llvm::json::Value> parsed = llvm::json::parse((*buf)->getBuffer());
    const llvm::json::Object *obj = parsed ? parsed->getAsObject() : nullptr;
    if (!parsed)
      llvm::consumeError(parsed.takeError());
    std::string why = obj ? "" : "not a JSON object";
    for (const auto &kv : obj ? *obj : llvm::json::Object()) {
      llvm::StringRef key = kv.first;
      if (key == "message" || key == "generation_prompt") {
        if (!kv.second.getAsString())
          why = "'" + key.str() + "' must be a string";
      } else if (key == "roles") {
        const llvm::json::Object *roles = kv.second.getAsObject();
        if (!roles)
          why = "'roles' must be an object";
        else
          for (const auto &r : *roles)
            if (!r.second.getAsString())
              why = "role '" + r.first.str() + "' must map to a string";
      } else {
        why = "unknown key '" + key.str() + "' (known: message, roles, generation_prompt)";
      }
    }
    if (!why.empty()) {
      error = "--chat-template " + options.chatTemplate + ": " + why;
      return 1;
    }
    metadata["llm.chat_template"] = (*buf)->getBuffer().str();
  }
  {
    PassManager pm(&ctx);
    pm.addPass(createCanonicalizerPass());
    if (auto refine = onnx::createRefineShapesPass()) {
      pm.addPass(std::move(refine));
      pm.addPass(createCanonicalizerPass());
    }
    if (failed(pm.run(*module)))
      return fail("shape refinement failed");
  }
  // Transformer blocks -> llm ops; a cache-less export gets a KV cache.
  for (auto fn : llvm::make_early_inc_range(module->getOps<func::FuncOp>())) {
    RaiseReport report;
    if (failed(raiseLlm(fn, report)))
      return fail("raising to the llm dialect failed");
    if (!report.raised.empty()) {
      int cached = addKvCache(fn);
      if (cached)
        report.raised["kv-cache added"] = cached;
      progress.step("raised to llm ops");
    }
    if (options.report)
      llvm::outs() << formatRaiseReport(fn, report);
    if (options.pagedKv && !report.raised.empty()) {
      int paged = convertToPagedKv(fn, error, kv8);
      if (paged < 0)
        return 1;
      if (paged)
        progress.step("paged KV cache: forward over " + std::to_string(paged) + " layers");
    }
  }
  if (!options.draft.empty()) {
    // A draft model: imported, raised and paged like the target, then moved
    // in as draft_forward (same ABI, its own pools).
    if (!options.speculative.empty()) {
      error = "--draft and --speculative both choose a draft: give one";
      return 1;
    }
    auto fwd = module->lookupSymbol<func::FuncOp>("forward");
    if (!fwd) {
      error = "--draft needs an LLM compiled to the paged forward (the target is not one)";
      return 1;
    }
    auto draftModule = importOnnxFile(ctx, options.draft, importOptions, error);
    if (!draftModule)
      return 1;
    {
      PassManager pm(&ctx);
      pm.addPass(createCanonicalizerPass());
      if (auto refine = onnx::createRefineShapesPass()) {
        pm.addPass(std::move(refine));
        pm.addPass(createCanonicalizerPass());
      }
      if (failed(pm.run(*draftModule)))
        return fail("the draft's shape refinement failed");
    }
    func::FuncOp draftFn;
    for (auto fn : llvm::make_early_inc_range(draftModule->getOps<func::FuncOp>())) {
      RaiseReport report;
      if (failed(raiseLlm(fn, report)))
        return fail("raising the draft to the llm dialect failed");
      if (report.raised.empty())
        continue;
      addKvCache(fn);
      if (convertToPagedKv(fn, error, kv8) <= 0) {
        if (error.empty())
          error = "the draft is not an LLM with a KV cache";
        return 1;
      }
      draftFn = fn;
    }
    if (!draftFn) {
      error = "the draft '" + options.draft + "' is not an LLM kiln can raise";
      return 1;
    }
    auto vocabOf = [](func::FuncOp fn) { return cast<RankedTensorType>(fn.getResultTypes()[0]).getDimSize(1); };
    if (vocabOf(draftFn) != vocabOf(fwd)) {
      error = "the draft's vocabulary (" + std::to_string(vocabOf(draftFn)) + " ids) differs from the target's (" +
              std::to_string(vocabOf(fwd)) + ")";
      return 1;
    }
    // Same tokenizer: the file beside the draft (when there is one) must be
    // the target's.
    llvm::SmallString<256> dir(options.draft);
    llvm::sys::path::remove_filename(dir);
    for (const char *name : {"tokenizer.model", "tokenizer.json"}) {
      llvm::SmallString<256> path(dir);
      llvm::sys::path::append(path, name);
      auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false);
      if (!buf)
        continue;
      if (metadata.count("llm.tokenizer") && (*buf)->getBuffer() != metadata["llm.tokenizer"]) {
        error = "the draft's tokenizer (" + std::string(path) + ") differs from the target's";
        return 1;
      }
    }
    draftFn->remove();
    draftFn.setSymName("draft_forward");
    module->push_back(draftFn);
    int layers = 0;
    draftFn.walk([&](kiln::llm::PagedAttentionOp) { ++layers; });
    progress.step("draft_forward: " + options.draft + " (" + std::to_string(layers) + " layers, own weights)");
    if (options.report)
      llvm::outs() << "draft_forward: the draft model " << options.draft << ", " << layers << " layers\n";
    metadata["llm.speculative"] = "draft";
  }
  if (!options.speculative.empty()) {
    llvm::StringRef spec = options.speculative;
    if (spec == "ngram") {
      progress.step("speculative: n-gram prompt lookup (no draft model)");
    } else if (spec.consume_front("layer-skip:")) {
      int layers = 0;
      if (spec.getAsInteger(10, layers)) {
        error = "--speculative=layer-skip:N needs a number of layers, got '" + options.speculative + "'";
        return 1;
      }
      std::string summary;
      if (failed(addLayerSkipDraft(*module, layers, summary, error)))
        return 1;
      progress.step(summary);
      if (options.report)
        llvm::outs() << summary << "\n";
    } else {
      error = "unknown --speculative '" + options.speculative + "' (known: ngram, layer-skip:N)";
      return 1;
    }
    metadata["llm.speculative"] = options.speculative;
  }
  // One calibration run on the f32 model serves Wanda and AWQ / GPTQ.
  CalibrationStats stats;
  if (wanda || (quant && *method != QuantMethod::Rtn) || (pruneHeads && !options.calibration.empty())) {
    CalibrationOptions calibration;
    calibration.text = options.calibration;
    calibration.maxTokens = options.calibrationTokens;
    calibration.verbose = options.verbose;
    std::string summary;
    if (!collectCalibrationStats(*module, calibration, metadata, stats, summary, error))
      return 1;
    progress.step(summary);
  }
  if (pruneHeads) {
    PruneHeadsOptions headOptions;
    headOptions.heads = pruneHeads;
    if (!options.calibration.empty())
      headOptions.channelEnergy = [&stats](Attribute weight) {
        std::vector<double> energy;
        if (const ActivationStats *a = stats.lookup(weight))
          for (int64_t k = 0; k < a->channels; ++k)
            energy.push_back(a->meanSquare(k));
        return energy;
      };
    // The target only: a --draft model keeps its own heads.
    auto forward = module->lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      error = "--prune=heads:N needs an LLM with a KV cache (this model has none)";
      return 1;
    }
    std::vector<PrunedHeads> report;
    if (failed(pruneAttentionHeads(forward, headOptions, report, error)))
      return 1;
    progress.step("pruned " + std::to_string(pruneHeads) + " attention heads in each of " +
                  std::to_string(report.size()) + " layers of @forward" +
                  (report.empty() || !report[0].calibrated ? " (by weights)" : " (calibrated)"));
    if (options.report)
      llvm::outs() << formatPrunedHeads("forward", report);
    metadata["llm.prune"] = options.prune;
  }
  if (prune) {
    if (wanda)
      prune->channelNorms = [&stats](Attribute weight) {
        std::vector<double> norms;
        if (const ActivationStats *a = stats.lookup(weight))
          for (int64_t k = 0; k < a->channels; ++k)
            norms.push_back(a->norm(k));
        return norms;
      };
    PruneCache shared; // a draft sharing the target's weights shares them pruned
    for (auto fn : module->getOps<func::FuncOp>()) {
      bool llm = false;
      fn.walk([&](Operation *op) { llm |= isa<kiln::llm::LlmDialect>(op->getDialect()); });
      if (!llm)
        continue;
      std::vector<PrunedWeight> report;
      if (failed(pruneWeights(fn, *prune, report, &shared)))
        return fail("pruning failed");
      int pruned = 0;
      for (const PrunedWeight &w : report)
        pruned += w.scheme == prune->name();
      progress.step("pruned " + std::to_string(pruned) + " weights of @" + fn.getSymName().str() +
                    " to " + prune->name());
      if (options.report)
        llvm::outs() << formatPruneReport(fn.getSymName(), report);
    }
    metadata["llm.prune"] = prune->name() + (prune->head ? "+head" : "");
  }
  if (quant) {
    QuantizeOptions quantOptions;
    quantOptions.method = *method;
    if (*method != QuantMethod::Rtn)
      quantOptions.stats = &stats;
    QuantCache shared; // a draft sharing the target's weights shares them quantized
    for (auto fn : module->getOps<func::FuncOp>()) {
      bool llm = false;
      fn.walk([&](Operation *op) {
        llm |= isa<kiln::llm::LlmDialect>(op->getDialect());
      });
      if (!llm)
        continue;
      std::vector<QuantizedWeight> report;
      if (failed(quantizeWeights(fn, *quant, report, &shared, &quantOptions)))
        return fail("quantization failed");
      int quantized = 0;
      for (const QuantizedWeight &w : report)
        quantized += w.scheme == quant->name();
      progress.step("quantized " + std::to_string(quantized) + " weights of @" +
                    fn.getSymName().str() + " to " + quant->name() + " (" +
                    quantMethodName(*method).str() + ")");
      if (options.report)
        llvm::outs() << formatQuantReport(fn.getSymName(), report);
    }
    metadata["llm.quantize"] = quant->name() + (quant->head ? "+head" : "");
    if (*method != QuantMethod::Rtn)
      metadata["llm.quantize.method"] = quantMethodName(*method).str();
  }
  if (floatWeights == FloatWeights::F16) {
    metadata["llm.quantize"] = "f16";
    progress.step("f16 weights: linear layers stored as half floats");
  } else if (floatWeights == FloatWeights::BF16) {
    metadata["llm.quantize"] = "bf16";
    progress.step("bf16 weights: linear layers stored as bfloat16");
  }
  if (kv8) {
    if (!module->lookupSymbol<func::FuncOp>("forward")) {
      error = "--quantize=kv8 needs an LLM with a KV cache (this model has none)";
      return 1;
    }
    metadata["llm.kv_cache"] = "int8";
    progress.step("int8 KV cache (kv8): per token and head scales");
  }
  if (stopHere(Phase::Llm))
    return failed(emitModule(*module, options.output, error));
  {
    PassManager pm(&ctx);
    pm.addPass(createConvertOnnxToLinalgPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createLinalgElementwiseOpFusionPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    if (failed(pm.run(*module)))
      return fail("lowering to linalg failed");
    PackCache packs;  // one packed copy of a weight that several functions read
    LowerLlmOptions lowering;
    lowering.floatWeights = floatWeights;
    for (auto fn : module->getOps<func::FuncOp>())
      if (failed(lowerLlmToUkernels(fn, &packs, lowering)))
        return fail("lowering llm ops failed");
  }
  progress.step("lowered to linalg");
  if (stopHere(Phase::Linalg))
    return failed(emitModule(*module, options.output, error));

  {
    PassManager pm(&ctx);
    pm.addPass(createFormDispatchesPass());
    pm.addPass(createLowerAffinePass());
    pm.addPass(createCanonicalizerPass());
    if (failed(pm.run(*module)))
      return fail("dispatch formation failed");
  }
  progress.step("formed dispatches");
  if (stopHere(Phase::Dispatch))
    return failed(emitModule(*module, options.output, error));

  // Codegen works on a clone that keeps only the kernels.
  OwningOpRef<ModuleOp> kernels = module->clone();
  CompiledExecutable exe;
  llvm::StringRef stopAfter = stopHere(Phase::Bufferized) ? "bufferized"
                              : stopHere(Phase::Loops)    ? "loops"
                              : stopHere(Phase::Llvm)     ? "llvm"
                                                          : "";
  if (failed(backendFor(target->kind)
                 .compile(*kernels, *target, exe, stopAfter, error))) {
    if (!diag.message.empty())
      error += ": " + diag.message;
    return 1;
  }
  if (!stopAfter.empty())
    return failed(emitModule(*kernels, options.output, error));
  progress.step("generated code for " + target->name);

  if (options.output.empty()) {
    error = "no output file (-o)";
    return 1;
  }
  if (options.emitExecutable) {
    std::string errorMessage;
    auto out = openOutputFile(options.output, &errorMessage);
    if (!out) {
      error = errorMessage;
      return 1;
    }
    out->os().write(exe.binary.data(), exe.binary.size());
    out->keep();
    progress.step("wrote the " + exe.format + " executable to " + options.output);
    return 0;
  }
  if (failed(writeArtifact(*module, exe, *target, metadata, options.output,
                           error)))
    return 1;
  progress.step("wrote " + options.output);
  return 0;
}

} // namespace kiln
