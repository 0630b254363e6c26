//===- dtype.h - Element types shared by the artifact, HAL and host IO -----===//
//
// The numbering matches kiln.fb.DType in runtime/artifact/kiln.fbs, so a
// schema value converts with a static_cast once it has been range-checked.
#ifndef KILN_RUNTIME_BASE_DTYPE_H_
#define KILN_RUNTIME_BASE_DTYPE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace kiln {

enum class DType : uint8_t {
  kF32 = 0, kF64, kF16, kBF16, kI8, kI16, kI32, kI64, kU8, kU16, kU32, kU64, kBool
};
inline constexpr int kNumDTypes = 13;

/// True when `value` is a valid DType number (e.g. read from a file).
inline bool IsValidDType(int value) { return value >= 0 && value < kNumDTypes; }

/// Bytes per element: F32 4, F64 8, F16/BF16 2, I8/U8/Bool 1, ...
int64_t DTypeSize(DType dtype);

/// Short lower-case name used in messages and by kiln-run: "f32", "bf16", "i64", "bool".
std::string_view DTypeName(DType dtype);

/// Inverse of DTypeName.
std::optional<DType> ParseDTypeName(std::string_view name);

/// Product of dims, checked: every dim >= 0 and no int64 overflow.
StatusOr<int64_t> CheckedElementCount(std::span<const int64_t> shape);

/// Element count times DTypeSize, checked for overflow.
StatusOr<int64_t> CheckedByteSize(DType dtype, std::span<const int64_t> shape);

/// "[2,3]" for messages; dynamic dims (-1) print as "?".
std::string ShapeToString(std::span<const int64_t> shape);

}  // namespace kiln

#endif  // KILN_RUNTIME_BASE_DTYPE_H_
