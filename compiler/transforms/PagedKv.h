//===- PagedKv.h - Concat-style KV cache -> the paged `forward` ABI -*- C++ -*-===//
#ifndef KILN_COMPILER_TRANSFORMS_PAGEDKV_H
#define KILN_COMPILER_TRANSFORMS_PAGEDKV_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <string>

namespace kiln {
/// Rewrites a raised LLM entry (`main` with input_ids / attention_mask /
/// position_ids / past_key_values.N.* -> logits / present.N.*) into the
/// runtime's `forward` (DESIGN.md, "LLM runtime ABI"): a flattened batch
/// of tokens whose attention reads K/V through block tables from per-layer
/// pools that kernels update in place. Returns the number of layers
/// rewritten (0: not an LLM with a KV cache, left alone), or -1 with
/// `error` set when the function has a cache the rewrite cannot handle.
/// `int8Cache` (kv8): the pools are i8 [blocks, block_size, KVH, hd + 4],
/// each row hd int8 values and its f32 scale.
int convertToPagedKv(mlir::func::FuncOp fn, std::string &error, bool int8Cache = false);
} // namespace kiln

#endif
