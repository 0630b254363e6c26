//===- vulkan_loader.cc - dlopen libvulkan and fetch its entry points -----===//
#include "runtime/hal/vulkan/vulkan_loader.h"

#include <dlfcn.h>

#include <cstdlib>

#include "runtime/hal/shared_library.h"

namespace kiln::hal::vulkan {
namespace {

constexpr const char* kDefaultLibrary = "libvulkan.so.1";

StatusOr<void*> Open(const std::string& path) {
  if (void* handle = OpenSharedLibraryOnce(path)) return handle;
  return UnavailableError(StrCat("vulkan: ", path,
                                 " not found (install a Vulkan loader and driver, e.g. libvulkan1 mesa-vulkan-drivers)"));
}

}  // namespace

StatusOr<VulkanApi> LoadVulkanLibrary() {
  const char* env = std::getenv("KILN_VULKAN_LOADER");
  KILN_ASSIGN_OR_RETURN(void* handle, Open(env && *env ? env : kDefaultLibrary));
  VulkanApi api;
  api.vkGetInstanceProcAddr = reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(handle, "vkGetInstanceProcAddr"));
  if (!api.vkGetInstanceProcAddr)
    return UnavailableError("vulkan: the Vulkan loader has no vkGetInstanceProcAddr");
#define KILN_VK_LOAD(name) \
  api.name = reinterpret_cast<PFN_##name>(api.vkGetInstanceProcAddr(VK_NULL_HANDLE, #name));
  KILN_VK_GLOBAL_FUNCS(KILN_VK_LOAD)
#undef KILN_VK_LOAD
  if (!api.vkCreateInstance) return UnavailableError("vulkan: the Vulkan loader has no vkCreateInstance");
  return api;
}

Status VulkanApi::LoadInstance(VkInstance instance) {
#define KILN_VK_LOAD(name)                                                                 \
  name = reinterpret_cast<PFN_##name>(vkGetInstanceProcAddr(instance, #name));              \
  if (!name) return UnavailableError("vulkan: the Vulkan loader has no " #name " (Vulkan 1.1 is required)");
  KILN_VK_INSTANCE_FUNCS(KILN_VK_LOAD)
#undef KILN_VK_LOAD
  return OkStatus();
}

Status VulkanApi::LoadDevice(VkDevice device) {
#define KILN_VK_LOAD(name)                                                  \
  name = reinterpret_cast<PFN_##name>(vkGetDeviceProcAddr(device, #name));  \
  if (!name) return UnavailableError("vulkan: the Vulkan driver has no " #name);
  KILN_VK_DEVICE_FUNCS(KILN_VK_LOAD)
#undef KILN_VK_LOAD
  return OkStatus();
}

std::string VkResultName(VkResult result) {
  switch (result) {
#define KILN_VK_CASE(r) \
  case r:               \
    return #r;
    KILN_VK_CASE(VK_SUCCESS)
    KILN_VK_CASE(VK_NOT_READY)
    KILN_VK_CASE(VK_TIMEOUT)
    KILN_VK_CASE(VK_EVENT_SET)
    KILN_VK_CASE(VK_EVENT_RESET)
    KILN_VK_CASE(VK_INCOMPLETE)
    KILN_VK_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
    KILN_VK_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    KILN_VK_CASE(VK_ERROR_INITIALIZATION_FAILED)
    KILN_VK_CASE(VK_ERROR_DEVICE_LOST)
    KILN_VK_CASE(VK_ERROR_MEMORY_MAP_FAILED)
    KILN_VK_CASE(VK_ERROR_LAYER_NOT_PRESENT)
    KILN_VK_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
    KILN_VK_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
    KILN_VK_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
    KILN_VK_CASE(VK_ERROR_TOO_MANY_OBJECTS)
    KILN_VK_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
    KILN_VK_CASE(VK_ERROR_FRAGMENTED_POOL)
    KILN_VK_CASE(VK_ERROR_UNKNOWN)
    KILN_VK_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
    KILN_VK_CASE(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    KILN_VK_CASE(VK_ERROR_FRAGMENTATION)
    KILN_VK_CASE(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
    KILN_VK_CASE(VK_PIPELINE_COMPILE_REQUIRED)
    KILN_VK_CASE(VK_ERROR_INVALID_SHADER_NV)
#undef KILN_VK_CASE
    default:
      return StrCat("VkResult(", static_cast<int>(result), ")");
  }
}

Status VkCheck(VkResult result, std::string_view call) {
  if (result == VK_SUCCESS) return OkStatus();
  std::string message = StrCat("vulkan: ", call, ": ", VkResultName(result));
  switch (result) {
    case VK_ERROR_OUT_OF_HOST_MEMORY:
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    case VK_ERROR_OUT_OF_POOL_MEMORY:
    case VK_ERROR_FRAGMENTED_POOL:
    case VK_ERROR_TOO_MANY_OBJECTS:
      return ResourceExhaustedError(std::move(message));
    case VK_ERROR_DEVICE_LOST:
    case VK_ERROR_INCOMPATIBLE_DRIVER:
    case VK_ERROR_INITIALIZATION_FAILED:
      return UnavailableError(std::move(message));
    case VK_ERROR_FEATURE_NOT_PRESENT:
    case VK_ERROR_EXTENSION_NOT_PRESENT:
    case VK_ERROR_LAYER_NOT_PRESENT:
      return FailedPreconditionError(std::move(message));
    default:
      return InternalError(std::move(message));
  }
}

}  // namespace kiln::hal::vulkan
