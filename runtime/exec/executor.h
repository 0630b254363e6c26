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
