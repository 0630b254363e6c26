//===- npy_test.cc - .npy round trips and malformed headers ----------------===//
#include "runtime/io/npy.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace kiln::io {
namespace {

std::vector<uint8_t> NpyImage(int major, const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  const size_t len = header.size();
  const int len_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < len_bytes; ++i) out.push_back(static_cast<uint8_t>(len >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> Bytes(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7 + 1);
  return v;
}

TEST(NpyTest, RoundTripEveryDType) {
  for (int d = 0; d < kNumDTypes; ++d) {
    const DType dtype = static_cast<DType>(d);
    for (const std::vector<int64_t>& shape : {std::vector<int64_t>{}, {3}, {2, 3}, {2, 0, 4}}) {
      Tensor t = *Tensor::Create(dtype, shape);
      for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<uint8_t>(i * 13 + d);
      std::vector<uint8_t> image = *EncodeNpy(t);
      EXPECT_EQ(image.size() % 64, t.data.size() % 64) << "data starts 64-byte aligned";
      StatusOr<Tensor> back = ParseNpy(image);
      ASSERT_TRUE(back.ok()) << DTypeName(dtype) << ": " << back.status().message();
      EXPECT_EQ(back->dtype, dtype);
      EXPECT_EQ(back->shape, shape);
      EXPECT_EQ(back->data, t.data);
    }
  }
}

TEST(NpyTest, WritesNumpyHeaders) {
  Tensor t = Tensor::FromValues<float>(DType::kF32, {3}, {1, 2, 3});
  std::vector<uint8_t> image = *EncodeNpy(t);
  std::string text(image.begin() + 10, image.begin() + 10 + (image[8] | image[9] << 8));
  EXPECT_EQ(text.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 0), 0u) << text;
  EXPECT_EQ(text.back(), '\n');
  Tensor b = *Tensor::Create(DType::kBF16, {2, 2});
  image = *EncodeNpy(b);
  text.assign(image.begin() + 10, image.begin() + 10 + (image[8] | image[9] << 8));
  EXPECT_NE(text.find("'<V2'"), std::string::npos);
  EXPECT_NE(text.find("(2, 2)"), std::string::npos);
}

TEST(NpyTest, FileRoundTrip) {
  const std::string path = ::testing::TempDir() + "/kiln_npy_test.npy";
  Tensor t = Tensor::FromValues<int64_t>(DType::kI64, {2, 2}, {1, -2, 3, -4});
  ASSERT_TRUE(WriteNpy(path, t).ok());
  StatusOr<Tensor> back = ReadNpy(path);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->data, t.data);
  EXPECT_FALSE(ReadNpy(path + ".missing").ok());
}

TEST(NpyTest, ReadsVersions2And3AndVariants) {
  const std::vector<uint8_t> data = Bytes(24);
  for (int major : {1, 2, 3}) {
    StatusOr<Tensor> t = ParseNpy(NpyImage(major, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }\n", data));
    ASSERT_TRUE(t.ok()) << major << ": " << t.status().message();
    EXPECT_EQ(t->dtype, DType::kI32);
    EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(t->data, data);
  }
  // Key order, double quotes, no trailing comma, 1-byte types with '|'.
  StatusOr<Tensor> t = ParseNpy(NpyImage(1, "{\"shape\": (6,), \"fortran_order\": False, \"descr\": \"|u1\"}", Bytes(6)));
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->dtype, DType::kU8);
  t = ParseNpy(NpyImage(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (), }", {1}));
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->dtype, DType::kBool);
  EXPECT_TRUE(t->shape.empty());
  // Fortran order of a vector is the same bytes.
  t = ParseNpy(NpyImage(1, "{'descr': '<f2', 'fortran_order': True, 'shape': (1, 3), }", Bytes(6)));
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->dtype, DType::kF16);
  // u2 stays u16; V2 is bfloat16.
  EXPECT_EQ(ParseNpy(NpyImage(1, "{'descr': '<u2', 'fortran_order': False, 'shape': (1,)}", Bytes(2)))->dtype, DType::kU16);
  EXPECT_EQ(ParseNpy(NpyImage(1, "{'descr': '<V2', 'fortran_order': False, 'shape': (1,)}", Bytes(2)))->dtype, DType::kBF16);
}

TEST(NpyTest, RejectsMalformedFiles) {
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::vector<uint8_t> data = Bytes(8);
  struct Case {
    const char* what;
    std::vector<uint8_t> image;
  };
  std::vector<uint8_t> huge_len = NpyImage(1, ok, data);
  huge_len[8] = 0xff;
  huge_len[9] = 0xff;
  const Case cases[] = {
      {"empty", {}},
      {"not npy", {'h', 'e', 'l', 'l', 'o', '!', '!', '!', '!', '!', '!'}},
      {"truncated preamble", {0x93, 'N', 'U', 'M', 'P', 'Y', 1}},
      {"header length past end", huge_len},
      {"version 4", NpyImage(4, ok, data)},
      {"not a dict", NpyImage(1, "['descr', '<f4']", data)},
      {"missing key", NpyImage(1, "{'descr': '<f4', 'shape': (2,)}", data)},
      {"extra key", NpyImage(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", data)},
      {"unterminated string", NpyImage(1, "{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}", data)},
      {"complex dtype", NpyImage(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", data)},
      {"big endian", NpyImage(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}", data)},
      {"structured", NpyImage(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", data)},
      {"object dtype", NpyImage(1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,)}", data)},
      {"fortran 2d", NpyImage(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", Bytes(16))},
      {"bad bool", NpyImage(1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}", data)},
      {"negative dim", NpyImage(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", data)},
      {"dim overflow", NpyImage(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", data)},
      {"size overflow", NpyImage(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4)}", data)},
      {"short data", NpyImage(1, ok, Bytes(7))},
      {"long data", NpyImage(1, ok, Bytes(9))},
      {"unclosed tuple", NpyImage(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,", data)},
      {"trailing garbage", NpyImage(1, ok + " x", data)},
  };
  for (const Case& c : cases) {
    StatusOr<Tensor> t = ParseNpy(c.image);
    EXPECT_FALSE(t.ok()) << c.what;
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << c.what << ": " << t.status().message();
      EXPECT_EQ(t.status().message().find('\n'), std::string::npos) << c.what;
    }
  }
}

TEST(NpyTest, RandomCorruptionNeverCrashes) {
  Tensor t = Tensor::FromValues<float>(DType::kF32, {2, 3}, {1, 2, 3, 4, 5, 6});
  const std::vector<uint8_t> image = *EncodeNpy(t);
  std::mt19937 rng(42);
  for (int iter = 0; iter < 5000; ++iter) {
    std::vector<uint8_t> bad = image;
    const int flips = 1 + iter % 4;
    for (int f = 0; f < flips; ++f) bad[rng() % 90] = static_cast<uint8_t>(rng());
    if (iter % 3 == 0) bad.resize(rng() % bad.size());
    StatusOr<Tensor> r = ParseNpy(bad);  // ok or a clean error, never a crash
    if (r.ok()) {
      EXPECT_EQ(r->data.size(), static_cast<size_t>(*CheckedByteSize(r->dtype, r->shape)));
    }
  }
}

}  // namespace
}  // namespace kiln::io
