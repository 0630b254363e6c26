//===- tensor_file.cc - Read a tensor from .npy or ONNX .pb by file type ----===//
#include "runtime/io/tensor_file.h"

#include "runtime/io/file.h"
#include "runtime/io/npy.h"
#include "runtime/io/onnx_tensor.h"

namespace kiln::io {

StatusOr<Tensor> ReadTensorFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileBytes(path));
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  bool npy = ends_with(".npy") || (!ends_with(".pb") && LooksLikeNpy(bytes));
  StatusOr<Tensor> tensor = npy ? ParseNpy(bytes) : ParseOnnxTensor(bytes);
  if (!tensor.ok()) return tensor.status().Annotate(StrCat("'", path, "'"));
  return tensor;
}

}  // namespace kiln::io
