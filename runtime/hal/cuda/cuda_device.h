//===- cuda_device.h - The cuda driver: PTX / cubin kernels on an NVIDIA GPU -===//
//
// Loads libcuda.so.1 at run time (nothing links it; no CUDA toolkit is
// needed to build or to run), uses the device's primary context and one
// non-blocking stream for every copy and launch, keeps freed device memory
// in a pool for reuse, and runs the executables kiln-compile writes for
// cuda-sm80 / cuda-sm90: "ptx" (the driver compiles it when it loads it) or
// "cubin-sm_NN" (assembled by ptxas at compile time; the GPU must be that
// architecture). Kernel parameters follow targets/cuda/CudaCodegen.cpp: per
// buffer its 1-d descriptor (pointer, pointer, offset, size, stride), then
// every dim of every buffer as int32; blocks of the kernel's `.maxntid`.
#ifndef KILN_RUNTIME_HAL_CUDA_CUDA_DEVICE_H_
#define KILN_RUNTIME_HAL_CUDA_CUDA_DEVICE_H_

#include <memory>

#include "runtime/hal/device.h"

namespace kiln::hal::cuda {

/// options.device_index: -1 or 0 is the first GPU, N the Nth in the
/// driver's order. Unavailable when there is no driver or no GPU;
/// InvalidArgument for an index out of range.
///
/// Environment: KILN_CUDA_DRIVER replaces libcuda.so.1; KILN_CUDA_VERBOSE=1
/// prints the chosen device to stderr.
StatusOr<std::unique_ptr<Device>> CreateCudaDevice(const DeviceOptions& options);

}  // namespace kiln::hal::cuda

#endif  // KILN_RUNTIME_HAL_CUDA_CUDA_DEVICE_H_
