//===- artifact_builder.cc - Write small .kiln artifacts in tests -----------===//
#include "test/unit/artifact_builder.h"

#include <cstring>
#include <fstream>

#include "runtime/artifact/checksum.h"
#include "runtime/artifact/format.h"

namespace kiln::testing {
namespace {

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

flatbuffers::Offset<fb::TensorSig> BuildSig(flatbuffers::FlatBufferBuilder& fbb, const SigSpec& s) {
  return fb::CreateTensorSig(fbb, fbb.CreateString(s.name), static_cast<fb::DType>(s.dtype),
                             fbb.CreateVector(s.shape), fbb.CreateVectorOfStrings(s.dim_names));
}

/// The metadata FlatBuffer, given the section ranges (fixed-size structs, so
/// the size does not depend on their values).
std::vector<uint8_t> BuildMetadata(const ModelSpec& spec, const std::vector<fb::Section>& ranges,
                                   const std::vector<uint64_t>& constant_offsets) {
  flatbuffers::FlatBufferBuilder fbb;
  const size_t num_exe = spec.executables.size();
  std::vector<flatbuffers::Offset<fb::SectionInfo>> sections;
  for (size_t i = 0; i < ranges.size(); ++i)
    sections.push_back(fb::CreateSectionInfo(
        fbb, i < num_exe ? fb::SectionKind::Executable : fb::SectionKind::Constants, &ranges[i]));

  std::vector<flatbuffers::Offset<fb::Executable>> executables;
  for (size_t e = 0; e < num_exe; ++e) {
    std::vector<flatbuffers::Offset<fb::Kernel>> kernels;
    for (const KernelSpec& k : spec.executables[e].kernels)
      kernels.push_back(fb::CreateKernel(fbb, fbb.CreateString(k.name), fbb.CreateVector(k.arg_ranks),
                                         k.distributable));
    executables.push_back(fb::CreateExecutable(fbb, fbb.CreateString(spec.executables[e].format),
                                               static_cast<int32_t>(e), fbb.CreateVector(kernels)));
  }

  std::vector<flatbuffers::Offset<fb::Constant>> constants;
  for (size_t c = 0; c < spec.constants.size(); ++c) {
    const ConstantSpec& cs = spec.constants[c];
    constants.push_back(fb::CreateConstant(fbb, fbb.CreateString(cs.name), static_cast<fb::DType>(cs.dtype),
                                           fbb.CreateVector(cs.shape), constant_offsets[c], cs.data.size()));
  }

  std::vector<flatbuffers::Offset<fb::Function>> functions;
  for (const FunctionSpec& f : spec.functions) {
    std::vector<flatbuffers::Offset<fb::TensorSig>> inputs, outputs;
    for (const SigSpec& s : f.inputs) inputs.push_back(BuildSig(fbb, s));
    for (const SigSpec& s : f.outputs) outputs.push_back(BuildSig(fbb, s));
    std::vector<flatbuffers::Offset<fb::Instr>> instrs;
    for (const InstrSpec& i : f.instrs)
      instrs.push_back(fb::CreateInstr(fbb, i.opcode, i.dst, fbb.CreateVector(i.operands),
                                       static_cast<fb::DType>(i.dtype)));
    functions.push_back(fb::CreateFunction(fbb, fbb.CreateString(f.name), fbb.CreateVector(inputs),
                                           fbb.CreateVector(outputs), f.num_slots, f.num_regs,
                                           fbb.CreateVector(f.input_slots), fbb.CreateVector(f.output_slots),
                                           fbb.CreateVector(instrs)));
  }
  std::vector<std::string> keys, values;
  for (const auto& [k, v] : spec.metadata) {
    keys.push_back(k);
    values.push_back(v);
  }
  const int32_t constants_section = spec.constants.empty() ? -1 : static_cast<int32_t>(num_exe);
  auto model = fb::CreateModel(fbb, artifact::kFormatVersion, fbb.CreateString(spec.target),
                               fbb.CreateString(spec.producer), fbb.CreateVector(sections),
                               fbb.CreateVector(executables), fbb.CreateVector(constants), constants_section,
                               fbb.CreateVector(functions), fbb.CreateVectorOfStrings(keys),
                               fbb.CreateVectorOfStrings(values));
  fb::FinishModelBuffer(fbb, model);
  return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

}  // namespace

std::vector<uint8_t> BuildArtifact(const ModelSpec& spec) {
  // Section payloads: one per executable, then the constants section.
  std::vector<std::vector<uint8_t>> payloads;
  for (const ExecutableSpec& e : spec.executables) payloads.push_back(e.binary);
  std::vector<uint64_t> constant_offsets;
  if (!spec.constants.empty()) {
    std::vector<uint8_t> section;
    for (size_t c = 0; c < spec.constants.size(); ++c) {
      uint64_t offset = AlignUp(section.size(), artifact::kConstantsAlignment);
      if (spec.misalign_constants && c > 0) offset += 16;
      constant_offsets.push_back(offset);
      section.resize(offset);
      section.insert(section.end(), spec.constants[c].data.begin(), spec.constants[c].data.end());
    }
    payloads.push_back(std::move(section));
  }

  // Pass 1 measures the metadata; pass 2 writes the real ranges.
  std::vector<fb::Section> ranges(payloads.size());
  const uint64_t metadata_size = BuildMetadata(spec, ranges, constant_offsets).size();
  uint64_t pos = artifact::kHeaderSize + metadata_size;
  for (size_t i = 0; i < payloads.size(); ++i) {
    bool is_constants = !spec.constants.empty() && i + 1 == payloads.size();
    pos = AlignUp(pos, is_constants ? artifact::kConstantsSectionAlignment : 64);
    if (is_constants && spec.misalign_constants_section) pos += 64;
    ranges[i] = fb::Section(pos, payloads[i].size(), artifact::Checksum(payloads[i]));
    pos += payloads[i].size();
  }
  std::vector<uint8_t> metadata = BuildMetadata(spec, ranges, constant_offsets);

  std::vector<uint8_t> file(pos, 0);
  artifact::FileHeader header{};
  std::memcpy(header.magic, artifact::kMagic, sizeof(header.magic));
  header.format_version = artifact::kFormatVersion;
  header.metadata_offset = artifact::kHeaderSize;
  header.metadata_size = metadata.size();
  header.metadata_checksum = artifact::Checksum(metadata);
  std::memcpy(file.data(), &header, sizeof(header));
  std::memcpy(file.data() + artifact::kHeaderSize, metadata.data(), metadata.size());
  for (size_t i = 0; i < payloads.size(); ++i)
    if (!payloads[i].empty()) std::memcpy(file.data() + ranges[i].offset(), payloads[i].data(), payloads[i].size());
  return file;
}

Status WriteArtifact(const std::string& path, const ModelSpec& spec) {
  std::vector<uint8_t> bytes = BuildArtifact(spec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return InternalError(StrCat("cannot write '", path, "'"));
  return OkStatus();
}

std::pair<uint64_t, uint64_t> MetadataRange(const std::vector<uint8_t>& file) {
  artifact::FileHeader header;
  std::memcpy(&header, file.data(), sizeof(header));
  return {header.metadata_offset, header.metadata_size};
}

void FixMetadataChecksum(std::vector<uint8_t>& file) {
  auto [offset, size] = MetadataRange(file);
  artifact::FileHeader header;
  std::memcpy(&header, file.data(), sizeof(header));
  header.metadata_checksum = artifact::Checksum(std::span<const uint8_t>(file).subspan(offset, size));
  std::memcpy(file.data(), &header, sizeof(header));
}

std::string HostElfFormat() {
#if defined(__aarch64__)
  return "elf-aarch64";
#else
  return "elf-x86_64";
#endif
}

InstrSpec ConstIndex(int dst, int64_t value) { return {fb::OpCode::ConstIndex, dst, {value}}; }
InstrSpec Dim(int dst, int slot, int64_t dim) { return {fb::OpCode::Dim, dst, {slot, dim}}; }
InstrSpec Arith(int dst, fb::ArithKind kind, int a, int b, int c) {
  InstrSpec i{fb::OpCode::Arith, dst, {static_cast<int64_t>(kind), a, b}};
  if (c >= 0) i.operands.push_back(c);
  return i;
}
InstrSpec Alloc(int dst, DType dtype, std::vector<int64_t> regs) {
  return {fb::OpCode::Alloc, dst, std::move(regs), dtype};
}
InstrSpec Constant(int dst, int constant) { return {fb::OpCode::Constant, dst, {constant}}; }
InstrSpec Dispatch(int executable, int kernel, std::vector<int64_t> slots) {
  InstrSpec i{fb::OpCode::Dispatch, -1, {executable, kernel}};
  i.operands.insert(i.operands.end(), slots.begin(), slots.end());
  return i;
}
InstrSpec Copy(int dst, int src) { return {fb::OpCode::Copy, dst, {src}}; }
InstrSpec Reshape(int dst, int src, std::vector<int64_t> regs) {
  InstrSpec i{fb::OpCode::Reshape, dst, {src}};
  i.operands.insert(i.operands.end(), regs.begin(), regs.end());
  return i;
}

}  // namespace kiln::testing
