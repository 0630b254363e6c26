//===- cuda_device.cc - The cuda driver -----------------------------------===//
#include "runtime/hal/cuda/cuda_device.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/base/dtype.h"
#include "runtime/hal/cuda/cuda_api.h"

namespace kiln::hal::cuda {
namespace {

bool InRange(uint64_t offset, uint64_t size, uint64_t limit) { return offset <= limit && size <= limit - offset; }

/// Everything a device and its buffers and executables share.
struct Context {
  CudaApi api;
  CUdevice device = 0;
  CUcontext context = nullptr;
  CUstream stream = nullptr;
  int sm_count = 1;
  int cc_major = 0, cc_minor = 0;
  std::string name;

  /// Freed blocks by size class: an LLM step frees and allocates the same
  /// sizes again, and cuMemAlloc/cuMemFree synchronize the device.
  std::mutex pool_mu;
  std::multimap<uint64_t, CUdeviceptr> pool;
  uint64_t pooled_bytes = 0;
  static constexpr uint64_t kMaxPooledBytes = uint64_t{4} << 30;

  ~Context() {
    if (!context) return;
    api.cuCtxSetCurrent(context);
    if (stream) {
      api.cuStreamSynchronize(stream);
      api.cuStreamDestroy(stream);
    }
    for (auto& [size, ptr] : pool) api.cuMemFree(ptr);
    api.cuDevicePrimaryCtxRelease(device);
  }

  Status MakeCurrent() const { return api.Check(api.cuCtxSetCurrent(context), "cuCtxSetCurrent"); }

  /// Small sizes round up to 256 bytes, larger ones to one of 8 classes per
  /// power of two, so that nearby sizes share blocks.
  static uint64_t SizeClass(uint64_t size) {
    if (size <= 4096) return (std::max<uint64_t>(size, 1) + 255) / 256 * 256;
    uint64_t top = uint64_t{1} << (63 - __builtin_clzll(size));
    uint64_t step = top / 8;
    return (size + step - 1) / step * step;
  }

  StatusOr<CUdeviceptr> Take(uint64_t size) {
    const uint64_t cls = SizeClass(size);
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (auto it = pool.find(cls); it != pool.end()) {
        CUdeviceptr ptr = it->second;
        pool.erase(it);
        pooled_bytes -= cls;
        return ptr;
      }
    }
    KILN_RETURN_IF_ERROR(MakeCurrent());
    CUdeviceptr ptr = 0;
    CUresult r = api.cuMemAlloc(&ptr, cls);
    if (r == 2) {  // out of memory: give the pool back and try once more
      Trim();
      r = api.cuMemAlloc(&ptr, cls);
    }
    KILN_RETURN_IF_ERROR(api.Check(r, StrCat("cuMemAlloc of ", cls, " bytes")));
    return ptr;
  }

  /// Blocks go back to the pool; launches still queued on the stream that
  /// use them run before any later use (one stream orders everything).
  void Give(CUdeviceptr ptr, uint64_t size) {
    const uint64_t cls = SizeClass(size);
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (pooled_bytes + cls <= kMaxPooledBytes) {
        pool.emplace(cls, ptr);
        pooled_bytes += cls;
        return;
      }
    }
    api.cuCtxSetCurrent(context);
    api.cuStreamSynchronize(stream);
    api.cuMemFree(ptr);
  }

  void Trim() {
    std::lock_guard<std::mutex> lock(pool_mu);
    api.cuStreamSynchronize(stream);
    for (auto& [size, ptr] : pool) api.cuMemFree(ptr);
    pool.clear();
    pooled_bytes = 0;
  }
};

class CudaBuffer final : public Buffer {
 public:
  CudaBuffer(std::shared_ptr<Context> ctx, CUdeviceptr ptr, uint64_t size, bool read_only)
      : Buffer(size, read_only), ctx_(std::move(ctx)), ptr_(ptr) {}
  ~CudaBuffer() override {
    if (ptr_) ctx_->Give(ptr_, size());
  }
  CUdeviceptr ptr() const { return ptr_; }
  const Context* ctx() const { return ctx_.get(); }

 private:
  std::shared_ptr<Context> ctx_;
  CUdeviceptr ptr_;
};

class CudaExecutable final : public Executable {
 public:
  struct Kernel {
    CUfunction fn = nullptr;
    int block = 0;  // threads per block: the kernel's .maxntid
  };

  CudaExecutable(std::shared_ptr<Context> ctx, CUmodule module, std::vector<KernelInfo> infos,
                 std::vector<Kernel> kernels)
      : ctx_(std::move(ctx)), module_(module), infos_(std::move(infos)), kernels_(std::move(kernels)) {}
  ~CudaExecutable() override {
    ctx_->api.cuCtxSetCurrent(ctx_->context);
    ctx_->api.cuStreamSynchronize(ctx_->stream);
    ctx_->api.cuModuleUnload(module_);
  }
  const std::vector<KernelInfo>& kernels() const override { return infos_; }
  const Context* ctx() const { return ctx_.get(); }
  const Kernel& kernel(int i) const { return kernels_[i]; }

