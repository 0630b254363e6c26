//===- cpu_device.cc - The cpu driver --------------------------------------===//
#include "runtime/hal/cpu/cpu_device.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "runtime/hal/cpu/buffer_pool.h"
#include "runtime/hal/cpu/elf_module.h"
#include "runtime/hal/cpu/thread_pool.h"

namespace kiln::hal::cpu {
namespace {

/// Refuse single allocations beyond this (a corrupt dim, not a real model).
constexpr uint64_t kMaxAllocation = uint64_t{1} << 46;
/// Most bytes the device keeps in its pool of freed buffers.
constexpr uint64_t kMaxPooledBytes = uint64_t{256} << 20;

/// Host memory the device does not own (the artifact's constants).
class WrappedBuffer final : public Buffer {
 public:
  WrappedBuffer(void* data, uint64_t size) : Buffer(size, /*read_only=*/true), data_(data) {}
  void* host_ptr() const override { return data_; }

 private:
  void* data_;
};

/// Memory from the device's pool; goes back to it when the last reference
/// drops (or to libc when the device is gone first).
class PooledBuffer final : public Buffer {
 public:
  PooledBuffer(std::weak_ptr<BufferPool> pool, void* data, uint64_t size)
      : Buffer(size, /*read_only=*/false), pool_(std::move(pool)), data_(data) {}
  ~PooledBuffer() override {
    if (std::shared_ptr<BufferPool> pool = pool_.lock())
      pool->Give(data_, size());
    else
      std::free(data_);
  }
  void* host_ptr() const override { return data_; }

 private:
  std::weak_ptr<BufferPool> pool_;
  void* data_;
};

class CpuExecutable final : public Executable {
 public:
  CpuExecutable(std::unique_ptr<ElfModule> module, std::vector<KernelInfo> kernels,
                std::vector<KernelFn> fns)
      : module_(std::move(module)), kernels_(std::move(kernels)), fns_(std::move(fns)) {}
  const std::vector<KernelInfo>& kernels() const override { return kernels_; }
  KernelFn fn(int i) const { return fns_[i]; }

