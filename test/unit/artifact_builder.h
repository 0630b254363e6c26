//===- artifact_builder.h - Write small .kiln artifacts in tests ------------===//
//
// A plain description of a model (ModelSpec) serialized into a complete
// artifact: header, FlatBuffer metadata, executable sections and a 4096-
// aligned constants section, all with correct xxHash64 checksums. The
// builder does not validate anything, so tests can describe broken models
// and check that the runtime's verifier rejects them.
#ifndef KILN_TEST_UNIT_ARTIFACT_BUILDER_H_
#define KILN_TEST_UNIT_ARTIFACT_BUILDER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "runtime/artifact/kiln_generated.h"
#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace kiln::testing {

struct SigSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;               // -1 = dynamic
  std::vector<std::string> dim_names = {};  // empty, or one per dim
};

struct InstrSpec {
  fb::OpCode opcode = fb::OpCode::ConstIndex;
  int dst = -1;
  std::vector<int64_t> operands;
  DType dtype = DType::kF32;
};

struct FunctionSpec {
  std::string name = "main";
  std::vector<SigSpec> inputs;
  std::vector<SigSpec> outputs;
  int num_slots = 0;
  int num_regs = 0;
  std::vector<int> input_slots;
  std::vector<int> output_slots;
  std::vector<InstrSpec> instrs;
};

struct KernelSpec {
  std::string name;
  std::vector<int> arg_ranks;
  bool distributable = false;
};

struct ExecutableSpec {
  std::string format;  // HostElfFormat() for the cpu driver
  std::vector<uint8_t> binary;
  std::vector<KernelSpec> kernels;
};

struct ConstantSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

struct ModelSpec {
  std::string target = "host";
  std::string producer = "kiln-test";
  std::vector<ExecutableSpec> executables;
  std::vector<ConstantSpec> constants;
  std::vector<FunctionSpec> functions;
  std::vector<std::pair<std::string, std::string>> metadata;
  // Layout knobs, only changed by tests of the verifier.
  bool misalign_constants_section = false;  // start it 64 bytes past a page
  bool misalign_constants = false;          // constants after the first at +16
};

/// The bytes of a complete .kiln file for `spec`.
std::vector<uint8_t> BuildArtifact(const ModelSpec& spec);
/// BuildArtifact + write to `path`.
Status WriteArtifact(const std::string& path, const ModelSpec& spec);
/// Recomputes the header's metadata checksum after a test edited metadata bytes.
void FixMetadataChecksum(std::vector<uint8_t>& file);
/// Offset and size of the metadata (from the header).
std::pair<uint64_t, uint64_t> MetadataRange(const std::vector<uint8_t>& file);

/// "elf-x86_64" or "elf-aarch64", whichever this host runs.
std::string HostElfFormat();

// Instruction shorthands, operands as documented in kiln.fbs.
InstrSpec ConstIndex(int dst_reg, int64_t value);
InstrSpec Dim(int dst_reg, int slot, int64_t dim);
InstrSpec Arith(int dst_reg, fb::ArithKind kind, int reg_a, int reg_b, int reg_c = -1);
InstrSpec Alloc(int dst_slot, DType dtype, std::vector<int64_t> dim_regs);
InstrSpec Constant(int dst_slot, int constant);
InstrSpec Dispatch(int executable, int kernel, std::vector<int64_t> arg_slots);
InstrSpec Copy(int dst_slot, int src_slot);
InstrSpec Reshape(int dst_slot, int src_slot, std::vector<int64_t> dim_regs);

}  // namespace kiln::testing

#endif  // KILN_TEST_UNIT_ARTIFACT_BUILDER_H_
