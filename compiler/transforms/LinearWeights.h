//===- LinearWeights.h - What the weight-rewriting passes share -*- C++ -*-===//
//
// kiln-llm-quantize and kiln-llm-prune both walk the constant weights of an
// LLM's linear layers, attribute them to layers as --report counts them,
// store their results as resource blobs, free the f32 originals and print
// the same per-layer table. lower-llm frees constants the same way.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_COMPILER_TRANSFORMS_LINEARWEIGHTS_H
#define KILN_COMPILER_TRANSFORMS_LINEARWEIGHTS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <cstdint>
#include <string>

namespace kiln {

/// One weight operand of an llm.matmul / llm.gated_mlp / llm.gelu_mlp.
struct LinearWeight {
  mlir::Operation *op;
  unsigned operand;
  std::string what;  // op and operand, e.g. "gated_mlp.down"
  std::string layer; // "layer N" (two residual adds per layer) or "head"
};

/// The weight operands of `fn`'s linear ops in program order.
llvm::SmallVector<LinearWeight> linearWeights(mlir::func::FuncOp fn);

/// Rows of `fn`'s token embedding (the vocabulary; a matmul onto it is the
/// LM head), or -1 without one.
int64_t vocabularySize(mlir::func::FuncOp fn);

/// One f32 embedding table set of `fn`: "embedding" or
/// "embedding+positions", and its bytes.
struct EmbeddingTables {
  std::string what;
  int64_t bytes;
};
llvm::SmallVector<EmbeddingTables> embeddingTables(mlir::func::FuncOp fn);

/// IEEE half bits of a finite f below 65520, rounded to nearest even;
/// larger magnitudes become infinity (callers refuse them).
uint16_t toHalf(float f);
float fromHalf(uint16_t h);

/// bfloat16 bits of a finite f (its top 16 bits, rounded to nearest even);
/// magnitudes that round past bf16's largest finite value become infinity
/// (callers refuse them).
uint16_t toBf16(float f);

/// A resource-blob constant attribute holding a copy of `size` bytes.
mlir::DenseResourceElementsAttr blobAttr(mlir::RankedTensorType type, llvm::StringRef name,
                                         const void *bytes, size_t size);

/// Erases the constant op `op` (nobody may read it) and frees its resource
/// blob when no op of the enclosing module still holds that attribute.
void eraseConstant(mlir::Operation *op);

/// One line of a weight table: `text` under `layer`, bytes before / after.
struct WeightLine {
  std::string layer, text;
  int64_t bytesBefore = 0, bytesAfter = 0;
};

/// "`heading` of @function (layer: weight scheme, bytes before -> after):",
/// one line per layer and a total, as --report prints it.
std::string formatWeightTable(llvm::StringRef heading, llvm::StringRef function,
                              llvm::ArrayRef<WeightLine> lines);

} // namespace kiln

#endif
