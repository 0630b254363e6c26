//===- registry.cc - Driver registry with the built-in drivers -------------===//
#include "runtime/hal/registry.h"

#include <algorithm>

#include "runtime/hal/cpu/cpu_device.h"
#include "runtime/hal/null/null_device.h"

namespace kiln::hal {

DriverRegistry& DriverRegistry::Global() {
  static DriverRegistry* registry = [] {
    auto* r = new DriverRegistry();
    // New drivers add one line here (guarded by their CMake option).
    r->Register("cpu", cpu::CreateCpuDevice).IgnoreError();
    r->Register("null", null::CreateNullDevice).IgnoreError();
    return r;
  }();
  return *registry;
}

Status DriverRegistry::Register(std::string name, DeviceFactory factory) {
  for (const auto& [existing, unused] : drivers_)
    if (existing == name) return AlreadyExistsError(StrCat("driver '", name, "' is already registered"));
  drivers_.emplace_back(std::move(name), std::move(factory));
  return OkStatus();
}

StatusOr<std::unique_ptr<Device>> DriverRegistry::Create(std::string_view name,
                                                         const DeviceOptions& options) const {
  for (const auto& [driver, factory] : drivers_)
    if (driver == name) return factory(options);
  std::string available;
  for (const std::string& n : Names()) available += (available.empty() ? "" : ", ") + n;
  return NotFoundError(StrCat("unknown device '", name, "' (available: ", available, ")"));
}

std::vector<std::string> DriverRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, unused] : drivers_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

StatusOr<std::unique_ptr<Device>> CreateDevice(std::string_view name, const DeviceOptions& options) {
  return DriverRegistry::Global().Create(name, options);
}

}  // namespace kiln::hal
