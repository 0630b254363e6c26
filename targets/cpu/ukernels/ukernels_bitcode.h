//===- ukernels_bitcode.h - The ukernels as LLVM bitcode, for kiln-compile -===//
//
// Defined by generated sources of the library kiln_ukernels_bitcode: every
// ukernel .c compiled by clang-22 with -O2 -Xclang -disable-llvm-optzns and
// no target features, then llvm-linked, once per architecture. Parse it with
// llvm::parseBitcodeFile, set target-cpu and target-features on every
// function, link it into the kernel module and run the O3 pipeline
// (README.md). The IR of both is the same apart from triple and data layout
// (the ukernels pass only scalars and pointers), but each is the one clang
// produces for its triple.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_CPU_UKERNELS_UKERNELS_BITCODE_H_
#define KILN_TARGETS_CPU_UKERNELS_UKERNELS_BITCODE_H_

#include <cstddef>

/// kiln_ukernels.bc, triple x86_64-unknown-linux-gnu.
extern const unsigned char kKilnUkernelsBitcode[];
extern const size_t kKilnUkernelsBitcodeSize;

/// kiln_ukernels_aarch64.bc, triple aarch64-unknown-linux-gnu.
extern const unsigned char kKilnUkernelsBitcodeAarch64[];
extern const size_t kKilnUkernelsBitcodeAarch64Size;

#endif  // KILN_TARGETS_CPU_UKERNELS_UKERNELS_BITCODE_H_
