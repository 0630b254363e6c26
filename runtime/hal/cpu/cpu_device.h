//===- cpu_device.h - The cpu driver: host memory, ELF kernels, thread pool ===//
#ifndef KILN_RUNTIME_HAL_CPU_CPU_DEVICE_H_
#define KILN_RUNTIME_HAL_CPU_CPU_DEVICE_H_

#include <memory>

#include "runtime/hal/device.h"

namespace kiln::hal::cpu {

/// Kernel entry point of a cpu executable (see Kernel in kiln.fbs). args[i]
/// points to an MLIR memref descriptor
///   { void *allocated; void *aligned; int64_t offset;
///     int64_t sizes[rank]; int64_t strides[rank]; }
/// with contiguous row-major strides and offset 0.
using KernelFn = void (*)(void** args, int64_t workgroup_id, int64_t workgroup_count);

/// Buffers are 64-byte aligned host memory; executables are "elf-x86_64" /
/// "elf-aarch64" shared objects (the host's kind only); a dispatch runs its
/// workgroups on a pool of options.threads threads and returns when they are
/// done, so Wait() has nothing to wait for.
StatusOr<std::unique_ptr<Device>> CreateCpuDevice(const DeviceOptions& options);

}  // namespace kiln::hal::cpu

#endif  // KILN_RUNTIME_HAL_CPU_CPU_DEVICE_H_
