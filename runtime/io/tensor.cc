//===- tensor.cc - Host tensor helpers --------------------------------------===//
#include "runtime/io/tensor.h"

namespace kiln::io {

/// Refuse host tensors beyond this (a corrupt header, not real data).
constexpr int64_t kMaxTensorBytes = int64_t{1} << 42;

StatusOr<Tensor> Tensor::Create(DType dtype, std::vector<int64_t> shape) {
  KILN_ASSIGN_OR_RETURN(int64_t bytes, CheckedByteSize(dtype, shape));
  if (bytes > kMaxTensorBytes)
    return ResourceExhaustedError(StrCat("tensor ", DTypeName(dtype), ShapeToString(shape),
                                         " of ", bytes, " bytes is too large"));
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data.assign(static_cast<size_t>(bytes), 0);
  return t;
}

int64_t Tensor::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string Tensor::Describe() const { return StrCat(DTypeName(dtype), ShapeToString(shape)); }

}  // namespace kiln::io
