//===- vulkan_device_test.cc - The vulkan driver on a real Vulkan device ---===//
//
// Runs wherever a Vulkan loader and device exist (lavapipe in CI) and skips
// itself, with the reason, where they do not. The kernels are hand-written
// SPIR-V (test/unit/spirv/test_kernels.spvasm) following the driver's ABI.
// Transfers and dispatches run twice: with host-visible buffers, and through
// the staging buffers that discrete GPUs use (KILN_VULKAN_FORCE_STAGING).
#include "runtime/hal/vulkan/vulkan_device.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <optional>

#include "runtime/exec/executor.h"
#include "runtime/hal/registry.h"
#include "test/unit/scoped_env.h"
#include "runtime/hal/vulkan/spirv_module.h"
#include "test/unit/artifact_builder.h"

namespace kiln::hal::vulkan {
namespace {

std::vector<uint8_t> TestSpirv() {
  std::ifstream in(KILN_VULKAN_TEST_SPV, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Kernel indices in TestKernels().
constexpr int kAdd = 0, kScale2 = 1, kEchoDims = 2;

ExecutableSpec TestKernels(const std::vector<uint8_t>& spirv) {
  return {"spirv", spirv, {{"add_f32", {1, 1, 1}, true}, {"scale2_f32", {1, 1}, true}, {"echo_dims", {2, 1}, false}}};
}

using kiln::testing::ScopedEnv;

/// A fresh directory for the pipeline cache, so tests never touch ~/.cache.
std::string FreshDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "kiln-vulkan-test-" + std::to_string(getpid()) + "-" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

/// Creates the device, or says why there is none (for GTEST_SKIP).
StatusOr<std::unique_ptr<Device>> MakeDevice(const std::string& name = "vulkan") {
  return CreateDevice(name);
}

bool NoVulkan(const Status& status) { return status.code() == StatusCode::kUnavailable; }

std::span<const uint8_t> Bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}
std::span<uint8_t> Bytes(std::vector<float>& v) { return {reinterpret_cast<uint8_t*>(v.data()), v.size() * sizeof(float)}; }

class VulkanDeviceTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    cache_env_.emplace("XDG_CACHE_HOME", FreshDir("cache").c_str());
    staging_env_.emplace("KILN_VULKAN_FORCE_STAGING", GetParam() ? "1" : nullptr);
    StatusOr<std::unique_ptr<Device>> device = MakeDevice();
    if (!device.ok() && NoVulkan(device.status())) GTEST_SKIP() << device.status().message();
    ASSERT_TRUE(device.ok()) << device.status().message();
    device_ = std::move(*device);
    spirv_ = TestSpirv();
    ASSERT_FALSE(spirv_.empty()) << "cannot read " << KILN_VULKAN_TEST_SPV;
  }

  std::shared_ptr<Buffer> Alloc(uint64_t size) {
    StatusOr<std::shared_ptr<Buffer>> b = device_->Allocate(size);
    EXPECT_TRUE(b.ok()) << b.status().message();
    return b.ok() ? *b : nullptr;
  }

  std::shared_ptr<Buffer> Floats(const std::vector<float>& v, uint64_t extra_front = 0) {
    std::shared_ptr<Buffer> b = Alloc(extra_front + v.size() * sizeof(float));
    if (b) EXPECT_TRUE(device_->Upload(*b, extra_front, Bytes(v)).ok());
    return b;
  }

  std::vector<float> ReadFloats(const Buffer& b, size_t n, uint64_t offset = 0) {
    std::vector<float> out(n);
    Status s = device_->Download(b, offset, Bytes(out));
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }

  std::unique_ptr<Executable> Load() {
    StatusOr<std::unique_ptr<Executable>> exe = device_->LoadExecutable(TestKernels(spirv_));
    EXPECT_TRUE(exe.ok()) << exe.status().message();
    return exe.ok() ? std::move(*exe) : nullptr;
  }

