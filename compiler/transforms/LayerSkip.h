//===- LayerSkip.h - A self-speculative draft from the target's first layers -*- C++ -*-===//
#ifndef KILN_COMPILER_TRANSFORMS_LAYERSKIP_H
#define KILN_COMPILER_TRANSFORMS_LAYERSKIP_H

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace kiln {
/// Adds `draft_forward` to a module whose `forward` is the paged LLM entry
/// (PagedKv.h): the same ABI over the target's first `layers` transformer
/// layers followed by the target's own final norm and LM head, reading the
/// very same weight constants (no copy) and keeping only those layers' KV
/// pools. On success `summary` says what the draft is made of; on failure
/// `error` says why (no paged forward, N out of range, a layer structure
/// the pass does not recognize).
mlir::LogicalResult addLayerSkipDraft(mlir::ModuleOp module, int layers, std::string &summary,
                                      std::string &error);
} // namespace kiln

#endif
