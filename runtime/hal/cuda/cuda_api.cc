//===- cuda_api.cc - dlopen libcuda and fetch its entry points -------------===//
#include "runtime/hal/cuda/cuda_api.h"

#include <dlfcn.h>

#include <cstdlib>

#include "runtime/hal/shared_library.h"

namespace kiln::hal::cuda {
namespace {

constexpr const char* kDefaultLibrary = "libcuda.so.1";

StatusOr<void*> Open(const std::string& path) {
  if (void* handle = OpenSharedLibraryOnce(path)) return handle;
  return UnavailableError(StrCat("cuda: ", path, " not found (no NVIDIA driver is installed on this machine)"));
}

}  // namespace

Status CudaApi::Check(CUresult result, std::string_view what) const {
  if (result == CUDA_SUCCESS) return OkStatus();
  const char* name = nullptr;
  if (!cuGetErrorName || cuGetErrorName(result, &name) != CUDA_SUCCESS || !name) {
    // The stub library of a toolkit without a driver cannot name its errors.
    switch (result) {
      case 34: name = "CUDA_ERROR_STUB_LIBRARY (a toolkit's stub libcuda, not a driver)"; break;
      case 35: name = "CUDA_ERROR_INSUFFICIENT_DRIVER"; break;
      case 100: name = "CUDA_ERROR_NO_DEVICE"; break;
      default: name = "CUDA error";
    }
  }
  std::string message = StrCat("cuda: ", what, ": ", name, " (", result, ")");
  // Out of memory is the caller's to handle; the rest means the device or
  // the driver cannot do it at all.
  if (result == 2) return ResourceExhaustedError(std::move(message));
  return UnavailableError(std::move(message));
}

StatusOr<CudaApi> LoadCudaDriver() {
  const char* env = std::getenv("KILN_CUDA_DRIVER");
  KILN_ASSIGN_OR_RETURN(void* handle, Open(env && *env ? env : kDefaultLibrary));
  CudaApi api;
#define KILN_CUDA_LOAD(name, symbol, params)                                           \
  api.name = reinterpret_cast<CUresult(*) params>(dlsym(handle, symbol));              \
  if (!api.name) return UnavailableError("cuda: the NVIDIA driver has no " symbol " (a driver for CUDA 12 or later is needed)");
  KILN_CUDA_FUNCS(KILN_CUDA_LOAD)
#undef KILN_CUDA_LOAD
  return api;
}

}  // namespace kiln::hal::cuda
