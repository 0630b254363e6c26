//===- KernelPrep.cpp - Steps every backend takes on exec.kernel functions -===//
#include "targets/common/KernelPrep.h"

#include "dialects/exec/IR/ExecDialect.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Interfaces/TilingInterface.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace kiln {

LogicalResult runPipeline(ModuleOp module, StringRef pipeline,
                          std::string &error) {
  std::string diag;
  llvm::raw_string_ostream os(diag);
  auto parsed = parsePassPipeline(pipeline, os);
  if (failed(parsed)) {
    error = "internal: bad pass pipeline: " + os.str();
    return failure();
  }
  PassManager pm(module.getContext());
  static_cast<OpPassManager &>(pm) = std::move(*parsed);
  if (failed(pm.run(module))) {
    error = "code generation failed";
    return failure();
  }
  return success();
}

std::vector<std::string> keepKernels(ModuleOp module) {
  MLIRContext *ctx = module.getContext();
  std::vector<std::string> kernels;
  for (auto fn : llvm::make_early_inc_range(module.getOps<func::FuncOp>())) {
    if (!fn->hasAttr(exec::kKernelAttr)) {
      fn.erase();
      continue;
    }
    fn.setPublic();
    kernels.push_back(fn.getSymName().str());
    unsigned numOuts = fn.getNumResults();
    for (unsigned i = exec::kNumWorkgroupArgs;
         i < fn.getNumArguments() - numOuts; ++i)
      fn.setArgAttr(i, "bufferization.writable", BoolAttr::get(ctx, false));
  }
  return kernels;
}

linalg::LinalgOp tileableResultOp(func::FuncOp fn, bool consumerMayExtract) {
  auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
  if (ret.getNumOperands() != 1)
    return nullptr;
  // Dispatch formation yields every result through materialize_in_destination.
  auto mat = ret.getOperand(0)
                 .getDefiningOp<bufferization::MaterializeInDestinationOp>();
  if (!mat)
    return nullptr;
  auto consumer = mat.getSource().getDefiningOp<linalg::LinalgOp>();
  if (!consumer || !isa<TilingInterface>(consumer.getOperation()))
    return nullptr;
  WalkResult plain = fn.walk([&](Operation *op) {
    if (isa<tensor::PadOp, tensor::ExtractSliceOp, tensor::InsertSliceOp,
            tensor::InsertOp, scf::ForOp, scf::IfOp, scf::WhileOp>(op) ||
        (!consumerMayExtract && isa<tensor::ExtractOp>(op)))
      return WalkResult::interrupt();
    for (Type t : op->getResultTypes())
      if (auto shaped = dyn_cast<ShapedType>(t);
          shaped && shaped.hasRank() &&
          llvm::is_contained(shaped.getShape(), 0))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (plain.wasInterrupted())
    return nullptr;
  // Producers are fused through slices of their results: keep that to ops
  // whose maps are projected permutations (no convolution-style indexing)
  // and that read nothing data-dependently.
  WalkResult simpleMaps = fn.walk([&](linalg::LinalgOp op) {
    if (op.getOperation() == consumer.getOperation())
      return WalkResult::advance();
    for (AffineMap m : op.getIndexingMapsArray())
      if (!m.isProjectedPermutation())
        return WalkResult::interrupt();
    bool extracts = false;
    op->walk([&](tensor::ExtractOp) { extracts = true; });
    return extracts ? WalkResult::interrupt() : WalkResult::advance();
  });
  if (simpleMaps.wasInterrupted())
    return nullptr;
  return consumer;
}

bool isPlainDimIn(ArrayRef<AffineMap> maps, unsigned d) {
  for (AffineMap m : maps)
    for (AffineExpr e : m.getResults())
      if (e.isFunctionOfDim(d) && !isa<AffineDimExpr>(e))
        return false;
  return true;
}

void tileAndFuseIntoForall(linalg::LinalgOp consumer,
                           ArrayRef<OpFoldResult> sizes) {
  IRRewriter rewriter(consumer.getContext());
  rewriter.setInsertionPoint(consumer);
  scf::SCFTilingOptions tiling;
  tiling.setTileSizes(sizes).setLoopType(
      scf::SCFTilingOptions::LoopType::ForallOp);
  scf::SCFTileAndFuseOptions options;
  options.setTilingOptions(tiling);
  auto tilable = cast<TilingInterface>(consumer.getOperation());
  FailureOr<scf::SCFTileAndFuseResult> result =
      scf::tileConsumerAndFuseProducersUsingSCF(rewriter, tilable, options);
  if (failed(result))
    return;
  for (OpResult r : consumer->getResults())
    if (Value repl = result->replacements.lookup(r))
      rewriter.replaceAllUsesWith(r, repl);
}

LogicalResult bufferizeKernels(ModuleOp module, std::string &error) {
  if (failed(runPipeline(module, "builtin.module(canonicalize,cse)", error)) ||
      failed(runPipeline(
          module,
          "builtin.module(eliminate-empty-tensors,"
          "one-shot-bufferize{bufferize-function-boundaries "
          "function-boundary-type-conversion=identity-layout-map})",
          error)))
    return failure();
  for (auto fn : module.getOps<func::FuncOp>())
    returnThroughOuts(fn);
  return success();
}

void returnThroughOuts(func::FuncOp fn) {
  auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
  unsigned n = ret.getNumOperands();
  unsigned firstOut = fn.getNumArguments() - n;
  OpBuilder b(ret);
  for (unsigned i = 0; i < n; ++i) {
    Value v = ret.getOperand(i), out = fn.getArgument(firstOut + i);
    if (v != out)
      memref::CopyOp::create(b, ret.getLoc(), v, out);
  }
  func::ReturnOp::create(b, ret.getLoc());
  ret.erase();
  fn.setType(FunctionType::get(fn.getContext(), fn.getArgumentTypes(), {}));
}

namespace {
/// The buffer under any memref.casts.
Value stripCasts(Value v) {
  while (auto cast = v.getDefiningOp<memref::CastOp>())
    v = cast.getSource();
  return v;
}

struct CopyToLinalg : OpRewritePattern<memref::CopyOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(memref::CopyOp op,
                                PatternRewriter &rewriter) const override {
    // A result bufferized into its own `outs` buffer through a cast is
    // copied onto itself: nothing to do (and, as a loop nest, it would make
    // a GPU kernel look like two nests).
    if (stripCasts(op.getSource()) == stripCasts(op.getTarget())) {
      rewriter.eraseOp(op);
      return success();
    }
    rewriter.replaceOpWithNewOp<linalg::CopyOp>(op, op.getSource(),
                                                op.getTarget());
    return success();
  }
};
} // namespace

LogicalResult lowerMemrefCopies(ModuleOp module, std::string &error) {
  RewritePatternSet patterns(module.getContext());
  patterns.add<CopyToLinalg>(module.getContext());
  if (failed(applyPatternsGreedily(module, std::move(patterns)))) {
    error = "internal: copy lowering did not converge";
    return failure();
  }
  return success();
}

} // namespace kiln
