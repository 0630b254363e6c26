//===- GpuUkernels.h - LLM microkernels as GPU loop nests ------*- C++ -*-===//
//
// On the CPU an `llm.ukernel` op calls a C microkernel (targets/cpu/
// ukernels/*.c). On a GPU target the same op, after bufferization (its
// operands are memrefs; it writes its `outputs` in place), is replaced by
// scf/memref code computing the same thing, in the form distributeKernel
// (GpuDistribute.cpp) spreads over invocations:
//
//   - one top-level scf.parallel over independent work items (each
//     iteration writes its own output elements and reads nothing another
//     iteration writes), run by one invocation each -- or, for the
//     reductions (norms, matmuls, attention), a cooperative loop whose items
//     are run by a whole workgroup each (GpuWorkgroup.h);
//   - inside it: scf.for / scf.if, memref.load / memref.store on the op's
//     operands, arith and math ops, and memref.alloca of STATIC shape for
//     per-item scratch (private memory, at most 16 KiB);
//   - sizes from memref.dim on the operands, scalars from the op's `args`.
//
// Each callee has one expander; GpuUkernels.cpp holds the table.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_GPU_GPUUKERNELS_H
#define KILN_TARGETS_GPU_GPUUKERNELS_H

#include "dialects/llm/IR/LlmDialect.h"
#include "targets/gpu/GpuWorkgroup.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Support/LogicalResult.h"

#include <string>

namespace kiln {

/// Replaces `op` (bufferized) by its loop nest; on failure sets `error`.
using GpuUkernelExpander = mlir::LogicalResult (*)(llm::UkernelOp op,
                                                   mlir::RewriterBase &rewriter,
                                                   const GpuKernelConfig &config,
                                                   std::string &error);

// The op's C argument list (`args`, see LowerLlm.cpp), decoded as the C
// function reads it.

/// Checks the list has `n` entries and that every pointer names a buffer
/// operand.
mlir::LogicalResult expectUkernelArgs(llm::UkernelOp op, unsigned n, std::string &error);
/// Pointer argument `i` as a 1-d row-major view of its operand (the C code
/// indexes flat arrays), or a null Value for NULL.
mlir::Value ukernelBuffer(llm::UkernelOp op, unsigned i, mlir::RewriterBase &rw);
/// Size argument `i` as an index: an integer literal, or a product of dims.
mlir::Value ukernelSize(llm::UkernelOp op, unsigned i, mlir::RewriterBase &rw);

/// Expands every llm.ukernel op in `fn`; a callee without a GPU expander is
/// a one-line error naming it.
mlir::LogicalResult expandGpuUkernels(mlir::func::FuncOp fn, const GpuKernelConfig &config,
                                      std::string &error);

// GpuUkernelsDense.cpp: embedding, norms, heads, rotary.
// GpuUkernelsMatmul.cpp: matmuls over packed f32 weights.
mlir::LogicalResult expandEmbeddingF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandRmsNormF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandLayerNormF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandMatmulF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandMatmulGluF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
// ... over the same panels in IEEE half (--quantize=f16).
mlir::LogicalResult expandMatmulHF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandMatmulGluHF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
// ... in bfloat16, as i16 bits (--quantize=bf16).
mlir::LogicalResult expandMatmulBf16F32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandMatmulGluBf16F32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandSplitHeadsF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandMergeHeadsF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandRotaryF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);

// GpuUkernelsMatmul.cpp: quantized weights (int8 / int4, group-wise).
mlir::LogicalResult expandMatmulQF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandMatmulGluQF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);

// GpuUkernelsAttention.cpp: attention and the KV caches (concatenated and
// paged).
mlir::LogicalResult expandKvAppendF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandAttentionF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandKvCacheWriteQ8(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandPagedAttentionQ8(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandKvCacheWriteF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);
mlir::LogicalResult expandPagedAttentionF32(llm::UkernelOp, mlir::RewriterBase &, const GpuKernelConfig &, std::string &);

} // namespace kiln

#endif
