//===- CudaCodegen.cpp - exec.kernel functions -> PTX (and a cubin) ---------===//
//
// The CUDA backend shares the GPU steps with Vulkan (GpuPipeline.cpp: tile,
// bufferize, LLM microkernels as cooperative GPU code, distribute over
// threads, 1-d buffers). Then the kernels are outlined into a gpu.module
// for the target's chip, subgroup reductions become warp shuffles,
// transcendental math becomes polynomials (no libdevice is needed), and
// MLIR's NVVM lowering and LLVM's NVPTX backend produce PTX. Where ptxas is
// found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin) the PTX is assembled
// into a cubin for the chip, which also checks it; elsewhere the artifact
// keeps the PTX and the driver compiles it when it loads it.
//
// The kernel ABI (runtime/hal/cuda): parameters are, for every buffer, its
// 1-d memref descriptor (allocated pointer, aligned pointer, i64 offset,
// i64 size, i64 stride), then every dim of every buffer as an i32, in
// order (the words Vulkan passes as push constants). Blocks have the
// target's workgroup size (`.maxntid`).
//
//===----------------------------------------------------------------------===//
#include "targets/TargetRegistry.h"

#include "targets/common/KernelPrep.h"
#include "targets/gpu/GpuKernelSteps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace kiln {
namespace {

/// `func.call @__kiln_push_constant(N)` -> kernel parameter N: the dims
/// come as i32 parameters after the buffers.
LogicalResult dimsToParameters(func::FuncOp fn, std::string &error) {
  auto words = fn->getAttrOfType<IntegerAttr>("kiln.push_constant_words");
  unsigned n = words ? words.getInt() : 0;
  unsigned first = fn.getNumArguments();
  Type i32 = IntegerType::get(fn.getContext(), 32);
  for (unsigned i = 0; i < n; ++i)
    if (failed(fn.insertArgument(first + i, i32, {}, fn.getLoc()))) {
      error = "internal: cannot add a dim parameter";
      return failure();
    }
  SmallVector<func::CallOp> calls;
  fn.walk([&](func::CallOp c) {
    if (c.getCallee() == kPushConstantFn)
      calls.push_back(c);
  });
  for (func::CallOp c : calls) {
    auto word = c.getOperand(0).getDefiningOp<arith::ConstantIntOp>();
    if (!word || word.value() < 0 || word.value() >= (int64_t)n) {
      error = "internal: a dim word outside the kernel's parameters";
      return failure();
    }
    c.getResult(0).replaceAllUsesWith(fn.getArgument(first + word.value()));
    c.erase();
  }
  return success();
}

/// Moves every kernel into one gpu.module for the chip, as gpu.func kernels
/// of the target's block size; workgroup temporaries become the functions'
/// workgroup attributions (shared memory).
gpu::GPUModuleOp outline(ModuleOp module, const TargetDescription &target) {
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), b.getUnitAttr());
  b.setInsertionPointToEnd(module.getBody());
  auto nvvmTarget = NVVM::NVVMTargetAttr::get(ctx, /*optLevel=*/3, "nvptx64-nvidia-cuda",
                                              target.cpu, target.features);
  auto gm = gpu::GPUModuleOp::create(b, module.getLoc(), "kiln_kernels",
                                     b.getArrayAttr({nvvmTarget}));
  b.setInsertionPointToStart(gm.getBody());
  auto block = b.getDenseI32ArrayAttr({static_cast<int32_t>(target.workgroupSize), 1, 1});
  for (auto fn : llvm::make_early_inc_range(module.getOps<func::FuncOp>())) {
    if (fn.isExternal()) {
      fn.erase(); // the dim placeholder: every call is gone
      continue;
    }
    gpu::GPUFuncOp gf = toGpuKernel(b, fn);
    gf.setKnownBlockSizeAttr(block);
    SmallVector<memref::AllocOp> shared;
    gf.walk([&](memref::AllocOp a) {
      if (isa_and_nonnull<gpu::AddressSpaceAttr>(a.getType().getMemorySpace()))
        shared.push_back(a);
    });
    for (memref::AllocOp a : shared) {
      BlockArgument arg = gf.addWorkgroupAttribution(a.getType(), a.getLoc());
      // WMMA loads and stores (the tensor-core matmuls) need 256-bit
      // aligned tiles; every buffer starts on a 32-byte boundary.
      gf.setWorkgroupAttributionAttr(gf.getNumWorkgroupAttributions() - 1,
                                     LLVM::LLVMDialect::getAlignAttrName(),
                                     b.getI64IntegerAttr(32));
      a.getResult().replaceAllUsesWith(arg);
      a.erase();
    }
  }
  return gm;
}

