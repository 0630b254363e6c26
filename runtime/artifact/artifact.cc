//===- artifact.cc - Map and verify a .kiln file ---------------------------===//
#include "runtime/artifact/artifact.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runtime/artifact/format.h"
#include "runtime/artifact/verifier.h"

namespace kiln::artifact {

StatusOr<std::unique_ptr<Artifact>> Artifact::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError(StrCat("artifact: cannot open '", path, "': ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError(StrCat("artifact: '", path, "' is not a regular file"));
  }
  size_t size = static_cast<size_t>(st.st_size);
  // mmap of an empty file fails; let the verifier report it as truncated.
  if (size < kHeaderSize) {
    ::close(fd);
    return DataLossError(StrCat("artifact: file is ", size, " bytes, smaller than the ",
                                kHeaderSize, "-byte header (truncated?)"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED)
    return InternalError(StrCat("artifact: cannot mmap '", path, "': ", std::strerror(map_errno)));
  std::unique_ptr<Artifact> artifact(new Artifact());
  artifact->data_ = static_cast<const uint8_t*>(map);
  artifact->size_ = size;
  artifact->mapped_ = true;
  return Finish(std::move(artifact));
}

StatusOr<std::unique_ptr<Artifact>> Artifact::FromBytes(std::span<const uint8_t> bytes) {
  // Page alignment so that the constants section keeps its 4096 alignment.
  size_t rounded = (bytes.size() + kConstantsSectionAlignment - 1) / kConstantsSectionAlignment *
                   kConstantsSectionAlignment;
  void* copy = std::aligned_alloc(kConstantsSectionAlignment, rounded ? rounded : kConstantsSectionAlignment);
  if (!copy) return ResourceExhaustedError(StrCat("artifact: cannot allocate ", bytes.size(), " bytes"));
  if (!bytes.empty()) std::memcpy(copy, bytes.data(), bytes.size());
  std::unique_ptr<Artifact> artifact(new Artifact());
  artifact->data_ = static_cast<const uint8_t*>(copy);
  artifact->size_ = bytes.size();
  return Finish(std::move(artifact));
}

StatusOr<std::unique_ptr<Artifact>> Artifact::Finish(std::unique_ptr<Artifact> artifact) {
  KILN_RETURN_IF_ERROR(VerifyArtifact(artifact->bytes()));
  FileHeader header;
  std::memcpy(&header, artifact->data_, sizeof(header));
  artifact->model_ = fb::GetModel(artifact->data_ + header.metadata_offset);
  return artifact;
}

Artifact::~Artifact() {
  if (mapped_) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  } else {
    std::free(const_cast<uint8_t*>(data_));
  }
}

std::string_view Artifact::target() const {
  return model_->target() ? model_->target()->string_view() : std::string_view();
}

std::span<const uint8_t> Artifact::section(int index) const {
  const auto* sections = model_->sections();
  if (!sections || index < 0 || static_cast<uint32_t>(index) >= sections->size()) return {};
  const fb::Section* range = sections->Get(index)->range();
  return bytes().subspan(range->offset(), range->size());
}

std::span<const uint8_t> Artifact::constant_data(int index) const {
  const auto* constants = model_->constants();
  if (!constants || index < 0 || static_cast<uint32_t>(index) >= constants->size()) return {};
  const fb::Constant* c = constants->Get(index);
  return section(model_->constants_section()).subspan(c->offset(), c->size());
}

std::span<const uint8_t> Artifact::executable_binary(int index) const {
  const auto* executables = model_->executables();
  if (!executables || index < 0 || static_cast<uint32_t>(index) >= executables->size()) return {};
  return section(executables->Get(index)->section());
}

const fb::Function* Artifact::FindFunction(std::string_view name) const {
  const auto* functions = model_->functions();
  if (!functions) return nullptr;
  for (const fb::Function* fn : *functions)
    if (fn->name() && fn->name()->string_view() == name) return fn;
  return nullptr;
}

std::optional<std::string_view> Artifact::metadata(std::string_view key) const {
  const auto* keys = model_->metadata_keys();
  const auto* values = model_->metadata_values();
  if (!keys || !values) return std::nullopt;
  for (uint32_t i = 0; i < keys->size(); ++i)
    if (keys->Get(i)->string_view() == key) return values->Get(i)->string_view();
  return std::nullopt;
}

}  // namespace kiln::artifact
