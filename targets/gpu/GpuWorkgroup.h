//===- GpuWorkgroup.h - Code that a workgroup's invocations run together -*- C++ -*-===//
//
// Most kernels give each invocation its own output elements (grid mode, see
// GpuDistribute.cpp). Reductions over long rows -- the norms, the matmuls'
// sums over k, attention's softmax over the keys -- instead give each work
// item (a row, a 16-column panel, a (head, token) pair) to a whole
// workgroup: its invocations split the reduction, then combine their
// partial results through subgroup operations and workgroup shared memory.
//
// An expander writes such a kernel as one scf.parallel over work items
// tagged `kiln.gpu_cooperative` (WorkgroupBuilder::items). Its body is run
// by every invocation of a workgroup at once: it may use gpu.thread_id,
// gpu.barrier and the subgroup ops, and every branch around them must be
// uniform (taken alike by the whole workgroup). distributeKernel spreads the
// items over workgroups (item i in workgroups i, i + G, ...), or, in a
// kernel of several steps, runs them one after another in the one workgroup.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_GPU_GPUWORKGROUP_H
#define KILN_TARGETS_GPU_GPUWORKGROUP_H

#include "targets/TargetRegistry.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"

namespace kiln {

/// Marks an scf.parallel whose iterations are work items of a whole
/// workgroup (see above).
constexpr llvm::StringLiteral kCooperativeAttr = "kiln.gpu_cooperative";

/// What the target lets cooperative code use.
struct GpuKernelConfig {
  /// Invocations per workgroup (the kernels' fixed local size).
  int64_t workgroupSize = 64;
  /// gpu.subgroup_reduce, gpu.subgroup_id, gpu.num_subgroups, gpu.lane_id
  /// (SPIR-V GroupNonUniformArithmetic).
  bool subgroupReduce = false;
  /// gpu.shuffle xor among the lanes of a subgroup (GroupNonUniformShuffle).
  bool subgroupShuffle = false;
  /// Lanes per subgroup that the target promises at least.
  int64_t subgroupSize = 1;
  /// 16x16 tile products by warps of 32 (GpuMatrixTiles.h).
  GpuMatrixOps matrixOps = GpuMatrixOps::None;
  /// Workgroup (shared) memory a kernel may use, in bytes.
  int64_t maxSharedBytes = 16384;
  /// 16-byte vector loads of packed weights (vector.load, aligned): CUDA's
  /// ld.global.v4. SPIR-V for Vulkan keeps scalar loads (a storage
  /// buffer of bytes cannot be read as vectors of words there).
  bool vectorLoads = false;

  static GpuKernelConfig forTarget(const TargetDescription &target);
};

enum class CombineKind { Add, Max };

/// Builds cooperative code at the rewriter's insertion point.
class WorkgroupBuilder {
public:
  /// At most this many values go through shared memory at once; longer
  /// vectors are reduced in chunks.
  static constexpr int64_t kChunk = 8;

  WorkgroupBuilder(mlir::RewriterBase &rw, mlir::Location loc, const GpuKernelConfig &cfg)
      : rw(rw), loc(loc), cfg(cfg) {}

  /// Allocates the shared scratch (workgroupSize * kChunk floats) and opens
  /// the cooperative loop over [0, ubs); moves the insertion point into its
  /// body and returns the induction variables. The kernel's own code must
  /// be at function level (not nested in a loop).
  llvm::SmallVector<mlir::Value> items(llvm::ArrayRef<mlir::Value> ubs);

  /// This invocation's index in the workgroup.
  mlir::Value tid();
  int64_t size() const { return cfg.workgroupSize; }
  const GpuKernelConfig &config() const { return cfg; }

  /// for i in [0, n) spread over the invocations (i = tid, tid + size, ...)
  /// carrying `inits`: `body(i, carried)` returns the next values. The trip
  /// count is the same in every invocation (iterations past n keep the
  /// carried values), so subgroup code after the loop sees them all.
  llvm::SmallVector<mlir::Value>
  strided(mlir::Value n, mlir::ValueRange inits,
          llvm::function_ref<llvm::SmallVector<mlir::Value>(mlir::Value, mlir::ValueRange)> body);

  /// Each value combined over every invocation of the workgroup; every
  /// invocation gets the same totals.
  llvm::SmallVector<mlir::Value> allReduce(mlir::ValueRange values, CombineKind kind);

  /// Each value summed over the `lanes` invocations tid - tid % lanes ...
  /// (lanes a power of two dividing size()); each of them gets the sum.
  llvm::SmallVector<mlir::Value> clusterSum(mlir::ValueRange values, int64_t lanes);
  /// The same with `kind`.
  llvm::SmallVector<mlir::Value> clusterReduce(mlir::ValueRange values, int64_t lanes,
                                               CombineKind kind);

  void barrier();

  /// `body()` in invocation 0 only (a uniform branch around it is fine).
  void inFirst(llvm::function_ref<void()> body);

private:
  /// scratch[row * chunk.size() + i] = chunk[i].
  void storeRow(llvm::ArrayRef<mlir::Value> chunk, mlir::Value row);
  /// The `width` values of scratch rows first .. first + rows - 1, each
  /// combined over the rows in order.
  llvm::SmallVector<mlir::Value> foldRows(mlir::Value first, mlir::Value rows, size_t width,
                                          CombineKind kind);
  mlir::Value combine(CombineKind kind, mlir::Value a, mlir::Value b);
  mlir::Value identity(CombineKind kind);

  mlir::RewriterBase &rw;
  mlir::Location loc;
  const GpuKernelConfig &cfg;
  mlir::Value scratch; // workgroup memory, size * kChunk f32
};

/// A 1-d buffer of `n` elements of `type` in workgroup (shared) memory: an
/// allocation tagged for flattenKernelMemrefs, to be made at the kernel's
/// function level (before the cooperative loop opens).
mlir::Value workgroupBuffer(mlir::RewriterBase &rw, mlir::Location loc, int64_t n,
                            mlir::Type type);

/// The kernel's tile loop when it is the kernel's one step (everything else
/// at function level is free of memory effects): a bufferized scf.forall
/// from 0, without results or mapping. Such a kernel is spread over many
/// workgroups (GpuDistribute's grid mode), with the tile's temporaries
/// private to each invocation. Null otherwise.
mlir::scf::ForallOp soleTileLoop(mlir::func::FuncOp fn);

/// Replaces `forall` (see soleTileLoop) by WorkgroupBuilder::items over its
/// iterations, its body moved in; returns false, changing nothing, when it
/// has one iteration (canonicalization would fold the loop away, and with
/// it the cooperative form).
bool tileLoopToItems(mlir::RewriterBase &rw, WorkgroupBuilder &wg, mlir::scf::ForallOp forall);

/// Moves the insertion point to the end of `block`, dropping the terminator
/// a builder may have added: the caller writes its own yield.
void openBlock(mlir::RewriterBase &rw, mlir::Block *block);

/// The indices of linear index `i` in a row-major space of `extents`.
llvm::SmallVector<mlir::Value> delinearize(mlir::RewriterBase &rw, mlir::Location loc, mlir::Value i,
                                           llvm::ArrayRef<mlir::Value> extents);

/// The results of `map` at `dims`, one affine.apply each.
llvm::SmallVector<mlir::Value> applyMap(mlir::RewriterBase &rw, mlir::Location loc, mlir::AffineMap map,
                                        mlir::ValueRange dims);

} // namespace kiln

#endif
