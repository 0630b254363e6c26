//===- ukernels_bitcode.h - The ukernels as LLVM bitcode, for kiln-compile -===//
//
// Defined by the generated ukernels_bitcode.cpp (library
// kiln_ukernels_bitcode): kiln_ukernels.bc, every ukernel .c compiled by
// clang-22 with -O2 -Xclang -disable-llvm-optzns and no target features,
// then llvm-linked. Parse it with llvm::parseBitcodeFile, set target-cpu and
// target-features on every function, link it into the kernel module and run
// the O3 pipeline (README.md).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_CPU_UKERNELS_UKERNELS_BITCODE_H_
#define KILN_TARGETS_CPU_UKERNELS_UKERNELS_BITCODE_H_

#include <cstddef>

extern const unsigned char kKilnUkernelsBitcode[];
extern const size_t kKilnUkernelsBitcodeSize;

#endif  // KILN_TARGETS_CPU_UKERNELS_UKERNELS_BITCODE_H_
