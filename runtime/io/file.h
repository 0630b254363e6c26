//===- file.h - Whole-file read and write with Status errors ---------------===//
#ifndef KILN_RUNTIME_IO_FILE_H_
#define KILN_RUNTIME_IO_FILE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"

namespace kiln::io {

/// Reads a whole regular file; NotFound / InvalidArgument name the path.
StatusOr<std::vector<uint8_t>> ReadFileBytes(const std::string& path);
/// Writes (truncating) a whole file.
Status WriteFileBytes(const std::string& path, std::span<const uint8_t> bytes);

/// A file name made from a tensor name that may hold '/', ':' and the like:
/// every character outside [A-Za-z0-9._-] becomes '_'; "", "." and ".."
/// become "_", "_." and "_.." so that the result never names a directory.
std::string SafeFileName(std::string_view name);

}  // namespace kiln::io

#endif  // KILN_RUNTIME_IO_FILE_H_
