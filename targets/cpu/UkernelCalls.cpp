//===- UkernelCalls.cpp - llm.ukernel -> calls into the linked ukernels ----===//
//
// After bufferization an llm.ukernel works on buffers; here it becomes a
// plain C call (pointers, sizes, literals, workgroup id and count) to the
// microkernel of that name. The microkernels' bitcode (built from
// targets/cpu/ukernels/*.c with no target features) is linked into the
// kernels' LLVM module afterwards and optimized for the target with them.
//
//===----------------------------------------------------------------------===//
#include "targets/cpu/UkernelCalls.h"

#include "dialects/exec/IR/ExecDialect.h"
#include "dialects/llm/IR/LlmDialect.h"
#include "ukernels_bitcode.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/IR/Module.h"
#include "llvm/Linker/Linker.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace mlir;

namespace kiln {

LogicalResult lowerUkernelCalls(ModuleOp module, std::string &error) {
  MLIRContext *ctx = module.getContext();
  auto ptrTy = LLVM::LLVMPointerType::get(ctx);
  OpBuilder mb(ctx);
  mb.setInsertionPointToStart(module.getBody());
  SmallVector<llm::UkernelOp> calls;
  module.walk([&](llm::UkernelOp uk) { calls.push_back(uk); });
  for (llm::UkernelOp uk : calls) {
    auto fn = uk->getParentOfType<func::FuncOp>();
    Location loc = uk.getLoc();
    OpBuilder b(uk);
    SmallVector<Value> args;
    ValueRange operands = uk->getOperands();
    for (Attribute a : uk.getArgs()) {
      if (auto ref = dyn_cast<DenseI64ArrayAttr>(a)) {
        if (ref[0] < 0) {
          args.push_back(LLVM::ZeroOp::create(b, loc, ptrTy));
          continue;
        }
        Value buf = operands[ref[0]];
        auto type = dyn_cast<MemRefType>(buf.getType());
        if (!type || !type.getLayout().isIdentity()) {
          error = "internal: microkernel operand is not a dense buffer";
          return failure();
        }
        if (ref.size() == 1) {
          Value idx = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buf);
          Value i = arith::IndexCastOp::create(b, loc, b.getI64Type(), idx);
          args.push_back(LLVM::IntToPtrOp::create(b, loc, ptrTy, i));
          continue;
        }
        Value prod;
        for (int64_t d : ref.asArrayRef().drop_front()) {
          Value dv = memref::DimOp::create(b, loc, buf, d);
          prod = prod ? arith::MulIOp::create(b, loc, prod, dv) : dv;
        }
        args.push_back(arith::IndexCastOp::create(b, loc, b.getI64Type(), prod));
        continue;
      }
      args.push_back(arith::ConstantOp::create(b, loc, cast<TypedAttr>(a)));
    }
    for (unsigned i = 0; i < exec::kNumWorkgroupArgs; ++i)
      args.push_back(arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                                fn.getArgument(i)));
    StringRef callee = uk.getCallee();
    auto decl = module.lookupSymbol<func::FuncOp>(callee);
    auto fnType = FunctionType::get(ctx, ValueRange(args).getTypes(), {});
    if (!decl) {
      decl = func::FuncOp::create(mb, loc, callee, fnType);
      decl.setPrivate();
    } else if (decl.getFunctionType() != fnType) {
      error = ("internal: inconsistent calls of microkernel " + callee).str();
      return failure();
    }
    func::CallOp::create(b, loc, decl, args);
    uk.erase();
    // Only the heavy microkernels are worth waking other threads for; norms,
    // rotary and layout copies of a decode step are a few microseconds.
    if (callee.contains("matmul") || callee.contains("attention"))
      fn->setAttr(kUkernelKernelAttr, UnitAttr::get(ctx));
  }
  return success();
}

LogicalResult linkUkernels(llvm::Module &m, llvm::StringRef features,
                           std::string &error) {
  bool needed = llvm::any_of(m, [](const llvm::Function &f) {
    return f.isDeclaration() && f.getName().starts_with("kiln_uk_");
  });
  if (!needed)
    return success();
  // One bitcode per architecture (clang's IR carries the ABI of its triple).
  const llvm::Triple &triple = m.getTargetTriple();
  llvm::StringRef bitcode;
  if (triple.getArch() == llvm::Triple::x86_64)
    bitcode = llvm::StringRef(reinterpret_cast<const char *>(kKilnUkernelsBitcode),
                              kKilnUkernelsBitcodeSize);
  else if (triple.getArch() == llvm::Triple::aarch64)
    bitcode = llvm::StringRef(
        reinterpret_cast<const char *>(kKilnUkernelsBitcodeAarch64),
        kKilnUkernelsBitcodeAarch64Size);
  if (bitcode.empty()) {
    error = "the LLM microkernels are not built for " + triple.str();
    return failure();
  }
  auto buffer = llvm::MemoryBuffer::getMemBuffer(
      bitcode, "kiln_ukernels.bc", /*RequiresNullTerminator=*/false);
  auto parsed = llvm::parseBitcodeFile(*buffer, m.getContext());
  if (!parsed) {
    error = "internal: cannot read the microkernels' bitcode: " +
            llvm::toString(parsed.takeError());
    return failure();
  }
  std::unique_ptr<llvm::Module> uk = std::move(*parsed);
  // A microkernel with a twin for target features (`_dotprod`: the Armv8.2
  // sdot/udot form, in the aarch64 bitcode only; `_vnni`: vpdpbusd on zmm,
  // AVX-512 F/BW/VNNI, and `_avx2`: vpmaddubsw, both with F16C for the scales, in
  // the x86-64 one) is called by that name where the target has them, the
  // first twin that exists in this order; the twin computes the same bits.
  SmallVector<StringRef> featureList;
  features.split(featureList, ',');
  auto has = [&](StringRef f) { return llvm::is_contained(featureList, f); };
  const bool avx2 = has("+avx2") && has("+f16c");
  for (auto [wanted, suffix] :
       {std::pair<bool, StringRef>{has("+dotprod"), "_dotprod"},
        {avx2 && has("+avx512f") && has("+avx512bw") && has("+avx512vnni"), "_vnni"},
        {avx2, "_avx2"}})
    if (wanted)
      for (llvm::Function &f : m)
        if (f.isDeclaration() && f.getName().starts_with("kiln_uk_") &&
            uk->getFunction((f.getName() + suffix).str()))
          f.setName((f.getName() + suffix).str());
  uk->setTargetTriple(m.getTargetTriple());
  uk->setDataLayout(m.getDataLayout());
  if (llvm::Linker::linkModules(m, std::move(uk),
                                llvm::Linker::Flags::LinkOnlyNeeded)) {
    error = "internal: linking the microkernels failed";
    return failure();
  }
  return success();
}

} // namespace kiln
