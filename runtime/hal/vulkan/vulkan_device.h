//===- vulkan_device.h - The vulkan driver: SPIR-V kernels on a Vulkan GPU -===//
//
// Loads libvulkan.so.1 at run time (nothing links it), picks a physical
// device, and runs "spirv" executables whose kernels follow the ABI in
// runtime/hal/README.md: one storage buffer per argument at set 0, binding j,
// and the arguments' shapes as int32 push constants. Dispatches are recorded
// into command buffers (a barrier between consecutive ones) and submitted
// when the host needs a result, or every 64 dispatches.
#ifndef KILN_RUNTIME_HAL_VULKAN_VULKAN_DEVICE_H_
#define KILN_RUNTIME_HAL_VULKAN_VULKAN_DEVICE_H_

#include <memory>

#include "runtime/hal/device.h"

namespace kiln::hal::vulkan {

/// options.device_index: -1 picks the first discrete GPU, else the first
/// integrated one, else the first device; N >= 0 is the Nth device in
/// vkEnumeratePhysicalDevices order. Unavailable when there is no loader or
/// no device; InvalidArgument for an index out of range.
///
/// Environment: KILN_VULKAN_VERBOSE=1 prints the chosen device to stderr;
/// KILN_VULKAN_LOADER replaces libvulkan.so.1; KILN_VULKAN_FORCE_STAGING=1
/// uses the staging-buffer path of discrete GPUs even where device memory is
/// host-visible (for tests).
StatusOr<std::unique_ptr<Device>> CreateVulkanDevice(const DeviceOptions& options);

}  // namespace kiln::hal::vulkan

#endif  // KILN_RUNTIME_HAL_VULKAN_VULKAN_DEVICE_H_
