//===- CpuCodegen.cpp - exec.kernel functions -> ELF shared object --------===//
//
// Kernels are bufferized, lowered to loops (the outermost parallel loop split
// across workgroups), then to the LLVM dialect, LLVM IR, an object file for
// the target's triple/CPU/features, and a position-independent shared object
// linked by lld. Each kernel gets an exported entry point with the runtime's
// C ABI (see runtime/artifact/kiln.fbs, table Kernel).
//
//===----------------------------------------------------------------------===//
#include "targets/TargetRegistry.h"

#include "dialects/exec/IR/ExecDialect.h"
#include "targets/common/KernelPrep.h"
#include "targets/cpu/UkernelCalls.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Interfaces/TilingInterface.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"

using namespace mlir;

namespace kiln {
namespace {

/// Splits the outermost parallel loop of a kernel across workgroups
/// (cyclically: workgroup w runs iterations w, w + count, ...). Only kernels
/// whose body is one parallel loop nest qualify: then every iteration is
/// independent by construction.
bool distribute(func::FuncOp fn) {
  Block &body = fn.getBody().front();
  scf::ParallelOp loop;
  for (Operation &op : body.without_terminator()) {
    if (auto p = dyn_cast<scf::ParallelOp>(&op)) {
      if (loop)
        return false;
      loop = p;
      continue;
    }
    if (!isMemoryEffectFree(&op))
      return false;
  }
  if (!loop)
    return false;
  // Pick the dim with the largest known trip count (dynamic counts as large).
  int best = -1;
  int64_t bestTrip = 1;
  for (unsigned i = 0; i < loop.getNumLoops(); ++i) {
    auto lb = getConstantIntValue(loop.getLowerBound()[i]);
    auto ub = getConstantIntValue(loop.getUpperBound()[i]);
    auto st = getConstantIntValue(loop.getStep()[i]);
    int64_t trip = (lb && ub && st && *st > 0) ? (*ub - *lb + *st - 1) / *st
                                               : INT64_MAX;
    if (trip > bestTrip) {
      best = i;
      bestTrip = trip;
    }
  }
  if (best < 0)
    return false;
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  Value id = body.getArgument(0), count = body.getArgument(1);
  SmallVector<Value> lbs(loop.getLowerBound()), steps(loop.getStep());
  Value offset = arith::MulIOp::create(b, loc, id, steps[best]);
  lbs[best] = arith::AddIOp::create(b, loc, lbs[best], offset);
  steps[best] = arith::MulIOp::create(b, loc, steps[best], count);
  loop.getLowerBoundMutable().assign(lbs);
  loop.getStepMutable().assign(steps);
  return true;
}

/// Tiles the op that produces a kernel's result along one parallel dim into
/// an scf.forall and fuses its producers (fills, matmuls, reductions feeding
/// an elementwise epilogue) into the loop body, so that the whole kernel is
/// one parallel loop that `distribute` can split across workgroups. Leaves
/// the kernel alone where tiling does not apply.
void tileForWorkgroups(func::FuncOp fn, unsigned targetTiles) {
  // Padding, slicing and data-dependent reads (tensor.extract in a body)
  // keep their one-workgroup form, as do empty tensors.
  linalg::LinalgOp consumer = tileableResultOp(fn, /*consumerMayExtract=*/false);
  if (!consumer)
    return;
  SmallVector<AffineMap> consumerMaps = consumer.getIndexingMapsArray();
  OpBuilder b(consumer);
  SmallVector<Range> domain =
      cast<TilingInterface>(consumer.getOperation()).getIterationDomain(b);
  SmallVector<utils::IteratorType> iterators = consumer.getIteratorTypesArray();
  int dim = -1;
  int64_t tile = 1;
  for (auto [i, it] : llvm::enumerate(iterators)) {
    if (it != utils::IteratorType::parallel || !isPlainDimIn(consumerMaps, i))
      continue;
    std::optional<int64_t> size = getConstantIntValue(domain[i].size);
    if (size && *size < 2)
      continue;
    dim = i;
    tile = size ? std::max<int64_t>(1, (*size + targetTiles - 1) / targetTiles)
                : 4;
    break;
  }
  if (dim < 0)
    return;
  SmallVector<OpFoldResult> sizes(iterators.size(), b.getIndexAttr(0));
  sizes[dim] = b.getIndexAttr(tile);
  tileAndFuseIntoForall(consumer, sizes);
}

std::unique_ptr<llvm::TargetMachine>
makeTargetMachine(const TargetDescription &target, std::string &error) {
  static bool initialized = [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    return true;
  }();
  (void)initialized;
  llvm::Triple triple(target.triple);
  const llvm::Target *t = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!t)
    return nullptr;
  llvm::TargetOptions options;
  return std::unique_ptr<llvm::TargetMachine>(t->createTargetMachine(
      triple, target.cpu, target.features, options, llvm::Reloc::PIC_,
      std::nullopt, llvm::CodeGenOptLevel::Aggressive));
}

/// Adds `kiln_<kernel>(void **args, i64 wg_id, i64 wg_count)` around the
/// `_mlir_ciface_<kernel>` wrapper MLIR emitted.
void addEntryPoints(llvm::Module &m, ArrayRef<std::string> kernels) {
  llvm::LLVMContext &ctx = m.getContext();
  auto *ptrTy = llvm::PointerType::getUnqual(ctx);
  auto *i64 = llvm::Type::getInt64Ty(ctx);
  for (const std::string &name : kernels) {
    llvm::Function *ciface = m.getFunction("_mlir_ciface_" + name);
    auto *fnTy = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx),
                                         {ptrTy, i64, i64}, false);
    auto *entry = llvm::Function::Create(fnTy, llvm::Function::ExternalLinkage,
                                         "kiln_" + name, m);
    auto *bb = llvm::BasicBlock::Create(ctx, "entry", entry);
    llvm::IRBuilder<> b(bb);
    SmallVector<llvm::Value *> args{entry->getArg(1), entry->getArg(2)};
    for (unsigned i = 2; i < ciface->arg_size(); ++i) {
      llvm::Value *slot = b.CreateConstGEP1_64(ptrTy, entry->getArg(0), i - 2);
      args.push_back(b.CreateLoad(ptrTy, slot));
    }
    b.CreateCall(ciface, args);
    b.CreateRetVoid();
  }
  // Only the entry points are exported.
  llvm::StringSet<> entries;
  for (const std::string &name : kernels)
    entries.insert("kiln_" + name);
  for (llvm::Function &f : m)
    if (!f.isDeclaration() && !entries.contains(f.getName()))
      f.setLinkage(llvm::GlobalValue::InternalLinkage);
  for (llvm::GlobalVariable &g : m.globals())
    if (!g.isDeclaration())
      g.setLinkage(llvm::GlobalValue::InternalLinkage);
}

