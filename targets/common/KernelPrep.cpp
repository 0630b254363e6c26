//===- KernelPrep.cpp - Steps every backend takes on exec.kernel functions -===//
#include "targets/common/KernelPrep.h"

#include "dialects/exec/IR/ExecDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
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