/// Warp shuffles for subgroup reductions; polynomials (MLIR's, f32) for
/// transcendental math, so that no libdevice function is called.
void lowerForNvvm(gpu::GPUModuleOp gm, unsigned warpSize, unsigned blockSize) {
  // Blocks are 1-d: warp w holds threads 32w .. 32w + 31 (NVVM has no
  // lowering of these two ops).
  IRRewriter rw(gm.getContext());
  gm.walk([&](Operation *op) {
    if (!isa<gpu::SubgroupIdOp, gpu::NumSubgroupsOp>(op))
      return;
    rw.setInsertionPoint(op);
    Location loc = op->getLoc();
    Value v;
    if (isa<gpu::NumSubgroupsOp>(op)) {
      v = arith::ConstantIndexOp::create(rw, loc, blockSize / warpSize);
    } else {
      Value tid = gpu::ThreadIdOp::create(rw, loc, gpu::Dimension::x);
      v = arith::DivUIOp::create(rw, loc, tid, arith::ConstantIndexOp::create(rw, loc, warpSize));
    }
    rw.replaceOp(op, v);
  });
  RewritePatternSet patterns(gm.getContext());
  populateGpuLowerSubgroupReduceToShufflePatterns(patterns, warpSize);
  populateGpuLowerClusteredSubgroupReduceToShufflePatterns(patterns, warpSize);
  populateF64MathInF32Patterns(patterns);
  populateMathPolynomialApproximationPatterns(patterns);
  populatePolynomialApproximateErfcPattern(patterns);
  math::populateExpansionPatterns(patterns, {});
  (void)applyPatternsGreedily(gm, std::move(patterns));
}

/// The NVVM lowering turns the math that is left after the polynomials
/// (sqrt, fabs, floor, fmod, ...) into calls of CUDA's libdevice, which kiln
/// does not link (it comes with the toolkit only). Those few functions get
/// bodies here, each one LLVM intrinsic that NVPTX selects to instructions
/// (sqrt.rn, abs, cvt.rmi, ...). A libdevice call left is an error later.
void defineLibdeviceSubset(gpu::GPUModuleOp gm) {
  using Build = Value (*)(OpBuilder &, Location, ValueRange);
  static const llvm::StringMap<Build> bodies = {
      {"sqrt", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::SqrtOp::create(b, l, a[0]); }},
      {"fabs", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::FAbsOp::create(b, l, a[0]); }},
      {"floor", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::FFloorOp::create(b, l, a[0]); }},
      {"ceil", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::FCeilOp::create(b, l, a[0]); }},
      {"round", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::RoundOp::create(b, l, a[0]); }},
      {"rint", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::RoundEvenOp::create(b, l, a[0]); }},
      {"nearbyint", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::RoundEvenOp::create(b, l, a[0]); }},
      {"trunc", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::FTruncOp::create(b, l, a[0]); }},
      {"fmod", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::FRemOp::create(b, l, a[0], a[1]); }},
      {"fmin", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::MinNumOp::create(b, l, a[0], a[1]); }},
      {"fmax", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::MaxNumOp::create(b, l, a[0], a[1]); }},
      {"copysign", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::CopySignOp::create(b, l, a[0], a[1]); }},
      {"fma", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::FMAOp::create(b, l, a[0], a[1], a[2]); }},
      {"exp2", [](OpBuilder &b, Location l, ValueRange a) -> Value { return LLVM::Exp2Op::create(b, l, a[0]); }},
      {"rsqrt", [](OpBuilder &b, Location l, ValueRange a) -> Value {
         Value one = LLVM::ConstantOp::create(b, l, a[0].getType(), b.getFloatAttr(a[0].getType(), 1.0));
         return LLVM::FDivOp::create(b, l, one, LLVM::SqrtOp::create(b, l, a[0]));
       }},
  };
  for (auto fn : gm.getOps<LLVM::LLVMFuncOp>()) {
    StringRef name = fn.getName();
    if (!fn.isExternal() || !name.consume_front("__nv_"))
      continue;
    // __nv_sqrtf is the f32 form of __nv_sqrt.
    auto it = bodies.find(name);
    if (it == bodies.end() && name.ends_with("f"))
      it = bodies.find(name.drop_back());
    if (it == bodies.end())
      continue;
    OpBuilder b(fn.getContext());
    Block *entry = fn.addEntryBlock(b);
    b.setInsertionPointToStart(entry);
    Value result = it->second(b, fn.getLoc(), entry->getArguments());
    LLVM::ReturnOp::create(b, fn.getLoc(), result);
    fn.setLinkage(LLVM::Linkage::Internal);
  }
}

/// ptxas, if this machine has one: $KILN_PTXAS (a path, or "off" to keep
/// the PTX), else PATH, $CUDA_HOME/bin, /usr/local/cuda/bin.
std::optional<std::string> findPtxas() {
  if (const char *forced = std::getenv("KILN_PTXAS")) {
    if (StringRef(forced) == "off")
      return std::nullopt;
    return std::string(forced);
  }
  if (auto p = llvm::sys::findProgramByName("ptxas"))
    return *p;
  SmallVector<std::string> dirs;
  if (const char *home = std::getenv("CUDA_HOME"))
    dirs.push_back(std::string(home) + "/bin");
  dirs.push_back("/usr/local/cuda/bin");
  for (const std::string &d : dirs)
    if (auto p = llvm::sys::findProgramByName("ptxas", {d}))
      return *p;
  return std::nullopt;
}