void optimize(llvm::Module &m, llvm::TargetMachine &tm) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&tm);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm =
      pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  mpm.run(m, mam);
}

class CpuBackend : public TargetBackend {
public:
  LogicalResult compile(ModuleOp module, const TargetDescription &target,
                        CompiledExecutable &out, StringRef stopAfter,
                        std::string &error) override {
    MLIRContext *ctx = module.getContext();
    out.format = target.executableFormat;
    keepKernels(module);
    // Enough tiles for any thread count a CPU driver is likely to use.
    constexpr unsigned kTargetTiles = 64;
    for (auto fn : module.getOps<func::FuncOp>())
      tileForWorkgroups(fn, kTargetTiles);
    if (failed(bufferizeKernels(module, error)))
      return failure();
    // Temporaries a kernel allocates are freed before it returns.
    if (failed(runPipeline(module,
                           "builtin.module(canonicalize,cse,"
                           "func.func(ownership-based-buffer-deallocation),"
                           "canonicalize,buffer-deallocation-simplification,"
                           "bufferization-lower-deallocations,canonicalize,cse)",
                           error)))
      return failure();
    if (failed(lowerMemrefCopies(module, error)))
      return failure();
    if (failed(lowerUkernelCalls(module, error)))
      return failure();
    if (stopAfter == "bufferized")
      return success();
    if (failed(runPipeline(module,
                           "builtin.module(func.func(scf-forall-to-parallel,"
                           "convert-linalg-to-parallel-loops),"
                           "canonicalize)",
                           error)))
      return failure();
    out.kernels.clear();
    out.kernelNames.clear();
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal())
        continue; // a microkernel declaration
      CompiledExecutable::Kernel k;
      k.symbol = "kiln_" + fn.getSymName().str();
      for (Type t : fn.getArgumentTypes().drop_front(exec::kNumWorkgroupArgs))
        k.argRanks.push_back(cast<MemRefType>(t).getRank());
      // A microkernel splits its work over workgroups itself.
      k.distributable = fn->hasAttr(kUkernelKernelAttr) || distribute(fn);
      fn->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
      out.kernels.push_back(std::move(k));
      out.kernelNames.push_back(fn.getSymName().str());
    }
    if (stopAfter == "loops")
      return success();
    if (failed(runPipeline(
            module,
            "builtin.module(expand-strided-metadata,lower-affine,"
            "convert-scf-to-cf,arith-expand{include-bf16=true},"
            "convert-math-to-libm,convert-to-llvm,"
            "reconcile-unrealized-casts)",
            error)))
      return failure();
    if (stopAfter == "llvm")
      return success();

    registerBuiltinDialectTranslation(*ctx);
    registerLLVMDialectTranslation(*ctx);
    llvm::LLVMContext llvmCtx;
    auto llvmModule = translateModuleToLLVMIR(module, llvmCtx, "kiln_kernels");
    if (!llvmModule) {
      error = "internal: translation to LLVM IR failed";
      return failure();
    }
    auto tm = makeTargetMachine(target, error);
    if (!tm)
      return failure();
    llvmModule->setTargetTriple(tm->getTargetTriple());
    llvmModule->setDataLayout(tm->createDataLayout());
    if (failed(linkUkernels(*llvmModule, target.features, error)))
      return failure();
    addEntryPoints(*llvmModule, out.kernelNames);
    for (llvm::Function &f : *llvmModule)
      if (!f.isDeclaration()) {
        // The microkernels' bitcode carries the build machine's defaults.
        f.removeFnAttr("target-cpu");
        f.removeFnAttr("target-features");
        f.removeFnAttr("tune-cpu");
        f.addFnAttr("target-cpu", target.cpu);
        if (!target.features.empty())
          f.addFnAttr("target-features", target.features);
        // Use the full SIMD width the description promises (LLVM otherwise
        // stays at 256 bits on AVX-512 cores).
        f.addFnAttr("prefer-vector-width", std::to_string(target.vectorBits));
      }
    if (llvm::verifyModule(*llvmModule, &llvm::errs())) {
      error = "internal: generated LLVM IR does not verify";
      return failure();
    }
    optimize(*llvmModule, *tm);
    return emitSharedObject(*llvmModule, *tm, out, error);
  }