  std::optional<ScopedEnv> cache_env_, staging_env_;
  std::unique_ptr<Device> device_;
  std::vector<uint8_t> spirv_;
};

INSTANTIATE_TEST_SUITE_P(Transfers, VulkanDeviceTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Staging" : "Mapped"; });

TEST_P(VulkanDeviceTest, UploadDownloadRoundTripsAnySize) {
  for (uint64_t size : {0, 1, 13, 64, 4099, 1 << 20}) {
    std::shared_ptr<Buffer> b = Alloc(size);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->size(), size);
    EXPECT_FALSE(b->read_only());
    std::vector<uint8_t> data(size), back(size, 0xee);
    for (uint64_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
    ASSERT_TRUE(device_->Upload(*b, 0, data).ok());
    Status s = device_->Download(*b, 0, back);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(back, data) << "size " << size;
  }
}

TEST_P(VulkanDeviceTest, UploadAndDownloadAtUnalignedOffsets) {
  std::shared_ptr<Buffer> b = Alloc(100);
  std::vector<uint8_t> zeros(100, 0), part(13);
  std::iota(part.begin(), part.end(), 1);
  ASSERT_TRUE(device_->Upload(*b, 0, zeros).ok());
  ASSERT_TRUE(device_->Upload(*b, 7, part).ok());
  std::vector<uint8_t> all(100);
  ASSERT_TRUE(device_->Download(*b, 0, all).ok());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(all[i], i >= 7 && i < 20 ? i - 6 : 0) << i;
  std::vector<uint8_t> three(3);
  ASSERT_TRUE(device_->Download(*b, 9, three).ok());
  EXPECT_EQ(three, (std::vector<uint8_t>{3, 4, 5}));
}

TEST_P(VulkanDeviceTest, TransfersOutsideTheBufferFail) {
  std::shared_ptr<Buffer> b = Alloc(16);
  std::vector<uint8_t> eight(8);
  EXPECT_EQ(device_->Upload(*b, 9, eight).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(device_->Download(*b, 9, eight).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(device_->Upload(*b, ~uint64_t{0}, eight).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(device_->CopyBuffer(*b, 0, *b, 12, 8).code(), StatusCode::kOutOfRange);
}

TEST_P(VulkanDeviceTest, CopyBufferCopiesARange) {
  std::vector<uint8_t> src_bytes(37), dst_bytes(50, 0xaa);
  std::iota(src_bytes.begin(), src_bytes.end(), 0);
  std::shared_ptr<Buffer> src = Alloc(src_bytes.size()), dst = Alloc(dst_bytes.size());
  ASSERT_TRUE(device_->Upload(*src, 0, src_bytes).ok());
  ASSERT_TRUE(device_->Upload(*dst, 0, dst_bytes).ok());
  // Vulkan copies have no alignment rule: odd offsets and sizes.
  ASSERT_TRUE(device_->CopyBuffer(*src, 3, *dst, 5, 21).ok());
  ASSERT_TRUE(device_->CopyBuffer(*src, 0, *dst, 0, 0).ok());  // no-op
  std::vector<uint8_t> out(50);
  ASSERT_TRUE(device_->Download(*dst, 0, out).ok());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(out[i], i >= 5 && i < 26 ? i - 2 : 0xaa) << i;
}

TEST_P(VulkanDeviceTest, WrapHostMemoryCopiesIntoAReadOnlyBuffer) {
  std::vector<uint8_t> host(1001);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<uint8_t>(i ^ 0x5a);
  const std::vector<uint8_t> expected = host;
  StatusOr<std::shared_ptr<Buffer>> b = device_->WrapHostMemory(host.data(), host.size());
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_TRUE((*b)->read_only());
  std::fill(host.begin(), host.end(), 0);  // the device has its own copy
  std::vector<uint8_t> out(host.size());
  ASSERT_TRUE(device_->Download(**b, 0, out).ok());
  EXPECT_EQ(out, expected);
  EXPECT_EQ(device_->Upload(**b, 0, out).code(), StatusCode::kFailedPrecondition);
  StatusOr<std::shared_ptr<Buffer>> empty = device_->WrapHostMemory(nullptr, 0);
  EXPECT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_EQ(device_->WrapHostMemory(nullptr, 4).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(VulkanDeviceTest, RejectsBadSpirv) {
  EXPECT_TRUE(device_->SupportsFormat("spirv"));
  EXPECT_FALSE(device_->SupportsFormat("elf-x86_64"));
  auto load = [&](std::vector<uint8_t> binary, std::vector<KernelInfo> kernels = {{"add_f32", {1, 1, 1}, true}}) {
    return device_->LoadExecutable({"spirv", binary, std::move(kernels)}).status();
  };
  std::vector<uint8_t> bad_magic = spirv_;
  bad_magic[0] ^= 0xff;
  Status s = load(bad_magic);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("magic"), std::string::npos) << s.message();

  s = load(std::vector<uint8_t>(spirv_.begin(), spirv_.end() - 2));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("multiple of 4"), std::string::npos) << s.message();

  // Cut inside the last instruction, and at an instruction boundary.
  s = load(std::vector<uint8_t>(spirv_.begin(), spirv_.end() - 12));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  s = load(std::vector<uint8_t>(spirv_.begin(), spirv_.end() - 4));  // drops the final OpFunctionEnd
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  s = load(std::vector<uint8_t>(spirv_.begin(), spirv_.begin() + 12));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();

  s = load(spirv_, {{"add_f32", {1, 1, 1}, true}, {"mul_f32", {1, 1, 1}, true}});
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("kernel 'mul_f32' not in the SPIR-V module"), std::string::npos) << s.message();

  s = device_->LoadExecutable({"ptx", spirv_, {{"add_f32", {1, 1, 1}, true}}}).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();

  // More push constants than any device has (one int32 per dim).
  s = load(spirv_, {{"add_f32", {400, 400, 400}, true}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'add_f32'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("maxPushConstantsSize"), std::string::npos) << s.message();
}

TEST_P(VulkanDeviceTest, AddsWithAnyWorkgroupCount) {
  std::unique_ptr<Executable> exe = Load();
  ASSERT_TRUE(exe);
  const int64_t n = 1000;
  std::vector<float> a(n), b(n), expected(n);
  for (int64_t i = 0; i < n; ++i) a[i] = 0.5f * i, b[i] = 1000.0f - 3 * i, expected[i] = a[i] + b[i];
  std::shared_ptr<Buffer> ba = Floats(a), bb = Floats(b);
  const std::vector<int64_t> shape = {n};
  for (int64_t groups : {int64_t{1}, int64_t{7}, int64_t{1000}, int64_t{1} << 40}) {  // clamped to the device's limit
    std::shared_ptr<Buffer> out = Floats(std::vector<float>(n, -1));
    std::vector<BufferBinding> args = {{ba.get(), 0, DType::kF32, shape},
                                       {bb.get(), 0, DType::kF32, shape},
                                       {out.get(), 0, DType::kF32, shape}};
    Status s = device_->Dispatch(*exe, kAdd, args, groups);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(ReadFloats(*out, n), expected) << groups << " workgroups";
  }
  EXPECT_GE(device_->PreferredWorkgroupCount(), 1);
}

TEST_P(VulkanDeviceTest, SecondDispatchSeesTheFirstOnesOutput) {
  std::unique_ptr<Executable> exe = Load();
  ASSERT_TRUE(exe);
  const int64_t n = 4099;
  std::vector<float> a(n), b(n), expected(n);
  for (int64_t i = 0; i < n; ++i) a[i] = i, b[i] = 2 * i + 1, expected[i] = 2 * (a[i] + b[i]);
  std::shared_ptr<Buffer> ba = Floats(a), bb = Floats(b), sum = Alloc(n * 4), out = Alloc(n * 4);
  const std::vector<int64_t> shape = {n};
  std::vector<BufferBinding> add = {{ba.get(), 0, DType::kF32, shape},
                                    {bb.get(), 0, DType::kF32, shape},
                                    {sum.get(), 0, DType::kF32, shape}};
  std::vector<BufferBinding> scale = {{sum.get(), 0, DType::kF32, shape}, {out.get(), 0, DType::kF32, shape}};
  ASSERT_TRUE(device_->Dispatch(*exe, kAdd, add, 3).ok());
  ASSERT_TRUE(device_->Dispatch(*exe, kScale2, scale, 5).ok());
  EXPECT_EQ(ReadFloats(*out, n), expected);
}

TEST_P(VulkanDeviceTest, LongChainsCrossBatches) {
  // 150 dependent dispatches (several command buffers) and copies between
  // them: x <- x + 1, with a CopyBuffer every 10 steps.
  std::unique_ptr<Executable> exe = Load();
  ASSERT_TRUE(exe);
  const int64_t n = 333;
  std::shared_ptr<Buffer> ones = Floats(std::vector<float>(n, 1)), x = Floats(std::vector<float>(n, 0)),
                          y = Alloc(n * 4);
  const std::vector<int64_t> shape = {n};
  for (int step = 0; step < 150; ++step) {
    std::vector<BufferBinding> args = {{x.get(), 0, DType::kF32, shape},
                                       {ones.get(), 0, DType::kF32, shape},
                                       {y.get(), 0, DType::kF32, shape}};
    ASSERT_TRUE(device_->Dispatch(*exe, kAdd, args, 2).ok());
    if (step % 10 == 9)
      ASSERT_TRUE(device_->CopyBuffer(*y, 0, *x, 0, n * 4).ok());
    else
      std::swap(x, y);
  }
  ASSERT_TRUE(device_->Wait().ok());
  EXPECT_EQ(ReadFloats(*x, n), std::vector<float>(n, 150));
}

TEST_P(VulkanDeviceTest, BindsArgumentsAtOffsets) {
  std::unique_ptr<Executable> exe = Load();
  ASSERT_TRUE(exe);
  const int64_t n = 100;
  std::vector<float> a(n), b(n), expected(n);
  for (int64_t i = 0; i < n; ++i) a[i] = i, b[i] = 100 * i, expected[i] = 101 * i;
  // a and b share one buffer: a at 64, b at 64 + 448 (a 64-byte multiple).
  const uint64_t a_at = 64, b_at = 64 + 448;
  std::shared_ptr<Buffer> ab = Alloc(b_at + n * 4), out = Floats(std::vector<float>(n + 16, -1));
  ASSERT_TRUE(device_->Upload(*ab, a_at, Bytes(a)).ok());
  ASSERT_TRUE(device_->Upload(*ab, b_at, Bytes(b)).ok());
  const std::vector<int64_t> shape = {n};
  std::vector<BufferBinding> args = {{ab.get(), a_at, DType::kF32, shape},
                                     {ab.get(), b_at, DType::kF32, shape},
                                     {out.get(), 64, DType::kF32, shape}};
  Status s = device_->Dispatch(*exe, kAdd, args, 1);
  ASSERT_TRUE(s.ok()) << s.message();
  std::vector<float> all = ReadFloats(*out, n + 16);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(all[i], -1) << "before the output's offset: " << i;
  EXPECT_EQ(std::vector<float>(all.begin() + 16, all.end()), expected);
}

TEST_P(VulkanDeviceTest, PushConstantsAreEveryArgumentsDimsInOrder) {
  std::unique_ptr<Executable> exe = Load();
  ASSERT_TRUE(exe);
  std::shared_ptr<Buffer> x = Alloc(3 * 5 * 2), out = Alloc(16);
  std::vector<int32_t> sentinel = {-7, -7, -7, -7};
  ASSERT_TRUE(device_->Upload(*out, 0, {reinterpret_cast<const uint8_t*>(sentinel.data()), 16}).ok());
  const std::vector<int64_t> x_shape = {3, 5}, out_shape = {4};
  std::vector<BufferBinding> args = {{x.get(), 0, DType::kF16, x_shape}, {out.get(), 0, DType::kI32, out_shape}};
  ASSERT_TRUE(device_->Dispatch(*exe, kEchoDims, args, 1).ok());
  std::vector<int32_t> got(4);
  ASSERT_TRUE(device_->Download(*out, 0, {reinterpret_cast<uint8_t*>(got.data()), 16}).ok());
  EXPECT_EQ(got, (std::vector<int32_t>{3, 5, 4, -7}));
}

TEST_P(VulkanDeviceTest, EmptyTensorsDispatch) {
  std::unique_ptr<Executable> exe = Load();
  ASSERT_TRUE(exe);
  std::shared_ptr<Buffer> empty = Alloc(0), full = Alloc(64);
  const std::vector<int64_t> shape = {0};
  // One at offset 0 of an empty buffer, one at the very end of a full one.
  std::vector<BufferBinding> args = {{empty.get(), 0, DType::kF32, shape},
                                     {full.get(), 64, DType::kF32, shape},
                                     {empty.get(), 0, DType::kF32, shape}};
  Status s = device_->Dispatch(*exe, kAdd, args, 4);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(device_->Wait().ok());
}

TEST_P(VulkanDeviceTest, DispatchChecksItsArguments) {
  std::unique_ptr<Executable> exe = Load();
  ASSERT_TRUE(exe);
  std::shared_ptr<Buffer> b = Alloc(4096);
  const std::vector<int64_t> shape = {16}, huge = {int64_t{1} << 31}, rank2 = {4, 4};
  auto dispatch = [&](std::vector<BufferBinding> args, int64_t groups = 1, int kernel = kAdd) {
    return device_->Dispatch(*exe, kernel, args, groups);
  };
  BufferBinding ok = {b.get(), 0, DType::kF32, shape};
  EXPECT_TRUE(dispatch({ok, ok, ok}).ok());
  EXPECT_EQ(dispatch({ok, ok}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dispatch({ok, ok, ok}, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dispatch({ok, ok, ok}, 1, 7).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(dispatch({ok, ok, {b.get(), 0, DType::kF32, rank2}}).code(), StatusCode::kInvalidArgument);
  Status s = dispatch({ok, ok, {b.get(), 0, DType::kI8, huge}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("int32"), std::string::npos) << s.message();
  EXPECT_EQ(dispatch({ok, ok, {b.get(), 4096 - 32, DType::kF32, shape}}).code(), StatusCode::kOutOfRange);
  // Every device needs at least 4-byte aligned storage buffer offsets... and
  // lavapipe and all desktop GPUs 16 or more; the executor uses 64.
  s = dispatch({ok, ok, {b.get(), 4, DType::kF32, shape}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("minStorageBufferOffsetAlignment"), std::string::npos) << s.message();
  // A buffer of another device.
  StatusOr<std::unique_ptr<Device>> other = MakeDevice();
  ASSERT_TRUE(other.ok());
  StatusOr<std::shared_ptr<Buffer>> foreign = (*other)->Allocate(4096);
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(dispatch({ok, ok, {foreign->get(), 0, DType::kF32, shape}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->Download(**foreign, 0, {}).code(), StatusCode::kInvalidArgument);
}

TEST_P(VulkanDeviceTest, BuffersAndExecutablesMayOutliveTheDevice) {
  std::unique_ptr<Executable> exe = Load();
  ASSERT_TRUE(exe);
  const int64_t n = 64;
  std::shared_ptr<Buffer> a = Floats(std::vector<float>(n, 1)), out = Alloc(n * 4);
  const std::vector<int64_t> shape = {n};
  std::vector<BufferBinding> args = {{a.get(), 0, DType::kF32, shape},
                                     {a.get(), 0, DType::kF32, shape},
                                     {out.get(), 0, DType::kF32, shape}};
  ASSERT_TRUE(device_->Dispatch(*exe, kAdd, args, 1).ok());
  a.reset();  // still used by the pending dispatch: freed after it
  EXPECT_EQ(ReadFloats(*out, n), std::vector<float>(n, 2));
  device_.reset();
  exe.reset();
  out.reset();
}

TEST_P(VulkanDeviceTest, DroppedBuffersAreNotReusedWhilePendingWorkReadsThem) {
  std::unique_ptr<Executable> exe = Load();
  ASSERT_TRUE(exe);
  const int64_t n = 5000;
  std::vector<float> a(n), expected(n);
  for (int64_t i = 0; i < n; ++i) a[i] = i, expected[i] = 2.0f * i;
  std::shared_ptr<Buffer> in = Floats(a), out = Alloc(n * 4);
  const std::vector<int64_t> shape = {n};
  std::vector<BufferBinding> args = {{in.get(), 0, DType::kF32, shape}, {out.get(), 0, DType::kF32, shape}};
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(device_->Dispatch(*exe, kScale2, args, 2).ok());
    // Drop the input while the dispatch may still read it; a new buffer of
    // the same size must not get its memory before that.
    in.reset();
    std::shared_ptr<Buffer> other = Floats(std::vector<float>(n, -100));
    EXPECT_EQ(ReadFloats(*out, n), expected) << "round " << round;
    // Memory that is free again is reused, with the contents it is given.
    in = Floats(a);
    args[0].buffer = in.get();
  }
}

TEST(VulkanRegistryTest, SelectsDevicesByIndex) {
  StatusOr<std::unique_ptr<Device>> first = CreateDevice("vulkan");
  if (!first.ok() && NoVulkan(first.status())) GTEST_SKIP() << first.status().message();
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ((*first)->name(), "vulkan");
  StatusOr<std::unique_ptr<Device>> zero = CreateDevice("vulkan:0");
  EXPECT_TRUE(zero.ok()) << zero.status().message();

  StatusOr<std::unique_ptr<Device>> out_of_range = CreateDevice("vulkan:99");
  EXPECT_EQ(out_of_range.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out_of_range.status().message().find("Vulkan device(s) found"), std::string::npos)
      << out_of_range.status().message();
  for (const char* bad : {"vulkan:x", "vulkan:", "vulkan:-1", "vulkan:1x"}) {
    StatusOr<std::unique_ptr<Device>> d = CreateDevice(bad);
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(d.status().message().find("not a device index"), std::string::npos) << d.status().message();
  }
}

TEST(VulkanRegistryTest, SingleDeviceDriversTakeOnlyIndexZero) {
  EXPECT_TRUE(CreateDevice("cpu:0").ok());
  EXPECT_EQ(CreateDevice("cpu:1").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateDevice("metal:0").status().code(), StatusCode::kNotFound);
}

TEST(VulkanLoaderTest, MissingLoaderIsAOneLineError) {
  ScopedEnv loader("KILN_VULKAN_LOADER", "/nonexistent/libvulkan.so.1");
  StatusOr<std::unique_ptr<Device>> d = CreateDevice("vulkan");
  EXPECT_EQ(d.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(d.status().message(),
            "vulkan: /nonexistent/libvulkan.so.1 not found (install a Vulkan loader and driver, e.g. libvulkan1 "
            "mesa-vulkan-drivers)");
}

TEST(VulkanLoaderTest, NoDriverIsAOneLineError) {
  StatusOr<std::unique_ptr<Device>> real = CreateDevice("vulkan");
  if (!real.ok() && NoVulkan(real.status())) GTEST_SKIP() << real.status().message();
  // The loader finds no ICD through these.
  ScopedEnv icds("VK_ICD_FILENAMES", "/nonexistent/icd.json");
  ScopedEnv drivers("VK_DRIVER_FILES", "/nonexistent/icd.json");
  StatusOr<std::unique_ptr<Device>> d = CreateDevice("vulkan");
  EXPECT_EQ(d.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(d.status().message().find("vulkan: no Vulkan device found"), std::string::npos) << d.status().message();
  EXPECT_EQ(d.status().message().find('\n'), std::string::npos);
}

TEST(VulkanPipelineCacheTest, PersistsAndSurvivesBadFiles) {
  const std::string dir = FreshDir("pipeline-cache");
  ScopedEnv cache("XDG_CACHE_HOME", dir.c_str());
  const std::vector<uint8_t> spirv = TestSpirv();
  {
    StatusOr<std::unique_ptr<Device>> d = CreateDevice("vulkan");
    if (!d.ok() && NoVulkan(d.status())) GTEST_SKIP() << d.status().message();
    ASSERT_TRUE(d.ok()) << d.status().message();
    ASSERT_TRUE((*d)->LoadExecutable(TestKernels(spirv)).ok());
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir + "/kiln")) files.push_back(entry.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename().string().rfind("vulkan-pipeline-cache-", 0), 0u) << files[0];
  EXPECT_EQ(files[0].extension(), ".bin");
  EXPECT_GE(std::filesystem::file_size(files[0]), 32u);
  {  // Loads it back.
    StatusOr<std::unique_ptr<Device>> d = CreateDevice("vulkan");
    ASSERT_TRUE(d.ok()) << d.status().message();
    ASSERT_TRUE((*d)->LoadExecutable(TestKernels(spirv)).ok());
  }
  {  // A corrupt file is ignored.
    std::ofstream(files[0], std::ios::binary | std::ios::trunc) << std::string(100, 'x');
    StatusOr<std::unique_ptr<Device>> d = CreateDevice("vulkan");
    ASSERT_TRUE(d.ok()) << d.status().message();
    ASSERT_TRUE((*d)->LoadExecutable(TestKernels(spirv)).ok());
  }
  EXPECT_NE(std::filesystem::file_size(files[0]), 100u);  // rewritten
  {  // An unwritable cache directory (a file where the directory should be).
    const std::string blocker = FreshDir("blocked") + "/file";
    std::ofstream(blocker) << "not a directory";
    ScopedEnv blocked("XDG_CACHE_HOME", blocker.c_str());
    StatusOr<std::unique_ptr<Device>> d = CreateDevice("vulkan");
    ASSERT_TRUE(d.ok()) << d.status().message();
    ASSERT_TRUE((*d)->LoadExecutable(TestKernels(spirv)).ok());
  }
}

TEST(SpirvModuleTest, ListsEntryPointsAndRejectsMalformedWords) {
  StatusOr<SpirvModule> m = ParseSpirvModule(TestSpirv());
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->entry_points.size(), 3u);
  EXPECT_EQ(m->entry_points[0].name, "add_f32");
  EXPECT_EQ(m->entry_points[2].name, "echo_dims");
  EXPECT_TRUE(m->CheckKernel("scale2_f32").ok());
  EXPECT_EQ(m->CheckKernel("scale2").code(), StatusCode::kNotFound);

  auto words = [](std::vector<uint32_t> w) {
    std::vector<uint8_t> bytes(w.size() * 4);
    std::memcpy(bytes.data(), w.data(), bytes.size());
    return ParseSpirvModule(bytes).status();
  };
  const uint32_t h[] = {0x07230203, 0x00010300, 0, 10, 0};
  auto with = [&](std::vector<uint32_t> body) {
    std::vector<uint32_t> w(std::begin(h), std::end(h));
    w.insert(w.end(), body.begin(), body.end());
    return w;
  };
  EXPECT_TRUE(words(with({})).ok());                            // header only
  EXPECT_EQ(words(with({0})).code(), StatusCode::kInvalidArgument);  // word count 0
  EXPECT_EQ(words(with({(9u << 16) | 15, 5, 1})).code(), StatusCode::kInvalidArgument);  // runs past the end
  // OpEntryPoint GLCompute %1 "abcd" without the terminating NUL word.
  EXPECT_EQ(words(with({(4u << 16) | 15, 5, 1, 0x64636261})).code(), StatusCode::kInvalidArgument);
  // ... with it, but no OpFunction %1.
  EXPECT_EQ(words(with({(5u << 16) | 15, 5, 1, 0x64636261, 0})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(words({0x03022307, 0, 0, 0, 0}).code(), StatusCode::kInvalidArgument);  // big-endian
}

// The executor on the vulkan device: main(x[n], y[n]) -> z = x + y with the
// SPIR-V add kernel, as the compiler would emit it.
TEST(VulkanExecutorTest, RunsAnArtifact) {
  StatusOr<std::unique_ptr<Device>> device = CreateDevice("vulkan");
  if (!device.ok() && NoVulkan(device.status())) GTEST_SKIP() << device.status().message();
  ASSERT_TRUE(device.ok()) << device.status().message();
  using namespace kiln::testing;  // NOLINT: test shorthands
  ModelSpec m;
  m.target = "vulkan-spirv";
  m.executables.push_back({"spirv", TestSpirv(), {{"add_f32", {1, 1, 1}, true}}});
  std::vector<float> c = {1, 2, 3, 4};
  std::vector<uint8_t> bytes(sizeof(float) * c.size());
  std::memcpy(bytes.data(), c.data(), bytes.size());
  m.constants.push_back({"c", DType::kF32, {4}, bytes});
  FunctionSpec f;
  f.inputs = {{"x", DType::kF32, {-1}, {"n"}}, {"y", DType::kF32, {-1}, {"n"}}};
  f.outputs = {{"z", DType::kF32, {-1}, {"n"}}};
  f.num_slots = 3;
  f.num_regs = 1;
  f.input_slots = {0, 1};
  f.output_slots = {2};
  f.instrs = {Dim(0, 0, 0), Alloc(2, DType::kF32, {0}), Dispatch(0, 0, {0, 1, 2})};
  m.functions.push_back(f);
  StatusOr<std::unique_ptr<artifact::Artifact>> artifact = artifact::Artifact::FromBytes(BuildArtifact(m));
  ASSERT_TRUE(artifact.ok()) << artifact.status().message();
  StatusOr<std::unique_ptr<exec::Executor>> executor = exec::Executor::Create(**artifact, **device);
  ASSERT_TRUE(executor.ok()) << executor.status().message();
  for (int64_t n : {0, 1, 5, 1001}) {
    std::vector<float> x(n), y(n), z(n);
    for (int64_t i = 0; i < n; ++i) x[i] = i, y[i] = 0.5f * i, z[i] = 1.5f * i;
    std::vector<io::Tensor> inputs = {io::Tensor::FromValues<float>(DType::kF32, {n}, x),
                                      io::Tensor::FromValues<float>(DType::kF32, {n}, y)};
    StatusOr<std::vector<io::NamedTensor>> out = (*executor)->RunPositional("main", inputs);
    ASSERT_TRUE(out.ok()) << out.status().message();
    ASSERT_EQ(out->size(), 1u);
    auto values = (*out)[0].tensor.values<float>();
    EXPECT_EQ(std::vector<float>(values.begin(), values.end()), z) << "n = " << n;
  }
}

}  // namespace
}  // namespace kiln::hal::vulkan
