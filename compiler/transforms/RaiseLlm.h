//===- RaiseLlm.h - onnx transformer graphs -> llm ops -------------*- C++ -*-===//
#ifndef KILN_COMPILER_TRANSFORMS_RAISELLM_H
#define KILN_COMPILER_TRANSFORMS_RAISELLM_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/LogicalResult.h"

#include <map>
#include <string>

namespace kiln {

struct RaiseReport {
  /// pattern name -> times it fired
  std::map<std::string, int> raised;
};

/// Raises `fn` in place (see RaiseLlm.cpp).
mlir::LogicalResult raiseLlm(mlir::func::FuncOp fn, RaiseReport &report);

/// Gives every llm.attention whose keys and values are not a KV-cache
/// append one: new arguments `past_key_values.N.key/value` and results
/// `present.N.key/value` in the Hugging Face/optimum layout, so that a model
/// exported without a cache still decodes one token per step. Returns the
/// number of layers that got a cache.
int addKvCache(mlir::func::FuncOp fn);

/// Per-layer text: what each layer was raised to and which onnx ops
/// computing tensors are left over. Layers are told apart by the residual
/// stream: each decoder layer adds to it twice (attention, MLP).
std::string formatRaiseReport(mlir::func::FuncOp fn, const RaiseReport &report);

} // namespace kiln

#endif
