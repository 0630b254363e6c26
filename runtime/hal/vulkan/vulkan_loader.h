//===- vulkan_loader.h - libvulkan.so.1 opened at run time, not linked -----===//
//
// The runtime must start on machines without a Vulkan loader, so nothing
// links libvulkan: LoadVulkanLibrary() dlopens it once per process and every
// entry point is fetched through vkGetInstanceProcAddr / vkGetDeviceProcAddr
// into a VulkanApi table. Compiled with VK_NO_PROTOTYPES, so calling a vk*
// function that was not loaded is a compile error, not a link error.
#ifndef KILN_RUNTIME_HAL_VULKAN_VULKAN_LOADER_H_
#define KILN_RUNTIME_HAL_VULKAN_VULKAN_LOADER_H_

#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan.h>

#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace kiln::hal::vulkan {

// Entry points by level. Optional ones (absent from a 1.0 loader) are null.
#define KILN_VK_GLOBAL_FUNCS(X) \
  X(vkCreateInstance)           \
  X(vkEnumerateInstanceVersion) \
  X(vkEnumerateInstanceExtensionProperties)

#define KILN_VK_INSTANCE_FUNCS(X)             \
  X(vkDestroyInstance)                        \
  X(vkEnumeratePhysicalDevices)               \
  X(vkGetPhysicalDeviceProperties)            \
  X(vkGetPhysicalDeviceProperties2)           \
  X(vkGetPhysicalDeviceFeatures2)             \
  X(vkGetPhysicalDeviceQueueFamilyProperties) \
  X(vkGetPhysicalDeviceMemoryProperties)      \
  X(vkEnumerateDeviceExtensionProperties)     \
  X(vkCreateDevice)                           \
  X(vkGetDeviceProcAddr)

#define KILN_VK_DEVICE_FUNCS(X)      \
  X(vkDestroyDevice)                 \
  X(vkGetDeviceQueue)                \
  X(vkDeviceWaitIdle)                \
  X(vkQueueSubmit)                   \
  X(vkCreateBuffer)                  \
  X(vkDestroyBuffer)                 \
  X(vkGetBufferMemoryRequirements)   \
  X(vkAllocateMemory)                \
  X(vkFreeMemory)                    \
  X(vkBindBufferMemory)              \
  X(vkMapMemory)                     \
  X(vkCreateShaderModule)            \
  X(vkDestroyShaderModule)           \
  X(vkCreateDescriptorSetLayout)     \
  X(vkDestroyDescriptorSetLayout)    \
  X(vkCreatePipelineLayout)          \
  X(vkDestroyPipelineLayout)         \
  X(vkCreatePipelineCache)           \
  X(vkDestroyPipelineCache)          \
  X(vkGetPipelineCacheData)          \
  X(vkCreateComputePipelines)        \
  X(vkDestroyPipeline)               \
  X(vkCreateDescriptorPool)          \
  X(vkDestroyDescriptorPool)         \
  X(vkResetDescriptorPool)           \
  X(vkAllocateDescriptorSets)        \
  X(vkUpdateDescriptorSets)          \
  X(vkCreateCommandPool)             \
  X(vkDestroyCommandPool)            \
  X(vkAllocateCommandBuffers)        \
  X(vkBeginCommandBuffer)            \
  X(vkEndCommandBuffer)              \
  X(vkResetCommandBuffer)            \
  X(vkCmdBindPipeline)               \
  X(vkCmdBindDescriptorSets)         \
  X(vkCmdPushConstants)              \
  X(vkCmdDispatch)                   \
  X(vkCmdCopyBuffer)                 \
  X(vkCmdPipelineBarrier)            \
  X(vkCreateFence)                   \
  X(vkDestroyFence)                  \
  X(vkResetFences)                   \
  X(vkWaitForFences)

/// Function pointers, filled level by level. One table per device: instance
/// and device entry points depend on the VkInstance / VkDevice.
struct VulkanApi {
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
#define KILN_VK_DECLARE(name) PFN_##name name = nullptr;
  KILN_VK_GLOBAL_FUNCS(KILN_VK_DECLARE)
  KILN_VK_INSTANCE_FUNCS(KILN_VK_DECLARE)
  KILN_VK_DEVICE_FUNCS(KILN_VK_DECLARE)
#undef KILN_VK_DECLARE

  /// Fills the instance-level entries; Unavailable names a missing one.
  Status LoadInstance(VkInstance instance);
  /// Fills the device-level entries (after LoadInstance).
  Status LoadDevice(VkDevice device);
};

/// dlopens the loader (once per path and process; it stays loaded) and returns a table
/// with vkGetInstanceProcAddr and the global entry points. The library is
/// $KILN_VULKAN_LOADER when set, else libvulkan.so.1. Without it:
/// Unavailable "vulkan: libvulkan.so.1 not found (install ...)".
StatusOr<VulkanApi> LoadVulkanLibrary();

/// "VK_ERROR_OUT_OF_DEVICE_MEMORY", or "VkResult(-13)" for unknown values.
std::string VkResultName(VkResult result);

/// OkStatus() for VK_SUCCESS, else "vulkan: <call>: <VkResult name>" with a
/// code that fits (ResourceExhausted for out-of-memory, Unavailable for a
/// lost device, Internal otherwise).
Status VkCheck(VkResult result, std::string_view call);

}  // namespace kiln::hal::vulkan

#endif  // KILN_RUNTIME_HAL_VULKAN_VULKAN_LOADER_H_
