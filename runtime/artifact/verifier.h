//===- verifier.h - Check a whole .kiln file before anything runs ----------===//
#ifndef KILN_RUNTIME_ARTIFACT_VERIFIER_H_
#define KILN_RUNTIME_ARTIFACT_VERIFIER_H_

#include <cstdint>
#include <span>

#include "runtime/base/status.h"

namespace kiln::artifact {

/// Largest tensor rank the runtime accepts (Alloc, Reshape, signatures, kernel args).
inline constexpr int kMaxRank = 16;
/// Upper bounds that keep a hostile file from making the executor allocate
/// absurd register files.
inline constexpr int kMaxSlots = 1 << 20;
inline constexpr int kMaxRegs = 1 << 20;

/// Verifies header, metadata checksum, FlatBuffer structure, sections,
/// constants and every Function's instruction list (operand counts, indices,
/// use before definition). `file` must start at a 4096-aligned address (an
/// mmap) so that the alignment rules can be checked on real addresses.
/// Errors read "artifact: <what is wrong>".
Status VerifyArtifact(std::span<const uint8_t> file);

}  // namespace kiln::artifact

#endif  // KILN_RUNTIME_ARTIFACT_VERIFIER_H_
