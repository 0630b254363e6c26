//===- GpuUkernels.cpp - The table of GPU expanders of LLM microkernels ----===//
#include "targets/gpu/GpuUkernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
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
      {"kiln_uk_matmul_h_f32", expandMatmulHF32},
      {"kiln_uk_matmul_glu_h_f32", expandMatmulGluHF32},
      {"kiln_uk_matmul_bf16_f32", expandMatmulBf16F32},
      {"kiln_uk_matmul_glu_bf16_f32", expandMatmulGluBf16F32},
      {"kiln_uk_matmul_q_f32", expandMatmulQF32},
      {"kiln_uk_matmul_glu_q_f32", expandMatmulGluQF32},
      {"kiln_uk_split_heads_f32", expandSplitHeadsF32},
      {"kiln_uk_merge_heads_f32", expandMergeHeadsF32},
      {"kiln_uk_rotary_f32", expandRotaryF32},
      {"kiln_uk_kv_append_f32", expandKvAppendF32},
      {"kiln_uk_attention_f32", expandAttentionF32},
      {"kiln_uk_kv_cache_write_f32", expandKvCacheWriteF32},
      {"kiln_uk_paged_attention_f32", expandPagedAttentionF32},
      {"kiln_uk_kv_cache_write_q8", expandKvCacheWriteQ8},
      {"kiln_uk_paged_attention_q8", expandPagedAttentionQ8},
  };
  return table;
}

LogicalResult expectUkernelArgs(llm::UkernelOp op, unsigned n, std::string &error) {
  ArrayAttr args = op.getArgs();
  if (args.size() != n) {
    error = "'" + op.getCallee().str() + "' takes " + std::to_string(n) + " arguments, got " +
            std::to_string(args.size());
    return failure();
  }
  for (Attribute a : args)
    if (auto ref = dyn_cast<DenseI64ArrayAttr>(a))
      if (ref.empty() || ref[0] >= (int64_t)op->getNumOperands() ||
          (ref[0] >= 0 && !isa<MemRefType>(op->getOperand(ref[0]).getType()))) {
        error = "internal: '" + op.getCallee().str() +
                "' has an argument that is not a buffer operand";
        return failure();
      }
  return success();
}

Value ukernelBuffer(llm::UkernelOp op, unsigned i, RewriterBase &rw) {
  int64_t idx = cast<DenseI64ArrayAttr>(op.getArgs()[i])[0];
  if (idx < 0)
    return Value();
  Location loc = op.getLoc();
  Value v = op->getOperand(idx);
  auto t = cast<MemRefType>(v.getType());
  if (t.getRank() == 1)
    return v;
  if (t.getRank() == 0)
    return memref::ExpandShapeOp::create(rw, loc, MemRefType::get({1}, t.getElementType()), v,
                                         ArrayRef<ReassociationIndices>{});
  ReassociationIndices all;
  for (int64_t d = 0; d < t.getRank(); ++d)
    all.push_back(d);
  return memref::CollapseShapeOp::create(rw, loc, v, ArrayRef<ReassociationIndices>{all});
}

Value ukernelSize(llm::UkernelOp op, unsigned i, RewriterBase &rw) {
  Location loc = op.getLoc();
  Attribute arg = op.getArgs()[i];
  if (auto lit = dyn_cast<IntegerAttr>(arg))
    return arith::ConstantIndexOp::create(rw, loc, lit.getInt());
  auto ref = cast<DenseI64ArrayAttr>(arg);
  Value v = op->getOperand(ref[0]);
  Value prod = arith::ConstantIndexOp::create(rw, loc, 1);
  for (int64_t d : ref.asArrayRef().drop_front())
    prod = arith::MulIOp::create(rw, loc, prod, memref::DimOp::create(rw, loc, v, d));
  return prod;
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
