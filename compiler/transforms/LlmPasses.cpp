//===- LlmPasses.cpp - kiln-opt entry points of the llm transforms ---------===//
#include "compiler/Passes.h"
#include "compiler/transforms/Calibrate.h"
#include "compiler/transforms/LowerLlm.h"
#include "compiler/transforms/LayerSkip.h"
#include "compiler/transforms/PagedKv.h"
#include "compiler/transforms/Prune.h"
#include "compiler/transforms/PruneHeads.h"
#include "compiler/transforms/Quantize.h"
#include "compiler/transforms/RaiseLlm.h"
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

using namespace mlir;

namespace kiln {
#define GEN_PASS_DEF_RAISELLMPASS
#define GEN_PASS_DEF_ADDKVCACHEPASS
#define GEN_PASS_DEF_LOWERLLMPASS
#define GEN_PASS_DEF_PAGEDKVPASS
#define GEN_PASS_DEF_LAYERSKIPDRAFTPASS
#define GEN_PASS_DEF_QUANTIZEPASS
#define GEN_PASS_DEF_PRUNEPASS
#define GEN_PASS_DEF_PRUNEHEADSPASS
#define GEN_PASS_DEF_CALIBRATEPASS
#include "compiler/Passes.h.inc"

namespace {
SmallVector<func::FuncOp> entries(ModuleOp m) {
  SmallVector<func::FuncOp> fns;
  for (auto fn : m.getOps<func::FuncOp>())
    if (!fn.isExternal())
      fns.push_back(fn);
  return fns;
}

struct RaiseLlmPass : impl::RaiseLlmPassBase<RaiseLlmPass> {
  void runOnOperation() override {
    for (auto fn : entries(getOperation())) {
      RaiseReport report;
      if (failed(raiseLlm(fn, report)))
        return signalPassFailure();
    }
  }
};

struct AddKvCachePass : impl::AddKvCachePassBase<AddKvCachePass> {
  void runOnOperation() override {
    for (auto fn : entries(getOperation()))
      addKvCache(fn);
  }
};

struct PagedKvPass : impl::PagedKvPassBase<PagedKvPass> {
  using PagedKvPassBase::PagedKvPassBase;
  void runOnOperation() override {
    for (auto fn : entries(getOperation())) {
      std::string error;
      if (convertToPagedKv(fn, error, kv8) < 0)
        return signalPassFailure();
    }
  }
};

struct LayerSkipDraftPass : impl::LayerSkipDraftPassBase<LayerSkipDraftPass> {
  using LayerSkipDraftPassBase::LayerSkipDraftPassBase;
  void runOnOperation() override {
    std::string summary, error;
    if (failed(addLayerSkipDraft(getOperation(), layers, summary, error))) {
      getOperation().emitError(error);
      return signalPassFailure();
    }
  }
};

struct QuantizePass : impl::QuantizePassBase<QuantizePass> {
  using QuantizePassBase::QuantizePassBase;
  void runOnOperation() override {
    std::optional<QuantScheme> s = parseWeightScheme(scheme);
    if (!s) {
      getOperation().emitError("unknown quantization scheme '") << scheme << "'";
      return signalPassFailure();
    }
    s->head = quantizeHead;
    QuantCache cache;
    for (auto fn : entries(getOperation())) {
      std::vector<QuantizedWeight> report;
      if (failed(quantizeWeights(fn, *s, report, &cache)))
        return signalPassFailure();
    }
  }
};

struct CalibratePass : impl::CalibratePassBase<CalibratePass> {
  void runOnOperation() override {
    std::vector<CalibrationSite> sites;
    llvm::DenseSet<Attribute> seen;
    for (auto fn : entries(getOperation()))
      addCalibrationOutputs(fn, sites, seen);
  }
};

struct PrunePass : impl::PrunePassBase<PrunePass> {
  using PrunePassBase::PrunePassBase;
  void runOnOperation() override {
    PruneOptions o;
    if (values != "f32" && values != "w8") {
      getOperation().emitError("kiln-llm-prune: values must be f32 or w8, got '") << values << "'";
      return signalPassFailure();
    }
    o.valueBits = values == "w8" ? 8 : 32;
    o.head = pruneHead;
    PruneCache cache;
    for (auto fn : entries(getOperation())) {
      std::vector<PrunedWeight> report;
      if (failed(pruneWeights(fn, o, report, &cache)))
        return signalPassFailure();
    }
  }
};

struct PruneHeadsPass : impl::PruneHeadsPassBase<PruneHeadsPass> {
  using PruneHeadsPassBase::PruneHeadsPassBase;
  void runOnOperation() override {
    PruneHeadsOptions o;
    o.heads = heads;
    for (auto fn : entries(getOperation())) {
      bool paged = false;
      fn.walk([&](kiln::llm::PagedAttentionOp) { paged = true; });
      if (!paged)
        continue; // nothing to prune here (an embedding model, a helper)
      std::vector<PrunedHeads> report;
      std::string error;
      if (failed(pruneAttentionHeads(fn, o, report, error))) {
        fn.emitError(error);
        return signalPassFailure();
      }
    }
  }
};

struct LowerLlmPass : impl::LowerLlmPassBase<LowerLlmPass> {
  void runOnOperation() override {
    PackCache packs;
    for (auto fn : entries(getOperation()))
      if (failed(lowerLlmToUkernels(fn, &packs)))
        return signalPassFailure();
  }
};
} // namespace
} // namespace kiln