 private:
  std::unique_ptr<ElfModule> module_;
  std::vector<KernelInfo> kernels_;
  std::vector<KernelFn> fns_;
};

bool InRange(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

class CpuDevice final : public Device {
 public:
  explicit CpuDevice(std::unique_ptr<ThreadPool> pool)
      : pool_(std::move(pool)), buffers_(BufferPool::Create(kMaxPooledBytes)) {}

  std::string_view name() const override { return "cpu"; }

  StatusOr<std::shared_ptr<Buffer>> Allocate(uint64_t size) override {
    if (size > kMaxAllocation)
      return ResourceExhaustedError(StrCat("cpu driver: refusing to allocate ", size, " bytes"));
    // Never null, even for 0 bytes; 64-byte aligned.
    void* data = buffers_->Take(size);
    if (!data) return ResourceExhaustedError(StrCat("cpu driver: out of memory allocating ", size, " bytes"));
    return std::shared_ptr<Buffer>(std::make_shared<PooledBuffer>(buffers_, data, size));
  }

  StatusOr<std::shared_ptr<Buffer>> WrapHostMemory(const void* data, uint64_t size) override {
    if (!data && size) return InvalidArgumentError("cpu driver: wrapping null memory");
    return std::shared_ptr<Buffer>(std::make_shared<WrappedBuffer>(const_cast<void*>(data), size));
  }

  Status Upload(Buffer& buffer, uint64_t offset, std::span<const uint8_t> data) override {
    KILN_RETURN_IF_ERROR(CheckWritable(buffer, offset, data.size(), "Upload"));
    if (!data.empty()) std::memcpy(static_cast<uint8_t*>(buffer.host_ptr()) + offset, data.data(), data.size());
    return OkStatus();
  }

  Status Download(const Buffer& buffer, uint64_t offset, std::span<uint8_t> out) override {
    if (!buffer.host_ptr() || !InRange(offset, out.size(), buffer.size()))
      return OutOfRangeError("cpu driver: Download outside the buffer");
    if (!out.empty()) std::memcpy(out.data(), static_cast<const uint8_t*>(buffer.host_ptr()) + offset, out.size());
    return OkStatus();
  }

  Status CopyBuffer(const Buffer& src, uint64_t src_offset, Buffer& dst, uint64_t dst_offset,
                    uint64_t size) override {
    if (!src.host_ptr() || !InRange(src_offset, size, src.size()))
      return OutOfRangeError("cpu driver: CopyBuffer source outside the buffer");
    KILN_RETURN_IF_ERROR(CheckWritable(dst, dst_offset, size, "CopyBuffer"));
    if (size)
      std::memmove(static_cast<uint8_t*>(dst.host_ptr()) + dst_offset,
                   static_cast<const uint8_t*>(src.host_ptr()) + src_offset, size);
    return OkStatus();
  }

  bool SupportsFormat(std::string_view format) const override { return IsHostElfFormat(format); }

  StatusOr<std::unique_ptr<Executable>> LoadExecutable(const ExecutableSpec& spec) override {
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<ElfModule> module, ElfModule::Load(spec.binary, spec.format));
    std::vector<KernelFn> fns;
    for (const KernelInfo& kernel : spec.kernels) {
      KILN_ASSIGN_OR_RETURN(void* sym, module->Symbol(kernel.name));
      fns.push_back(reinterpret_cast<KernelFn>(sym));
    }
    return std::unique_ptr<Executable>(
        std::make_unique<CpuExecutable>(std::move(module), spec.kernels, std::move(fns)));
  }

  Status Dispatch(const Executable& executable, int kernel, std::span<const BufferBinding> args,
                  int64_t workgroup_count) override {
    const auto* exe = dynamic_cast<const CpuExecutable*>(&executable);
    if (!exe) return InvalidArgumentError("cpu driver: executable was not loaded by the cpu driver");
    if (kernel < 0 || static_cast<size_t>(kernel) >= exe->kernels().size())
      return OutOfRangeError(StrCat("cpu driver: kernel index ", kernel, " is out of range"));
    const KernelInfo& info = exe->kernels()[kernel];
    if (args.size() != info.arg_ranks.size())
      return InvalidArgumentError(StrCat("cpu driver: kernel '", info.name, "' takes ",
                                         info.arg_ranks.size(), " arguments, got ", args.size()));
    if (workgroup_count < 1)
      return InvalidArgumentError(StrCat("cpu driver: workgroup count ", workgroup_count, " < 1"));

    // One descriptor per argument: {allocated, aligned, offset, sizes.., strides..}.
    std::vector<std::vector<int64_t>> descriptors(args.size());
    std::vector<void*> arg_ptrs(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
      const BufferBinding& arg = args[i];
      const int64_t rank = static_cast<int64_t>(arg.shape.size());
      if (rank != info.arg_ranks[i])
        return InvalidArgumentError(StrCat("cpu driver: kernel '", info.name, "' argument ", i,
                                           " has rank ", rank, ", expected ", info.arg_ranks[i]));
      KILN_ASSIGN_OR_RETURN(int64_t bytes, CheckedByteSize(arg.dtype, arg.shape));
      if (!arg.buffer || !arg.buffer->host_ptr() ||
          !InRange(arg.offset, static_cast<uint64_t>(bytes), arg.buffer->size()))
        return OutOfRangeError(StrCat("cpu driver: kernel '", info.name, "' argument ", i,
                                      " does not fit its buffer"));
      auto* base = static_cast<uint8_t*>(arg.buffer->host_ptr()) + arg.offset;
      std::vector<int64_t>& d = descriptors[i];
      d.resize(3 + 2 * rank);
      d[0] = d[1] = static_cast<int64_t>(reinterpret_cast<intptr_t>(base));
      d[2] = 0;
      int64_t stride = 1;
      for (int64_t k = rank - 1; k >= 0; --k) {
        d[3 + k] = arg.shape[k];
        d[3 + rank + k] = stride;
        stride *= arg.shape[k];  // cannot overflow: CheckedByteSize passed
      }
      arg_ptrs[i] = d.data();
    }
    KernelFn fn = exe->fn(kernel);
    void** argv = arg_ptrs.data();
    pool_->ParallelFor(workgroup_count, [&](int64_t wg) { fn(argv, wg, workgroup_count); });
    return OkStatus();
  }

  Status Wait() override { return OkStatus(); }

  int64_t PreferredWorkgroupCount() const override { return pool_->num_threads(); }

 private:
  static Status CheckWritable(const Buffer& buffer, uint64_t offset, uint64_t size, std::string_view op) {
    if (buffer.read_only()) return FailedPreconditionError(StrCat("cpu driver: ", op, " into a read-only buffer"));
    if (!buffer.host_ptr() || !InRange(offset, size, buffer.size()))
      return OutOfRangeError(StrCat("cpu driver: ", op, " outside the buffer"));
    return OkStatus();
  }

  std::unique_ptr<ThreadPool> pool_;
  std::shared_ptr<BufferPool> buffers_;
};

}  // namespace

StatusOr<std::unique_ptr<Device>> CreateCpuDevice(const DeviceOptions& options) {
  if (options.threads < 0) return InvalidArgumentError(StrCat("cpu driver: invalid thread count ", options.threads));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<ThreadPool> pool, ThreadPool::Create(options.threads));
  return std::unique_ptr<Device>(std::make_unique<CpuDevice>(std::move(pool)));
}

}  // namespace kiln::hal::cpu
