//===- TargetRegistry.h - Target descriptions and their registry --*- C++ -*-===//
//
// A target is data (a TargetDescription) plus a codegen backend that uses it.
// Passes ask the description (vector width, features, ...); no code compares
// target names.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGETS_TARGETREGISTRY_H
#define KILN_TARGETS_TARGETREGISTRY_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/StringRef.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

enum class TargetKind { Cpu, Vulkan, Cuda };

/// How a GPU target multiplies 16x16 tiles in the LLM matmuls
/// (targets/gpu/GpuMatrixTiles.h).
enum class GpuMatrixOps {
  None,     // SIMT only: every invocation its own multiply-adds
  Wmma,     // CUDA tensor cores: f16 through gpu.subgroup_mma_* (PTX wmma.mma.sync),
            // bf16 through nvvm.mma.sync m16n8k16; f32 accumulators
  Emulated, // the tensor-core kernels without tensor cores (f16 tiles computed whole by
            // each invocation in private memory, bf16 mma.sync emulated through shared
            // memory): tests them on a device without
};

struct TargetDescription {
  std::string name;
  TargetKind kind = TargetKind::Cpu;
  std::string summary;
  // CPU (and CUDA: triple nvptx64-nvidia-cuda, cpu = the chip "sm_90",
  // features = the PTX version "+ptx80")
  std::string triple;
  std::string cpu;
  std::string features;      // LLVM feature string, e.g. "+avx2,+fma"
  unsigned vectorBits = 128; // widest SIMD register
  unsigned l1CacheBytes = 32 * 1024;
  unsigned l2CacheBytes = 1024 * 1024;
  /// Artifact executable format, e.g. "elf-x86_64".
  std::string executableFormat;
  // GPUs. Vulkan / SPIR-V (kind == Vulkan): what the device's driver
  // accepts; CUDA uses the sizes and limits below.
  std::string spirvVersion = "1.3"; // "1.0" .. "1.6"
  std::vector<std::string> spirvCapabilities; // e.g. "Shader", "Int64"
  std::vector<std::string> spirvExtensions;   // e.g. "SPV_KHR_8bit_storage"
  unsigned subgroupSize = 32;
  unsigned workgroupSize = 64; // invocations per workgroup kiln's kernels use
  unsigned maxWorkgroupInvocations = 1024;
  unsigned maxSharedMemoryBytes = 16384; // workgroup (shared) memory
  unsigned maxPushConstantBytes = 128;
  GpuMatrixOps matrixOps = GpuMatrixOps::None;
};

/// Output of a backend: one executable with its kernels.
struct CompiledExecutable {
  std::string format;
  std::vector<char> binary;
  struct Kernel {
    std::string symbol;        // exported entry point
    std::vector<int> argRanks; // bindings, in order
    bool distributable = false;
  };
  std::vector<Kernel> kernels;
  /// kernel function name in the module -> index in `kernels`
  std::vector<std::string> kernelNames;
};

class TargetBackend {
public:
  virtual ~TargetBackend() = default;
  /// Compiles every `exec.kernel` function of `module` (a clone; the backend
  /// may mutate it). `dumpStage`, when non-empty, stops after that stage and
  /// leaves the module in that state ("bufferized", "loops", "llvm").
  virtual mlir::LogicalResult
  compile(mlir::ModuleOp module, const TargetDescription &target,
          CompiledExecutable &out, llvm::StringRef stopAfter,
          std::string &error) = 0;
};

/// All registered target descriptions, in a stable order.
const std::vector<TargetDescription> &allTargets();
/// Looks up a target by name; "host" resolves to this machine's CPU.
const TargetDescription *lookupTarget(llvm::StringRef name);
/// Reads a CPU target description from a JSON file (how a vendor describes a
/// core kiln does not list; docs/targets.md) and checks that LLVM knows its
/// triple, CPU and features. On failure returns nullopt and sets `error`.
std::optional<TargetDescription> loadTargetFile(llvm::StringRef path,
                                                std::string &error);
/// The backend for a kind of target.
TargetBackend &backendFor(TargetKind kind);

std::unique_ptr<TargetBackend> createCpuBackend();
std::unique_ptr<TargetBackend> createVulkanBackend();
std::unique_ptr<TargetBackend> createCudaBackend();

} // namespace kiln

#endif
