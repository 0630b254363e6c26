//===- registry.cc - Driver registry with the built-in drivers -------------===//
#include "runtime/hal/registry.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "runtime/hal/cpu/cpu_device.h"
#include "runtime/hal/cuda/cuda_device.h"
#include "runtime/hal/null/null_device.h"
#ifdef KILN_HAVE_VULKAN
#include "runtime/hal/vulkan/vulkan_device.h"
#endif

namespace kiln::hal {

DriverRegistry& DriverRegistry::Global() {
  static DriverRegistry* registry = [] {
    auto* r = new DriverRegistry();
    // New drivers add one line here (guarded by their CMake option);
    // `indexed` ones accept "name:N".
    r->Register("cpu", cpu::CreateCpuDevice).IgnoreError();
    r->Register("null", null::CreateNullDevice).IgnoreError();
    r->Register("cuda", cuda::CreateCudaDevice, /*indexed=*/true).IgnoreError();
#ifdef KILN_HAVE_VULKAN
    r->Register("vulkan", vulkan::CreateVulkanDevice, /*indexed=*/true).IgnoreError();
#endif
    return r;
  }();
  return *registry;
}

Status DriverRegistry::Register(std::string name, DeviceFactory factory, bool indexed) {
  for (const Driver& existing : drivers_)
    if (existing.name == name) return AlreadyExistsError(StrCat("driver '", name, "' is already registered"));
  drivers_.push_back({std::move(name), std::move(factory), indexed});
  return OkStatus();
}

StatusOr<std::unique_ptr<Device>> DriverRegistry::Create(std::string_view name,
                                                         const DeviceOptions& options) const {
  // "vulkan:1" -> driver "vulkan", device 1.
  std::string_view driver_name = name;
  std::optional<std::string_view> index_text;
  if (size_t colon = name.find(':'); colon != std::string_view::npos) {
    driver_name = name.substr(0, colon);
    index_text = name.substr(colon + 1);
  }
  for (const Driver& driver : drivers_) {
    if (driver.name != driver_name) continue;
    if (!index_text) return driver.factory(options);
    int index = -1;
    const char* end = index_text->data() + index_text->size();
    auto [ptr, ec] = std::from_chars(index_text->data(), end, index);
    if (index_text->empty() || ec != std::errc() || ptr != end || index < 0)
      return InvalidArgumentError(StrCat("invalid device '", name, "': '", *index_text,
                                         "' is not a device index (use ", driver_name, ":0, ", driver_name, ":1, ...)"));
    if (!driver.indexed && index != 0)
      return InvalidArgumentError(StrCat("invalid device '", name, "': the ", driver_name, " driver has one device (",
                                         driver_name, ":0)"));
    DeviceOptions indexed = options;
    indexed.device_index = index;
    return driver.factory(indexed);
  }
  std::string available;
  for (const std::string& n : Names()) available += (available.empty() ? "" : ", ") + n;
  return NotFoundError(StrCat("unknown device '", name, "' (available: ", available, ")"));
}

std::vector<std::string> DriverRegistry::Names() const {
  std::vector<std::string> names;
  for (const Driver& driver : drivers_) names.push_back(driver.name);
  std::sort(names.begin(), names.end());
  return names;
}

StatusOr<std::unique_ptr<Device>> CreateDevice(std::string_view name, const DeviceOptions& options) {
  return DriverRegistry::Global().Create(name, options);
}

}  // namespace kiln::hal
