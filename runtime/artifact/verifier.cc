//===- verifier.cc - Check a whole .kiln file before anything runs ---------===//
//
// Order matters: each step only trusts what the previous steps proved (the
// header before the metadata range, the checksum before the FlatBuffer
// verifier, the FlatBuffer verifier before any field access).
#include "runtime/artifact/verifier.h"

#include <bit>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "runtime/artifact/checksum.h"
#include "runtime/artifact/format.h"
#include "runtime/artifact/kiln_generated.h"
#include "runtime/base/dtype.h"

namespace kiln::artifact {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the artifact is little-endian and read in place");

template <typename... Args>
Status Corrupt(const Args&... args) {
  return DataLossError(StrCat("artifact: ", args...));
}
template <typename... Args>
Status Invalid(const Args&... args) {
  return InvalidArgumentError(StrCat("artifact: ", args...));
}

/// [offset, offset + size) lies inside [0, limit), without overflow.
bool InRange(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

std::string_view SectionKindName(fb::SectionKind kind) {
  return kind == fb::SectionKind::Executable ? "executable" : "constants";
}

template <typename T>
uint32_t Size(const flatbuffers::Vector<T>* v) {
  return v ? v->size() : 0;
}

Status VerifyHeader(std::span<const uint8_t> file, FileHeader& header) {
  if (file.size() < kHeaderSize)
    return Corrupt("file is ", file.size(), " bytes, smaller than the ", kHeaderSize,
                   "-byte header (truncated?)");
  std::memcpy(&header, file.data(), sizeof(header));
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0)
    return Invalid("bad magic (not a .kiln file)");
  if (header.format_version != kFormatVersion)
    return FailedPreconditionError(StrCat("artifact: format version ", header.format_version,
                                          " is not supported (this runtime reads version ",
                                          kFormatVersion, ")"));
  if (header.metadata_offset < kHeaderSize || header.metadata_offset % 8 != 0)
    return Corrupt("metadata offset ", header.metadata_offset, " is invalid");
  if (!InRange(header.metadata_offset, header.metadata_size, file.size()))
    return Corrupt("metadata [", header.metadata_offset, ", +", header.metadata_size,
                   ") extends past the end of the ", file.size(), "-byte file (truncated?)");
  if (header.metadata_size >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return Corrupt("metadata of ", header.metadata_size, " bytes is too large");
  auto metadata = file.subspan(header.metadata_offset, header.metadata_size);
  if (Checksum(metadata) != header.metadata_checksum)
    return Corrupt("checksum mismatch in metadata");
  return OkStatus();
}

Status VerifySections(std::span<const uint8_t> file, const FileHeader& header,
                      const fb::Model& model) {
  const uint64_t metadata_end = header.metadata_offset + header.metadata_size;
  const auto* sections = model.sections();
  for (uint32_t i = 0; i < Size(sections); ++i) {
    const fb::SectionInfo* info = sections->Get(i);
    if (info->kind() > fb::SectionKind::MAX)
      return Invalid("section ", i, " has unknown kind ", static_cast<int>(info->kind()));
    const fb::Section* range = info->range();
    if (!range) return Invalid("section ", i, " has no range");
    std::string_view kind = SectionKindName(info->kind());
    if (range->offset() < metadata_end || !InRange(range->offset(), range->size(), file.size()))
      return Corrupt("section ", i, " (", kind, ") [", range->offset(), ", +", range->size(),
                     ") lies outside the file's ", file.size(), " bytes after the metadata");
    if (Checksum(file.subspan(range->offset(), range->size())) != range->checksum())
      return Corrupt("checksum mismatch in section ", i, " (", kind, ")");
  }
  return OkStatus();
}

Status VerifyShape(const flatbuffers::Vector<int64_t>* shape, bool allow_dynamic,
                   std::string_view what) {
  if (Size(shape) > static_cast<uint32_t>(kMaxRank))
    return Invalid(what, " has rank ", Size(shape), " (max ", kMaxRank, ")");
  for (uint32_t d = 0; d < Size(shape); ++d) {
    int64_t dim = shape->Get(d);
    if (dim < (allow_dynamic ? -1 : 0))
      return Invalid(what, " has invalid dim ", dim, " at position ", d);
  }
  return OkStatus();
}

Status VerifyConstants(std::span<const uint8_t> file, const fb::Model& model) {
  const auto* constants = model.constants();
  const int32_t cs = model.constants_section();
  if (cs == -1) {
    if (Size(constants) != 0) return Invalid(Size(constants), " constants but no constants section");
    return OkStatus();
  }
  if (cs < 0 || static_cast<uint32_t>(cs) >= Size(model.sections()))
    return Invalid("constants_section ", cs, " is not a valid section index");
  const fb::SectionInfo* info = model.sections()->Get(cs);
  if (info->kind() != fb::SectionKind::Constants)
    return Invalid("constants_section ", cs, " is not of kind constants");
  const fb::Section* range = info->range();
  const uint64_t address = reinterpret_cast<uintptr_t>(file.data()) + range->offset();
  if (range->offset() % kConstantsSectionAlignment != 0 || address % kConstantsSectionAlignment != 0)
    return Invalid("constants section ", cs, " at offset ", range->offset(), " is not ",
                   kConstantsSectionAlignment, "-byte aligned");
  for (uint32_t i = 0; i < Size(constants); ++i) {
    const fb::Constant* c = constants->Get(i);
    std::string what = StrCat("constant ", i, " ('", c->name() ? c->name()->str() : "", "')");
    if (!IsValidDType(static_cast<int>(c->dtype())))
      return Invalid(what, " has unknown dtype ", static_cast<int>(c->dtype()));
    KILN_RETURN_IF_ERROR(VerifyShape(c->shape(), /*allow_dynamic=*/false, what));
    if (c->offset() % kConstantsAlignment != 0)
      return Invalid(what, " at offset ", c->offset(), " is not ", kConstantsAlignment,
                     "-byte aligned");
    if (!InRange(c->offset(), c->size(), range->size()))
      return Invalid(what, " [", c->offset(), ", +", c->size(),
                     ") lies outside the constants section of ", range->size(), " bytes");
    std::vector<int64_t> shape;
    if (c->shape()) shape.assign(c->shape()->begin(), c->shape()->end());
    auto bytes = CheckedByteSize(static_cast<DType>(c->dtype()), shape);
    if (!bytes.ok()) return Invalid(what, ": ", bytes.status().message());
    if (static_cast<uint64_t>(*bytes) != c->size())
      return Invalid(what, " has size ", c->size(), " but its shape ", ShapeToString(shape),
                     " needs ", *bytes, " bytes");
  }
  return OkStatus();
}

Status VerifyExecutables(const fb::Model& model) {
  const auto* executables = model.executables();
  for (uint32_t e = 0; e < Size(executables); ++e) {
    const fb::Executable* exe = executables->Get(e);
    if (!exe->format() || exe->format()->size() == 0) return Invalid("executable ", e, " has no format");
    int32_t s = exe->section();
    if (s < 0 || static_cast<uint32_t>(s) >= Size(model.sections()))
      return Invalid("executable ", e, " refers to section ", s, " which does not exist");
    if (model.sections()->Get(s)->kind() != fb::SectionKind::Executable)
      return Invalid("executable ", e, " refers to section ", s, " which is not an executable section");
    for (uint32_t k = 0; k < Size(exe->kernels()); ++k) {
      const fb::Kernel* kernel = exe->kernels()->Get(k);
      if (!kernel->name() || kernel->name()->size() == 0)
        return Invalid("executable ", e, " kernel ", k, " has no name");
      for (uint32_t a = 0; a < Size(kernel->arg_ranks()); ++a) {
        int32_t rank = kernel->arg_ranks()->Get(a);
        if (rank < 0 || rank > kMaxRank)
          return Invalid("kernel '", kernel->name()->str(), "' argument ", a, " has rank ", rank);
      }
    }
  }
  return OkStatus();
}

Status VerifySignature(const flatbuffers::Vector<flatbuffers::Offset<fb::TensorSig>>* sigs,
                       std::string_view fn, std::string_view kind) {
  std::set<std::string> names;
  for (uint32_t i = 0; i < Size(sigs); ++i) {
    const fb::TensorSig* sig = sigs->Get(i);
    std::string name = sig->name() ? sig->name()->str() : "";
    std::string what = StrCat("function '", fn, "' ", kind, " ", i, " ('", name, "')");
    if (!sig->name()) return Invalid(what, " has no name");
    if (!names.insert(name).second) return Invalid(what, " has a duplicate name");
    if (!IsValidDType(static_cast<int>(sig->dtype())))
      return Invalid(what, " has unknown dtype ", static_cast<int>(sig->dtype()));
    KILN_RETURN_IF_ERROR(VerifyShape(sig->shape(), /*allow_dynamic=*/true, what));
    if (Size(sig->dim_names()) != 0 && Size(sig->dim_names()) != Size(sig->shape()))
      return Invalid(what, " has ", Size(sig->dim_names()), " dim names for rank ", Size(sig->shape()));
  }
  return OkStatus();
}

/// Checks one Function's instruction list. The schedule is straight-line,
/// so "defined before use" is checked exactly by a single forward walk.
class FunctionVerifier {
 public:
  FunctionVerifier(const fb::Model& model, const fb::Function& fn, std::string name)
      : model_(model), fn_(fn), name_(std::move(name)) {}

  Status Verify() {
    KILN_RETURN_IF_ERROR(VerifySignature(fn_.inputs(), name_, "input"));
    KILN_RETURN_IF_ERROR(VerifySignature(fn_.outputs(), name_, "output"));
    if (fn_.num_slots() < 0 || fn_.num_slots() > kMaxSlots)
      return Invalid("function '", name_, "' has invalid num_slots ", fn_.num_slots());
    if (fn_.num_regs() < 0 || fn_.num_regs() > kMaxRegs)
      return Invalid("function '", name_, "' has invalid num_regs ", fn_.num_regs());
    slot_defined_.assign(fn_.num_slots(), false);
    reg_defined_.assign(fn_.num_regs(), false);
    if (Size(fn_.input_slots()) != Size(fn_.inputs()))
      return Invalid("function '", name_, "' has ", Size(fn_.inputs()), " inputs but ",
                     Size(fn_.input_slots()), " input slots");
    if (Size(fn_.output_slots()) != Size(fn_.outputs()))
      return Invalid("function '", name_, "' has ", Size(fn_.outputs()), " outputs but ",
                     Size(fn_.output_slots()), " output slots");
    for (uint32_t i = 0; i < Size(fn_.input_slots()); ++i) {
      int32_t s = fn_.input_slots()->Get(i);
      if (!ValidSlot(s)) return Invalid("function '", name_, "' input slot ", s, " is out of range");
      slot_defined_[s] = true;
    }
    for (uint32_t i = 0; i < Size(fn_.instrs()); ++i) {
      const fb::Instr* instr = fn_.instrs()->Get(i);
      Status status = VerifyInstr(*instr);
      if (!status.ok()) {
        std::string_view op = instr->opcode() <= fb::OpCode::MAX
                                  ? fb::EnumNameOpCode(instr->opcode()) : "?";
        return Status(status.code(), StrCat("artifact: function '", name_, "' instr ", i, " (",
                                            op, "): ", status.message()));
      }
    }
    for (uint32_t i = 0; i < Size(fn_.output_slots()); ++i) {
      int32_t s = fn_.output_slots()->Get(i);
      if (!ValidSlot(s)) return Invalid("function '", name_, "' output slot ", s, " is out of range");
      if (!slot_defined_[s])
        return Invalid("function '", name_, "' output ", i, " (slot ", s, ") is never defined");
    }
    return OkStatus();
  }

 private:
  bool ValidSlot(int64_t s) const { return s >= 0 && s < fn_.num_slots(); }

  Status UseSlot(int64_t s) const {
    if (!ValidSlot(s)) return InvalidArgumentError(StrCat("slot ", s, " is out of range [0, ", fn_.num_slots(), ")"));
    if (!slot_defined_[s]) return InvalidArgumentError(StrCat("slot ", s, " is used before it is defined"));
    return OkStatus();
  }
  Status UseReg(int64_t r) const {
    if (r < 0 || r >= fn_.num_regs())
      return InvalidArgumentError(StrCat("reg ", r, " is out of range [0, ", fn_.num_regs(), ")"));
    if (!reg_defined_[r]) return InvalidArgumentError(StrCat("reg ", r, " is used before it is defined"));
    return OkStatus();
  }
  Status DefSlot(int64_t s) {
    if (!ValidSlot(s)) return InvalidArgumentError(StrCat("destination slot ", s, " is out of range [0, ", fn_.num_slots(), ")"));
    slot_defined_[s] = true;
    return OkStatus();
  }
  Status DefReg(int64_t r) {
    if (r < 0 || r >= fn_.num_regs())
      return InvalidArgumentError(StrCat("destination reg ", r, " is out of range [0, ", fn_.num_regs(), ")"));
    reg_defined_[r] = true;
    return OkStatus();
  }
  static Status Count(size_t got, size_t want) {
    if (got != want) return InvalidArgumentError(StrCat("expected ", want, " operands but got ", got));
    return OkStatus();
  }

  Status VerifyInstr(const fb::Instr& instr) {
    if (instr.opcode() > fb::OpCode::MAX)
      return InvalidArgumentError(StrCat("unknown opcode ", static_cast<int>(instr.opcode())));
    if (!IsValidDType(static_cast<int>(instr.dtype())))
      return InvalidArgumentError(StrCat("unknown dtype ", static_cast<int>(instr.dtype())));
    std::vector<int64_t> ops;
    if (instr.operands()) ops.assign(instr.operands()->begin(), instr.operands()->end());
    switch (instr.opcode()) {
      case fb::OpCode::ConstIndex:
        KILN_RETURN_IF_ERROR(Count(ops.size(), 1));
        return DefReg(instr.dst());
      case fb::OpCode::Dim:
        KILN_RETURN_IF_ERROR(Count(ops.size(), 2));
        KILN_RETURN_IF_ERROR(UseSlot(ops[0]));
        if (ops[1] < 0 || ops[1] >= kMaxRank)
          return InvalidArgumentError(StrCat("dim index ", ops[1], " is out of range"));
        return DefReg(instr.dst());
      case fb::OpCode::Arith: {
        if (ops.empty()) return InvalidArgumentError("missing arith kind");
        if (ops[0] < 0 || ops[0] > static_cast<int64_t>(fb::ArithKind::MAX))
          return InvalidArgumentError(StrCat("unknown arith kind ", ops[0]));
        bool select = static_cast<fb::ArithKind>(ops[0]) == fb::ArithKind::Select;
        KILN_RETURN_IF_ERROR(Count(ops.size(), select ? 4 : 3));
        for (size_t i = 1; i < ops.size(); ++i) KILN_RETURN_IF_ERROR(UseReg(ops[i]));
        return DefReg(instr.dst());
      }
      case fb::OpCode::Alloc:
        if (ops.size() > static_cast<size_t>(kMaxRank))
          return InvalidArgumentError(StrCat("rank ", ops.size(), " exceeds the limit of ", kMaxRank));
        for (int64_t r : ops) KILN_RETURN_IF_ERROR(UseReg(r));
        return DefSlot(instr.dst());
      case fb::OpCode::Constant:
        KILN_RETURN_IF_ERROR(Count(ops.size(), 1));
        if (ops[0] < 0 || ops[0] >= Size(model_.constants()))
          return InvalidArgumentError(StrCat("constant ", ops[0], " does not exist"));
        return DefSlot(instr.dst());
      case fb::OpCode::Dispatch: {
        if (ops.size() < 2) return InvalidArgumentError("expected executable and kernel operands");
        if (ops[0] < 0 || ops[0] >= Size(model_.executables()))
          return InvalidArgumentError(StrCat("executable ", ops[0], " does not exist"));
        const fb::Executable* exe = model_.executables()->Get(ops[0]);
        if (ops[1] < 0 || ops[1] >= Size(exe->kernels()))
          return InvalidArgumentError(StrCat("kernel ", ops[1], " does not exist in executable ", ops[0]));
        const fb::Kernel* kernel = exe->kernels()->Get(ops[1]);
        if (ops.size() - 2 != Size(kernel->arg_ranks()))
          return InvalidArgumentError(StrCat("kernel '", kernel->name()->str(), "' takes ",
                                             Size(kernel->arg_ranks()), " arguments but ",
                                             ops.size() - 2, " are given"));
        for (size_t i = 2; i < ops.size(); ++i) KILN_RETURN_IF_ERROR(UseSlot(ops[i]));
        return OkStatus();
      }
      case fb::OpCode::Copy:
        KILN_RETURN_IF_ERROR(Count(ops.size(), 1));
        KILN_RETURN_IF_ERROR(UseSlot(ops[0]));
        return DefSlot(instr.dst());
      case fb::OpCode::Reshape:
        if (ops.empty()) return InvalidArgumentError("missing source slot");
        if (ops.size() - 1 > static_cast<size_t>(kMaxRank))
          return InvalidArgumentError(StrCat("rank ", ops.size() - 1, " exceeds the limit of ", kMaxRank));
        KILN_RETURN_IF_ERROR(UseSlot(ops[0]));
        for (size_t i = 1; i < ops.size(); ++i) KILN_RETURN_IF_ERROR(UseReg(ops[i]));
        return DefSlot(instr.dst());
    }
    return InvalidArgumentError("unknown opcode");
  }

  const fb::Model& model_;
  const fb::Function& fn_;
  std::string name_;
  std::vector<bool> slot_defined_;
  std::vector<bool> reg_defined_;
};

Status VerifyFunctions(const fb::Model& model) {
  std::set<std::string> names;
  for (uint32_t f = 0; f < Size(model.functions()); ++f) {
    const fb::Function* fn = model.functions()->Get(f);
    if (!fn->name()) return Invalid("function ", f, " has no name");
    std::string name = fn->name()->str();
    if (!names.insert(name).second) return Invalid("function '", name, "' is defined twice");
    KILN_RETURN_IF_ERROR(FunctionVerifier(model, *fn, name).Verify());
  }
  return OkStatus();
}

}  // namespace

Status VerifyArtifact(std::span<const uint8_t> file) {
  FileHeader header;
  KILN_RETURN_IF_ERROR(VerifyHeader(file, header));
  const uint8_t* metadata = file.data() + header.metadata_offset;
  flatbuffers::Verifier verifier(metadata, header.metadata_size,
                                 /*max_depth=*/64, /*max_tables=*/1u << 22);
  if (!fb::VerifyModelBuffer(verifier))
    return Corrupt("metadata is not a valid kiln FlatBuffer (identifier \"KILN\")");
  const fb::Model& model = *fb::GetModel(metadata);
  if (model.format_version() != header.format_version)
    return Invalid("metadata format version ", model.format_version(),
                   " differs from the header's ", header.format_version);
  if (Size(model.metadata_keys()) != Size(model.metadata_values()))
    return Invalid(Size(model.metadata_keys()), " metadata keys but ",
                   Size(model.metadata_values()), " values");
  KILN_RETURN_IF_ERROR(VerifySections(file, header, model));
  KILN_RETURN_IF_ERROR(VerifyConstants(file, model));
  KILN_RETURN_IF_ERROR(VerifyExecutables(model));
  KILN_RETURN_IF_ERROR(VerifyFunctions(model));
  return OkStatus();
}

}  // namespace kiln::artifact
