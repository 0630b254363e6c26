//===- kiln-compile.cpp - ONNX model -> .kiln artifact --------------------===//
#include "compiler/pipeline/Pipeline.h"
#include "runtime/base/tool_error.h"
#include "targets/TargetRegistry.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

namespace cl = llvm::cl;

static cl::OptionCategory category("kiln-compile options");
static cl::opt<std::string> input(cl::Positional, cl::desc("MODEL.onnx"),
                                  cl::cat(category));
static cl::opt<std::string> output("o", cl::desc("output file"),
                                   cl::value_desc("OUT.kiln"),
                                   cl::cat(category));
static cl::opt<std::string> target("target", cl::desc("target (see --list-targets)"),
                                   cl::init("host"), cl::cat(category));
static cl::opt<std::string> compileTo(
    "compile-to", cl::desc("stop after phase: import, llm, linalg, dispatch, "
                           "bufferized, loops, llvm, artifact"),
    cl::init("artifact"), cl::cat(category));
static cl::opt<std::string> emit("emit", cl::desc("output kind: kiln (the artifact), mlir, or executable (the target binary alone: ELF .so, SPIR-V .spv)"),
                                 cl::init(""), cl::cat(category));
static cl::opt<bool> listTargets("list-targets", cl::desc("list known targets"),
                                 cl::cat(category));
static cl::opt<bool> verbose("verbose", cl::desc("progress on stderr"),
                             cl::cat(category));
static cl::opt<bool> report("report",
                            cl::desc("print, per layer, what was fused into llm "
                                     "ops and what was left unfused"),
                            cl::cat(category));
static cl::opt<std::string> tokenizer(
    "tokenizer",
    cl::desc("tokenizer to embed (SentencePiece .model or Hugging Face "
             "tokenizer.json; default: the one beside the model)"),
    cl::value_desc("FILE"), cl::cat(category));
static cl::opt<std::string> modelConfig(
    "model-config",
    cl::desc("Hugging Face config.json to embed (default: the one beside the model)"),
    cl::value_desc("config.json"), cl::cat(category));

static cl::opt<std::string> kvCache(
    "kv-cache",
    cl::desc("KV cache of an LLM: 'paged' (the runtime's `forward` over a "
             "flattened batch with block tables; default) or 'concat' "
             "(`main` with past_key_values -> present, one sequence)"),
    cl::init("paged"), cl::cat(category));

static cl::opt<std::string> speculative(
    "speculative",
    cl::desc("speculative decoding: 'ngram' (prompt lookup, recorded for the "
             "runtime) or 'layer-skip:N' (adds draft_forward: the first N "
             "layers with the target's final norm and LM head, weights shared)"),
    cl::value_desc("MODE"), cl::cat(category));

static cl::opt<std::string> draft(
    "draft",
    cl::desc("a draft LLM (ONNX, same tokenizer) compiled in as draft_forward for speculative decoding"),
    cl::value_desc("DRAFT.onnx"), cl::cat(category));

static cl::opt<std::string> chatTemplate(
    "chat-template",
    cl::desc("chat template for kiln-serve (JSON: message, roles, generation_prompt; docs/serving.md)"),
    cl::value_desc("FILE.json"), cl::cat(category));

static cl::opt<std::string> quantize(
    "quantize",
    cl::desc("weight quantization of an LLM's linear layers: 'w8' (int8 per output "
             "channel), 'w8a8' (w8, and each matmul's input rows in int8 at run time), "
             "'w4g32' / 'w4g128' (int4 in groups of 32 / 128 along K, zero points; on CPUs "
             "each group of inputs in int8 too, unless the name ends in 'a32'; 'a8' asks for "
             "it anywhere); 'f16' / 'bf16' (half-float / bfloat16 weights; GPU targets); "
             "',kv8' adds an int8 KV cache (docs/compression.md)"),
    cl::value_desc("SCHEME"), cl::cat(category));

static cl::opt<std::string> prune(
    "prune",
    cl::desc("prune an LLM: '2:4' (in each group of 4 weights along K of the linear layers keep "
             "2; stored and run as the kept half) or 'heads:N' (remove N attention heads, whole "
             "GQA groups, from every layer, with their K/V cache; docs/compression.md)"),
    cl::value_desc("2:4|heads:N"), cl::cat(category));

static cl::opt<std::string> pruneMethod(
    "prune-method",
    cl::desc("how --prune chooses the kept weights: 'magnitude' (|W|, the default) or 'wanda' "
             "(|W| times the calibration activations' channel norm)"),
    cl::value_desc("METHOD"), cl::cat(category));

