//===- npy.h - NumPy .npy files (format versions 1, 2 and 3) ----------------===//
//
// Supported: little-endian, C order, dtypes f4 f8 f2 i1 i2 i4 i8 u1 u2 u4 u8
// b1. bfloat16 has no NumPy dtype; it is written as '<V2' (2-byte opaque,
// what ml_dtypes' bfloat16 reports as its .str) and '<V2' / '|V2' is read
// back as bf16. A u2 file stays u16.
#ifndef KILN_RUNTIME_IO_NPY_H_
#define KILN_RUNTIME_IO_NPY_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/io/tensor.h"

namespace kiln::io {

/// Parses a whole .npy file image. Malformed input is an InvalidArgument
/// ("npy: ..."), never a crash.
StatusOr<Tensor> ParseNpy(std::span<const uint8_t> bytes);
/// Reads and parses `path`; errors name the path.
StatusOr<Tensor> ReadNpy(const std::string& path);

/// The .npy image of `tensor` (version 1.0, or 2.0 when the header needs it).
StatusOr<std::vector<uint8_t>> EncodeNpy(const Tensor& tensor);
/// Writes `tensor` to `path`.
Status WriteNpy(const std::string& path, const Tensor& tensor);

/// True when `bytes` start with the .npy magic "\x93NUMPY".
bool LooksLikeNpy(std::span<const uint8_t> bytes);

}  // namespace kiln::io

#endif  // KILN_RUNTIME_IO_NPY_H_