 private:
  std::shared_ptr<Context> ctx_;
  CUmodule module_;
  std::vector<KernelInfo> infos_;
  std::vector<Kernel> kernels_;
};

class CudaDevice final : public Device {
 public:
  explicit CudaDevice(std::shared_ptr<Context> ctx) : ctx_(std::move(ctx)) {}

  std::string_view name() const override { return "cuda"; }

  StatusOr<std::shared_ptr<Buffer>> Allocate(uint64_t size) override { return NewBuffer(size, false); }

  /// Device memory is not host memory: the bytes are copied.
  StatusOr<std::shared_ptr<Buffer>> WrapHostMemory(const void* data, uint64_t size) override {
    if (!data && size) return InvalidArgumentError("cuda: wrapping null memory");
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<Buffer> buffer, NewBuffer(size, true));
    KILN_RETURN_IF_ERROR(Copy(static_cast<CudaBuffer&>(*buffer), 0, {static_cast<const uint8_t*>(data), size}));
    return buffer;
  }

  Status Upload(Buffer& buffer, uint64_t offset, std::span<const uint8_t> data) override {
    KILN_ASSIGN_OR_RETURN(const CudaBuffer* b, Check(buffer, offset, data.size(), "Upload"));
    if (buffer.read_only()) return FailedPreconditionError("cuda: Upload into a read-only buffer");
    return Copy(*b, offset, data);
  }

  Status Download(const Buffer& buffer, uint64_t offset, std::span<uint8_t> out) override {
    KILN_ASSIGN_OR_RETURN(const CudaBuffer* b, Check(buffer, offset, out.size(), "Download"));
    KILN_RETURN_IF_ERROR(ctx_->MakeCurrent());
    const CudaApi& api = ctx_->api;
    if (!out.empty())
      KILN_RETURN_IF_ERROR(api.Check(api.cuMemcpyDtoHAsync(out.data(), b->ptr() + offset, out.size(), ctx_->stream),
                                     "cuMemcpyDtoHAsync"));
    return api.Check(api.cuStreamSynchronize(ctx_->stream), "cuStreamSynchronize (a kernel failed?)");
  }

  Status CopyBuffer(const Buffer& src, uint64_t src_offset, Buffer& dst, uint64_t dst_offset,
                    uint64_t size) override {
    KILN_ASSIGN_OR_RETURN(const CudaBuffer* s, Check(src, src_offset, size, "CopyBuffer source"));
    KILN_ASSIGN_OR_RETURN(const CudaBuffer* d, Check(dst, dst_offset, size, "CopyBuffer destination"));
    if (dst.read_only()) return FailedPreconditionError("cuda: CopyBuffer into a read-only buffer");
    if (size == 0) return OkStatus();
    KILN_RETURN_IF_ERROR(ctx_->MakeCurrent());
    const CudaApi& api = ctx_->api;
    return api.Check(api.cuMemcpyDtoDAsync(d->ptr() + dst_offset, s->ptr() + src_offset, size, ctx_->stream),
                     "cuMemcpyDtoDAsync");
  }

  bool SupportsFormat(std::string_view format) const override {
    return format == "ptx" || format.starts_with("cubin-sm_");
  }

  StatusOr<std::unique_ptr<Executable>> LoadExecutable(const ExecutableSpec& spec) override;

  Status Dispatch(const Executable& executable, int kernel, std::span<const BufferBinding> args,
                  int64_t workgroup_count) override;

  Status Wait() override {
    KILN_RETURN_IF_ERROR(ctx_->MakeCurrent());
    return ctx_->api.Check(ctx_->api.cuStreamSynchronize(ctx_->stream), "cuStreamSynchronize (a kernel failed?)");
  }

  /// Kernels stride over blocks, so any count is correct: a few resident
  /// blocks per multiprocessor keep the GPU busy.
  int64_t PreferredWorkgroupCount() const override { return int64_t{ctx_->sm_count} * 8; }

 private:
  StatusOr<std::shared_ptr<Buffer>> NewBuffer(uint64_t size, bool read_only) {
    KILN_ASSIGN_OR_RETURN(CUdeviceptr ptr, ctx_->Take(size));
    return std::shared_ptr<Buffer>(std::make_shared<CudaBuffer>(ctx_, ptr, size, read_only));
  }

  StatusOr<const CudaBuffer*> Check(const Buffer& buffer, uint64_t offset, uint64_t size, std::string_view op) const {
    const auto* b = dynamic_cast<const CudaBuffer*>(&buffer);
    if (!b || b->ctx() != ctx_.get())
      return InvalidArgumentError(StrCat("cuda: ", op, ": the buffer was not allocated by this device"));
    if (!InRange(offset, size, buffer.size()))
      return OutOfRangeError(StrCat("cuda: ", op, " of ", size, " bytes at offset ", offset,
                                    " is outside the buffer of ", buffer.size(), " bytes"));
    return b;
  }

  /// Host -> device. From pageable memory the call returns once the bytes
  /// are staged, so the caller may reuse them.
  Status Copy(const CudaBuffer& b, uint64_t offset, std::span<const uint8_t> data) {
    if (data.empty()) return OkStatus();
    KILN_RETURN_IF_ERROR(ctx_->MakeCurrent());
    const CudaApi& api = ctx_->api;
    return api.Check(api.cuMemcpyHtoDAsync(b.ptr() + offset, data.data(), data.size(), ctx_->stream),
                     "cuMemcpyHtoDAsync");
  }

  std::shared_ptr<Context> ctx_;
};

