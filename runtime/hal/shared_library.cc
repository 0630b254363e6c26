//===- shared_library.cc - A device library dlopened once per process -----===//
#include "runtime/hal/shared_library.h"

#include <dlfcn.h>

#include <map>
#include <mutex>

namespace kiln::hal {

void* OpenSharedLibraryOnce(const std::string& path) {
  static std::mutex mu;
  static auto* opened = new std::map<std::string, void*>();
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = opened->find(path); it != opened->end()) return it->second;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle) (*opened)[path] = handle;
  return handle;
}

}  // namespace kiln::hal
