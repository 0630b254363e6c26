//===- OnnxImporter.h - ONNX protobuf -> onnx dialect -------------*- C++ -*-===//
#ifndef KILN_COMPILER_IMPORTER_ONNXIMPORTER_H
#define KILN_COMPILER_IMPORTER_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"

#include <string>

namespace kiln {

struct ImportOptions {
  /// Opset the importer converts older models to (the onnx dialect's opset).
  int64_t targetOpset = 17;
  /// Initializers with more elements than this become dense_resource blobs;
  /// smaller ones stay inline so that shape arithmetic can fold.
  int64_t inlineElementLimit = 16;
  /// Name of the entry function.
  std::string entryName = "main";
};

/// Reads an ONNX model (inline or with external data beside it) and builds a
/// module with one func.func in the onnx dialect. On failure returns null and
/// sets `error` to a one-line message.
mlir::OwningOpRef<mlir::ModuleOp> importOnnxFile(mlir::MLIRContext &context,
                                                 llvm::StringRef path,
                                                 const ImportOptions &options,
                                                 std::string &error);

} // namespace kiln

#endif // KILN_COMPILER_IMPORTER_ONNXIMPORTER_H