/// Assembles `ptx` for `chip` with ptxas into `cubin`.
LogicalResult assemble(StringRef ptxas, StringRef ptx, StringRef chip, std::vector<char> &cubin,
                       std::string &error) {
  SmallString<128> in, out, log;
  if (llvm::sys::fs::createTemporaryFile("kiln", "ptx", in) ||
      llvm::sys::fs::createTemporaryFile("kiln", "cubin", out) ||
      llvm::sys::fs::createTemporaryFile("kiln-ptxas", "log", log)) {
    error = "cannot create temporary files for ptxas";
    return failure();
  }
  auto cleanup = llvm::make_scope_exit([&] {
    llvm::sys::fs::remove(in);
    llvm::sys::fs::remove(out);
    llvm::sys::fs::remove(log);
  });
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(in, ec);
    if (ec) {
      error = "cannot write " + in.str().str();
      return failure();
    }
    os << ptx;
  }
  std::string arch = "-arch=" + chip.str();
  SmallVector<StringRef> args{ptxas, arch, "-O3", in, "-o", out};
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(log), StringRef(log)};
  std::string why;
  int rc = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects, /*SecondsToWait=*/0,
                                     /*MemoryLimit=*/0, &why);
  if (rc < 0) {
    error = "cannot run ptxas at '" + ptxas.str() + "'" + (why.empty() ? "" : ": " + why) +
            " (KILN_PTXAS=off keeps the PTX)";
    return failure();
  }
  if (rc != 0) {
    std::string first = "exit " + std::to_string(rc);
    if (auto buf = llvm::MemoryBuffer::getFile(log)) {
      StringRef text = (*buf)->getBuffer().trim();
      if (!text.empty())
        first = text.split('\n').first.str();
    }
    error = "ptxas rejected the PTX kiln generated (" + first + ")";
    return failure();
  }
  auto buf = llvm::MemoryBuffer::getFile(out);
  if (!buf) {
    error = "ptxas wrote no cubin";
    return failure();
  }
  cubin.assign((*buf)->getBufferStart(), (*buf)->getBufferEnd());
  return success();
}

class CudaBackend : public TargetBackend {
public:
  LogicalResult compile(ModuleOp module, const TargetDescription &target,
                        CompiledExecutable &out, StringRef stopAfter,
                        std::string &error) override {
    MLIRContext *ctx = module.getContext();
    {
      DialectRegistry registry;
      NVVM::registerNVVMTargetInterfaceExternalModels(registry);
      registerAllToLLVMIRTranslations(registry);
      ctx->appendDialectRegistry(registry);
    }
    ctx->loadDialect<gpu::GPUDialect, NVVM::NVVMDialect, LLVM::LLVMDialect, math::MathDialect,
                     vector::VectorDialect,
                     scf::SCFDialect, memref::MemRefDialect>();
    out.format = "ptx";
    GpuMemorySpaces spaces{Attribute(),
                           gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup),
                           Attribute()};
    bool done = false;
    if (failed(lowerKernelsForGpu(
            module, target, spaces, out, stopAfter, done,
            [](func::FuncOp) { return success(); }, error)))
      return failure();
    if (done)
      return success();
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isExternal() && failed(dimsToParameters(fn, error)))
        return failure();
    gpu::GPUModuleOp gm = outline(module, target);
    lowerForNvvm(gm, target.subgroupSize, target.workgroupSize);
    if (failed(runPipeline(module,
                         "builtin.module(gpu.module(convert-scf-to-cf,"
                         "convert-gpu-to-nvvm{index-bitwidth=64},convert-nvvm-to-llvm,"
                         "canonicalize,cse,reconcile-unrealized-casts))",
                         error)))
      return failure();
    defineLibdeviceSubset(gm);
    if (stopAfter == "llvm")
      return success();
    if (failed(runPipeline(module, "builtin.module(gpu-module-to-binary{format=isa})", error)))
      return failure();
    auto binaries = llvm::to_vector(module.getOps<gpu::BinaryOp>());
    if (binaries.size() != 1 || binaries.front().getObjects().size() != 1) {
      error = "internal: expected one PTX object";
      return failure();
    }
    auto object = cast<gpu::ObjectAttr>(binaries.front().getObjects()[0]);
    StringRef ptx = object.getObject().getValue();
    // A libdevice function left unresolved: the driver could not load it.
    size_t at = ptx.find("__nv_");
    if (at != StringRef::npos) {
      StringRef name = ptx.substr(at).take_until([](char c) { return c == '(' || c == ' ' || c == ';'; });
      error = "a kernel calls " + name.str() +
              " (CUDA's libdevice), which kiln does not link: that math is not supported on " +
              target.name + " yet";
      return failure();
    }
    if (std::optional<std::string> ptxas = findPtxas()) {
      if (failed(assemble(*ptxas, ptx, target.cpu, out.binary, error)))
        return failure();
      out.format = "cubin-" + target.cpu;
      return success();
    }
    out.binary.assign(ptx.begin(), ptx.end());
    return success();
  }
};

} // namespace

std::unique_ptr<TargetBackend> createCudaBackend() { return std::make_unique<CudaBackend>(); }

} // namespace kiln