private:
  LogicalResult emitSharedObject(llvm::Module &m, llvm::TargetMachine &tm,
                                 CompiledExecutable &out, std::string &error) {
    SmallString<128> objPath, soPath;
    int objFd;
    if (llvm::sys::fs::createTemporaryFile("kiln", "o", objFd, objPath)) {
      error = "cannot create a temporary file";
      return failure();
    }
    {
      llvm::raw_fd_ostream os(objFd, /*shouldClose=*/true);
      llvm::legacy::PassManager pm;
      if (tm.addPassesToEmitFile(pm, os, nullptr,
                                 llvm::CodeGenFileType::ObjectFile)) {
        error = "target cannot emit object files";
        return failure();
      }
      pm.run(m);
    }
    llvm::sys::fs::createTemporaryFile("kiln", "so", soPath);
    auto lld = llvm::sys::findProgramByName("ld.lld", {LLVM_TOOLS_DIR});
    if (!lld)
      lld = llvm::sys::findProgramByName("ld.lld-22");
    if (!lld) {
      error = "ld.lld not found (install lld-22)";
      llvm::sys::fs::remove(objPath);
      return failure();
    }
    std::string errMsg;
    SmallVector<StringRef> args{*lld, "-shared", "--gc-sections", "-O2",
                                "-o", soPath, objPath};
    int rc = llvm::sys::ExecuteAndWait(*lld, args, std::nullopt, {}, 0, 0,
                                       &errMsg);
    llvm::sys::fs::remove(objPath);
    if (rc != 0) {
      error = "linking the kernels failed: " + errMsg;
      llvm::sys::fs::remove(soPath);
      return failure();
    }
    auto buffer = llvm::MemoryBuffer::getFile(soPath);
    llvm::sys::fs::remove(soPath);
    if (!buffer) {
      error = "cannot read the linked kernels";
      return failure();
    }
    out.binary.assign((*buffer)->getBufferStart(), (*buffer)->getBufferEnd());
    return success();
  }
};

} // namespace

std::unique_ptr<TargetBackend> createCpuBackend() {
  return std::make_unique<CpuBackend>();
}

} // namespace kiln
