//===- onnx_tensor.cc - ONNX TensorProto through libonnx's onnx_proto -------===//
#include "runtime/io/onnx_tensor.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <optional>

#include "runtime/io/file.h"

namespace kiln::io {
namespace {

Status Bad(std::string_view why) { return InvalidArgumentError(StrCat("onnx tensor: ", why)); }

std::optional<DType> DTypeOf(int32_t onnx_type) {
  using TP = onnx::TensorProto;
  switch (onnx_type) {
    case TP::FLOAT: return DType::kF32;
    case TP::DOUBLE: return DType::kF64;
    case TP::FLOAT16: return DType::kF16;
    case TP::BFLOAT16: return DType::kBF16;
    case TP::INT8: return DType::kI8;
    case TP::INT16: return DType::kI16;
    case TP::INT32: return DType::kI32;
    case TP::INT64: return DType::kI64;
    case TP::UINT8: return DType::kU8;
    case TP::UINT16: return DType::kU16;
    case TP::UINT32: return DType::kU32;
    case TP::UINT64: return DType::kU64;
    case TP::BOOL: return DType::kBool;
    default: return std::nullopt;
  }
}

/// Stores each value of a repeated field as the tensor's element type,
/// keeping the low DTypeSize bytes (little-endian), which is how ONNX packs
/// f16/bf16/int8/... into int32_data and uint32 into uint64_data.
template <typename Repeated>
Status CopyNarrowing(const Repeated& field, std::string_view field_name, Tensor& t) {
  const int64_t n = t.NumElements();
  if (field.size() != n)
    return Bad(StrCat(field_name, " has ", field.size(), " values but ", t.Describe(), " needs ", n));
  const int64_t size = DTypeSize(t.dtype);
  using V = typename Repeated::value_type;
  static_assert(sizeof(V) >= 1);
  for (int64_t i = 0; i < n; ++i) {
    V v = field.Get(static_cast<int>(i));
    std::memcpy(t.data.data() + i * size, &v, static_cast<size_t>(size));  // low bytes, little-endian
  }
  return OkStatus();
}

}  // namespace

StatusOr<Tensor> ParseOnnxTensor(std::span<const uint8_t> bytes, std::string* name) {
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) return Bad("file is larger than 2 GiB");
  onnx::TensorProto proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return Bad("not a valid serialized TensorProto");
  if (proto.data_location() == onnx::TensorProto::EXTERNAL || proto.external_data_size() > 0)
    return UnimplementedError("onnx tensor: external data is not supported");
  if (proto.has_segment()) return UnimplementedError("onnx tensor: segmented tensors are not supported");
  std::optional<DType> dtype = DTypeOf(proto.data_type());
  if (!dtype) return UnimplementedError(StrCat("onnx tensor: data type ", proto.data_type(), " is not supported"));
  std::vector<int64_t> shape(proto.dims().begin(), proto.dims().end());
  if (shape.size() > 32) return Bad("too many dims");
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Create(*dtype, std::move(shape)));
  if (name) *name = proto.name();

  if (proto.has_raw_data()) {
    const std::string& raw = proto.raw_data();
    if (raw.size() != t.data.size())
      return Bad(StrCat("raw_data has ", raw.size(), " bytes but ", t.Describe(), " needs ", t.data.size()));
    if (!raw.empty()) std::memcpy(t.data.data(), raw.data(), raw.size());
    return t;
  }
  Status status;
  switch (t.dtype) {
    case DType::kF32: status = CopyNarrowing(proto.float_data(), "float_data", t); break;
    case DType::kF64: status = CopyNarrowing(proto.double_data(), "double_data", t); break;
    case DType::kI64: status = CopyNarrowing(proto.int64_data(), "int64_data", t); break;
    case DType::kU32:
    case DType::kU64: status = CopyNarrowing(proto.uint64_data(), "uint64_data", t); break;
    default: status = CopyNarrowing(proto.int32_data(), "int32_data", t); break;
  }
  KILN_RETURN_IF_ERROR(status);
  return t;
}

StatusOr<Tensor> ReadOnnxTensor(const std::string& path, std::string* name) {
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileBytes(path));
  StatusOr<Tensor> tensor = ParseOnnxTensor(bytes, name);
  if (!tensor.ok()) return tensor.status().Annotate(StrCat("'", path, "'"));
  return tensor;
}

}  // namespace kiln::io
