//===- artifact_verifier_test.cc - Bad .kiln files are one-line errors ------===//
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "runtime/artifact/artifact.h"
#include "runtime/artifact/format.h"
#include "runtime/artifact/verifier.h"
#include "test/unit/artifact_builder.h"
#include "test/unit/test_kernels.h"

namespace kiln::artifact {
namespace {

using namespace kiln::testing;  // NOLINT: test shorthands

StatusOr<std::unique_ptr<Artifact>> Load(const std::vector<uint8_t>& bytes) {
  return Artifact::FromBytes(bytes);
}

/// The message of a rejected artifact (and a check that it is one line).
std::string Rejection(const std::vector<uint8_t>& bytes) {
  StatusOr<std::unique_ptr<Artifact>> a = Load(bytes);
  if (a.ok()) return "<accepted>";
  EXPECT_EQ(a.status().message().find('\n'), std::string::npos);
  EXPECT_EQ(a.status().message().rfind("artifact: ", 0), 0u) << a.status().message();
  return a.status().message();
}

std::string Rejection(const ModelSpec& spec) { return Rejection(BuildArtifact(spec)); }

TEST(ArtifactTest, OpensAValidArtifact) {
  const std::string path = ::testing::TempDir() + "/kiln_valid.kiln";
  ASSERT_TRUE(WriteArtifact(path, AddModel()).ok());
  StatusOr<std::unique_ptr<Artifact>> a = Artifact::Open(path);
  ASSERT_TRUE(a.ok()) << a.status().message();
  const Artifact& art = **a;
  EXPECT_EQ(art.target(), "host");
  EXPECT_EQ(art.metadata("model"), "add");
  EXPECT_FALSE(art.metadata("nope").has_value());
  ASSERT_NE(art.FindFunction("main"), nullptr);
  EXPECT_EQ(art.FindFunction("other"), nullptr);
  // Constants are views into the mapping, 64-byte aligned.
  std::span<const uint8_t> c = art.constant_data(0);
  ASSERT_EQ(c.size(), 16u);
  EXPECT_GE(c.data(), art.bytes().data());
  EXPECT_LE(c.data() + c.size(), art.bytes().data() + art.bytes().size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c.data()) % 64, 0u);
  float first;
  std::memcpy(&first, c.data(), 4);
  EXPECT_EQ(first, 1.0f);
  EXPECT_EQ(art.executable_binary(0).size(), TestKernelsBinary().size());
  EXPECT_TRUE(art.constant_data(1).empty());
}

TEST(ArtifactTest, MissingFile) {
  StatusOr<std::unique_ptr<Artifact>> a = Artifact::Open("/nonexistent/model.kiln");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("/nonexistent/model.kiln"), std::string::npos);
  const std::string empty = ::testing::TempDir() + "/kiln_empty.kiln";
  ASSERT_TRUE(WriteArtifact(empty, AddModel()).ok());
  { std::ofstream truncate(empty, std::ios::trunc); }
  EXPECT_EQ(Artifact::Open(empty).status().code(), StatusCode::kDataLoss);
}

TEST(ArtifactTest, RejectsTruncatedFiles) {
  const std::vector<uint8_t> good = BuildArtifact(AddModel());
  ASSERT_TRUE(Load(good).ok());
  for (size_t size = 0; size < good.size(); size += (size < 200 ? 1 : 97)) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + size);
    EXPECT_FALSE(Load(cut).ok()) << "accepted a file cut to " << size << " bytes";
  }
  std::vector<uint8_t> cut(good.begin(), good.end() - 1);
  EXPECT_NE(Rejection(cut).find("section"), std::string::npos);
}

TEST(ArtifactTest, RejectsBadMagicAndVersion) {
  std::vector<uint8_t> bytes = BuildArtifact(AddModel());
  bytes[0] = 'X';
  EXPECT_EQ(Rejection(bytes), "artifact: bad magic (not a .kiln file)");
  bytes = BuildArtifact(AddModel());
  bytes[4] = kFormatVersion + 1;
  EXPECT_NE(Rejection(bytes).find("format version 2 is not supported"), std::string::npos);
}

TEST(ArtifactTest, RejectsBitFlips) {
  const std::vector<uint8_t> good = BuildArtifact(AddModel());
  auto [meta_offset, meta_size] = MetadataRange(good);
  std::vector<uint8_t> bytes = good;
  bytes[meta_offset + meta_size / 2] ^= 0x10;
  EXPECT_EQ(Rejection(bytes), "artifact: checksum mismatch in metadata");

  StatusOr<std::unique_ptr<Artifact>> a = Load(good);
  ASSERT_TRUE(a.ok());
  const auto* sections = (*a)->model().sections();
  for (uint32_t s = 0; s < sections->size(); ++s) {
    bytes = good;
    bytes[sections->Get(s)->range()->offset() + 3] ^= 0x01;
    EXPECT_EQ(Rejection(bytes), StrCat("artifact: checksum mismatch in section ", s, " (",
                                       s == 0 ? "executable" : "constants", ")"));
  }
}

TEST(ArtifactTest, RejectsRandomBytes) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 200; ++iter) {
    std::vector<uint8_t> bytes(rng() % 5000);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    if (iter % 2 && bytes.size() >= kHeaderSize) {  // plausible header, random rest
      std::memcpy(bytes.data(), kMagic, 4);
      bytes[4] = kFormatVersion, bytes[5] = bytes[6] = bytes[7] = 0;
    }
    EXPECT_FALSE(Load(bytes).ok());
  }
}

