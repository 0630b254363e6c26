//===- executor_test.cc - End to end: artifact + cpu driver + executor ------===//
#include "runtime/exec/executor.h"

#include <gtest/gtest.h>

#include "runtime/exec/index_arith.h"
#include "runtime/hal/registry.h"
#include "test/unit/artifact_builder.h"
#include "test/unit/test_kernels.h"

namespace kiln::exec {
namespace {

using namespace kiln::testing;  // NOLINT: test shorthands
using io::NamedTensor;
using io::Tensor;

/// Artifact + cpu device + executor for one ModelSpec.
struct Harness {
  std::unique_ptr<artifact::Artifact> artifact;
  std::unique_ptr<hal::Device> device;
  std::unique_ptr<Executor> executor;
};

StatusOr<Harness> Make(const ModelSpec& spec, int threads = 4, const std::string& driver = "cpu") {
  Harness h;
  KILN_ASSIGN_OR_RETURN(h.artifact, artifact::Artifact::FromBytes(BuildArtifact(spec)));
  hal::DeviceOptions options;
  options.threads = threads;
  KILN_ASSIGN_OR_RETURN(h.device, hal::CreateDevice(driver, options));
  KILN_ASSIGN_OR_RETURN(h.executor, Executor::Create(*h.artifact, *h.device));
  return h;
}

Tensor F32(std::vector<int64_t> shape, std::vector<float> values) {
  return Tensor::FromValues<float>(DType::kF32, std::move(shape), values);
}

std::vector<float> Values(const Tensor& t) {
  auto v = t.values<float>();
  return {v.begin(), v.end()};
}

TEST(ExecutorTest, AddsVectorsOfAnyLength) {
  StatusOr<Harness> h = Make(AddModel());
  ASSERT_TRUE(h.ok()) << h.status().message();
  for (int64_t n : {0, 1, 5, 1001}) {
    std::vector<float> x(n), y(n), z(n);
    for (int64_t i = 0; i < n; ++i) x[i] = i, y[i] = 0.5f * i, z[i] = 1.5f * i;
    std::vector<NamedTensor> inputs = {{"y", F32({n}, y)}, {"x", F32({n}, x)}};  // any order
    StatusOr<std::vector<NamedTensor>> out = h->executor->Run("main", inputs);
    ASSERT_TRUE(out.ok()) << out.status().message();
    ASSERT_EQ(out->size(), 1u);
    EXPECT_EQ((*out)[0].name, "z");
    EXPECT_EQ((*out)[0].tensor.shape, (std::vector<int64_t>{n}));
    EXPECT_EQ(Values((*out)[0].tensor), z);
  }
  std::vector<Tensor> positional = {F32({2}, {1, 2}), F32({2}, {10, 20})};
  StatusOr<std::vector<NamedTensor>> out = h->executor->RunPositional("main", positional);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(Values((*out)[0].tensor), (std::vector<float>{11, 22}));
}

TEST(ExecutorTest, RunOnDeviceChainsWithoutCopies) {
  StatusOr<Harness> h = Make(AddModel());
  ASSERT_TRUE(h.ok()) << h.status().message();
  StatusOr<DeviceTensor> x = h->executor->Upload(F32({3}, {1, 2, 3}));
  StatusOr<DeviceTensor> y = h->executor->Upload(F32({3}, {10, 20, 30}));
  ASSERT_TRUE(x.ok() && y.ok());
  // z = x + y, then z + y: the first run's output is the second's input as is.
  std::vector<DeviceTensor> first = {*x, *y};
  StatusOr<std::vector<DeviceTensor>> z = h->executor->RunOnDevice("main", first);
  ASSERT_TRUE(z.ok()) << z.status().message();
  ASSERT_EQ(z->size(), 1u);
  std::vector<DeviceTensor> second = {(*z)[0], *y};
  StatusOr<std::vector<DeviceTensor>> w = h->executor->RunOnDevice("main", second);
  ASSERT_TRUE(w.ok()) << w.status().message();
  StatusOr<Tensor> all = h->executor->Download((*w)[0]);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(Values(*all), (std::vector<float>{21, 42, 63}));
  // The inputs were only read.
  EXPECT_EQ(Values(*h->executor->Download(*x)), (std::vector<float>{1, 2, 3}));
  // A range comes back flat; out-of-range ranges are errors.
  StatusOr<Tensor> tail = h->executor->Download((*w)[0], 1, 2);
  ASSERT_TRUE(tail.ok()) << tail.status().message();
  EXPECT_EQ(Values(*tail), (std::vector<float>{42, 63}));
  EXPECT_FALSE(h->executor->Download((*w)[0], 2, 2).ok());
  EXPECT_FALSE(h->executor->Download((*w)[0], -1, 1).ok());

  // Shapes are checked as for host inputs, and a tensor must fit its buffer.
  DeviceTensor too_big = *x;
  too_big.shape = {4};
  std::vector<DeviceTensor> bad = {too_big, too_big};
  EXPECT_EQ(h->executor->RunOnDevice("main", bad).status().message(),
            "input 'x': f32[4] does not fit its device buffer");
  DeviceTensor shifted = *x;
  shifted.offset = 8;  // 12-byte buffer: 4 bytes left, 12 needed
  bad = {shifted, *y};
  EXPECT_FALSE(h->executor->RunOnDevice("main", bad).ok());
  bad = {*x};
  EXPECT_EQ(h->executor->RunOnDevice("main", bad).status().message(), "function 'main' takes 2 inputs but 1 were given");
  bad = {*x, DeviceTensor{}};
  EXPECT_FALSE(h->executor->RunOnDevice("main", bad).ok());
}

TEST(ExecutorTest, ReportsBadInputs) {
  ModelSpec spec = AddModel();
  spec.functions[0].inputs[1] = {"y", DType::kF32, {3}};  // y static [3], x dynamic [n]
  StatusOr<Harness> h = Make(spec);
  ASSERT_TRUE(h.ok()) << h.status().message();
  auto run = [&](std::vector<NamedTensor> inputs) { return h->executor->Run("main", inputs).status(); };
  EXPECT_EQ(run({{"x", F32({3}, {1, 2, 3})}, {"y", F32({4}, {1, 2, 3, 4})}}).message(),
            "input 'y': expected shape [3] but got [4]");
  EXPECT_EQ(run({{"x", F32({3, 1}, {1, 2, 3})}, {"y", F32({3}, {1, 2, 3})}}).message(),
            "input 'x': expected shape [n] but got [3,1]");
  EXPECT_EQ(run({{"x", Tensor::FromValues<int32_t>(DType::kI32, {3}, {1, 2, 3})}, {"y", F32({3}, {1, 2, 3})}})
                .message(),
            "input 'x': expected dtype f32 but got i32");
  EXPECT_EQ(run({{"x", F32({3}, {1, 2, 3})}}).message(), "missing input 'y'");
  EXPECT_EQ(run({{"x", F32({3}, {1, 2, 3})}, {"y", F32({3}, {1, 2, 3})}, {"w", F32({1}, {1})}}).message(),
            "function 'main' has no input 'w' (inputs: x, y)");
  EXPECT_EQ(run({{"x", F32({3}, {1, 2, 3})}, {"x", F32({3}, {1, 2, 3})}}).message(), "input 'x' is given twice");
  EXPECT_EQ(h->executor->Run("nope", {}).status().code(), StatusCode::kNotFound);
  // A tensor whose bytes do not match its shape.
  Tensor bad = F32({3}, {1, 2});
  bad.shape = {3};
  EXPECT_NE(run({{"x", bad}, {"y", F32({3}, {1, 2, 3})}}).message().find("holds 8 bytes"), std::string::npos);
}

TEST(ExecutorTest, NamedDynamicDimsMustAgree) {
  StatusOr<Harness> h = Make(AddModel());
  ASSERT_TRUE(h.ok());
  std::vector<NamedTensor> inputs = {{"x", F32({2}, {1, 2})}, {"y", F32({3}, {1, 2, 3})}};
  EXPECT_EQ(h->executor->Run("main", inputs).status().message(),
            "input 'y': dim 0 ('n') is 3 but input 'x' has 2");
}

/// x: f32[2,3] -> reshape [6] -> + constant c[6] -> reshape [2,3] -> y, and
/// ycopy = Copy(y); y2 = double_2d(x).
ModelSpec ReshapeConstantCopyModel() {
  ModelSpec m;
  m.executables.push_back(TestKernelsExecutable());
  std::vector<float> c = {10, 20, 30, 40, 50, 60};
  std::vector<uint8_t> bytes(24);
  std::memcpy(bytes.data(), c.data(), 24);
  m.constants.push_back({"c", DType::kF32, {6}, bytes});
  FunctionSpec f;
  f.inputs = {{"x", DType::kF32, {2, 3}}};
  f.outputs = {{"y", DType::kF32, {2, 3}}, {"ycopy", DType::kF32, {2, 3}}, {"twice/x:0", DType::kF32, {2, 3}}};
  f.num_slots = 7;
  f.num_regs = 3;
  f.input_slots = {0};
  f.output_slots = {4, 5, 6};
  f.instrs = {
      ConstIndex(0, 6), Reshape(1, 0, {0}), Constant(2, 0), Alloc(3, DType::kF32, {0}),
      Dispatch(0, 0, {1, 2, 3}), ConstIndex(1, 2), ConstIndex(2, 3), Reshape(4, 3, {1, 2}),
      Copy(5, 4), Alloc(6, DType::kF32, {1, 2}), Dispatch(0, 1, {0, 6}),
  };
  m.functions.push_back(f);
  return m;
}

TEST(ExecutorTest, ReshapeConstantCopy) {
  StatusOr<Harness> h = Make(ReshapeConstantCopyModel());
  ASSERT_TRUE(h.ok()) << h.status().message();
  std::vector<NamedTensor> inputs = {{"x", F32({2, 3}, {1, 2, 3, 4, 5, 6})}};
  StatusOr<std::vector<NamedTensor>> out = h->executor->Run("main", inputs);
  ASSERT_TRUE(out.ok()) << out.status().message();
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0].tensor.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Values((*out)[0].tensor), (std::vector<float>{11, 22, 33, 44, 55, 66}));
  EXPECT_EQ(Values((*out)[1].tensor), Values((*out)[0].tensor));
  EXPECT_EQ((*out)[2].name, "twice/x:0");
  EXPECT_EQ(Values((*out)[2].tensor), (std::vector<float>{2, 4, 6, 8, 10, 12}));
}

