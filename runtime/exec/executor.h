//===- executor.h - Run a Function of an artifact on a Device --------------===//
#ifndef KILN_RUNTIME_EXEC_EXECUTOR_H_
#define KILN_RUNTIME_EXEC_EXECUTOR_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "runtime/artifact/artifact.h"
#include "runtime/exec/profile.h"
#include "runtime/hal/device.h"
#include "runtime/io/tensor.h"

namespace kiln::exec {

struct ExecutorOptions {
  /// Largest single buffer an Alloc/Copy/input may need; beyond it the run
  /// fails instead of asking the device for absurd amounts of memory.
  uint64_t max_buffer_bytes = uint64_t{1} << 40;
  /// When set, every run adds the wall time of each dispatch (by kernel
  /// name) and of the host work around it; borrowed, must outlive the runs.
  /// Dispatches are timed to completion, so it costs a wait per dispatch on
  /// asynchronous devices.
  Profile* profile = nullptr;
};

/// Interprets a Function's host schedule (index arithmetic, allocations,
/// constant views, dispatches, copies, reshapes) with the shapes of the
/// inputs it is given. No tensor math runs here; kernels do it on the device.
///
/// The artifact and the device are borrowed and must outlive the Executor.
/// Run is not reentrant: call it from one thread at a time.
/// A tensor living in a device buffer at `offset` bytes, dense row-major.
/// Runs can take their inputs and give their outputs in this form, so that
/// a result (a KV cache, say) feeds the next run without leaving the device.
struct DeviceTensor {
  std::shared_ptr<hal::Buffer> buffer;
  uint64_t offset = 0;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

class Executor {
 public:
  /// Loads every executable of `artifact` on `device` (resolving every
  /// kernel) and exposes the constants section to the device zero-copy.
  static StatusOr<std::unique_ptr<Executor>> Create(const artifact::Artifact& artifact,
                                                    hal::Device& device,
                                                    const ExecutorOptions& options = {});
  ~Executor();

  /// Runs `function` with inputs bound by name (every input exactly once;
  /// unknown, duplicate or missing names are errors). Returns the outputs in
  /// signature order, named as in the signature. Input errors read e.g.
  /// "input 'x': expected shape [2,3] but got [2,4]".
  StatusOr<std::vector<io::NamedTensor>> Run(std::string_view function,
                                             std::span<const io::NamedTensor> inputs);
  /// Same, with inputs in signature order.
  StatusOr<std::vector<io::NamedTensor>> RunPositional(std::string_view function,
                                                       std::span<const io::Tensor> inputs);

  /// Same, with inputs in signature order already on the device and the
  /// outputs left there (no upload, no download). Inputs are only read; an
  /// output may share a buffer with an input or a constant (a pass-through),
  /// so treat outputs as read-only views. Buffers must come from this
  /// executor's device.
  StatusOr<std::vector<DeviceTensor>> RunOnDevice(std::string_view function,
                                                  std::span<const DeviceTensor> inputs);

  /// Copies a host tensor into a new device buffer.
  StatusOr<DeviceTensor> Upload(const io::Tensor& tensor);
  /// Copies a device tensor, or `count` elements of it from element `first`
  /// on, back to the host. Download(t) is the whole tensor with its shape;
  /// a range comes back flat ([count]).
  StatusOr<io::Tensor> Download(const DeviceTensor& tensor);
  StatusOr<io::Tensor> Download(const DeviceTensor& tensor, int64_t first, int64_t count);

  /// Signature of a function, or nullptr (for callers that bind inputs).
  const fb::Function* FindFunction(std::string_view name) const;

 private:
  Executor(const artifact::Artifact& artifact, hal::Device& device, const ExecutorOptions& options)
      : artifact_(artifact), device_(device), options_(options) {}

  const artifact::Artifact& artifact_;
  hal::Device& device_;
  ExecutorOptions options_;
  std::vector<std::unique_ptr<hal::Executable>> executables_;
  std::shared_ptr<hal::Buffer> constants_;  // the whole constants section, read-only
};

}  // namespace kiln::exec

#endif  // KILN_RUNTIME_EXEC_EXECUTOR_H_
