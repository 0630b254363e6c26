//===- ArtifactWriter.cpp - Host schedule + executables -> .kiln ----------===//
//
// The layout is documented in runtime/artifact/kiln.fbs: a fixed header, the
// FlatBuffer, then the sections (executable bytes; constants page-aligned,
// each constant 64-byte aligned) with xxHash64 checksums.
//
//===----------------------------------------------------------------------===//
#include "compiler/artifact/ArtifactWriter.h"

#include "dialects/exec/IR/ExecDialect.h"
#include "runtime/artifact/format.h"
#include "runtime/artifact/kiln_generated.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <xxhash.h>

#include <cstring>

using namespace mlir;
namespace fb = kiln::fb;

namespace kiln {
namespace {

std::optional<fb::DType> dtypeOf(Type t, bool isUnsigned) {
  if (t.isF32()) return fb::DType::F32;
  if (t.isF64()) return fb::DType::F64;
  if (t.isF16()) return fb::DType::F16;
  if (t.isBF16()) return fb::DType::BF16;
  if (t.isInteger(1)) return fb::DType::Bool;
  if (auto i = dyn_cast<IntegerType>(t)) {
    bool u = isUnsigned || i.isUnsigned();
    switch (i.getWidth()) {
    case 8: return u ? fb::DType::U8 : fb::DType::I8;
    case 16: return u ? fb::DType::U16 : fb::DType::I16;
    case 32: return u ? fb::DType::U32 : fb::DType::I32;
    case 64: return u ? fb::DType::U64 : fb::DType::I64;
    }
  }
  return std::nullopt;
}

unsigned artifactDTypeBytes(fb::DType d) {
  switch (d) {
  case fb::DType::F64: case fb::DType::I64: case fb::DType::U64: return 8;
  case fb::DType::F32: case fb::DType::I32: case fb::DType::U32: return 4;
  case fb::DType::F16: case fb::DType::BF16: case fb::DType::I16:
  case fb::DType::U16: return 2;
  default: return 1;
  }
}

/// Raw little-endian bytes of a constant in kiln's storage (bool = 1 byte).
std::vector<char> constantBytes(ElementsAttr attr) {
  auto type = cast<ShapedType>(attr.getType());
  if (auto res = dyn_cast<DenseResourceElementsAttr>(attr)) {
    if (auto *blob = res.getRawHandle().getBlob()) {
      ArrayRef<char> data = blob->getData();
      return std::vector<char>(data.begin(), data.end());
    }
    return {};
  }
  auto dense = cast<DenseElementsAttr>(attr);
  int64_t n = type.getNumElements();
  if (type.getElementType().isInteger(1)) {
    std::vector<char> out(n);
    int64_t i = 0;
    for (bool b : dense.getValues<bool>())
      out[i++] = b;
    return out;
  }
  ArrayRef<char> raw = dense.getRawData();
  size_t width = type.getElementTypeBitWidth() / 8;
  std::vector<char> out(n * width);
  if (dense.isSplat()) {
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(out.data() + i * width, raw.data(), width);
  } else {
    std::memcpy(out.data(), raw.data(), out.size());
  }
  return out;
}

class Writer {
public:
  Writer(ModuleOp module, const CompiledExecutable &exe,
         const TargetDescription &target)
      : module(module), exe(exe), target(target) {}

  LogicalResult build(const std::map<std::string, std::string> &metadata,
                      std::vector<char> &file, std::string &error);

private:
  LogicalResult function(func::FuncOp fn,
                         flatbuffers::Offset<fb::Function> &out,
                         std::string &error);
  flatbuffers::Offset<fb::TensorSig> signature(func::FuncOp fn, unsigned i,
                                               bool isResult, Type type);
  int constantIndex(exec::ConstantOp op);

