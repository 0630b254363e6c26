/* cuda_peak.c - what an NVIDIA GPU can do at most, the yardstick of bench/gpu_bench.py:
 * device memory read bandwidth and f16 tensor-core throughput (mma.sync with f32
 * accumulators, the instruction kiln's tensor-core kernels reach through WMMA).
 *
 *   cc -O2 -o cuda_peak bench/cuda_peak.c -ldl
 *   ./cuda_peak [--device N] [--mib 2048] [--json]     one JSON line with --json
 *   ./cuda_peak --print-ptx                             the kernels (ptxas-checked by ctest)
 *
 * Like kiln's runtime it loads libcuda.so.1 at run time and gives the driver PTX (it
 * JIT-compiles it for the GPU at hand): no CUDA toolkit is needed.
 *
 *   read   each thread streams 16-byte vectors (ld.global.nc.v4) over a buffer of
 *          --mib MiB, grid-stride, xor-folding them so the loads stay; bytes / time,
 *          best of 5 after a warm-up.
 *   mma    every warp of 8 per block, 16 blocks per SM, runs 4 independent chains of
 *          mma.sync.m16n8k16 (f16 x f16 + f32: 4096 flops each); flops / time.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char kPtx[] =
    ".version 7.0\n"
    ".target sm_80\n"
    ".address_size 64\n"
    "\n"
    ".visible .entry read_bw(.param .u64 src, .param .u64 dst, .param .u64 n16) {\n"
    "  .reg .b64 %rd<14>;\n"
    "  .reg .b32 %r<12>;\n"
    "  .reg .pred %p;\n"
    "  ld.param.u64 %rd1, [src];\n"
    "  ld.param.u64 %rd2, [dst];\n"
    "  ld.param.u64 %rd3, [n16];\n"
    "  cvta.to.global.u64 %rd1, %rd1;\n"
    "  cvta.to.global.u64 %rd2, %rd2;\n"
    "  mov.u32 %r1, %ctaid.x;\n"
    "  mov.u32 %r2, %ntid.x;\n"
    "  mov.u32 %r3, %tid.x;\n"
    "  mov.u32 %r4, %nctaid.x;\n"
    "  cvt.u64.u32 %rd4, %r1;\n"
    "  cvt.u64.u32 %rd5, %r2;\n"
    "  cvt.u64.u32 %rd6, %r3;\n"
    "  cvt.u64.u32 %rd7, %r4;\n"
    "  mad.lo.u64 %rd8, %rd4, %rd5, %rd6;\n"
    "  mov.u64 %rd12, %rd8;\n"
    "  mul.lo.u64 %rd9, %rd7, %rd5;\n"
    "  mov.u32 %r9, 0;\n"
    "LOOP:\n"
    "  setp.ge.u64 %p, %rd8, %rd3;\n"
    "  @%p bra DONE;\n"
    "  shl.b64 %rd10, %rd8, 4;\n"
    "  add.u64 %rd11, %rd1, %rd10;\n"
    "  ld.global.nc.v4.u32 {%r5, %r6, %r7, %r8}, [%rd11];\n"
    "  xor.b32 %r9, %r9, %r5;\n"
    "  xor.b32 %r9, %r9, %r6;\n"
    "  xor.b32 %r9, %r9, %r7;\n"
    "  xor.b32 %r9, %r9, %r8;\n"
    "  add.u64 %rd8, %rd8, %rd9;\n"
    "  bra LOOP;\n"
    "DONE:\n"
    "  shl.b64 %rd13, %rd12, 2;\n"
    "  add.u64 %rd13, %rd2, %rd13;\n"
    "  st.global.u32 [%rd13], %r9;\n"
    "  ret;\n"
    "}\n"
    "\n"
    ".visible .entry mma_peak(.param .u64 dst, .param .u32 iters) {\n"
    "  .reg .b64 %rd<6>;\n"
    "  .reg .b32 %r<12>;\n"
    "  .reg .b32 %a<4>;\n"
    "  .reg .b32 %b<2>;\n"
    "  .reg .f32 %c<16>;\n"
    "  .reg .pred %p;\n"
    "  ld.param.u64 %rd1, [dst];\n"
    "  ld.param.u32 %r1, [iters];\n"
    "  cvta.to.global.u64 %rd1, %rd1;\n"
    "  mov.u32 %r2, %tid.x;\n"
    "  mov.u32 %r3, %ctaid.x;\n"
    "  mov.u32 %r4, %ntid.x;\n"
    "  mad.lo.u32 %r5, %r3, %r4, %r2;\n"
    /* Small halves (2^-10 and 2^-9 bit patterns mixed with the thread id) keep the
     * sums finite over any number of iterations. */
    "  and.b32 %r6, %r2, 7;\n"
    "  or.b32 %a0, %r6, 0x14001400;\n"
    "  or.b32 %a1, %r6, 0x14001800;\n"
    "  or.b32 %a2, %r6, 0x18001400;\n"
    "  or.b32 %a3, %r6, 0x18001800;\n"
    "  or.b32 %b0, %r6, 0x14001400;\n"
    "  or.b32 %b1, %r6, 0x18001800;\n"
    "  mov.f32 %c0, 0f00000000;\n  mov.f32 %c1, 0f00000000;\n"
    "  mov.f32 %c2, 0f00000000;\n  mov.f32 %c3, 0f00000000;\n"
    "  mov.f32 %c4, 0f00000000;\n  mov.f32 %c5, 0f00000000;\n"
    "  mov.f32 %c6, 0f00000000;\n  mov.f32 %c7, 0f00000000;\n"
    "  mov.f32 %c8, 0f00000000;\n  mov.f32 %c9, 0f00000000;\n"
    "  mov.f32 %c10, 0f00000000;\n  mov.f32 %c11, 0f00000000;\n"
    "  mov.f32 %c12, 0f00000000;\n  mov.f32 %c13, 0f00000000;\n"
    "  mov.f32 %c14, 0f00000000;\n  mov.f32 %c15, 0f00000000;\n"
    "  mov.u32 %r7, 0;\n"
    "MLOOP:\n"
    "  mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%c0, %c1, %c2, %c3}, {%a0, %a1, %a2, %a3}, {%b0, %b1}, {%c0, %c1, %c2, %c3};\n"
    "  mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%c4, %c5, %c6, %c7}, {%a0, %a1, %a2, %a3}, {%b0, %b1}, {%c4, %c5, %c6, %c7};\n"
    "  mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%c8, %c9, %c10, %c11}, {%a0, %a1, %a2, %a3}, {%b0, %b1}, {%c8, %c9, %c10, %c11};\n"
    "  mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%c12, %c13, %c14, %c15}, {%a0, %a1, %a2, %a3}, {%b0, %b1}, {%c12, %c13, %c14, %c15};\n"
    "  add.u32 %r7, %r7, 1;\n"
    "  setp.lt.u32 %p, %r7, %r1;\n"
    "  @%p bra MLOOP;\n"
    "  add.f32 %c0, %c0, %c5;\n  add.f32 %c0, %c0, %c10;\n  add.f32 %c0, %c0, %c15;\n"
    "  add.f32 %c0, %c0, %c1;\n  add.f32 %c0, %c0, %c6;\n  add.f32 %c0, %c0, %c11;\n"
    "  add.f32 %c0, %c0, %c12;\n  add.f32 %c0, %c0, %c2;\n  add.f32 %c0, %c0, %c7;\n"
    "  add.f32 %c0, %c0, %c8;\n  add.f32 %c0, %c0, %c13;\n  add.f32 %c0, %c0, %c3;\n"
    "  add.f32 %c0, %c0, %c4;\n  add.f32 %c0, %c0, %c9;\n  add.f32 %c0, %c0, %c14;\n"
    "  mul.wide.u32 %rd2, %r5, 4;\n"
    "  add.u64 %rd3, %rd1, %rd2;\n"
    "  st.global.f32 [%rd3], %c0;\n"
    "  ret;\n"
    "}\n";

