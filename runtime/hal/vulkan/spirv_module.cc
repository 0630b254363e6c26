//===- spirv_module.cc - Check SPIR-V words and list their entry points ----===//
#include "runtime/hal/vulkan/spirv_module.h"

#include <cstring>
#include <set>

namespace kiln::hal::vulkan {
namespace {

constexpr uint32_t kMagic = 0x07230203;
constexpr uint32_t kHeaderWords = 5;
constexpr uint32_t kOpEntryPoint = 15;
constexpr uint32_t kOpFunction = 54;
constexpr uint32_t kOpFunctionEnd = 56;
constexpr uint32_t kGLCompute = 5;

Status Malformed(std::string_view what) {
  return InvalidArgumentError(StrCat("vulkan: malformed SPIR-V: ", what));
}

/// The literal string in words [begin, end): bytes up to the first NUL,
/// which must lie within those words.
StatusOr<std::string> LiteralString(std::span<const uint32_t> words, size_t at) {
  std::string s;
  for (size_t w = 0; w < words.size(); ++w) {
    for (int b = 0; b < 4; ++b) {
      char c = static_cast<char>((words[w] >> (8 * b)) & 0xff);  // SPIR-V strings are little-endian
      if (c == '\0') return s;
      s.push_back(c);
    }
  }
  return Malformed(StrCat("entry point name at word ", at, " is not NUL-terminated"));
}

}  // namespace

Status SpirvModule::CheckKernel(std::string_view name) const {
  for (const SpirvEntryPoint& ep : entry_points) {
    if (ep.name != name) continue;
    if (ep.execution_model == kGLCompute) return OkStatus();
  }
  std::string present;
  for (const SpirvEntryPoint& ep : entry_points)
    if (ep.execution_model == kGLCompute) present += (present.empty() ? "" : ", ") + ep.name;
  return NotFoundError(StrCat("vulkan: kernel '", name, "' not in the SPIR-V module (GLCompute entry points: ",
                              present.empty() ? "none" : present, ")"));
}

StatusOr<SpirvModule> ParseSpirvModule(std::span<const uint8_t> binary) {
  if (binary.size() % 4 != 0)
    return InvalidArgumentError(StrCat("vulkan: SPIR-V size ", binary.size(), " is not a multiple of 4"));
  if (binary.size() < kHeaderWords * 4)
    return InvalidArgumentError(StrCat("vulkan: SPIR-V of ", binary.size(), " bytes is shorter than its header"));
  SpirvModule module;
  module.words.resize(binary.size() / 4);
  std::memcpy(module.words.data(), binary.data(), binary.size());
  const std::vector<uint32_t>& w = module.words;
  if (w[0] != kMagic) {
    if (w[0] == __builtin_bswap32(kMagic)) return InvalidArgumentError("vulkan: big-endian SPIR-V is not supported");
    return InvalidArgumentError(StrCat("vulkan: not SPIR-V (magic 0x", std::hex, w[0], ", expected 0x", kMagic, ")"));
  }

  std::set<uint32_t> functions;
  std::vector<std::pair<uint32_t, size_t>> entry_functions;  // (function id, word index)
  uint32_t last_opcode = 0;
  for (size_t i = kHeaderWords; i < w.size();) {
    const uint32_t count = w[i] >> 16, opcode = w[i] & 0xffff;
    if (count == 0) return Malformed(StrCat("instruction at word ", i, " has word count 0"));
    if (count > w.size() - i)
      return Malformed(StrCat("instruction at word ", i, " (opcode ", opcode, ", ", count,
                              " words) runs past the end of the module (truncated?)"));
    std::span<const uint32_t> inst(w.data() + i, count);
    if (opcode == kOpEntryPoint) {
      if (count < 4) return Malformed(StrCat("OpEntryPoint at word ", i, " has ", count, " words"));
      KILN_ASSIGN_OR_RETURN(std::string name, LiteralString(inst.subspan(3), i));
      module.entry_points.push_back({inst[1], std::move(name)});
      entry_functions.emplace_back(inst[2], i);
    } else if (opcode == kOpFunction) {
      if (count < 5) return Malformed(StrCat("OpFunction at word ", i, " has ", count, " words"));
      functions.insert(inst[2]);
    }
    last_opcode = opcode;
    i += count;
  }
  for (const auto& [id, at] : entry_functions)
    if (!functions.count(id))
      return Malformed(StrCat("entry point at word ", at, " names function %", id, ", which has no body (truncated?)"));
  if (!entry_functions.empty() && last_opcode != kOpFunctionEnd)
    return Malformed("module does not end with OpFunctionEnd (truncated?)");
  return module;
}

}  // namespace kiln::hal::vulkan