TEST(ExecutorTest, ReshapeMustKeepElementCount) {
  ModelSpec m = ReshapeConstantCopyModel();
  m.functions[0].instrs[0] = ConstIndex(0, 5);
  StatusOr<Harness> h = Make(m);
  ASSERT_TRUE(h.ok());
  std::vector<NamedTensor> inputs = {{"x", F32({2, 3}, {1, 2, 3, 4, 5, 6})}};
  EXPECT_EQ(h->executor->Run("main", inputs).status().message(),
            "function 'main' instr 1 (Reshape): cannot reshape [2,3] (6 elements) to [5] (5 elements)");
}

/// main(x: f32[n]) -> z: f32[?] with z's length computed by `instrs` into reg 1.
ModelSpec AllocModel(std::vector<InstrSpec> length_instrs) {
  ModelSpec m;
  FunctionSpec f;
  f.inputs = {{"x", DType::kF32, {-1}}};
  f.outputs = {{"z", DType::kF32, {-1, -1}}};
  f.num_slots = 2;
  f.num_regs = 4;
  f.input_slots = {0};
  f.output_slots = {1};
  f.instrs = {Dim(0, 0, 0)};
  f.instrs.insert(f.instrs.end(), length_instrs.begin(), length_instrs.end());
  f.instrs.push_back(Alloc(1, DType::kF32, {1, 1}));
  m.functions.push_back(f);
  return m;
}