  ModuleOp module;
  const CompiledExecutable &exe;
  const TargetDescription &target;
  flatbuffers::FlatBufferBuilder fbb{1 << 16};
public:
  /// A constant's bytes at `offset` in the constants section: a view of the
  /// weights' own storage where possible, never a second copy of them.
  struct Piece {
    uint64_t offset;
    ArrayRef<char> bytes;
    std::vector<char> owned;
    ArrayRef<char> data() const { return owned.empty() ? bytes : ArrayRef<char>(owned); }
  };
  std::vector<Piece> pieces;
  uint64_t constantsSize = 0;

private:
  std::vector<flatbuffers::Offset<fb::Constant>> constantTables;
  llvm::DenseMap<Attribute, int> constantIds;
};

int Writer::constantIndex(exec::ConstantOp op) {
  Attribute key = op.getValue();
  auto it = constantIds.find(key);
  if (it != constantIds.end())
    return it->second;
  auto type = cast<RankedTensorType>(op.getType());
  Piece piece;
  if (auto res = dyn_cast<DenseResourceElementsAttr>(op.getValue());
      res && res.getRawHandle().getBlob())
    piece.bytes = res.getRawHandle().getBlob()->getData();
  else
    piece.owned = constantBytes(op.getValue());
  uint64_t size = piece.data().size();
  uint64_t offset = (constantsSize + artifact::kConstantsAlignment - 1) /
                    artifact::kConstantsAlignment *
                    artifact::kConstantsAlignment;
  piece.offset = offset;
  constantsSize = offset + size;
  pieces.push_back(std::move(piece));
  auto dtype = dtypeOf(type.getElementType(), false).value_or(fb::DType::F32);
  auto shape = fbb.CreateVector(type.getShape().vec());
  std::string name = "c" + std::to_string(constantTables.size());
  if (auto res = dyn_cast<DenseResourceElementsAttr>(op.getValue()))
    name = res.getRawHandle().getKey().str();
  constantTables.push_back(fb::CreateConstant(
      fbb, fbb.CreateString(name), dtype, shape, offset, size));
  int id = constantTables.size() - 1;
  constantIds[key] = id;
  return id;
}

flatbuffers::Offset<fb::TensorSig> Writer::signature(func::FuncOp fn,
                                                     unsigned i, bool isResult,
                                                     Type type) {
  auto nameAttr = isResult ? fn.getResultAttrOfType<StringAttr>(i, "onnx.name")
                           : fn.getArgAttrOfType<StringAttr>(i, "onnx.name");
  auto dtypeAttr = isResult ? fn.getResultAttrOfType<StringAttr>(i, "exec.dtype")
                            : fn.getArgAttrOfType<StringAttr>(i, "exec.dtype");
  auto dimNames = isResult ? ArrayAttr()
                           : fn.getArgAttrOfType<ArrayAttr>(i, "onnx.dim_names");
  std::string name = nameAttr ? nameAttr.str()
                              : (isResult ? "output_" : "input_") + std::to_string(i);
  auto tensor = cast<RankedTensorType>(type);
  bool isUnsigned = dtypeAttr && dtypeAttr.getValue().starts_with("u");
  auto dtype = dtypeOf(tensor.getElementType(), isUnsigned).value_or(fb::DType::F32);
  std::vector<int64_t> shape;
  for (int64_t d : tensor.getShape())
    shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
  std::vector<flatbuffers::Offset<flatbuffers::String>> names;
  for (int64_t d = 0; d < tensor.getRank(); ++d) {
    std::string n;
    if (dimNames && d < (int64_t)dimNames.size())
      n = cast<StringAttr>(dimNames[d]).str();
    names.push_back(fbb.CreateString(n));
  }
  return fb::CreateTensorSig(fbb, fbb.CreateString(name), dtype,
                             fbb.CreateVector(shape), fbb.CreateVector(names));
}

LogicalResult Writer::function(func::FuncOp fn,
                               flatbuffers::Offset<fb::Function> &out,
                               std::string &error) {
  llvm::DenseMap<Value, int> slots, regs;
  int numSlots = 0, numRegs = 0;
  struct Pending {
    fb::OpCode code;
    int dst;
    std::vector<int64_t> operands;
    fb::DType dtype;
  };
  std::vector<Pending> pending;
  auto emit = [&](fb::OpCode code, int dst, std::vector<int64_t> operands,
                  fb::DType dtype = fb::DType::F32) {
    pending.push_back({code, dst, std::move(operands), dtype});
  };
  auto constIndex = [&](int64_t v) {
    int r = numRegs++;
    emit(fb::OpCode::ConstIndex, r, {v});
    return r;
  };
  auto dimsOf = [&](RankedTensorType type, ValueRange dynamic) {
    std::vector<int64_t> ops;
    unsigned k = 0;
    for (int64_t d : type.getShape())
      ops.push_back(ShapedType::isDynamic(d) ? regs.lookup(dynamic[k++])
                                             : constIndex(d));
    return ops;
  };
  std::map<std::string, int> kernelIds;
  for (size_t i = 0; i < exe.kernelNames.size(); ++i)
    kernelIds[exe.kernelNames[i]] = i;

  std::vector<int> inputSlots, outputSlots;
  std::vector<flatbuffers::Offset<fb::TensorSig>> inputs, outputs;
  Block &body = fn.getBody().front();
  for (BlockArgument arg : body.getArguments()) {
    slots[arg] = numSlots;
    inputSlots.push_back(numSlots++);
    inputs.push_back(signature(fn, arg.getArgNumber(), false, arg.getType()));
  }
  for (Operation &op : body) {
    if (auto c = dyn_cast<arith::ConstantOp>(&op)) {
      auto attr = dyn_cast<IntegerAttr>(c.getValue());
      if (!attr)
        return c.emitError("unsupported host constant"), failure();
      regs[c] = constIndex(attr.getInt());
    } else if (auto dim = dyn_cast<exec::DimOp>(&op)) {
      int r = numRegs++;
      emit(fb::OpCode::Dim, r, {slots.lookup(dim.getSource()), (int64_t)dim.getIndex()});
      regs[dim] = r;
    } else if (auto alloc = dyn_cast<exec::AllocOp>(&op)) {
      auto type = cast<RankedTensorType>(alloc.getType());
      auto dims = dimsOf(type, alloc.getDynamicDims());
      auto dtype = dtypeOf(type.getElementType(), false);
      if (!dtype)
        return alloc.emitError("unsupported element type"), failure();
      int s = numSlots++;
      emit(fb::OpCode::Alloc, s, dims, *dtype);
      slots[alloc] = s;
    } else if (auto c = dyn_cast<exec::ConstantOp>(&op)) {
      int s = numSlots++;
      emit(fb::OpCode::Constant, s, {constantIndex(c)});
      slots[c] = s;
    } else if (auto d = dyn_cast<exec::DispatchOp>(&op)) {
      auto it = kernelIds.find(d.getCallee().str());
      if (it == kernelIds.end())
        return d.emitError("kernel was not compiled"), failure();
      std::vector<int64_t> ops{0, it->second};
      for (Value v : d.getInputs())
        ops.push_back(slots.lookup(v));
      for (Value v : d.getOuts())
        ops.push_back(slots.lookup(v));
      emit(fb::OpCode::Dispatch, -1, ops);
      for (auto [o, r] : llvm::zip(d.getOuts(), d.getResults()))
        slots[r] = slots.lookup(o);
    } else if (auto c = dyn_cast<exec::CopyOp>(&op)) {
      int s = numSlots++;
      emit(fb::OpCode::Copy, s, {slots.lookup(c.getSource())});
      slots[c] = s;
    } else if (auto r = dyn_cast<exec::ReshapeOp>(&op)) {
      int s = numSlots++;
      std::vector<int64_t> ops{slots.lookup(r.getSource())};
      for (int64_t d : dimsOf(cast<RankedTensorType>(r.getType()),
                              r.getDynamicDims()))
        ops.push_back(d);
      emit(fb::OpCode::Reshape, s, ops);
      slots[r] = s;
    } else if (auto ret = dyn_cast<func::ReturnOp>(&op)) {
      for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
        outputSlots.push_back(slots.lookup(v));
        outputs.push_back(signature(fn, i, true, v.getType()));
      }
    } else if (op.getNumOperands() == 2 && op.getNumResults() == 1 &&
               op.getResult(0).getType().isIndex()) {
      std::optional<fb::ArithKind> kind =
          llvm::TypeSwitch<Operation *, std::optional<fb::ArithKind>>(&op)
              .Case<arith::AddIOp>([](auto) { return fb::ArithKind::Add; })
              .Case<arith::SubIOp>([](auto) { return fb::ArithKind::Sub; })
              .Case<arith::MulIOp>([](auto) { return fb::ArithKind::Mul; })
              .Case<arith::DivSIOp>([](auto) { return fb::ArithKind::DivS; })
              .Case<arith::CeilDivSIOp>([](auto) { return fb::ArithKind::CeilDivS; })
              .Case<arith::FloorDivSIOp>([](auto) { return fb::ArithKind::FloorDivS; })
              .Case<arith::RemSIOp>([](auto) { return fb::ArithKind::RemS; })
              .Case<arith::MaxSIOp>([](auto) { return fb::ArithKind::MaxS; })
              .Case<arith::MinSIOp>([](auto) { return fb::ArithKind::MinS; })
              .Default([](auto) { return std::nullopt; });
      if (!kind)
        return op.emitError("unsupported host arithmetic"), failure();
      int r = numRegs++;
      emit(fb::OpCode::Arith, r,
           {(int64_t)*kind, regs.lookup(op.getOperand(0)),
            regs.lookup(op.getOperand(1))});
      regs[op.getResult(0)] = r;
    } else {
      op.emitError("cannot serialize host op ") << op.getName();
      return failure();
    }
  }
  // Buffers are signless in the IR; an output that the signature calls
  // unsigned gets its alloc (or copy) typed to match.
  for (size_t i = 0; i < outputSlots.size(); ++i) {
    auto dtypeAttr = fn.getResultAttrOfType<StringAttr>(i, "exec.dtype");
    if (!dtypeAttr || !dtypeAttr.getValue().starts_with("u"))
      continue;
    for (Pending &p : pending)
      if ((p.code == fb::OpCode::Alloc || p.code == fb::OpCode::Copy) &&
          p.dst == outputSlots[i]) {
        if (auto d = dtypeOf(IntegerType::get(fn.getContext(),
                                              8 * artifactDTypeBytes(p.dtype)),
                             true))
          p.dtype = *d;
      }
  }
  std::vector<flatbuffers::Offset<fb::Instr>> instrs;
  for (const Pending &p : pending)
    instrs.push_back(fb::CreateInstr(fbb, p.code, p.dst,
                                     fbb.CreateVector(p.operands), p.dtype));
  out = fb::CreateFunction(
      fbb, fbb.CreateString(fn.getSymName().str()), fbb.CreateVector(inputs),
      fbb.CreateVector(outputs), numSlots, numRegs,
      fbb.CreateVector(inputSlots), fbb.CreateVector(outputSlots),
      fbb.CreateVector(instrs));
  (void)error;
  return success();
}

LogicalResult Writer::build(const std::map<std::string, std::string> &metadata,
                            std::vector<char> &file, std::string &error) {
  std::vector<flatbuffers::Offset<fb::Function>> functions;
  for (auto fn : module.getOps<func::FuncOp>()) {
    if (!fn->hasAttr(exec::kEntryAttr))
      continue;
    flatbuffers::Offset<fb::Function> f;
    if (failed(function(fn, f, error)))
      return failure();
    functions.push_back(f);
  }
  if (functions.empty()) {
    error = "internal: no entry function to serialize";
    return failure();
  }
  // Sections are laid out after the FlatBuffer, whose size we only know once
  // it is built; so offsets are fixed up in a second build with known sizes.
  auto layout = [&](uint64_t metadataSize, uint64_t &exeOffset,
                    uint64_t &constOffset) {
    exeOffset = artifact::kHeaderSize + metadataSize;
    exeOffset = (exeOffset + 63) / 64 * 64;
    constOffset = exeOffset + exe.binary.size();
    constOffset = (constOffset + artifact::kConstantsSectionAlignment - 1) /
                  artifact::kConstantsSectionAlignment *
                  artifact::kConstantsSectionAlignment;
  };
  uint64_t exeSum = XXH64(exe.binary.data(), exe.binary.size(), 0);
  uint64_t constSum;
  {
    // Streamed over the pieces and the zero padding between them.
    XXH64_state_t *st = XXH64_createState();
    XXH64_reset(st, 0);
    static const char zeros[artifact::kConstantsAlignment] = {};
    uint64_t at = 0;
    for (const Piece &p : pieces) {
      XXH64_update(st, zeros, p.offset - at);
      ArrayRef<char> d = p.data();
      XXH64_update(st, d.data(), d.size());
      at = p.offset + d.size();
    }
    constSum = XXH64_digest(st);
    XXH64_freeState(st);
  }

  std::vector<flatbuffers::Offset<fb::Kernel>> kernels;
  for (const auto &k : exe.kernels)
    kernels.push_back(fb::CreateKernel(fbb, fbb.CreateString(k.symbol),
                                       fbb.CreateVector(k.argRanks),
                                       k.distributable));
  auto executable = fb::CreateExecutable(fbb, fbb.CreateString(exe.format), 0,
                                         fbb.CreateVector(kernels));
  std::vector<flatbuffers::Offset<flatbuffers::String>> keys, values;
  for (const auto &[k, v] : metadata) {
    keys.push_back(fbb.CreateString(k));
    values.push_back(fbb.CreateString(v));
  }
  auto functionsVec = fbb.CreateVector(functions);
  auto executablesVec = fbb.CreateVector(
      std::vector<flatbuffers::Offset<fb::Executable>>{executable});
  auto constantsVec = fbb.CreateVector(constantTables);
  auto keysVec = fbb.CreateVector(keys);
  auto valuesVec = fbb.CreateVector(values);
  auto targetStr = fbb.CreateString(target.name);
  auto producer = fbb.CreateString("kiln-compile");

  // The sections vector holds structs of fixed size: build with a guess,
  // then patch the offsets in place (the FlatBuffer size does not change).
  std::vector<fb::Section> ranges(2);
  auto sectionInfos = [&]() {
    std::vector<flatbuffers::Offset<fb::SectionInfo>> infos;
    infos.push_back(fb::CreateSectionInfo(fbb, fb::SectionKind::Executable, &ranges[0]));
    infos.push_back(fb::CreateSectionInfo(fbb, fb::SectionKind::Constants, &ranges[1]));
    return fbb.CreateVector(infos);
  }();
  auto model = fb::CreateModel(fbb, artifact::kFormatVersion, targetStr,
                               producer, sectionInfos, executablesVec,
                               constantsVec, 1, functionsVec, keysVec,
                               valuesVec);
  fb::FinishModelBuffer(fbb, model);
  uint64_t metaSize = fbb.GetSize();
  uint64_t exeOffset, constOffset;
  layout(metaSize, exeOffset, constOffset);

  // Patch the section structs inside the finished buffer.
  std::vector<char> meta(fbb.GetBufferPointer(),
                         fbb.GetBufferPointer() + metaSize);
  auto *root = fb::GetMutableModel(meta.data());
  auto *sections = root->mutable_sections();
  auto *s0 = sections->GetMutableObject(0)->mutable_range();
  s0->mutate_offset(exeOffset);
  s0->mutate_size(exe.binary.size());
  s0->mutate_checksum(exeSum);
  auto *s1 = sections->GetMutableObject(1)->mutable_range();
  s1->mutate_offset(constOffset);
  s1->mutate_size(constantsSize);
  s1->mutate_checksum(constSum);

  artifact::FileHeader header{};
  std::memcpy(header.magic, artifact::kMagic, 4);
  header.format_version = artifact::kFormatVersion;
  header.metadata_offset = artifact::kHeaderSize;
  header.metadata_size = metaSize;
  header.metadata_checksum = XXH64(meta.data(), meta.size(), 0);

  // `file` is everything before the constants section; the writer streams
  // the pieces after it.
  file.assign(constOffset, 0);
  std::memcpy(file.data(), &header, sizeof(header));
  std::memcpy(file.data() + artifact::kHeaderSize, meta.data(), meta.size());
  std::memcpy(file.data() + exeOffset, exe.binary.data(), exe.binary.size());
  return success();
}

} // namespace

LogicalResult writeArtifact(ModuleOp module, const CompiledExecutable &exe,
                            const TargetDescription &target,
                            const std::map<std::string, std::string> &metadata,
                            StringRef path, std::string &error) {
  Writer writer(module, exe, target);
  std::vector<char> file;
  if (failed(writer.build(metadata, file, error)))
    return failure();
  // Write to a temporary beside the target, then rename: never a torn file.
  std::string tmp = (path + ".tmp").str();
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(tmp, ec);
    if (ec) {
      error = "cannot write '" + path.str() + "': " + ec.message();
      return failure();
    }
    os.write(file.data(), file.size());
    uint64_t at = 0;
    for (const Writer::Piece &p : writer.pieces) {
      os.write_zeros(p.offset - at);
      ArrayRef<char> d = p.data();
      os.write(d.data(), d.size());
      at = p.offset + d.size();
    }
    if (os.has_error()) {
      error = "cannot write '" + path.str() + "'";
      return failure();
    }
  }
  if (auto ec = llvm::sys::fs::rename(tmp, path)) {
    error = "cannot write '" + path.str() + "': " + ec.message();
    return failure();
  }
  return success();
}

} // namespace kiln
