//===- VulkanCodegen.cpp - exec.kernel functions -> one SPIR-V module ------===//
//
// Kernels are tiled for invocations and bufferized like the CPU's, lowered
// to loops, spread over GPU invocations (GpuDistribute.cpp), given 1-d
// storage-buffer arguments (FlattenMemrefs.cpp), outlined into gpu.funcs of
// one gpu.module, converted to the spirv dialect for the target's SPIR-V
// version, capabilities and limits, and serialized. The runtime ABI (see
// runtime/hal/README.md): entry point = kernel name; descriptor set 0,
// binding i = argument i; push constants = every dim of every argument as
// int32, in order.
//
//===----------------------------------------------------------------------===//
#include "targets/TargetRegistry.h"

#include "dialects/llm/IR/LlmDialect.h"
#include "targets/common/KernelPrep.h"
#include "targets/gpu/GpuKernelSteps.h"
#include "targets/gpu/GpuUkernels.h"

#include "mlir/Conversion/ArithToSPIRV/ArithToSPIRV.h"
#include "mlir/Conversion/ControlFlowToSPIRV/ControlFlowToSPIRV.h"
#include "mlir/Conversion/FuncToSPIRV/FuncToSPIRV.h"
#include "mlir/Conversion/GPUToSPIRV/GPUToSPIRV.h"
#include "mlir/Conversion/IndexToSPIRV/IndexToSPIRV.h"
#include "mlir/Conversion/MathToSPIRV/MathToSPIRV.h"
#include "mlir/Conversion/MemRefToSPIRV/MemRefToSPIRV.h"
#include "mlir/Conversion/SCFToSPIRV/SCFToSPIRV.h"
#include "mlir/Conversion/UBToSPIRV/UBToSPIRV.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVAttributes.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/Dialect/SPIRV/Transforms/SPIRVConversion.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Builders.h"
#include "mlir/Target/SPIRV/Serialization.h"
#include "mlir/Transforms/DialectConversion.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace kiln {
namespace {

/// `func.call @__kiln_push_constant(N)` -> load of push constant word N.
struct PushConstantCall : OpConversionPattern<func::CallOp> {
  PushConstantCall(const TypeConverter &tc, MLIRContext *ctx, unsigned words)
      : OpConversionPattern(tc, ctx, /*benefit=*/10), words(words) {}
  LogicalResult
  matchAndRewrite(func::CallOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (op.getCallee() != kPushConstantFn)
      return failure();
    std::optional<int64_t> word = getConstantIntValue(op.getOperand(0));
    if (!word)
      return rewriter.notifyMatchFailure(op, "push constant index not constant");
    Value v = spirv::getPushConstantValue(op, words, *word,
                                          rewriter.getI32Type(), rewriter);
    rewriter.replaceOp(op, v);
    return success();
  }
  unsigned words;
};

/// gpu.barrier between loop nests must also make storage-buffer writes
/// visible (MLIR's lowering only orders workgroup memory).
struct FullBarrier : OpConversionPattern<gpu::BarrierOp> {
  FullBarrier(const TypeConverter &tc, MLIRContext *ctx)
      : OpConversionPattern(tc, ctx, /*benefit=*/10) {}
  LogicalResult
  matchAndRewrite(gpu::BarrierOp op, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto semantics = spirv::MemorySemantics::AcquireRelease |
                     spirv::MemorySemantics::UniformMemory |
                     spirv::MemorySemantics::WorkgroupMemory;
    rewriter.replaceOpWithNewOp<spirv::ControlBarrierOp>(
        op, spirv::Scope::Workgroup, spirv::Scope::Workgroup, semantics);
    return success();
  }
};

FailureOr<spirv::TargetEnvAttr> targetEnv(MLIRContext *ctx,
                                          const TargetDescription &t,
                                          std::string &error) {
  std::string caps, exts;
  for (const std::string &c : t.spirvCapabilities)
    caps += (caps.empty() ? "" : ", ") + c;
  for (const std::string &e : t.spirvExtensions)
    exts += (exts.empty() ? "" : ", ") + e;
  std::string text =
      "#spirv.target_env<#spirv.vce<v" + t.spirvVersion + ", [" + caps + "], [" +
      exts + "]>, api=Vulkan, #spirv.resource_limits<max_compute_shared_memory_size = " +
      std::to_string(t.maxSharedMemoryBytes) +
      ", max_compute_workgroup_invocations = " +
      std::to_string(t.maxWorkgroupInvocations) +
      ", max_compute_workgroup_size = [" + std::to_string(t.maxWorkgroupInvocations) +
      ", " + std::to_string(t.maxWorkgroupInvocations) + ", 64], subgroup_size = " +
      std::to_string(t.subgroupSize) + ">>";
  auto attr = dyn_cast_or_null<spirv::TargetEnvAttr>(parseAttribute(text, ctx));
  if (!attr) {
    error = "internal: bad SPIR-V target environment " + text;
    return failure();
  }
  return attr;
}

/// Moves every kernel into a gpu.module as a gpu.func with the Vulkan entry
/// point and interface ABI attributes.
gpu::GPUModuleOp outline(ModuleOp module, spirv::TargetEnvAttr env,
                         unsigned workgroupSize) {
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), b.getUnitAttr());
  b.setInsertionPointToEnd(module.getBody());
  auto gm = gpu::GPUModuleOp::create(b, module.getLoc(), "kiln_kernels");
  gm->setAttr(spirv::getTargetEnvAttrName(), env);
  b.setInsertionPointToStart(gm.getBody());
  auto wgSize = b.getDenseI32ArrayAttr({static_cast<int32_t>(workgroupSize), 1, 1});
  for (auto fn : llvm::make_early_inc_range(module.getOps<func::FuncOp>())) {
    if (fn.isExternal()) {
      fn->moveBefore(gm.getBody(), gm.getBody()->begin());
      continue;
    }
    Attribute words = fn->getAttr("kiln.push_constant_words");
    gpu::GPUFuncOp gf = toGpuKernel(b, fn);
    gf->setAttr(spirv::getEntryPointABIAttrName(),
                spirv::EntryPointABIAttr::get(ctx, wgSize, std::nullopt, std::nullopt));
    for (unsigned i = 0; i < gf.getNumArguments(); ++i)
      gf.setArgAttr(i, spirv::getInterfaceVarABIAttrName(),
                    spirv::getInterfaceVarABIAttr(0, i, std::nullopt, ctx));
    if (words)
      gf->setAttr("kiln.push_constant_words", words);
  }
  return gm;
}