static cl::opt<bool> pruneHead(
    "prune-head", cl::desc("with --prune, prune the LM head too (it stays dense by default)"),
    cl::cat(category));

static cl::opt<bool> quantizeHead(
    "quantize-head",
    cl::desc("with --quantize, quantize the LM head too (it stays f32 by default)"),
    cl::cat(category));

static cl::opt<std::string> quantMethod(
    "quant-method",
    cl::desc("how --quantize chooses the integers: 'rtn' (round to nearest; the default "
             "without --calibration), 'awq' (activation-aware scales and clipping), 'gptq' "
             "(error compensation; the default with --calibration) or, for w8a8, 'smoothquant' "
             "(activation outliers moved into the weights; w8a8's default with --calibration)"),
    cl::value_desc("METHOD"), cl::cat(category));

static cl::opt<std::string> calibration(
    "calibration",
    cl::desc("plain text the f32 model runs on (tokenized with the model's tokenizer) to "
             "calibrate --quant-method=awq|gptq|smoothquant"),
    cl::value_desc("FILE.txt"), cl::cat(category));

static cl::opt<int64_t> calibrationTokens(
    "calibration-tokens", cl::desc("tokens of the calibration text to run (default 8192)"),
    cl::init(8192), cl::value_desc("N"), cl::cat(category));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  auto fail = [](std::string msg) {
    // Valid UTF-8, whatever a flag or the model's names contain (a corrupt
    // model's bytes would otherwise reach the terminal or a log that
    // expects text); ToolError makes it one line.
    if (!llvm::json::isUTF8(msg))
      msg = llvm::json::fixUTF8(msg);
    return kiln::ToolError("kiln-compile", std::move(msg));
  };
  std::string parseErrors;
  llvm::raw_string_ostream errs(parseErrors);
  if (!cl::ParseCommandLineOptions(argc, argv, "kiln model compiler\n", &errs)) {
    // LLVM's message goes on with usage hints: its first line is the error.
    // An option's own errors ("requires a value!") LLVM prints to stderr
    // itself, one line, leaving nothing here: no second, empty line then.
    const std::string &msg = errs.str();
    if (msg.empty())
      return 1;
    return fail(msg.substr(0, msg.find('\n')));
  }
  if (listTargets) {
    for (const auto &t : kiln::allTargets())
      llvm::outs() << t.name << "\t" << t.summary << "\n";
    return 0;
  }
  if (input.empty())
    return fail("no input model (usage: kiln-compile MODEL.onnx -o OUT.kiln)");
  kiln::CompileOptions options;
  options.input = input;
  options.output = output;
  options.target = target;
  options.verbose = verbose;
  options.report = report;
  options.tokenizer = tokenizer;
  options.modelConfig = modelConfig;
  if (kvCache != "paged" && kvCache != "concat")
    return fail("unknown --kv-cache '" + kvCache + "' (known: paged, concat)");
  options.pagedKv = kvCache == "paged";
  options.speculative = speculative;
  options.draft = draft;
  options.chatTemplate = chatTemplate;
  options.quantize = quantize;
  options.quantizeHead = quantizeHead;
  options.prune = prune;
  options.pruneMethod = pruneMethod;
  options.pruneHead = pruneHead;
  options.quantMethod = quantMethod;
  options.calibration = calibration;
  if (calibrationTokens < 2)
    return fail("--calibration-tokens must be >= 2, got " + std::to_string(calibrationTokens));
  options.calibrationTokens = calibrationTokens;
  auto phase = kiln::parsePhase(compileTo);
  if (!phase)
    return fail("unknown phase '" + compileTo + "' (known: " +
                kiln::phaseNames().str() + ")");
  options.compileTo = *phase;
  if (emit == "mlir") {
    options.emitMlir = true;
    if (options.compileTo == kiln::Phase::Artifact)
      options.compileTo = kiln::Phase::Llvm;
  } else if (emit == "executable") {
    if (options.compileTo != kiln::Phase::Artifact)
      return fail("--emit=executable writes the final code; drop --compile-to");
    options.emitExecutable = true;
  } else if (!emit.empty() && emit != "kiln") {
    return fail("unknown --emit '" + emit + "' (known: kiln, mlir, executable)");
  } else if (options.compileTo != kiln::Phase::Artifact) {
    options.emitMlir = true;
  }
  if (options.compileTo == kiln::Phase::Artifact && options.output.empty())
    return fail("no output file: pass -o OUT.kiln");
  std::string error;
  int rc = kiln::compile(options, error);
  if (rc != 0)
    return fail(error.empty() ? "compilation failed" : error);
  return 0;
}
