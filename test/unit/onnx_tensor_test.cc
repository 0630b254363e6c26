//===- onnx_tensor_test.cc - Reading ONNX TensorProto .pb files ------------===//
#include "runtime/io/onnx_tensor.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstring>

#include "runtime/io/file.h"
#include "runtime/io/tensor_file.h"

namespace kiln::io {
namespace {

std::vector<uint8_t> Serialize(const onnx::TensorProto& proto) {
  std::string s = proto.SerializeAsString();
  return std::vector<uint8_t>(s.begin(), s.end());
}

TEST(OnnxTensorTest, RawData) {
  onnx::TensorProto p;
  p.set_name("x");
  p.set_data_type(onnx::TensorProto::FLOAT);
  p.add_dims(2);
  p.add_dims(2);
  const float values[] = {1.5f, -2.f, 3.f, 4.25f};
  p.set_raw_data(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  std::string name;
  StatusOr<Tensor> t = ParseOnnxTensor(Serialize(p), &name);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(name, "x");
  EXPECT_EQ(t->dtype, DType::kF32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(std::memcmp(t->data.data(), values, sizeof(values)), 0);
}

TEST(OnnxTensorTest, TypedFields) {
  {
    onnx::TensorProto p;
    p.set_data_type(onnx::TensorProto::FLOAT);
    p.add_dims(3);
    for (float v : {1.f, 2.f, 3.f}) p.add_float_data(v);
    Tensor t = *ParseOnnxTensor(Serialize(p));
    EXPECT_EQ(std::vector<float>(t.values<float>().begin(), t.values<float>().end()),
              (std::vector<float>{1, 2, 3}));
  }
  {
    onnx::TensorProto p;
    p.set_data_type(onnx::TensorProto::INT64);
    p.add_dims(2);
    p.add_int64_data(-5);
    p.add_int64_data(int64_t{1} << 40);
    Tensor t = *ParseOnnxTensor(Serialize(p));
    EXPECT_EQ(t.values<int64_t>()[0], -5);
    EXPECT_EQ(t.values<int64_t>()[1], int64_t{1} << 40);
  }
  {
    onnx::TensorProto p;
    p.set_data_type(onnx::TensorProto::DOUBLE);
    p.add_double_data(2.5);  // scalar: no dims
    Tensor t = *ParseOnnxTensor(Serialize(p));
    EXPECT_TRUE(t.shape.empty());
    EXPECT_EQ(t.values<double>()[0], 2.5);
  }
  {
    onnx::TensorProto p;
    p.set_data_type(onnx::TensorProto::UINT32);
    p.add_dims(1);
    p.add_uint64_data(4000000000u);
    EXPECT_EQ(ParseOnnxTensor(Serialize(p))->values<uint32_t>()[0], 4000000000u);
  }
  // int32_data carries the narrow types, f16 and bf16 as bit patterns.
  struct Narrow {
    onnx::TensorProto::DataType type;
    DType dtype;
    int32_t value;
    uint16_t expect;  // low bytes as stored
  };
  for (const Narrow& n : {Narrow{onnx::TensorProto::FLOAT16, DType::kF16, 0x3c00, 0x3c00},
                          Narrow{onnx::TensorProto::BFLOAT16, DType::kBF16, 0x3f80, 0x3f80},
                          Narrow{onnx::TensorProto::INT16, DType::kI16, -2, 0xfffe},
                          Narrow{onnx::TensorProto::UINT16, DType::kU16, 65535, 0xffff},
                          Narrow{onnx::TensorProto::INT8, DType::kI8, -1, 0xff},
                          Narrow{onnx::TensorProto::UINT8, DType::kU8, 200, 200},
                          Narrow{onnx::TensorProto::BOOL, DType::kBool, 1, 1}}) {
    onnx::TensorProto p;
    p.set_data_type(n.type);
    p.add_dims(1);
    p.add_int32_data(n.value);
    StatusOr<Tensor> t = ParseOnnxTensor(Serialize(p));
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(t->dtype, n.dtype);
    uint16_t got = 0;
    std::memcpy(&got, t->data.data(), t->data.size());
    EXPECT_EQ(got, n.expect) << DTypeName(n.dtype);
  }
}

TEST(OnnxTensorTest, Errors) {
  onnx::TensorProto p;
  p.set_data_type(onnx::TensorProto::FLOAT);
  p.add_dims(4);
  p.add_float_data(1.f);  // 1 value for 4 elements
  EXPECT_FALSE(ParseOnnxTensor(Serialize(p)).ok());
  p.clear_float_data();
  p.set_raw_data("abc");  // 3 bytes for 16
  EXPECT_FALSE(ParseOnnxTensor(Serialize(p)).ok());
  p.set_data_type(onnx::TensorProto::STRING);
  EXPECT_EQ(ParseOnnxTensor(Serialize(p)).status().code(), StatusCode::kUnimplemented);
  p.set_data_type(onnx::TensorProto::FLOAT);
  p.clear_raw_data();
  p.set_data_location(onnx::TensorProto::EXTERNAL);
  EXPECT_EQ(ParseOnnxTensor(Serialize(p)).status().code(), StatusCode::kUnimplemented);
  onnx::TensorProto neg;
  neg.set_data_type(onnx::TensorProto::FLOAT);
  neg.add_dims(-3);
  EXPECT_FALSE(ParseOnnxTensor(Serialize(neg)).ok());
  const std::vector<uint8_t> garbage = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
  EXPECT_FALSE(ParseOnnxTensor(garbage).ok());
}

TEST(OnnxTensorTest, TensorFileDispatchesByExtensionAndMagic) {
  onnx::TensorProto p;
  p.set_data_type(onnx::TensorProto::INT32);
  p.add_dims(2);
  p.add_int32_data(7);
  p.add_int32_data(8);
  const std::string dir = ::testing::TempDir();
  ASSERT_TRUE(WriteFileBytes(dir + "/kiln_input_0.pb", Serialize(p)).ok());
  ASSERT_TRUE(WriteFileBytes(dir + "/kiln_input_0.bin", Serialize(p)).ok());
  for (const std::string& path : {dir + "/kiln_input_0.pb", dir + "/kiln_input_0.bin"}) {
    StatusOr<Tensor> t = ReadTensorFile(path);
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(t->values<int32_t>()[1], 8);
  }
  StatusOr<Tensor> missing = ReadTensorFile(dir + "/nope.npy");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.npy"), std::string::npos);
}

}  // namespace
}  // namespace kiln::io
