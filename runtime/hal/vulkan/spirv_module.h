//===- spirv_module.h - Check SPIR-V words and list their entry points -----===//
//
// The driver hands SPIR-V to vkCreateShaderModule, and a driver may crash on
// words that are not SPIR-V or on an entry point that does not exist. So
// before that, ParseSpirvModule checks the module's structure (header, every
// instruction's word count, a body for every entry point) and
// SpirvModule::CheckKernel that a kernel name is a GLCompute entry point.
#ifndef KILN_RUNTIME_HAL_VULKAN_SPIRV_MODULE_H_
#define KILN_RUNTIME_HAL_VULKAN_SPIRV_MODULE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"

namespace kiln::hal::vulkan {

/// One OpEntryPoint.
struct SpirvEntryPoint {
  uint32_t execution_model = 0;  // 5 = GLCompute
  std::string name;
};

/// A structurally sound SPIR-V module: its words (copied, so 4-byte aligned)
/// and entry points.
struct SpirvModule {
  std::vector<uint32_t> words;
  std::vector<SpirvEntryPoint> entry_points;

  /// OkStatus when `name` is a GLCompute entry point; NotFound
  /// "kernel 'x' not in the SPIR-V module" otherwise.
  Status CheckKernel(std::string_view name) const;
};

/// InvalidArgument for anything that is not little-endian SPIR-V: size not a
/// multiple of 4, bad magic, a zero or overlong instruction word count, an
/// unterminated entry point name, an entry point without an OpFunction, a
/// module that does not end with OpFunctionEnd.
StatusOr<SpirvModule> ParseSpirvModule(std::span<const uint8_t> binary);

}  // namespace kiln::hal::vulkan

#endif  // KILN_RUNTIME_HAL_VULKAN_SPIRV_MODULE_H_
