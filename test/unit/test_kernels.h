//===- test_kernels.h - The shared object built from test_kernels.c ---------===//
#ifndef KILN_TEST_UNIT_TEST_KERNELS_H_
#define KILN_TEST_UNIT_TEST_KERNELS_H_

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "test/unit/artifact_builder.h"

namespace kiln::testing {

/// Bytes of the test kernels' .so; its path comes from CMake at build time.
inline std::vector<uint8_t> TestKernelsBinary() {
  std::ifstream in(KILN_TEST_KERNELS_SO, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Executable 0 of most test models: the kernels of test_kernels.c.
/// Kernel 0: add_f32(a[n], b[n], out[n]), distributable.
/// Kernel 1: double_2d_f32(in[m,n], out[m,n]).
/// Kernel 2: count_workgroups_i32(counts[n]), distributable.
inline ExecutableSpec TestKernelsExecutable() {
  return {HostElfFormat(),
          TestKernelsBinary(),
          {{"kiln_test_add_f32", {1, 1, 1}, true},
           {"kiln_test_double_2d_f32", {2, 2}, false},
           {"kiln_test_count_workgroups_i32", {1}, true}}};
}

/// A complete small model: main(x: f32[n], y: f32[n]) -> z = x + y, with one
/// constant (f32[4] 'c' = 1,2,3,4) so that every section kind is present.
inline ModelSpec AddModel() {
  ModelSpec m;
  m.executables.push_back(TestKernelsExecutable());
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
  m.metadata = {{"model", "add"}};
  return m;
}

}  // namespace kiln::testing

#endif  // KILN_TEST_UNIT_TEST_KERNELS_H_
