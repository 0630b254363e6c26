//===- null_device.h - A driver that implements nothing --------------------===//
//
// The starting point of a new driver: copy null/, rename, and fill in the
// methods one at a time. Every method answers Unimplemented, so the executor
// reports exactly which capability is missing.
#ifndef KILN_RUNTIME_HAL_NULL_NULL_DEVICE_H_
#define KILN_RUNTIME_HAL_NULL_NULL_DEVICE_H_

#include <memory>

#include "runtime/hal/device.h"

namespace kiln::hal::null {

/// Creates the null device; never fails.
StatusOr<std::unique_ptr<Device>> CreateNullDevice(const DeviceOptions& options);

}  // namespace kiln::hal::null

#endif  // KILN_RUNTIME_HAL_NULL_NULL_DEVICE_H_
