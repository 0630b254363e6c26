//===- registry.h - Pick a driver by name ("--device=cpu") -----------------===//
#ifndef KILN_RUNTIME_HAL_REGISTRY_H_
#define KILN_RUNTIME_HAL_REGISTRY_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/hal/device.h"

namespace kiln::hal {

using DeviceFactory = std::function<StatusOr<std::unique_ptr<Device>>(const DeviceOptions&)>;

/// Name -> factory. The built-in drivers (cpu, null, and whichever optional
/// ones were built) are registered explicitly when the registry is first
/// used, not through static initializers that a static link could drop.
class DriverRegistry {
 public:
  /// The process-wide registry with the built-in drivers in it.
  static DriverRegistry& Global();

  /// Adds a driver; AlreadyExists when the name is taken. `indexed` drivers
  /// see several devices and accept "name:N" (DeviceOptions::device_index).
  Status Register(std::string name, DeviceFactory factory, bool indexed = false);
  /// Creates a device from "driver" or "driver:N" (N >= 0 becomes
  /// options.device_index); NotFound names the available drivers,
  /// InvalidArgument a bad N or an index for a driver with one device.
  StatusOr<std::unique_ptr<Device>> Create(std::string_view name, const DeviceOptions& options) const;
  /// Registered driver names, sorted.
  std::vector<std::string> Names() const;

 private:
  struct Driver {
    std::string name;
    DeviceFactory factory;
    bool indexed = false;
  };
  std::vector<Driver> drivers_;
};

/// Shorthand for DriverRegistry::Global().Create(name, options).
StatusOr<std::unique_ptr<Device>> CreateDevice(std::string_view name,
                                               const DeviceOptions& options = {});

}  // namespace kiln::hal

#endif  // KILN_RUNTIME_HAL_REGISTRY_H_
