//===- GpuUkernels.cpp - The table of GPU expanders of LLM microkernels ----===//
#include "targets/vulkan/GpuUkernels.h"

#include "llvm/ADT/StringMap.h"

using namespace mlir;

namespace kiln {

static const llvm::StringMap<GpuUkernelExpander> &expanders() {
  static const llvm::StringMap<GpuUkernelExpander> table = {
      {"kiln_uk_embedding_f32", expandEmbeddingF32},
      {"kiln_uk_rms_norm_f32", expandRmsNormF32},
      {"kiln_uk_layer_norm_f32", expandLayerNormF32},
      {"kiln_uk_matmul_f32", expandMatmulF32},
      {"kiln_uk_matmul_glu_f32", expandMatmulGluF32},
      {"kiln_uk_split_heads_f32", expandSplitHeadsF32},
      {"kiln_uk_merge_heads_f32", expandMergeHeadsF32},
      {"kiln_uk_rotary_f32", expandRotaryF32},
      {"kiln_uk_kv_cache_write_f32", expandKvCacheWriteF32},
      {"kiln_uk_paged_attention_f32", expandPagedAttentionF32},
  };
  return table;
}

LogicalResult expandGpuUkernels(func::FuncOp fn, const GpuKernelConfig &config,
                                std::string &error) {
  SmallVector<llm::UkernelOp> ops;
  fn.walk([&](llm::UkernelOp op) { ops.push_back(op); });
  IRRewriter rewriter(fn.getContext());
  for (llm::UkernelOp op : ops) {
    auto it = expanders().find(op.getCallee());
    if (it == expanders().end()) {
      error = "'" + op.getCallee().str() +
              "' (an LLM microkernel) has no GPU version yet";
      return failure();
    }
    rewriter.setInsertionPoint(op);
    if (failed(it->second(op, rewriter, config, error)))
      return failure();
  }
  return success();
}

} // namespace kiln
