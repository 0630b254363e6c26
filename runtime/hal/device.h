//===- device.h - The hardware abstraction every driver implements ---------===//
//
// A Device allocates buffers, moves bytes between host and device, loads
// executables and dispatches their kernels. The executor only talks to this
// interface; a driver (cpu, null, later vulkan/cuda) implements it. A driver
// answers Unimplemented for whatever it cannot do yet (see null/).
#ifndef KILN_RUNTIME_HAL_DEVICE_H_
#define KILN_RUNTIME_HAL_DEVICE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace kiln::hal {

/// Options every driver understands; a driver ignores what it has no use for.
struct DeviceOptions {
  /// Worker threads for the cpu driver; 0 = std::thread::hardware_concurrency().
  int threads = 0;
  /// Which device of a driver that sees several ("vulkan:1" -> 1); -1 lets
  /// the driver choose.
  int device_index = -1;
};

/// A block of device memory. Buffers are shared (std::shared_ptr) because a
/// reshaped view and its source, or a constant view and the artifact, use the
/// same storage.
class Buffer {
 public:
  virtual ~Buffer() = default;
  /// Size in bytes.
  uint64_t size() const { return size_; }
  /// True for buffers that wrap read-only memory (artifact constants).
  bool read_only() const { return read_only_; }
  /// Host address of the bytes, or nullptr when the memory is not host-visible.
  virtual void* host_ptr() const { return nullptr; }

 protected:
  Buffer(uint64_t size, bool read_only) : size_(size), read_only_(read_only) {}

 private:
  uint64_t size_;
  bool read_only_;
};

/// One kernel of an executable, as described by the artifact.
struct KernelInfo {
  std::string name;
  std::vector<int> arg_ranks;
  bool distributable = false;
};

/// What LoadExecutable needs. `binary` is borrowed for the call only.
struct ExecutableSpec {
  std::string format;  // "elf-x86_64", "elf-aarch64", "spirv", "ptx", ...
  std::span<const uint8_t> binary;
  std::vector<KernelInfo> kernels;
};

/// A loaded executable; kernels are addressed by their index in the spec.
class Executable {
 public:
  virtual ~Executable() = default;
  virtual const std::vector<KernelInfo>& kernels() const = 0;
};

/// One kernel argument: a dense row-major tensor at `offset` bytes into
/// `buffer`. Pointers are borrowed for the duration of Dispatch.
struct BufferBinding {
  Buffer* buffer = nullptr;
  uint64_t offset = 0;
  DType dtype = DType::kF32;
  std::span<const int64_t> shape;
};

class Device {
 public:
  virtual ~Device() = default;

  /// Driver name, e.g. "cpu".
  virtual std::string_view name() const = 0;

  /// New uninitialized buffer of `size` bytes (at least 64-byte aligned).
  virtual StatusOr<std::shared_ptr<Buffer>> Allocate(uint64_t size) = 0;
  /// A read-only buffer over host memory the caller keeps alive at least as
  /// long as the buffer (e.g. artifact constants). Zero-copy where the device
  /// can read host memory; a driver may copy instead.
  virtual StatusOr<std::shared_ptr<Buffer>> WrapHostMemory(const void* data, uint64_t size) = 0;

  /// Host -> device: `data` to `buffer` at `offset`.
  virtual Status Upload(Buffer& buffer, uint64_t offset, std::span<const uint8_t> data) = 0;
  /// Device -> host: `out.size()` bytes from `buffer` at `offset`. Waits for
  /// dispatches that were submitted before.
  virtual Status Download(const Buffer& buffer, uint64_t offset, std::span<uint8_t> out) = 0;
  /// Device -> device copy.
  virtual Status CopyBuffer(const Buffer& src, uint64_t src_offset, Buffer& dst,
                            uint64_t dst_offset, uint64_t size) = 0;

  /// Whether LoadExecutable can accept this binary format.
  virtual bool SupportsFormat(std::string_view format) const = 0;
  /// Loads a binary and resolves every kernel (a missing kernel is an error).
  virtual StatusOr<std::unique_ptr<Executable>> LoadExecutable(const ExecutableSpec& spec) = 0;

  /// Runs workgroups 0..workgroup_count-1 of kernel `kernel` of `executable`.
  /// May return before the work is done; Wait() or Download() synchronizes.
  virtual Status Dispatch(const Executable& executable, int kernel,
                          std::span<const BufferBinding> args, int64_t workgroup_count) = 0;
  /// Fence: returns when all submitted work has finished.
  virtual Status Wait() = 0;

  /// Workgroup count that keeps the device busy for a distributable kernel
  /// (cpu: the number of threads).
  virtual int64_t PreferredWorkgroupCount() const = 0;
};

}  // namespace kiln::hal

#endif  // KILN_RUNTIME_HAL_DEVICE_H_