TEST(ExecutorTest, IndexArithmeticAndAllocLimits) {
  std::vector<NamedTensor> inputs = {{"x", F32({4}, {0, 0, 0, 0})}};
  {  // reg1 = ceildiv(n=4, 3) = 2 -> z: [2,2]
    StatusOr<Harness> h = Make(AllocModel({ConstIndex(2, 3), Arith(1, fb::ArithKind::CeilDivS, 0, 2)}));
    ASSERT_TRUE(h.ok()) << h.status().message();
    StatusOr<std::vector<NamedTensor>> out = h->executor->Run("main", inputs);
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_EQ((*out)[0].tensor.shape, (std::vector<int64_t>{2, 2}));
  }
  {  // division by zero
    StatusOr<Harness> h = Make(AllocModel({ConstIndex(2, 0), Arith(1, fb::ArithKind::DivS, 0, 2)}));
    ASSERT_TRUE(h.ok());
    Status s = h->executor->Run("main", inputs).status();
    EXPECT_EQ(s.message(), "function 'main' instr 2 (Arith): division by zero in DivS(4, 0)");
  }
  {  // element count overflows int64
    StatusOr<Harness> h = Make(AllocModel({ConstIndex(1, int64_t{1} << 40)}));
    ASSERT_TRUE(h.ok());
    Status s = h->executor->Run("main", inputs).status();
    EXPECT_NE(s.message().find("instr 2 (Alloc): element count of shape [1099511627776,1099511627776] overflows"),
              std::string::npos)
        << s.message();
  }
  {  // absurd size
    StatusOr<Harness> h = Make(AllocModel({ConstIndex(1, int64_t{1} << 25)}));
    ASSERT_TRUE(h.ok());
    Status s = h->executor->Run("main", inputs).status();
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
    EXPECT_NE(s.message().find("exceeds the limit"), std::string::npos) << s.message();
  }
  {  // negative dim
    StatusOr<Harness> h = Make(AllocModel({ConstIndex(1, -3)}));
    ASSERT_TRUE(h.ok());
    EXPECT_NE(h->executor->Run("main", inputs).status().message().find("negative dim -3"), std::string::npos);
  }
}

