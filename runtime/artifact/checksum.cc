//===- checksum.cc - xxHash64 through libxxhash ---------------------------===//
#include "runtime/artifact/checksum.h"

#include <xxhash.h>

namespace kiln::artifact {

uint64_t Checksum(std::span<const uint8_t> bytes) {
  return XXH64(bytes.data(), bytes.size(), /*seed=*/0);
}

}  // namespace kiln::artifact
