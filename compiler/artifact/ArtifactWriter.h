//===- ArtifactWriter.h - Host schedule + executables -> .kiln ----*- C++ -*-===//
#ifndef KILN_COMPILER_ARTIFACT_ARTIFACTWRITER_H
#define KILN_COMPILER_ARTIFACT_ARTIFACTWRITER_H

#include "targets/TargetRegistry.h"

#include "mlir/IR/BuiltinOps.h"

#include <map>
#include <string>

namespace kiln {

/// Serializes every `exec.entry` function of `module` as a Function of the
/// artifact, `executable` as its one executable, and every exec.constant
/// into the page-aligned constants section. Writes `path` atomically.
mlir::LogicalResult
writeArtifact(mlir::ModuleOp module, const CompiledExecutable &executable,
              const TargetDescription &target,
              const std::map<std::string, std::string> &metadata,
              llvm::StringRef path, std::string &error);

} // namespace kiln

#endif
