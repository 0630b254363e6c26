//===- Passes.h - onnx dialect passes -----------------------------*- C++ -*-===//
#ifndef KILN_DIALECTS_ONNX_TRANSFORMS_PASSES_H
#define KILN_DIALECTS_ONNX_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"

#include <memory>

namespace kiln::onnx {

/// Re-infers result types of onnx ops once folding has made their shape
/// operands constant, and propagates the refined types to users and to the
/// function signature.
std::unique_ptr<mlir::Pass> createRefineShapesPass();

} // namespace kiln::onnx

#endif
