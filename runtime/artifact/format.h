// format.h - the fixed header in front of a .kiln artifact's FlatBuffer.
#ifndef KILN_RUNTIME_ARTIFACT_FORMAT_H_
#define KILN_RUNTIME_ARTIFACT_FORMAT_H_

#include <cstdint>

namespace kiln::artifact {

inline constexpr char kMagic[4] = {'K', 'I', 'L', 'N'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kHeaderSize = 64;
inline constexpr uint64_t kConstantsAlignment = 64;
inline constexpr uint64_t kConstantsSectionAlignment = 4096;

/// Little-endian, packed; written by the compiler's artifact writer.
struct FileHeader {
  char magic[4];
  uint32_t format_version;
  uint64_t metadata_offset;
  uint64_t metadata_size;
  uint64_t metadata_checksum;  // xxHash64 (seed 0) of the metadata bytes
  uint8_t reserved[kHeaderSize - 32];
};
static_assert(sizeof(FileHeader) == kHeaderSize);

}  // namespace kiln::artifact

#endif  // KILN_RUNTIME_ARTIFACT_FORMAT_H_
