//===- GpuUkernelsAttention.cpp - (stub: being written) ---------------------===//
#include "targets/vulkan/GpuUkernels.h"

using namespace mlir;

namespace kiln {
LogicalResult expandKvCacheWriteF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
LogicalResult expandPagedAttentionF32(llm::UkernelOp op, RewriterBase &, std::string &error) {
  error = "'" + op.getCallee().str() + "' has no GPU version yet";
  return failure();
}
} // namespace kiln