LogicalResult convertToSpirv(gpu::GPUModuleOp gm, std::string &error) {
  MLIRContext *ctx = gm.getContext();
  {
    // No GLSL instruction computes erf; a polynomial does.
    RewritePatternSet patterns(ctx);
    populatePolynomialApproximateErfPattern(patterns);
    populatePolynomialApproximateErfcPattern(patterns);
    math::populateExpansionPatterns(patterns, {});
    populateF64MathInF32Patterns(patterns);
    (void)applyPatternsGreedily(gm, std::move(patterns));
  }
  unsigned words = 0;
  gm.walk([&](gpu::GPUFuncOp f) {
    if (auto w = f->getAttrOfType<IntegerAttr>("kiln.push_constant_words"))
      words = std::max<unsigned>(words, w.getInt());
  });
  // The placeholder's declaration goes; its calls are converted below.
  if (auto decl = gm.lookupSymbol<func::FuncOp>(kPushConstantFn))
    decl.erase();
  spirv::TargetEnvAttr env = spirv::lookupTargetEnvOrDefault(gm);
  std::unique_ptr<ConversionTarget> target = SPIRVConversionTarget::get(env);
  SPIRVConversionOptions options;
  SPIRVTypeConverter typeConverter(env, options);
  RewritePatternSet patterns(ctx);
  patterns.add<PushConstantCall>(typeConverter, ctx, std::max(words, 1u));
  patterns.add<FullBarrier>(typeConverter, ctx);
  populateGPUToSPIRVPatterns(typeConverter, patterns);
  ScfToSPIRVContext scfContext;
  populateSCFToSPIRVPatterns(typeConverter, scfContext, patterns);
  arith::populateArithToSPIRVPatterns(typeConverter, patterns);
  populateMathToSPIRVPatterns(typeConverter, patterns);
  populateMemRefToSPIRVPatterns(typeConverter, patterns);
  populateFuncToSPIRVPatterns(typeConverter, patterns);
  cf::populateControlFlowToSPIRVPatterns(typeConverter, patterns);
  index::populateIndexToSPIRVPatterns(typeConverter, patterns);
  ub::populateUBToSPIRVConversionPatterns(typeConverter, patterns);
  if (failed(applyFullConversion(gm.getOperation(), *target, std::move(patterns)))) {
    error = "lowering to SPIR-V failed";
    return failure();
  }
  return success();
}