/* The few driver API entry points used (cuda.h's types, by value). */
typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream, *CUevent;
typedef unsigned long long CUdeviceptr;
#define CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT 16

static struct {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, CUstream, void **, void **);
  CUresult (*cuEventCreate)(CUevent *, unsigned);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
  CUresult (*cuGetErrorString)(CUresult, const char **);
} cu;

static void check(CUresult r, const char *what) {
  if (r == 0) return;
  const char *msg = NULL;
  if (cu.cuGetErrorString) cu.cuGetErrorString(r, &msg);
  fprintf(stderr, "cuda_peak: error: %s failed: %s (%d)\n", what, msg ? msg : "unknown", r);
  exit(1);
}

static int load_driver(void) {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return 0;
#define SYM(field, name)                                  \
  do {                                                    \
    *(void **)(&cu.field) = dlsym(lib, name);             \
    if (!cu.field) return 0;                              \
  } while (0)
  SYM(cuInit, "cuInit");
  SYM(cuDeviceGetCount, "cuDeviceGetCount");
  SYM(cuDeviceGet, "cuDeviceGet");
  SYM(cuDeviceGetName, "cuDeviceGetName");
  SYM(cuDeviceGetAttribute, "cuDeviceGetAttribute");
  SYM(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  SYM(cuCtxSetCurrent, "cuCtxSetCurrent");
  SYM(cuModuleLoadData, "cuModuleLoadData");
  SYM(cuModuleGetFunction, "cuModuleGetFunction");
  SYM(cuMemAlloc, "cuMemAlloc_v2");
  SYM(cuMemsetD8, "cuMemsetD8_v2");
  SYM(cuLaunchKernel, "cuLaunchKernel");
  SYM(cuEventCreate, "cuEventCreate");
  SYM(cuEventRecord, "cuEventRecord");
  SYM(cuEventSynchronize, "cuEventSynchronize");
  SYM(cuEventElapsedTime, "cuEventElapsedTime");
  SYM(cuGetErrorString, "cuGetErrorString");
#undef SYM
  return 1;
}

/* Milliseconds of one launch, timed with events on the default stream. */
static float timed_launch(CUfunction f, unsigned blocks, unsigned threads, void **params) {
  CUevent start, stop;
  check(cu.cuEventCreate(&start, 0), "cuEventCreate");
  check(cu.cuEventCreate(&stop, 0), "cuEventCreate");
  check(cu.cuEventRecord(start, NULL), "cuEventRecord");
  check(cu.cuLaunchKernel(f, blocks, 1, 1, threads, 1, 1, 0, NULL, params, NULL), "cuLaunchKernel");
  check(cu.cuEventRecord(stop, NULL), "cuEventRecord");
  check(cu.cuEventSynchronize(stop), "cuEventSynchronize");
  float ms = 0;
  check(cu.cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
  return ms;
}

int main(int argc, char **argv) {
  int device = 0, json = 0;
  long mib = 2048;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--print-ptx")) {
      fputs(kPtx, stdout);
      return 0;
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
      device = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
      mib = atol(argv[++i]);
    } else {
      fprintf(stderr, "cuda_peak: error: unknown argument '%s' (--device N, --mib M, --json, "
                      "--print-ptx)\n", argv[i]);
      return 1;
    }
  }
  if (mib < 64) {
    fprintf(stderr, "cuda_peak: error: --mib must be at least 64\n");
    return 1;
  }
  if (!load_driver()) {
    fprintf(stderr, "cuda_peak: error: no NVIDIA driver (libcuda.so.1 not found)\n");
    return 1;
  }
  check(cu.cuInit(0), "cuInit");
  int count = 0;
  check(cu.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (device < 0 || device >= count) {
    fprintf(stderr, "cuda_peak: error: no CUDA device %d (%d present)\n", device, count);
    return 1;
  }
  CUdevice dev;
  CUcontext ctx;
  char name[256] = {0};
  int sms = 0;
  check(cu.cuDeviceGet(&dev, device), "cuDeviceGet");
  check(cu.cuDeviceGetName(name, sizeof name - 1, dev), "cuDeviceGetName");
  check(cu.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev),
        "cuDeviceGetAttribute");
  check(cu.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
  check(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  CUmodule mod;
  CUfunction read_bw, mma_peak;
  check(cu.cuModuleLoadData(&mod, kPtx), "cuModuleLoadData (PTX JIT)");
  check(cu.cuModuleGetFunction(&read_bw, mod, "read_bw"), "cuModuleGetFunction");
  check(cu.cuModuleGetFunction(&mma_peak, mod, "mma_peak"), "cuModuleGetFunction");

  /* Read bandwidth. */
  size_t bytes = (size_t)mib << 20;
  unsigned threads = 256, blocks = (unsigned)sms * 8;
  CUdeviceptr src, dst;
  check(cu.cuMemAlloc(&src, bytes), "cuMemAlloc");
  check(cu.cuMemAlloc(&dst, (size_t)blocks * threads * 4), "cuMemAlloc");
  check(cu.cuMemsetD8(src, 1, bytes), "cuMemsetD8");
  unsigned long long n16 = bytes / 16;
  void *rp[] = {&src, &dst, &n16};
  float best = 1e30f;
  for (int rep = 0; rep < 6; ++rep) {
    float ms = timed_launch(read_bw, blocks, threads, rp);
    if (rep > 0 && ms < best) best = ms;
  }
  double gbs = (double)bytes / (best * 1e-3) / 1e9;

  /* f16 tensor-core throughput. */
  unsigned mblocks = (unsigned)sms * 16, mthreads = 256, iters = 4096;
  CUdeviceptr out;
  check(cu.cuMemAlloc(&out, (size_t)mblocks * mthreads * 4), "cuMemAlloc");
  void *mp[] = {&out, &iters};
  float mbest = 1e30f;
  for (int rep = 0; rep < 4; ++rep) {
    float ms = timed_launch(mma_peak, mblocks, mthreads, mp);
    if (rep > 0 && ms < mbest) mbest = ms;
  }
  double flops = (double)mblocks * (mthreads / 32) * iters * 4 * 4096.0;
  double tflops = flops / (mbest * 1e-3) / 1e12;

  if (json)
    printf("{\"device\": \"%s\", \"sms\": %d, \"read_gbs\": %.1f, \"f16_mma_tflops\": %.1f}\n",
           name, sms, gbs, tflops);
  else
    printf("%s (%d SMs): read %.1f GB/s (%ld MiB), f16 mma.sync %.1f TFLOP/s\n", name, sms, gbs,
           mib, tflops);
  return 0;
}
