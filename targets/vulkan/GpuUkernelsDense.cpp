//===- GpuUkernelsDense.cpp - (stub: being written) ---------------------===//
#include "targets/vulkan/GpuUkernels.h"

using namespace mlir;

namespace kiln {
LogicalResult expandEmbeddingF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
LogicalResult expandRmsNormF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
LogicalResult expandLayerNormF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
LogicalResult expandMatmulF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
LogicalResult expandMatmulGluF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
LogicalResult expandSplitHeadsF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
LogicalResult expandMergeHeadsF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
LogicalResult expandRotaryF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
} // namespace kiln