TEST(ExecutorTest, DispatchRunsEveryWorkgroupOnce) {
  // counts: i32[8] in, updated in place by count_workgroups (distributable).
  ModelSpec m;
  m.executables.push_back(TestKernelsExecutable());
  FunctionSpec f;
  f.inputs = {{"counts", DType::kI32, {8}}};
  f.outputs = {{"counts_out", DType::kI32, {8}}};
  f.num_slots = 1;
  f.input_slots = {0};
  f.output_slots = {0};
  f.instrs = {Dispatch(0, 2, {0}), Dispatch(0, 2, {0})};
  m.functions.push_back(f);
  for (int threads : {1, 3, 8}) {
    StatusOr<Harness> h = Make(m, threads);
    ASSERT_TRUE(h.ok()) << h.status().message();
    EXPECT_EQ(h->device->PreferredWorkgroupCount(), threads);
    std::vector<NamedTensor> inputs = {{"counts", Tensor::FromValues<int32_t>(DType::kI32, {8}, std::vector<int32_t>(8, 0))}};
    StatusOr<std::vector<NamedTensor>> out = h->executor->Run("main", inputs);
    ASSERT_TRUE(out.ok()) << out.status().message();
    auto counts = (*out)[0].tensor.values<int32_t>();
    for (int i = 0; i < 8; ++i) EXPECT_EQ(counts[i], i < threads ? 2 : 0) << threads << " threads, wg " << i;
  }
}

