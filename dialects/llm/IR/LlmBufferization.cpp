//===- LlmBufferization.cpp - One-Shot Bufferize for llm.ukernel -----------===//
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"
#include "mlir/IR/DialectRegistry.h"

using namespace mlir;
using namespace mlir::bufferization;

namespace {
struct UkernelBufferization
    : DstBufferizableOpInterfaceExternalModel<UkernelBufferization,
                                              kiln::llm::UkernelOp> {
  // Microkernels overwrite their outputs entirely: no need to keep them.
  bool bufferizesToMemoryRead(Operation *op, OpOperand &operand,
                              const AnalysisState &) const {
    return !cast<DestinationStyleOpInterface>(op).isDpsInit(&operand);
  }

  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    auto uk = cast<kiln::llm::UkernelOp>(op);
    SmallVector<Value> ins, outs;
    for (Value v : uk.getInputs()) {
      if (!isa<TensorType>(v.getType())) {
        ins.push_back(v);
        continue;
      }
      FailureOr<Value> b = getBuffer(rewriter, v, options, state);
      if (failed(b))
        return failure();
      ins.push_back(*b);
    }
    for (Value v : uk.getOutputs()) {
      FailureOr<Value> b = getBuffer(rewriter, v, options, state);
      if (failed(b))
        return failure();
      outs.push_back(*b);
    }
    rewriter.setInsertionPoint(op);
    kiln::llm::UkernelOp::create(rewriter, op->getLoc(), TypeRange{},
                                 uk.getCalleeAttr(), ins, outs, uk.getArgs());
    replaceOpWithBufferizedValues(rewriter, op, outs);
    return success();
  }
};
} // namespace

void kiln::llm::registerBufferizableOpInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, LlmDialect *) {
    UkernelOp::attachInterface<UkernelBufferization>(*ctx);
  });
}
