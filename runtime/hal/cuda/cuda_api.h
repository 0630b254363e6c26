//===- cuda_api.h - The part of the CUDA driver API the cuda driver uses ---===//
//
// libcuda.so.1 is dlopened at run time: the build needs no CUDA toolkit and
// the binaries start where no NVIDIA driver is installed. These few types,
// constants and signatures are the driver API's stable C ABI (cuda.h of
// CUDA 12/13, `_v2` entry points where the driver exports them).
#ifndef KILN_RUNTIME_HAL_CUDA_CUDA_API_H_
#define KILN_RUNTIME_HAL_CUDA_CUDA_API_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/base/status.h"

namespace kiln::hal::cuda {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = uint64_t;
using CUcontext = struct CUctx_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
using CUstream = struct CUstream_st*;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0;
constexpr unsigned CU_STREAM_NON_BLOCKING = 1;

// X(name, symbol, return, params)
#define KILN_CUDA_FUNCS(X)                                                                        \
  X(cuInit, "cuInit", (unsigned flags))                                                           \
  X(cuGetErrorName, "cuGetErrorName", (CUresult error, const char** name))                         \
  X(cuDeviceGetCount, "cuDeviceGetCount", (int* count))                                           \
  X(cuDeviceGet, "cuDeviceGet", (CUdevice * device, int ordinal))                                  \
  X(cuDeviceGetName, "cuDeviceGetName", (char* name, int len, CUdevice dev))                       \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute", (int* value, int attrib, CUdevice dev))          \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", (CUcontext * ctx, CUdevice dev))         \
  X(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", (CUdevice dev))                     \
  X(cuCtxSetCurrent, "cuCtxSetCurrent", (CUcontext ctx))                                           \
  X(cuStreamCreate, "cuStreamCreate", (CUstream * stream, unsigned flags))                         \
  X(cuStreamDestroy, "cuStreamDestroy_v2", (CUstream stream))                                      \
  X(cuStreamSynchronize, "cuStreamSynchronize", (CUstream stream))                                 \
  X(cuMemAlloc, "cuMemAlloc_v2", (CUdeviceptr * ptr, size_t size))                                 \
  X(cuMemFree, "cuMemFree_v2", (CUdeviceptr ptr))                                                  \
  X(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2",                                                   \
    (CUdeviceptr dst, const void* src, size_t size, CUstream stream))                              \
  X(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2",                                                   \
    (void* dst, CUdeviceptr src, size_t size, CUstream stream))                                    \
  X(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2",                                                   \
    (CUdeviceptr dst, CUdeviceptr src, size_t size, CUstream stream))                              \
  X(cuModuleLoadData, "cuModuleLoadData", (CUmodule * module, const void* image))                  \
  X(cuModuleUnload, "cuModuleUnload", (CUmodule module))                                           \
  X(cuModuleGetFunction, "cuModuleGetFunction", (CUfunction * fn, CUmodule module, const char* name)) \
  X(cuFuncGetAttribute, "cuFuncGetAttribute", (int* value, int attrib, CUfunction fn))             \
  X(cuLaunchKernel, "cuLaunchKernel",                                                              \
    (CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, \
     unsigned shared_bytes, CUstream stream, void** params, void** extra))

struct CudaApi {
#define KILN_CUDA_MEMBER(name, symbol, params) CUresult(*name) params = nullptr;
  KILN_CUDA_FUNCS(KILN_CUDA_MEMBER)
#undef KILN_CUDA_MEMBER

  /// "cuda: <what>: CUDA_ERROR_... (N)", or OK for CUDA_SUCCESS.
  Status Check(CUresult result, std::string_view what) const;
};

/// dlopens libcuda.so.1 ($KILN_CUDA_DRIVER replaces it) and fetches every
/// entry point; Unavailable when the library or a symbol is missing.
StatusOr<CudaApi> LoadCudaDriver();

}  // namespace kiln::hal::cuda

#endif  // KILN_RUNTIME_HAL_CUDA_CUDA_API_H_
