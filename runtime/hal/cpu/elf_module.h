//===- elf_module.h - Load an ELF shared object from memory ----------------===//
#ifndef KILN_RUNTIME_HAL_CPU_ELF_MODULE_H_
#define KILN_RUNTIME_HAL_CPU_ELF_MODULE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace kiln::hal::cpu {

/// A shared object loaded from bytes: written to an anonymous memfd and
/// dlopen-ed through /proc/self/fd/N (RTLD_NOW | RTLD_LOCAL), so nothing
/// touches the file system. The fd stays open while the module is loaded so
/// that its /proc path cannot be reused by another module meanwhile (glibc
/// matches already-loaded objects by path).
class ElfModule {
 public:
  /// Checks the ELF header (64-bit, little-endian, shared object, machine of
  /// `format` == this host) before handing the bytes to the dynamic loader.
  static StatusOr<std::unique_ptr<ElfModule>> Load(std::span<const uint8_t> elf,
                                                   std::string_view format);
  ~ElfModule();
  ElfModule(const ElfModule&) = delete;
  ElfModule& operator=(const ElfModule&) = delete;

  /// Address of an exported symbol; NotFound when it is missing.
  StatusOr<void*> Symbol(const std::string& name) const;

 private:
  ElfModule(int fd, void* handle) : fd_(fd), handle_(handle) {}
  int fd_;
  void* handle_;
};

/// True for the ELF formats this host can run ("elf-x86_64" on x86-64).
bool IsHostElfFormat(std::string_view format);
/// True for any ELF format the cpu driver knows ("elf-x86_64", "elf-aarch64").
bool IsElfFormat(std::string_view format);

}  // namespace kiln::hal::cpu

#endif  // KILN_RUNTIME_HAL_CPU_ELF_MODULE_H_
