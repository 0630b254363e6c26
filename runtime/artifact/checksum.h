//===- checksum.h - The artifact's checksum: xxHash64, seed 0 --------------===//
#ifndef KILN_RUNTIME_ARTIFACT_CHECKSUM_H_
#define KILN_RUNTIME_ARTIFACT_CHECKSUM_H_

#include <cstdint>
#include <span>

namespace kiln::artifact {

/// xxHash64 with seed 0 of `bytes`: the checksum of the header's metadata and
/// of every Section. Exposed so that writers (and tests) compute the same.
uint64_t Checksum(std::span<const uint8_t> bytes);

}  // namespace kiln::artifact

#endif  // KILN_RUNTIME_ARTIFACT_CHECKSUM_H_
