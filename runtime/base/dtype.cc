//===- dtype.cc - Element type sizes and names -----------------------------===//
#include "runtime/base/dtype.h"

namespace kiln {
namespace {
struct DTypeInfo {
  std::string_view name;
  int64_t size;
};
// Indexed by DType value.
constexpr DTypeInfo kInfos[kNumDTypes] = {
    {"f32", 4}, {"f64", 8}, {"f16", 2}, {"bf16", 2}, {"i8", 1},  {"i16", 2}, {"i32", 4},
    {"i64", 8}, {"u8", 1},  {"u16", 2}, {"u32", 4},  {"u64", 8}, {"bool", 1},
};
}  // namespace

int64_t DTypeSize(DType dtype) { return kInfos[static_cast<int>(dtype)].size; }

std::string_view DTypeName(DType dtype) {
  if (!IsValidDType(static_cast<int>(dtype))) return "invalid";
  return kInfos[static_cast<int>(dtype)].name;
}

std::optional<DType> ParseDTypeName(std::string_view name) {
  for (int i = 0; i < kNumDTypes; ++i)
    if (kInfos[i].name == name) return static_cast<DType>(i);
  return std::nullopt;
}

StatusOr<int64_t> CheckedElementCount(std::span<const int64_t> shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return InvalidArgumentError(StrCat("negative dim in shape ", ShapeToString(shape)));
    if (__builtin_mul_overflow(count, dim, &count))
      return OutOfRangeError(StrCat("element count of shape ", ShapeToString(shape), " overflows"));
  }
  return count;
}

StatusOr<int64_t> CheckedByteSize(DType dtype, std::span<const int64_t> shape) {
  KILN_ASSIGN_OR_RETURN(int64_t count, CheckedElementCount(shape));
  int64_t bytes = 0;
  if (__builtin_mul_overflow(count, DTypeSize(dtype), &bytes))
    return OutOfRangeError(StrCat("byte size of shape ", ShapeToString(shape), " overflows"));
  return bytes;
}

std::string ShapeToString(std::span<const int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ",";
    out += shape[i] < 0 ? std::string("?") : std::to_string(shape[i]);
  }
  return out + "]";
}

}  // namespace kiln
