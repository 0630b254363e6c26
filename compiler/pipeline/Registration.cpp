//===- Registration.cpp - Dialects and passes of kiln ---------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/Passes.h"
#include "compiler/dispatch/FormDispatches.h"
#include "compiler/pipeline/Pipeline.h"
#include "dialects/exec/IR/ExecDialect.h"
#include "dialects/llm/IR/LlmDialect.h"
#include "dialects/onnx/IR/OnnxDialect.h"
#include "dialects/onnx/Transforms/Passes.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassRegistry.h"

namespace kiln {

void registerKilnDialects(mlir::DialectRegistry &registry) {
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<onnx::ONNXDialect, exec::ExecDialect, llm::LlmDialect>();
  llm::registerBufferizableOpInterfaceExternalModels(registry);
}

void registerKilnPasses() {
  static bool once = [] {
    mlir::registerAllPasses();
    mlir::registerPass(createConvertOnnxToLinalgPass);
    mlir::registerPass(createFormDispatchesPass);
    mlir::registerPass(createRaiseLlmPass);
    mlir::registerPass(createAddKvCachePass);
    mlir::registerPass([] { return createPagedKvPass(); });
    mlir::registerPass([] { return createLayerSkipDraftPass(); });
    mlir::registerPass([] { return createQuantizePass(); });
    mlir::registerPass(createCalibratePass);
    mlir::registerPass([] { return createPrunePass(); });
    mlir::registerPass([] { return createPruneHeadsPass(); });
    mlir::registerPass(createLowerLlmPass);
    if (onnx::createRefineShapesPass())
      mlir::registerPass(onnx::createRefineShapesPass);
    return true;
  }();
  (void)once;
}

} // namespace kiln
