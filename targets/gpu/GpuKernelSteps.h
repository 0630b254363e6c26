//===- GpuKernelSteps.h - The steps from a kernel to a GPU function -*- C++ -*-===//
//
// The GPU backends (Vulkan, CUDA) turn each bufferized `exec.kernel`
// function into a gpu.func in these steps, each in its own file
// (GpuPipeline.cpp runs them; the LLM microkernels are expanded between
// bufferization and distribution, GpuUkernels.h):
//
//   tileForInvocations  (GpuTiling.cpp)    on tensors: one tile per output
//                                          element row, producers fused
//   distributeKernel    (GpuDistribute.cpp) on loops: grid-stride loops over
//                                          invocations, barriers, temporaries
//                                          in private or workgroup memory
//   flattenKernelMemrefs (FlattenMemrefs.cpp) N-d buffers -> 1-d storage
//                                          buffers, dims from push constants
//   outline             (VulkanCodegen.cpp, CudaCodegen.cpp) func.func ->
//                                          gpu.func of the target's module
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_GPU_GPUKERNELSTEPS_H
#define KILN_TARGETS_GPU_GPUKERNELSTEPS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/StringRef.h"

#include <string>

namespace kiln {

struct TargetDescription;
struct CompiledExecutable;

/// Name of the placeholder `func.call @__kiln_push_constant(i32) -> i32`
/// that reads word N of the push constants (replaced during SPIR-V
/// conversion).
constexpr llvm::StringLiteral kPushConstantFn = "__kiln_push_constant";

/// Tiles the op that produces a kernel's result by 1 along each parallel dim
/// that its fused producers keep (so no invocation recomputes a reduction),
/// and fuses the producers into an scf.forall. A reduction with few outputs
/// is split over `workgroupSize` invocations instead (partial results in at
/// most half of `maxSharedBytes`). Leaves other kernels alone.
void tileForInvocations(mlir::func::FuncOp fn, int64_t workgroupSize,
                        int64_t maxSharedBytes);

struct GpuKernelConfig;

/// Output tile (rows x columns) of a matmul that a workgroup computes
/// through workgroup memory (cooperateTiledMatmuls).
constexpr int64_t kMatmulTile = 16;

/// Whether `op` is a linalg.matmul or batch_matmul with the default
/// indexing: no transposed or broadcast operand.
bool hasDefaultMatmulIndexing(mlir::linalg::LinalgOp op);

/// A matmul the 16 x 16 tiles take: a default-indexed linalg.matmul /
/// batch_matmul, or a linalg.generic computing out += a * b over loops
/// (batch..., m, n, k) with A indexed by (batch..., m, k) and B by
/// (batch..., k, n), each pair in either order (transposed operands, Gemm's
/// transA / transB, MatMul of rank > 3).
bool isTileableContraction(mlir::linalg::LinalgOp op);

/// Whether tileForInvocations gives `op` (an f32 linalg.matmul or
/// batch_matmul on operands read from memory) square tiles of
/// kMatmulTile outputs instead of one output per tile.
bool isWorkgroupMatmul(mlir::linalg::LinalgOp op);

/// The workgroup matmul (isWorkgroupMatmul) whose result `op` reads element
/// for element, when `op` is an elementwise f32 linalg.generic whose other
/// operands come from memory (a bias, a scale: Gemm's epilogue); null
/// otherwise. Such an op is tiled like the matmul, which is fused into it.
mlir::linalg::LinalgOp epilogueMatmul(mlir::linalg::LinalgOp op);

/// After bufferization: a kernel that is one loop over such tiles, each an
/// optional fill and the matmul, gets a workgroup per tile that stages
/// blocks of A and B in workgroup memory (GpuCooperativeMatmul.cpp).
void cooperateTiledMatmuls(mlir::func::FuncOp fn, const GpuKernelConfig &config);

/// After bufferization: a temporary as large as a tile loop's output (a
/// reduction's initial values copied in, the result copied out), of which
/// each tile touches only its own elements, becomes a temporary of the
/// tile's shape inside the loop, copied in and out per tile
/// (GpuPrivatizeTiles.cpp): the loop is then the kernel's sole loop nest.
void privatizeTileTemporaries(mlir::func::FuncOp fn);

/// After bufferization: a kernel that is one tile loop over outputs, each
/// tile one long f32 row reduction (a sum or a maxnumf) plus a few elements
/// of other work, gets a workgroup per output instead of an invocation
/// (GpuCooperativeReductions.cpp). Leaves other kernels alone.
void cooperateRowReductions(mlir::func::FuncOp fn, const GpuKernelConfig &config);

/// How a kernel's invocations share its work.
enum class GpuMapping {
  /// One parallel loop nest, spread over all invocations of all workgroups.
  Grid,
  /// Several loop nests in sequence: one workgroup, each nest spread over its
  /// invocations, with a barrier between nests.
  Workgroup,
};

/// Rewrites a kernel on loops (after convert-linalg-to-parallel-loops) so that
/// every invocation runs its share: the workgroup-id/count arguments are
/// replaced by GPU ids, parallel loops become grid-stride loops, and
/// temporaries move to private (per invocation) or workgroup memory.
mlir::FailureOr<GpuMapping> distributeKernel(mlir::func::FuncOp fn,
                                             const TargetDescription &target,
                                             std::string &error);

/// Replaces every memref argument by a 1-d storage buffer of its element type
/// and every access by one at the row-major linear index; dynamic dims are
/// read from push constants (word k = dim d of argument a, counting every dim
/// of every argument in order). Temporaries become 1-d too.
/// The memory spaces of a GPU target: arguments, workgroup (shared)
/// temporaries, private temporaries.
struct GpuMemorySpaces {
  mlir::Attribute buffer, workgroup, privateSpace;
  /// Vulkan: StorageBuffer, Workgroup, Function storage classes.
  static GpuMemorySpaces spirv(mlir::MLIRContext *ctx);
};

mlir::LogicalResult flattenKernelMemrefs(mlir::func::FuncOp fn, const GpuMemorySpaces &spaces,
                                         std::string &error);

/// Replaces kernel `fn` by a gpu.func kernel of the same name, type and
/// body, created at `b`'s insertion point (inside the target's gpu.module);
/// `fn` is erased. The backend adds its own attributes.
mlir::gpu::GPUFuncOp toGpuKernel(mlir::OpBuilder &b, mlir::func::FuncOp fn);

/// GPU math libraries (GLSL.std.450; NVPTX without libdevice) have no f64
/// transcendental functions: these patterns compute an f64 exp, log, sin,
/// tanh, pow, ... in f32 (ONNX models use f64 rarely, and never for accuracy
/// that an f32 exp or cos would spoil).
void populateF64MathInF32Patterns(mlir::RewritePatternSet &patterns);

/// The shared steps (GpuPipeline.cpp): tile, bufferize, expand the LLM
/// microkernels, lower to loops, distribute, flatten; fills out.kernels.
/// `checkKernel` vets each flattened kernel for the target. Sets `done`
/// when there is nothing more to do: no kernels (out.binary empty) or
/// `stopAfter` is "bufferized" or "loops".
mlir::LogicalResult lowerKernelsForGpu(mlir::ModuleOp module, const TargetDescription &target,
                                       const GpuMemorySpaces &spaces, CompiledExecutable &out,
                                       llvm::StringRef stopAfter, bool &done,
                                       llvm::function_ref<mlir::LogicalResult(mlir::func::FuncOp)> checkKernel,
                                       std::string &error);

} // namespace kiln

#endif
