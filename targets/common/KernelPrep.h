//===- KernelPrep.h - Steps every backend takes on exec.kernel functions -*- C++ -*-===//
//
// The CPU and GPU backends share the first half of code generation: keep the
// kernels, bufferize them with results written into their `outs` arguments,
// and turn memref.copy into loops. What follows (LLVM, SPIR-V) is theirs.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_COMMON_KERNELPREP_H
#define KILN_TARGETS_COMMON_KERNELPREP_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/StringRef.h"

#include <string>
#include <vector>

namespace kiln {

/// Runs a textual pass pipeline ("builtin.module(...)") on `module`.
mlir::LogicalResult runPipeline(mlir::ModuleOp module, llvm::StringRef pipeline,
                                std::string &error);

/// Erases every function that is not an `exec.kernel`, makes the kernels
/// public and marks their inputs read-only for bufferization (an input may
/// be a constant or another kernel's result). Returns the kernel names.
std::vector<std::string> keepKernels(mlir::ModuleOp module);

/// The linalg op that produces a kernel's only result, when tile-and-fuse
/// can split the kernel: plain linalg (no padding, slicing, inserts, scf
/// control flow or empty tensors) whose producers are indexed by projected
/// permutations; null otherwise. With `consumerMayExtract`, data-dependent
/// reads (tensor.extract) are allowed outside the producers, which fusion
/// would recompute per tile; without it they keep the kernel untiled.
mlir::linalg::LinalgOp tileableResultOp(mlir::func::FuncOp fn,
                                        bool consumerMayExtract);

/// Whether dim `d` appears in `maps`, if at all, only as a plain dim (so a
/// tile of it is a slice of each operand).
bool isPlainDimIn(llvm::ArrayRef<mlir::AffineMap> maps, unsigned d);

/// Tiles `consumer` by `sizes` (0 = untiled) into an scf.forall, fuses its
/// producers into the loop and rewires its uses; leaves it alone when
/// tiling fails.
void tileAndFuseIntoForall(mlir::linalg::LinalgOp consumer,
                           llvm::ArrayRef<mlir::OpFoldResult> sizes);

/// Bufferizes the kernels (inputs read-only, see keepKernels) and writes
/// their results into their `outs` arguments (returnThroughOuts).
mlir::LogicalResult bufferizeKernels(mlir::ModuleOp module, std::string &error);

/// After bufferization: a kernel's results are written into its trailing
/// `outs` arguments (copied in where bufferization chose another buffer) and
/// the function returns nothing.
void returnThroughOuts(mlir::func::FuncOp fn);

/// memref.copy -> linalg.copy, which lowers to plain loops (memref.copy
/// would call MLIR's C runner library, which no runtime has).
mlir::LogicalResult lowerMemrefCopies(mlir::ModuleOp module, std::string &error);

} // namespace kiln

#endif