StatusOr<std::unique_ptr<Executable>> CudaDevice::LoadExecutable(const ExecutableSpec& spec) {
  if (!SupportsFormat(spec.format))
    return InvalidArgumentError(StrCat("cuda: cannot load a '", spec.format, "' executable"));
  if (spec.format.starts_with("cubin-sm_")) {
    std::string want = spec.format.substr(std::string_view("cubin-sm_").size());
    std::string have = StrCat(ctx_->cc_major, ctx_->cc_minor);
    if (want != have)
      return FailedPreconditionError(StrCat("cuda: the artifact holds a cubin for sm_", want, " but ", ctx_->name,
                                            " is sm_", have, " (compile for this GPU's target)"));
  }
  KILN_RETURN_IF_ERROR(ctx_->MakeCurrent());
  const CudaApi& api = ctx_->api;
  // PTX must end in a NUL; a cubin is an ELF image the driver sizes itself.
  std::string image(reinterpret_cast<const char*>(spec.binary.data()), spec.binary.size());
  CUmodule module = nullptr;
  KILN_RETURN_IF_ERROR(api.Check(api.cuModuleLoadData(&module, image.c_str()),
                                 spec.format == "ptx" ? "loading the PTX (the driver is older than the PTX?)"
                                                      : "loading the cubin"));
  std::vector<CudaExecutable::Kernel> kernels;
  for (const KernelInfo& info : spec.kernels) {
    CudaExecutable::Kernel k;
    Status s = api.Check(api.cuModuleGetFunction(&k.fn, module, info.name.c_str()),
                         StrCat("kernel '", info.name, "'"));
    if (s.ok())
      s = api.Check(api.cuFuncGetAttribute(&k.block, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, k.fn),
                    StrCat("kernel '", info.name, "' block size"));
    if (!s.ok()) {
      api.cuModuleUnload(module);
      return s;
    }
    kernels.push_back(k);
  }
  return std::unique_ptr<Executable>(std::make_unique<CudaExecutable>(ctx_, module, spec.kernels, std::move(kernels)));
}

