//===- GpuPipeline.cpp - The steps every GPU backend shares ----------------===//
//
// From exec.kernel functions on tensors to kernels on loops over 1-d
// buffers, spread over invocations: what the Vulkan and the CUDA backends
// have in common (GpuKernelSteps.h lists the steps). Each backend then
// outlines the kernels into a gpu.module and converts them for its device.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuKernelSteps.h"

#include "targets/TargetRegistry.h"
#include "targets/common/KernelPrep.h"
#include "targets/gpu/GpuUkernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;

namespace kiln {
namespace {

/// An f64 transcendental op computed in f32 (see populateF64MathInF32Patterns).
struct F64MathInF32 : RewritePattern {
  explicit F64MathInF32(MLIRContext *ctx)
      : RewritePattern(MatchAnyOpTypeTag(), /*benefit=*/1, ctx) {}
  LogicalResult matchAndRewrite(Operation *op,
                                PatternRewriter &rewriter) const override {
    if (!isa<math::ExpOp, math::Exp2Op, math::ExpM1Op, math::LogOp,
             math::Log2Op, math::Log10Op, math::Log1pOp, math::SinOp,
             math::CosOp, math::TanOp, math::TanhOp, math::AsinOp,
             math::AcosOp, math::AtanOp, math::Atan2Op, math::SinhOp,
             math::CoshOp, math::AsinhOp, math::AcoshOp, math::AtanhOp,
             math::PowFOp, math::ErfOp>(op))
      return failure();
    auto isF64 = [](Type t) { return t.isF64(); };
    if (op->getNumResults() != 1 || !isF64(op->getResult(0).getType()) ||
        !llvm::all_of(op->getOperandTypes(), isF64))
      return failure();
    Location loc = op->getLoc();
    Type f32 = rewriter.getF32Type();
    SmallVector<Value> operands;
    for (Value v : op->getOperands())
      operands.push_back(arith::TruncFOp::create(rewriter, loc, f32, v));
    OperationState state(loc, op->getName(), operands, TypeRange{f32},
                         op->getAttrs());
    Operation *narrow = rewriter.create(state);
    rewriter.replaceOpWithNewOp<arith::ExtFOp>(op, op->getResult(0).getType(),
                                               narrow->getResult(0));
    return success();
  }
};

} // namespace

gpu::GPUFuncOp toGpuKernel(OpBuilder &b, func::FuncOp fn) {
  auto gf = gpu::GPUFuncOp::create(b, fn.getLoc(), fn.getSymName(), fn.getFunctionType());
  gf->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  Region &body = gf.getBody();
  body.front().erase();
  body.takeBody(fn.getBody());
  Operation *ret = body.front().getTerminator();
  OpBuilder rb(ret);
  gpu::ReturnOp::create(rb, ret->getLoc());
  ret->erase();
  fn.erase();
  return gf;
}

void populateF64MathInF32Patterns(RewritePatternSet &patterns) {
  patterns.add<F64MathInF32>(patterns.getContext());
}

LogicalResult lowerKernelsForGpu(ModuleOp module, const TargetDescription &target,
                                 const GpuMemorySpaces &spaces, CompiledExecutable &out,
                                 StringRef stopAfter, bool &done,
                                 function_ref<LogicalResult(func::FuncOp)> checkKernel,
                                 std::string &error) {
  if (keepKernels(module).empty()) {
    out.binary.clear(); // nothing to run (see the executor's EmptyExecutable)
    done = true;
    return success();
  }
  for (auto fn : module.getOps<func::FuncOp>())
    tileForInvocations(fn, target.workgroupSize, target.maxSharedMemoryBytes);
  if (failed(bufferizeKernels(module, error)))
    return failure();
  if (failed(runPipeline(module, "builtin.module(canonicalize,cse)", error)) ||
      failed(lowerMemrefCopies(module, error)))
    return failure();
  GpuKernelConfig config = GpuKernelConfig::forTarget(target);
  for (auto fn : module.getOps<func::FuncOp>()) {
    if (failed(expandGpuUkernels(fn, config, error)))
      return failure();
    privatizeTileTemporaries(fn);
    cooperateRowReductions(fn, config);
    cooperateTiledMatmuls(fn, config);
  }
  if (stopAfter == "bufferized") {
    done = true;
    return success();
  }
  if (failed(runPipeline(module,
                         "builtin.module(func.func(scf-forall-to-parallel,"
                         "convert-linalg-to-parallel-loops),canonicalize,"
                         "lower-affine,canonicalize,cse)",
                         error)))
    return failure();

  out.kernels.clear();
  out.kernelNames.clear();
  SmallVector<func::FuncOp> kernels(module.getOps<func::FuncOp>());
  for (func::FuncOp fn : kernels) {
    CompiledExecutable::Kernel k;
    k.symbol = fn.getSymName().str();
    for (Type t : fn.getArgumentTypes().drop_front(2))
      k.argRanks.push_back(cast<MemRefType>(t).getRank());
    FailureOr<GpuMapping> mapping = distributeKernel(fn, target, error);
    if (failed(mapping)) {
      error = "kernel '" + k.symbol + "': " + error;
      return failure();
    }
    k.distributable = *mapping == GpuMapping::Grid;
    out.kernels.push_back(std::move(k));
    out.kernelNames.push_back(fn.getSymName().str());
  }
  {
    OpBuilder b(module.getBodyRegion());
    auto decl = func::FuncOp::create(
        b, module.getLoc(), kPushConstantFn,
        b.getFunctionType({b.getI32Type()}, {b.getI32Type()}));
    decl.setPrivate();
  }
  for (auto [fn, k] : llvm::zip(kernels, out.kernels)) {
    if (failed(flattenKernelMemrefs(fn, spaces, error))) {
      error = "kernel '" + k.symbol + "': " + error;
      return failure();
    }
    if (failed(checkKernel(fn)))
      return failure();
    auto words = fn->getAttrOfType<IntegerAttr>("kiln.push_constant_words");
    if (words && words.getInt() * 4 > target.maxPushConstantBytes) {
      error = "kernel '" + k.symbol + "' needs " + std::to_string(words.getInt() * 4) +
              " bytes of push constants (every dim of its " +
              std::to_string(k.argRanks.size()) + " buffers); " + target.name +
              " allows " + std::to_string(target.maxPushConstantBytes);
      return failure();
    }
    auto shared = fn->getAttrOfType<IntegerAttr>("kiln.workgroup_bytes");
    if (shared && shared.getInt() > target.maxSharedMemoryBytes) {
      error = "kernel '" + k.symbol + "' needs " + std::to_string(shared.getInt()) +
              " bytes of workgroup memory; " + target.name + " has " +
              std::to_string(target.maxSharedMemoryBytes);
      return failure();
    }
  }
  if (failed(runPipeline(module, "builtin.module(canonicalize,cse)", error)))
    return failure();
  done = stopAfter == "loops";
  return success();

}

} // namespace kiln