/// 64-bit types need capabilities a profile may lack (phone GPUs have no
/// Float64): say so instead of failing inside the SPIR-V conversion.
LogicalResult checkCapabilities(func::FuncOp fn, const TargetDescription &target,
                                std::string &error) {
  auto has = [&](llvm::StringRef cap) {
    return llvm::is_contained(target.spirvCapabilities, cap.str());
  };
  std::string missing;
  fn.walk([&](Operation *op) {
    auto check = [&](Type t) {
      if (auto m = dyn_cast<MemRefType>(t))
        t = m.getElementType();
      if (t.isF64() && !has("Float64"))
        missing = "f64 (capability Float64)";
      else if (t.isInteger(64) && !has("Int64"))
        missing = "i64 (capability Int64)";
    };
    for (Type t : op->getResultTypes())
      check(t);
    for (Type t : op->getOperandTypes())
      check(t);
    return missing.empty() ? WalkResult::advance() : WalkResult::interrupt();
  });
  if (missing.empty())
    return success();
  error = "kernel '" + fn.getSymName().str() + "' computes in " + missing +
          ", which target '" + target.name + "' does not have";
  return failure();
}

class VulkanBackend : public TargetBackend {
public:
  LogicalResult compile(ModuleOp module, const TargetDescription &target,
                        CompiledExecutable &out, StringRef stopAfter,
                        std::string &error) override {
    MLIRContext *ctx = module.getContext();
    ctx->loadDialect<gpu::GPUDialect, spirv::SPIRVDialect, math::MathDialect,
                     scf::SCFDialect, memref::MemRefDialect>();
    out.format = target.executableFormat;
    bool done = false;
    if (failed(lowerKernelsForGpu(
            module, target, GpuMemorySpaces::spirv(ctx), out, stopAfter, done,
            [&](func::FuncOp fn) { return checkCapabilities(fn, target, error); }, error)))
      return failure();
    if (done)
      return success();

    FailureOr<spirv::TargetEnvAttr> env = targetEnv(ctx, target, error);
    if (failed(env))
      return failure();
    gpu::GPUModuleOp gm = outline(module, *env, target.workgroupSize);
    if (failed(convertToSpirv(gm, error)) ||
        failed(runPipeline(module,
                           "builtin.module(spirv.module(spirv-lower-abi-attrs,"
                           "spirv-update-vce))",
                           error)))
      return failure();
    if (stopAfter == "llvm")
      return success();
    auto spirvModules = llvm::to_vector(module.getOps<spirv::ModuleOp>());
    if (spirvModules.size() != 1) {
      error = "internal: expected one spirv.module";
      return failure();
    }
    SmallVector<uint32_t, 0> words;
    if (failed(spirv::serialize(spirvModules.front(), words))) {
      error = "internal: SPIR-V serialization failed";
      return failure();
    }
    const char *bytes = reinterpret_cast<const char *>(words.data());
    out.binary.assign(bytes, bytes + words.size() * sizeof(uint32_t));
    return success();
  }
};

} // namespace

std::unique_ptr<TargetBackend> createVulkanBackend() {
  return std::make_unique<VulkanBackend>();
}

} // namespace kiln
