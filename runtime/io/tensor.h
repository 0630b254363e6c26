//===- tensor.h - A dense host tensor: dtype, shape, bytes -----------------===//
#ifndef KILN_RUNTIME_IO_TENSOR_H_
#define KILN_RUNTIME_IO_TENSOR_H_

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace kiln::io {

/// Row-major (C order), little-endian host tensor that owns its bytes.
/// Invariant kept by Create/FromValues: data.size() == ByteSize(dtype, shape).
struct Tensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;

  /// A zero-filled tensor; fails on negative dims or a size that overflows.
  static StatusOr<Tensor> Create(DType dtype, std::vector<int64_t> shape);

  /// A tensor holding `values` (whose element type must match dtype's size);
  /// meant for tests and small constants.
  template <typename T>
  static Tensor FromValues(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
    Tensor t{dtype, std::move(shape), std::vector<uint8_t>(values.size() * sizeof(T))};
    if (!values.empty()) std::memcpy(t.data.data(), values.data(), t.data.size());
    return t;
  }

  int64_t NumElements() const;

  /// Element view; T must match the dtype's size (caller's responsibility).
  template <typename T>
  std::span<const T> values() const {
    return {reinterpret_cast<const T*>(data.data()), data.size() / sizeof(T)};
  }
  template <typename T>
  std::span<T> mutable_values() {
    return {reinterpret_cast<T*>(data.data()), data.size() / sizeof(T)};
  }

  /// "f32[2,3]" for messages.
  std::string Describe() const;
};

/// A tensor with the name of the input/output it belongs to.
struct NamedTensor {
  std::string name;
  Tensor tensor;
};

}  // namespace kiln::io

#endif  // KILN_RUNTIME_IO_TENSOR_H_
