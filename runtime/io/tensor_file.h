//===- tensor_file.h - Read a tensor from .npy or ONNX .pb by file type -----===//
#ifndef KILN_RUNTIME_IO_TENSOR_FILE_H_
#define KILN_RUNTIME_IO_TENSOR_FILE_H_

#include <string>

#include "runtime/io/tensor.h"

namespace kiln::io {

/// ".npy" -> npy, ".pb" -> ONNX TensorProto; any other name: npy when the
/// bytes start with the npy magic, else TensorProto.
StatusOr<Tensor> ReadTensorFile(const std::string& path);

}  // namespace kiln::io

#endif  // KILN_RUNTIME_IO_TENSOR_FILE_H_
