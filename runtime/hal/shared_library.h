//===- shared_library.h - A device library dlopened once per process ------===//
//
// GPU drivers (libvulkan.so.1, libcuda.so.1) are opened at run time, never
// linked, so the tools start where they are missing. Each is opened once and
// kept loaded (drivers register exit handlers; reopening per device would
// only cost time). A failure is not remembered, so a later call may find a
// newly set path.
#ifndef KILN_RUNTIME_HAL_SHARED_LIBRARY_H_
#define KILN_RUNTIME_HAL_SHARED_LIBRARY_H_

#include <string>

namespace kiln::hal {

/// The dlopen handle of `path` (RTLD_NOW | RTLD_LOCAL), or null when it
/// cannot be opened.
void* OpenSharedLibraryOnce(const std::string& path);

}  // namespace kiln::hal

#endif  // KILN_RUNTIME_HAL_SHARED_LIBRARY_H_