Status CudaDevice::Dispatch(const Executable& executable, int kernel, std::span<const BufferBinding> args,
                            int64_t workgroup_count) {
  const auto* exe = dynamic_cast<const CudaExecutable*>(&executable);
  if (!exe || exe->ctx() != ctx_.get()) return InvalidArgumentError("cuda: executable was not loaded by this cuda device");
  if (kernel < 0 || static_cast<size_t>(kernel) >= exe->kernels().size())
    return OutOfRangeError(StrCat("cuda: kernel index ", kernel, " is out of range"));
  const KernelInfo& info = exe->kernels()[kernel];
  if (args.size() != info.arg_ranks.size())
    return InvalidArgumentError(StrCat("cuda: kernel '", info.name, "' takes ", info.arg_ranks.size(),
                                       " arguments, got ", args.size()));
  if (workgroup_count < 1 || workgroup_count > std::numeric_limits<int32_t>::max())
    return InvalidArgumentError(StrCat("cuda: workgroup count ", workgroup_count, " is out of range"));

  // Per buffer a 1-d memref descriptor, then every dim as int32.
  struct Descriptor {
    CUdeviceptr allocated, aligned;
    int64_t offset, size, stride;
  };
  std::vector<Descriptor> descriptors(args.size());
  std::vector<int32_t> dims;
  for (size_t j = 0; j < args.size(); ++j) {
    const BufferBinding& arg = args[j];
    if (static_cast<int64_t>(arg.shape.size()) != info.arg_ranks[j])
      return InvalidArgumentError(StrCat("cuda: kernel '", info.name, "' argument ", j, " has rank ", arg.shape.size(),
                                         ", expected ", info.arg_ranks[j]));
    for (int64_t d : arg.shape) {
      if (d < 0 || d > std::numeric_limits<int32_t>::max())
        return InvalidArgumentError(StrCat("cuda: kernel '", info.name, "' argument ", j, " has dim ", d,
                                           ", outside the int32 range of the kernel parameters"));
      dims.push_back(static_cast<int32_t>(d));
    }
    if (!arg.buffer) return InvalidArgumentError(StrCat("cuda: kernel '", info.name, "' argument ", j, " has no buffer"));
    KILN_ASSIGN_OR_RETURN(int64_t bytes, CheckedByteSize(arg.dtype, arg.shape));
    KILN_ASSIGN_OR_RETURN(int64_t count, CheckedElementCount(arg.shape));
    KILN_ASSIGN_OR_RETURN(const CudaBuffer* b, Check(*arg.buffer, arg.offset, static_cast<uint64_t>(bytes),
                                                     StrCat("kernel '", info.name, "' argument ", j)));
    CUdeviceptr at = b->ptr() + arg.offset;
    descriptors[j] = {at, at, 0, count, 1};
  }
  std::vector<void*> params;
  params.reserve(args.size() * 5 + dims.size());
  for (Descriptor& d : descriptors) {
    params.push_back(&d.allocated);
    params.push_back(&d.aligned);
    params.push_back(&d.offset);
    params.push_back(&d.size);
    params.push_back(&d.stride);
  }
  for (int32_t& d : dims) params.push_back(&d);

  const CudaExecutable::Kernel& k = exe->kernel(kernel);
  KILN_RETURN_IF_ERROR(ctx_->MakeCurrent());
  const CudaApi& api = ctx_->api;
  return api.Check(api.cuLaunchKernel(k.fn, static_cast<unsigned>(workgroup_count), 1, 1,
                                      static_cast<unsigned>(k.block), 1, 1, 0, ctx_->stream, params.data(), nullptr),
                   StrCat("launching kernel '", info.name, "'"));
}

}  // namespace

StatusOr<std::unique_ptr<Device>> CreateCudaDevice(const DeviceOptions& options) {
  auto ctx = std::make_shared<Context>();
  KILN_ASSIGN_OR_RETURN(ctx->api, LoadCudaDriver());
  const CudaApi& api = ctx->api;
  KILN_RETURN_IF_ERROR(api.Check(api.cuInit(0), "cuInit (is an NVIDIA GPU and its driver present?)"));
  int count = 0;
  KILN_RETURN_IF_ERROR(api.Check(api.cuDeviceGetCount(&count), "cuDeviceGetCount"));
  if (count == 0) return UnavailableError("cuda: the NVIDIA driver sees no GPU");
  const int index = options.device_index < 0 ? 0 : options.device_index;
  if (index >= count)
    return InvalidArgumentError(StrCat("cuda: device ", index, " does not exist (", count, " GPU",
                                       count == 1 ? "" : "s", ": cuda:0 .. cuda:", count - 1, ")"));
  KILN_RETURN_IF_ERROR(api.Check(api.cuDeviceGet(&ctx->device, index), "cuDeviceGet"));
  char name[256] = {};
  KILN_RETURN_IF_ERROR(api.Check(api.cuDeviceGetName(name, sizeof name - 1, ctx->device), "cuDeviceGetName"));
  ctx->name = name;
  KILN_RETURN_IF_ERROR(api.Check(
      api.cuDeviceGetAttribute(&ctx->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, ctx->device), "SM count"));
  KILN_RETURN_IF_ERROR(api.Check(
      api.cuDeviceGetAttribute(&ctx->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, ctx->device),
      "compute capability"));
  KILN_RETURN_IF_ERROR(api.Check(
      api.cuDeviceGetAttribute(&ctx->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, ctx->device),
      "compute capability"));
  KILN_RETURN_IF_ERROR(api.Check(api.cuDevicePrimaryCtxRetain(&ctx->context, ctx->device), "cuDevicePrimaryCtxRetain"));
  KILN_RETURN_IF_ERROR(ctx->MakeCurrent());
  KILN_RETURN_IF_ERROR(api.Check(api.cuStreamCreate(&ctx->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate"));
  if (const char* v = std::getenv("KILN_CUDA_VERBOSE"); v && *v == '1')
    std::fprintf(stderr, "cuda: device %d: %s (sm_%d%d, %d SMs)\n", index, name, ctx->cc_major, ctx->cc_minor,
                 ctx->sm_count);
  return std::unique_ptr<Device>(std::make_unique<CudaDevice>(std::move(ctx)));
}

}  // namespace kiln::hal::cuda
