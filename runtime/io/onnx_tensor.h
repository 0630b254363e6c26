//===- onnx_tensor.h - ONNX TensorProto (.pb) files -------------------------===//
//
// Reads the serialized onnx.TensorProto that the ONNX test suites ship as
// input_N.pb / output_N.pb. Handles raw_data and the typed fields
// (float_data, int32_data for int32 and the narrow types incl. f16/bf16/bool,
// int64_data, double_data, uint64_data); external data is not supported.
#ifndef KILN_RUNTIME_IO_ONNX_TENSOR_H_
#define KILN_RUNTIME_IO_ONNX_TENSOR_H_

#include <cstdint>
#include <span>
#include <string>

#include "runtime/io/tensor.h"

namespace kiln::io {

/// Parses a serialized TensorProto; `name` (optional) receives its name.
StatusOr<Tensor> ParseOnnxTensor(std::span<const uint8_t> bytes, std::string* name = nullptr);
/// Reads and parses `path`; errors name the path.
StatusOr<Tensor> ReadOnnxTensor(const std::string& path, std::string* name = nullptr);

}  // namespace kiln::io

#endif  // KILN_RUNTIME_IO_ONNX_TENSOR_H_
