// test_kernels.c - tiny kernels with the kiln cpu ABI (see Kernel in kiln.fbs),
// built as a shared object at test-build time and embedded into test artifacts.
#include <stdint.h>

typedef struct {
  void* allocated;
  void* aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
} Memref1D;

typedef struct {
  void* allocated;
  void* aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} Memref2D;

/// out[i] = a[i] + b[i] over rank-1 f32; workgroups split the range.
void kiln_test_add_f32(void** args, int64_t workgroup_id, int64_t workgroup_count) {
  const Memref1D* a = (const Memref1D*)args[0];
  const Memref1D* b = (const Memref1D*)args[1];
  const Memref1D* out = (const Memref1D*)args[2];
  int64_t n = out->sizes[0];
  int64_t chunk = (n + workgroup_count - 1) / workgroup_count;
  int64_t begin = workgroup_id * chunk;
  int64_t end = begin + chunk < n ? begin + chunk : n;
  const float* pa = (const float*)a->aligned + a->offset;
  const float* pb = (const float*)b->aligned + b->offset;
  float* po = (float*)out->aligned + out->offset;
  for (int64_t i = begin; i < end; ++i) po[i * out->strides[0]] = pa[i * a->strides[0]] + pb[i * b->strides[0]];
}

/// out[i][j] = 2 * in[i][j] over rank-2 f32; not distributable.
void kiln_test_double_2d_f32(void** args, int64_t workgroup_id, int64_t workgroup_count) {
  (void)workgroup_id;
  (void)workgroup_count;
  const Memref2D* in = (const Memref2D*)args[0];
  const Memref2D* out = (const Memref2D*)args[1];
  const float* pi = (const float*)in->aligned + in->offset;
  float* po = (float*)out->aligned + out->offset;
  for (int64_t i = 0; i < in->sizes[0]; ++i)
    for (int64_t j = 0; j < in->sizes[1]; ++j)
      po[i * out->strides[0] + j * out->strides[1]] = 2.0f * pi[i * in->strides[0] + j * in->strides[1]];
}

/// counts[workgroup_id] += 1 and counts[n-1] holds workgroup_count when it
/// fits: lets a test see that every workgroup ran exactly once.
void kiln_test_count_workgroups_i32(void** args, int64_t workgroup_id, int64_t workgroup_count) {
  (void)workgroup_count;
  const Memref1D* counts = (const Memref1D*)args[0];
  int32_t* p = (int32_t*)counts->aligned + counts->offset;
  if (workgroup_id < counts->sizes[0]) __atomic_fetch_add(&p[workgroup_id], 1, __ATOMIC_RELAXED);
}
