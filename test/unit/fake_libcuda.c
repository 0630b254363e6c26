/*===- fake_libcuda.c - A libcuda.so stand-in for the cuda driver's tests ---===*
 *
 * The cuda driver (runtime/hal/cuda) dlopens libcuda.so.1; the tests point
 * KILN_CUDA_DRIVER at this library instead. It has one "GPU" (sm_90, 4 SMs)
 * whose memory is host memory, and one kernel, `add_f32(a, b, out)`, that
 * it runs on the CPU from the kernel parameters exactly as kiln's CUDA ABI
 * lays them out (per buffer a 1-d memref descriptor, then every dim as
 * int32): so the tests check the parameters the driver builds, not just
 * that it calls the API. fake_cuda_* report what happened.
 *
 *===----------------------------------------------------------------------===*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef uint64_t CUdeviceptr;

enum { OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_FOUND = 500, INVALID_IMAGE = 200 };

static int g_launches, g_last_grid, g_last_block, g_live_allocs, g_streams;
static char g_last_image_kind[8];

int fake_cuda_launches(void) { return g_launches; }
int fake_cuda_last_grid(void) { return g_last_grid; }
int fake_cuda_last_block(void) { return g_last_block; }
int fake_cuda_live_allocs(void) { return g_live_allocs; }
const char *fake_cuda_last_image_kind(void) { return g_last_image_kind; }

CUresult cuInit(unsigned flags) { return flags == 0 ? OK : INVALID_VALUE; }
CUresult cuGetErrorName(CUresult e, const char **name) {
  switch (e) {
    case NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; return OK;
    case INVALID_IMAGE: *name = "CUDA_ERROR_INVALID_IMAGE"; return OK;
    case INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; return OK;
    default: return INVALID_VALUE;
  }
}
CUresult cuDeviceGetCount(int *count) { *count = 1; return OK; }
CUresult cuDeviceGet(int *dev, int ordinal) { if (ordinal != 0) return INVALID_VALUE; *dev = 0; return OK; }
CUresult cuDeviceGetName(char *name, int len, int dev) {
  (void)dev;
  strncpy(name, "kiln fake GPU", (size_t)len);
  return OK;
}
CUresult cuDeviceGetAttribute(int *value, int attrib, int dev) {
  (void)dev;
  switch (attrib) {
    case 16: *value = 4; return OK;  /* SMs */
    case 75: *value = 9; return OK;  /* compute capability 9.0 */
    case 76: *value = 0; return OK;
    default: return INVALID_VALUE;
  }
}
static int g_ctx;
CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) { (void)dev; *ctx = &g_ctx; return OK; }
CUresult cuDevicePrimaryCtxRelease_v2(int dev) { (void)dev; return OK; }
CUresult cuCtxSetCurrent(void *ctx) { return ctx == &g_ctx ? OK : INVALID_VALUE; }
CUresult cuStreamCreate(void **stream, unsigned flags) { (void)flags; *stream = malloc(1); ++g_streams; return OK; }
CUresult cuStreamDestroy_v2(void *stream) { free(stream); --g_streams; return OK; }
CUresult cuStreamSynchronize(void *stream) { (void)stream; return OK; }
CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t size) {
  void *p = malloc(size ? size : 1);
  if (!p) return OUT_OF_MEMORY;
  *ptr = (CUdeviceptr)(uintptr_t)p;
  ++g_live_allocs;
  return OK;
}
CUresult cuMemFree_v2(CUdeviceptr ptr) { free((void *)(uintptr_t)ptr); --g_live_allocs; return OK; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *s) {
  (void)s; memcpy((void *)(uintptr_t)dst, src, n); return OK;
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *s) {
  (void)s; memcpy(dst, (const void *)(uintptr_t)src, n); return OK;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void *s) {
  (void)s; memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n); return OK;
}
static int g_module;
CUresult cuModuleLoadData(void **module, const void *image) {
  const char *text = (const char *)image;
  if (strncmp(text, "//", 2) == 0 || strstr(text, ".version")) strcpy(g_last_image_kind, "ptx");
  else if (memcmp(text, "\177ELF", 4) == 0) strcpy(g_last_image_kind, "cubin");
  else return INVALID_IMAGE;
  *module = &g_module;
  return OK;
}
CUresult cuModuleUnload(void *module) { return module == &g_module ? OK : INVALID_VALUE; }
static int g_add;
CUresult cuModuleGetFunction(void **fn, void *module, const char *name) {
  (void)module;
  if (strcmp(name, "add_f32") != 0) return NOT_FOUND;
  *fn = &g_add;
  return OK;
}
CUresult cuFuncGetAttribute(int *value, int attrib, void *fn) {
  (void)fn;
  if (attrib != 0) return INVALID_VALUE;
  *value = 128;  /* .maxntid 128 */
  return OK;
}

typedef struct { float *allocated, *aligned; int64_t offset, size, stride; } Desc;

/* Rebuilds a descriptor from its five parameters. */
static Desc desc(void **p) {
  Desc d;
  d.allocated = *(float **)p[0];
  d.aligned = *(float **)p[1];
  d.offset = *(int64_t *)p[2];
  d.size = *(int64_t *)p[3];
  d.stride = *(int64_t *)p[4];
  return d;
}

CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void *stream, void **params, void **extra) {
  (void)stream;
  if (fn != &g_add || gy != 1 || gz != 1 || by != 1 || bz != 1 || shared != 0 || extra) return INVALID_VALUE;
  Desc a = desc(params), b = desc(params + 5), out = desc(params + 10);
  int32_t na = *(int32_t *)params[15], nb = *(int32_t *)params[16], nout = *(int32_t *)params[17];
  if (a.stride != 1 || a.offset != 0 || a.allocated != a.aligned || a.size != na || b.size != nb ||
      out.size != nout || na != nout || nb != nout)
    return INVALID_VALUE;
  /* every thread of every block, grid-stride, as the compiled kernel does */
  for (unsigned blk = 0; blk < gx; ++blk)
    for (unsigned t = 0; t < bx; ++t)
      for (int64_t i = (int64_t)blk * bx + t; i < nout; i += (int64_t)gx * bx) out.aligned[i] = a.aligned[i] + b.aligned[i];
  ++g_launches;
  g_last_grid = (int)gx;
  g_last_block = (int)bx;
  return OK;
}
