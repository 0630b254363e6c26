//===- cuda_device_test.cc - The cuda driver against a fake libcuda --------===//
//
// No GPU is needed: KILN_CUDA_DRIVER points the driver at fake_libcuda.c, a
// libcuda stand-in whose one kernel reads its parameters as kiln's CUDA ABI
// lays them out. Also the errors of a machine without a driver.
#include "runtime/hal/cuda/cuda_device.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>
#include <string>
#include <vector>

#include "runtime/hal/registry.h"
#include "test/unit/scoped_env.h"

namespace kiln::hal::cuda {
namespace {

using kiln::testing::ScopedEnv;

/// The fake's report functions.
template <typename F>
F Fake(const char* name) {
  void* lib = dlopen(KILN_FAKE_LIBCUDA, RTLD_NOW | RTLD_NOLOAD);
  return lib ? reinterpret_cast<F>(dlsym(lib, name)) : nullptr;
}

std::span<const uint8_t> Bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

const std::string kPtx = "//\n// fake PTX\n.version 8.0\n.target sm_90\n";

ExecutableSpec AddKernel(const std::string& format, const std::string& image) {
  return {format, {reinterpret_cast<const uint8_t*>(image.data()), image.size()}, {{"add_f32", {1, 1, 1}, true}}};
}

TEST(CudaDevice, IsRegistered) {
  auto names = DriverRegistry::Global().Names();
  EXPECT_NE(std::find(names.begin(), names.end(), "cuda"), names.end());
}

TEST(CudaDevice, NoDriverIsOneClearError) {
  ScopedEnv env("KILN_CUDA_DRIVER", "/nonexistent/libcuda.so.1");
  auto device = CreateDevice("cuda");
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(device.status().message().find("not found"), std::string::npos) << device.status().message();
}

TEST(CudaDevice, RunsAKernelWithKilnsParameterLayout) {
  ScopedEnv env("KILN_CUDA_DRIVER", KILN_FAKE_LIBCUDA);
  auto device = CreateDevice("cuda");
  ASSERT_TRUE(device.ok()) << device.status().message();
  Device& d = **device;
  EXPECT_EQ(d.name(), "cuda");
  EXPECT_EQ(d.PreferredWorkgroupCount(), 4 * 8);  // 4 SMs
  EXPECT_TRUE(d.SupportsFormat("ptx"));
  EXPECT_TRUE(d.SupportsFormat("cubin-sm_90"));
  EXPECT_FALSE(d.SupportsFormat("spirv"));

  auto exe = d.LoadExecutable(AddKernel("ptx", kPtx));
  ASSERT_TRUE(exe.ok()) << exe.status().message();
  EXPECT_STREQ(Fake<const char* (*)()>("fake_cuda_last_image_kind")(), "ptx");

  const int64_t n = 1000;
  std::vector<float> a(n), b(n);
  for (int64_t i = 0; i < n; ++i) a[i] = float(i), b[i] = 0.5f * float(i);
  // Arguments at offsets inside one buffer, as the executor binds them.
  auto buf = d.Allocate(3 * n * sizeof(float) + 256);
  ASSERT_TRUE(buf.ok());
  ASSERT_TRUE(d.Upload(**buf, 0, Bytes(a)).ok());
  ASSERT_TRUE(d.Upload(**buf, n * sizeof(float), Bytes(b)).ok());
  std::vector<int64_t> shape{n};
  BufferBinding args[3] = {{buf->get(), 0, DType::kF32, shape},
                           {buf->get(), n * sizeof(float), DType::kF32, shape},
                           {buf->get(), 2 * n * sizeof(float), DType::kF32, shape}};
  Status s = d.Dispatch(**exe, 0, args, 3);
  ASSERT_TRUE(s.ok()) << s.message();
  std::vector<float> out(n);
  ASSERT_TRUE(d.Download(**buf, 2 * n * sizeof(float), {reinterpret_cast<uint8_t*>(out.data()), out.size() * 4}).ok());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], 1.5f * float(i)) << i;
  EXPECT_EQ(Fake<int (*)()>("fake_cuda_last_grid")(), 3);
  EXPECT_EQ(Fake<int (*)()>("fake_cuda_last_block")(), 128);  // the kernel's .maxntid
}

TEST(CudaDevice, RejectsBadDispatchesAndImages) {
  ScopedEnv env("KILN_CUDA_DRIVER", KILN_FAKE_LIBCUDA);
  auto device = CreateDevice("cuda");
  ASSERT_TRUE(device.ok()) << device.status().message();
  Device& d = **device;
  // A cubin for another architecture: a one-line error naming both.
  auto wrong = d.LoadExecutable(AddKernel("cubin-sm_80", "\177ELF...."));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("sm_80"), std::string::npos) << wrong.status().message();
  EXPECT_NE(wrong.status().message().find("sm_90"), std::string::npos) << wrong.status().message();
  // A kernel the module lacks.
  ExecutableSpec missing = AddKernel("ptx", kPtx);
  missing.kernels[0].name = "no_such_kernel";
  auto bad = d.LoadExecutable(missing);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no_such_kernel"), std::string::npos) << bad.status().message();
  // Garbage instead of PTX.
  EXPECT_FALSE(d.LoadExecutable(AddKernel("ptx", "garbage")).ok());

  auto exe = d.LoadExecutable(AddKernel("ptx", kPtx));
  ASSERT_TRUE(exe.ok());
  auto buf = d.Allocate(64);
  ASSERT_TRUE(buf.ok());
  std::vector<int64_t> shape{16}, big{17};
  BufferBinding ok{buf->get(), 0, DType::kF32, shape};
  BufferBinding outside{buf->get(), 0, DType::kF32, big};
  BufferBinding two[2] = {ok, ok};
  EXPECT_FALSE(d.Dispatch(**exe, 0, two, 1).ok());  // wrong argument count
  BufferBinding three[3] = {ok, ok, outside};
  EXPECT_EQ(d.Dispatch(**exe, 0, three, 1).code(), StatusCode::kOutOfRange);
  BufferBinding fine[3] = {ok, ok, ok};
  EXPECT_FALSE(d.Dispatch(**exe, 1, fine, 1).ok());  // no kernel 1
  EXPECT_FALSE(d.Dispatch(**exe, 0, fine, 0).ok());  // no workgroups
  EXPECT_TRUE(d.Dispatch(**exe, 0, fine, 1).ok());
  // Out-of-range copies.
  std::vector<float> v(32);
  EXPECT_EQ(d.Upload(**buf, 0, Bytes(v)).code(), StatusCode::kOutOfRange);
}

TEST(CudaDevice, IndexOutOfRange) {
  ScopedEnv env("KILN_CUDA_DRIVER", KILN_FAKE_LIBCUDA);
  auto device = CreateDevice("cuda:3");
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(device.status().message().find("cuda:0"), std::string::npos) << device.status().message();
}

TEST(CudaDevice, FreedMemoryIsReused) {
  ScopedEnv env("KILN_CUDA_DRIVER", KILN_FAKE_LIBCUDA);
  auto device = CreateDevice("cuda");
  ASSERT_TRUE(device.ok());
  auto live = Fake<int (*)()>("fake_cuda_live_allocs");
  int before = live();
  for (int i = 0; i < 10; ++i) {
    auto buf = (*device)->Allocate(1 << 20);
    ASSERT_TRUE(buf.ok());
  }
  EXPECT_EQ(live() - before, 1);  // one block, taken and given back ten times
}

}  // namespace
}  // namespace kiln::hal::cuda
