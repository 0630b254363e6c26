//===- artifact.h - A verified, memory-mapped .kiln file -------------------===//
#ifndef KILN_RUNTIME_ARTIFACT_ARTIFACT_H_
#define KILN_RUNTIME_ARTIFACT_ARTIFACT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "runtime/artifact/kiln_generated.h"
#include "runtime/base/status.h"

namespace kiln::artifact {

/// A .kiln file, mapped read-only and fully verified (see verifier.h) before
/// Open returns, so every accessor below may trust the FlatBuffer. The
/// Artifact owns the mapping: spans and FlatBuffer pointers it hands out live
/// as long as the Artifact.
class Artifact {
 public:
  /// mmaps `path` read-only and verifies it. Errors are one line, e.g.
  /// "artifact: checksum mismatch in section 2 (executable)".
  static StatusOr<std::unique_ptr<Artifact>> Open(const std::string& path);

  /// Copies `bytes` into a page-aligned buffer it owns and verifies them
  /// (tests, and artifacts that arrive over a wire).
  static StatusOr<std::unique_ptr<Artifact>> FromBytes(std::span<const uint8_t> bytes);

  ~Artifact();
  Artifact(const Artifact&) = delete;
  Artifact& operator=(const Artifact&) = delete;

  /// The whole file.
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  /// The root table of the metadata.
  const fb::Model& model() const { return *model_; }
  std::string_view target() const;

  /// Bytes of Model.sections[index]; empty when out of range.
  std::span<const uint8_t> section(int index) const;
  /// Bytes of Model.constants[index], pointing into the mapping (zero-copy,
  /// 64-byte aligned); empty when out of range.
  std::span<const uint8_t> constant_data(int index) const;
  /// Bytes of Model.executables[index]'s binary; empty when out of range.
  std::span<const uint8_t> executable_binary(int index) const;

  /// The function called `name`, or nullptr.
  const fb::Function* FindFunction(std::string_view name) const;
  /// Value of a free-form metadata key, if present.
  std::optional<std::string_view> metadata(std::string_view key) const;

 private:
  Artifact() = default;
  static StatusOr<std::unique_ptr<Artifact>> Finish(std::unique_ptr<Artifact> artifact);

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;     // munmap on destruction, else free()
  const fb::Model* model_ = nullptr;
};

}  // namespace kiln::artifact

#endif  // KILN_RUNTIME_ARTIFACT_ARTIFACT_H_