TEST(ArtifactTest, CorruptMetadataWithValidChecksumNeverCrashes) {
  const std::vector<uint8_t> good = BuildArtifact(AddModel());
  auto [meta_offset, meta_size] = MetadataRange(good);
  std::mt19937 rng(11);
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> bytes = good;
    for (int f = 0; f <= iter % 3; ++f) bytes[meta_offset + rng() % meta_size] = static_cast<uint8_t>(rng());
    FixMetadataChecksum(bytes);
    rejected += !Load(bytes).ok();  // either verdict is fine; crashing is not
  }
  EXPECT_GT(rejected, 0);
}

TEST(ArtifactTest, RejectsMisalignedConstants) {
  ModelSpec spec = AddModel();
  spec.misalign_constants_section = true;
  EXPECT_NE(Rejection(spec).find("is not 4096-byte aligned"), std::string::npos);
  spec = AddModel();
  spec.constants.push_back({"d", DType::kF32, {1}, {0, 0, 0, 0}});
  spec.misalign_constants = true;
  EXPECT_NE(Rejection(spec).find("constant 1 ('d') at offset 80 is not 64-byte aligned"), std::string::npos)
      << Rejection(spec);
  spec = AddModel();
  spec.constants[0].shape = {5};  // 20 bytes declared, 16 stored
  EXPECT_NE(Rejection(spec).find("needs 20 bytes"), std::string::npos);
  spec = AddModel();
  spec.constants[0].dtype = static_cast<DType>(42);
  EXPECT_NE(Rejection(spec).find("unknown dtype 42"), std::string::npos);
}

TEST(ArtifactTest, RejectsBadInstructions) {
  struct Case {
    const char* expect;
    std::function<void(FunctionSpec&)> edit;
  };
  const Case cases[] = {
      {"instr 0 (Dim): slot 7 is out of range [0, 3)", [](FunctionSpec& f) { f.instrs[0] = Dim(0, 7, 0); }},
      {"instr 1 (Alloc): reg 3 is out of range", [](FunctionSpec& f) { f.instrs[1] = Alloc(2, DType::kF32, {3}); }},
      {"instr 1 (Dispatch): slot 2 is used before it is defined",
       [](FunctionSpec& f) { f.instrs.erase(f.instrs.begin() + 1); }},
      {"kernel 'kiln_test_add_f32' takes 3 arguments but 2 are given",
       [](FunctionSpec& f) { f.instrs[2] = Dispatch(0, 0, {0, 1}); }},
      {"executable 3 does not exist", [](FunctionSpec& f) { f.instrs[2] = Dispatch(3, 0, {0, 1, 2}); }},
      {"kernel 9 does not exist in executable 0", [](FunctionSpec& f) { f.instrs[2] = Dispatch(0, 9, {0, 1, 2}); }},
      {"unknown opcode 99", [](FunctionSpec& f) { f.instrs[0].opcode = static_cast<fb::OpCode>(99); }},
      {"unknown arith kind 77", [](FunctionSpec& f) { f.instrs.push_back({fb::OpCode::Arith, 0, {77, 0, 0}}); }},
      {"expected 4 operands but got 3",
       [](FunctionSpec& f) { f.instrs.push_back(Arith(0, fb::ArithKind::Select, 0, 0)); }},
      {"rank 17 exceeds the limit of 16",
       [](FunctionSpec& f) { f.instrs[1] = Alloc(2, DType::kF32, std::vector<int64_t>(17, 0)); }},
      {"unknown dtype 200", [](FunctionSpec& f) { f.instrs[1].dtype = static_cast<DType>(200); }},
      {"constant 5 does not exist", [](FunctionSpec& f) { f.instrs.push_back(Constant(2, 5)); }},
      {"has 2 inputs but 1 input slots", [](FunctionSpec& f) { f.input_slots = {0}; }},
      {"input slot 3 is out of range", [](FunctionSpec& f) { f.input_slots = {0, 3}; }},
      {"output 0 (slot 2) is never defined", [](FunctionSpec& f) { f.instrs.resize(1); }},
      {"has 1 outputs but 0 output slots", [](FunctionSpec& f) { f.output_slots = {}; }},
      {"invalid num_slots -1", [](FunctionSpec& f) { f.num_slots = -1; }},
      {"expected 1 operands but got 0", [](FunctionSpec& f) { f.instrs.push_back({fb::OpCode::Copy, 2, {}}); }},
      {"instr 3 (Reshape): reg 5 is out of range",
       [](FunctionSpec& f) { f.instrs.push_back(Reshape(2, 2, {5})); }},
      {"input 1 ('x') has a duplicate name", [](FunctionSpec& f) { f.inputs[1].name = "x"; }},
      {"has invalid dim -2", [](FunctionSpec& f) { f.inputs[0].shape = {-2}; }},
      {"2 dim names for rank 1", [](FunctionSpec& f) { f.inputs[0].dim_names = {"a", "b"}; }},
  };
  for (const Case& c : cases) {
    ModelSpec spec = AddModel();
    c.edit(spec.functions[0]);
    std::string message = Rejection(spec);
    EXPECT_NE(message.find(c.expect), std::string::npos) << "want: " << c.expect << "\n got: " << message;
  }
}

TEST(ArtifactTest, RejectsBadModelTables) {
  ModelSpec spec = AddModel();
  spec.functions.push_back(spec.functions[0]);
  EXPECT_NE(Rejection(spec).find("function 'main' is defined twice"), std::string::npos);
  spec = AddModel();
  spec.executables[0].kernels[0].arg_ranks[0] = 40;
  EXPECT_NE(Rejection(spec).find("argument 0 has rank 40"), std::string::npos);
  spec = AddModel();
  spec.executables[0].format = "";
  EXPECT_NE(Rejection(spec).find("executable 0 has no format"), std::string::npos);
}

}  // namespace
}  // namespace kiln::artifact
