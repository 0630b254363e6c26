//===- elf_module.cc - Load an ELF shared object from memory ---------------===//
#include "runtime/hal/cpu/elf_module.h"

#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln::hal::cpu {
namespace {

#if defined(__x86_64__)
constexpr std::string_view kHostFormat = "elf-x86_64";
#elif defined(__aarch64__)
constexpr std::string_view kHostFormat = "elf-aarch64";
#else
constexpr std::string_view kHostFormat = "";
#endif

int MachineOf(std::string_view format) {
  if (format == "elf-x86_64") return EM_X86_64;
  if (format == "elf-aarch64") return EM_AARCH64;
  return -1;
}

/// dlerror() text on one line (it may be null, or contain newlines).
std::string DlError() {
  const char* e = dlerror();
  std::string s = e ? e : "unknown dynamic loader error";
  for (char& c : s)
    if (c == '\n') c = ' ';
  return s;
}

Status CheckElfHeader(std::span<const uint8_t> elf, std::string_view format) {
  if (elf.size() < sizeof(Elf64_Ehdr) || std::memcmp(elf.data(), ELFMAG, SELFMAG) != 0)
    return InvalidArgumentError(StrCat("cpu driver: ", format, " executable is not an ELF file"));
  Elf64_Ehdr header;
  std::memcpy(&header, elf.data(), sizeof(header));
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB)
    return InvalidArgumentError(StrCat("cpu driver: ", format, " executable is not 64-bit little-endian ELF"));
  if (header.e_type != ET_DYN)
    return InvalidArgumentError(StrCat("cpu driver: ", format, " executable is not a shared object"));
  if (header.e_machine != MachineOf(format))
    return InvalidArgumentError(StrCat("cpu driver: executable says ", format,
                                       " but its ELF machine is ", header.e_machine));
  return OkStatus();
}

}  // namespace

bool IsElfFormat(std::string_view format) { return MachineOf(format) != -1; }
bool IsHostElfFormat(std::string_view format) { return !kHostFormat.empty() && format == kHostFormat; }

StatusOr<std::unique_ptr<ElfModule>> ElfModule::Load(std::span<const uint8_t> elf,
                                                     std::string_view format) {
  if (!IsElfFormat(format))
    return UnimplementedError(StrCat("cpu driver: executable format '", format, "' is not supported"));
  KILN_RETURN_IF_ERROR(CheckElfHeader(elf, format));
  if (!IsHostElfFormat(format))
    return UnimplementedError(StrCat("cpu driver: cannot run ", format, " executables on this ",
                                     kHostFormat.empty() ? "unknown" : kHostFormat.substr(4), " host"));
  int fd = memfd_create("kiln-executable", MFD_CLOEXEC);
  if (fd < 0) return InternalError(StrCat("cpu driver: memfd_create failed: ", std::strerror(errno)));
  size_t written = 0;
  while (written < elf.size()) {
    ssize_t n = ::write(fd, elf.data() + written, elf.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      return InternalError(StrCat("cpu driver: writing the executable to a memfd failed: ", std::strerror(err)));
    }
    written += static_cast<size_t>(n);
  }
  std::string path = StrCat("/proc/self/fd/", fd);
  dlerror();  // clear
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    std::string error = DlError();
    ::close(fd);
    return InvalidArgumentError(StrCat("cpu driver: cannot load ", format, " executable: ", error));
  }
  return std::unique_ptr<ElfModule>(new ElfModule(fd, handle));
}

ElfModule::~ElfModule() {
  dlclose(handle_);
  ::close(fd_);
}

StatusOr<void*> ElfModule::Symbol(const std::string& name) const {
  dlerror();
  void* sym = dlsym(handle_, name.c_str());
  if (!sym) return NotFoundError(StrCat("cpu driver: kernel '", name, "' is not exported by the executable"));
  return sym;
}

}  // namespace kiln::hal::cpu