TEST(ExecutorTest, ExecutableLoadErrors) {
  ModelSpec m = AddModel();
  m.executables[0].kernels[0].name = "no_such_kernel";
  EXPECT_EQ(Make(m).status().message(),
            StrCat("executable 0 (", HostElfFormat(), "): cpu driver: kernel 'no_such_kernel' is not exported by the executable"));
  m = AddModel();
  m.executables[0].format = HostElfFormat() == "elf-x86_64" ? "elf-aarch64" : "elf-x86_64";
  EXPECT_NE(Make(m).status().message().find("ELF machine"), std::string::npos) << Make(m).status().message();
  m = AddModel();
  m.executables[0].format = "spirv";
  EXPECT_NE(Make(m).status().message().find("format 'spirv' is not supported"), std::string::npos);
  m = AddModel();
  m.executables[0].binary.resize(100);
  EXPECT_FALSE(Make(m).ok());
  StatusOr<Harness> null = Make(AddModel(), 1, "null");
  EXPECT_EQ(null.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(null.status().message().find("null driver: LoadExecutable is not implemented"), std::string::npos);
}

TEST(ExecutorTest, SeveralExecutorsLoadTheSameBinary) {
  // Each executable gets its own memfd; loading twice must give two working copies.
  StatusOr<Harness> a = Make(AddModel());
  StatusOr<Harness> b = Make(AddModel());
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<NamedTensor> inputs = {{"x", F32({1}, {1})}, {"y", F32({1}, {2})}};
  EXPECT_EQ(Values((*a->executor->Run("main", inputs))[0].tensor), (std::vector<float>{3}));
  a = Status(StatusCode::kInternal, "dropped");
  EXPECT_EQ(Values((*b->executor->Run("main", inputs))[0].tensor), (std::vector<float>{3}));
  StatusOr<Harness> c = Make(AddModel());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Values((*c->executor->Run("main", inputs))[0].tensor), (std::vector<float>{3}));
}

TEST(IndexArithTest, Semantics) {
  using K = fb::ArithKind;
  EXPECT_EQ(*EvalArith(K::DivS, -7, 2), -3);
  EXPECT_EQ(*EvalArith(K::FloorDivS, -7, 2), -4);
  EXPECT_EQ(*EvalArith(K::CeilDivS, -7, 2), -3);
  EXPECT_EQ(*EvalArith(K::CeilDivS, 7, 2), 4);
  EXPECT_EQ(*EvalArith(K::FloorDivS, 7, -2), -4);
  EXPECT_EQ(*EvalArith(K::RemS, -7, 2), -1);
  EXPECT_EQ(*EvalArith(K::MaxS, -7, 2), 2);
  EXPECT_EQ(*EvalArith(K::MinS, -7, 2), -7);
  EXPECT_EQ(*EvalArith(K::CmpLe, 2, 2), 1);
  EXPECT_EQ(*EvalArith(K::CmpGt, 2, 2), 0);
  EXPECT_EQ(*EvalArith(K::Select, 0, 5, 6), 6);
  EXPECT_EQ(*EvalArith(K::Select, 1, 5, 6), 5);
  EXPECT_FALSE(EvalArith(K::RemS, 1, 0).ok());
  EXPECT_FALSE(EvalArith(K::Mul, int64_t{1} << 40, int64_t{1} << 40).ok());
  EXPECT_FALSE(EvalArith(K::DivS, INT64_MIN, -1).ok());
  EXPECT_EQ(*EvalArith(K::RemS, INT64_MIN, -1), 0);
}

TEST(RegistryTest, UnknownDriverAndNullDriver) {
  StatusOr<std::unique_ptr<hal::Device>> d = hal::CreateDevice("tpu");
  // Sorted; the optional vulkan driver follows when it was built.
  EXPECT_EQ(d.status().message().rfind("unknown device 'tpu' (available: cpu, cuda, null", 0), 0u) << d.status().message();
  std::unique_ptr<hal::Device> null = *hal::CreateDevice("null");
  EXPECT_EQ(null->Allocate(16).status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(null->Wait().code(), StatusCode::kUnimplemented);
  EXPECT_FALSE(hal::CreateDevice("cpu", {.threads = -1}).ok());
}

}  // namespace
}  // namespace kiln::exec
