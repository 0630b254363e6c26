//===- TargetRegistry.cpp - Target descriptions and their registry --------===//
#include "targets/TargetRegistry.h"

#include "mlir/Dialect/SPIRV/IR/SPIRVEnums.h"

#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

#include <mutex>

namespace kiln {

/// The artifact's executable format for a CPU triple; empty if kiln has no
/// runtime driver for that architecture.
static std::string executableFormatFor(const llvm::Triple &triple) {
  if (!triple.isOSLinux() || !triple.isOSBinFormatELF())
    return "";
  switch (triple.getArch()) {
  case llvm::Triple::x86_64:
    return "elf-x86_64";
  case llvm::Triple::aarch64:
    return "elf-aarch64";
  default:
    return "";
  }
}

static std::vector<TargetDescription> makeTargets() {
  std::vector<TargetDescription> t;
  auto cpu = [&](std::string name, std::string triple, std::string cpuName,
                 std::string features, unsigned bits, std::string format,
                 std::string summary) {
    TargetDescription d;
    d.name = std::move(name);
    d.kind = TargetKind::Cpu;
    d.triple = std::move(triple);
    d.cpu = std::move(cpuName);
    d.features = std::move(features);
    d.vectorBits = bits;
    d.executableFormat = std::move(format);
    d.summary = std::move(summary);
    t.push_back(std::move(d));
  };
  cpu("x86_64-generic", "x86_64-unknown-linux-gnu", "x86-64", "", 128,
      "elf-x86_64", "any x86-64 CPU (SSE2)");
  cpu("x86_64-avx2", "x86_64-unknown-linux-gnu", "haswell",
      "+avx,+avx2,+fma,+f16c,+bmi,+bmi2", 256, "elf-x86_64",
      "x86-64 with AVX2 and FMA (Haswell and later, Zen)");
  cpu("x86_64-avx512", "x86_64-unknown-linux-gnu", "skylake-avx512",
      "+avx,+avx2,+fma,+f16c,+avx512f,+avx512bw,+avx512dq,+avx512vl", 512,
      "elf-x86_64", "x86-64 with AVX-512 F/BW/DQ/VL (Skylake-SP, Zen 4)");
  cpu("x86_64-avx512-vnni", "x86_64-unknown-linux-gnu", "cascadelake",
      "+avx,+avx2,+fma,+f16c,+avx512f,+avx512bw,+avx512dq,+avx512vl,+avx512vnni", 512,
      "elf-x86_64", "x86-64 with AVX-512 and VNNI (Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4)");
  // Armv8.0-A: every 64-bit ARM core has NEON (Advanced SIMD), 128-bit.
  cpu("aarch64-generic", "aarch64-unknown-linux-gnu", "generic",
      "+neon,+fp-armv8", 128, "elf-aarch64",
      "any 64-bit ARM CPU (Armv8.0-A, NEON)");
  // Armv8.2-A with the dot-product extension (sdot/udot) and fp16
  // arithmetic: Cortex-A55/A76/A78, Neoverse N1, Apple M1 and later.
  cpu("aarch64-neon-dotprod", "aarch64-unknown-linux-gnu", "cortex-a76",
      "+neon,+fp-armv8,+v8.2a,+dotprod,+fullfp16", 128, "elf-aarch64",
      "64-bit ARM with NEON dot product (Armv8.2-A: Cortex-A55/A76, Neoverse N1)");

  // Any desktop-class Vulkan 1.1 GPU (NVIDIA, AMD, Intel) and Mesa's
  // lavapipe: SPIR-V 1.3, 64-bit ints and floats, 8/16-bit storage, subgroup
  // arithmetic. Limits are the ones all of those meet; a device profile
  // (targets/profiles/*.json) describes a smaller or a bigger part.
  {
    TargetDescription d;
    d.name = "vulkan-spirv";
    d.kind = TargetKind::Vulkan;
    d.executableFormat = "spirv";
    d.summary = "any Vulkan 1.1 GPU with 64-bit and 8/16-bit storage (SPIR-V 1.3)";
    d.spirvVersion = "1.3";
    d.spirvCapabilities = {"Shader", "Int8", "Int16", "Int64", "Float16", "Float64",
                           "StorageBuffer8BitAccess", "StorageBuffer16BitAccess",
                           "GroupNonUniform", "GroupNonUniformArithmetic",
                           "GroupNonUniformShuffle"};
    d.spirvExtensions = {"SPV_KHR_storage_buffer_storage_class", "SPV_KHR_8bit_storage",
                         "SPV_KHR_16bit_storage"};
    d.subgroupSize = 32;
    d.workgroupSize = 64;
    d.maxWorkgroupInvocations = 1024;
    d.maxSharedMemoryBytes = 32768;
    d.maxPushConstantBytes = 128;
    t.push_back(std::move(d));
  }

  // NVIDIA GPUs through PTX: Ampere (A100, RTX 30xx) and Hopper (H100).
  // Blocks of 128 threads (4 warps); 48 KiB of static shared memory is what
  // every CUDA GPU gives a block without opting in.
  auto cuda = [&](const char *name, const char *chip, const char *summary) {
    TargetDescription d;
    d.name = name;
    d.kind = TargetKind::Cuda;
    d.summary = summary;
    d.triple = "nvptx64-nvidia-cuda";
    d.cpu = chip;
    d.features = "+ptx80";
    d.executableFormat = "ptx";
    d.subgroupSize = 32;
    d.workgroupSize = 128;
    d.maxWorkgroupInvocations = 1024;
    d.maxSharedMemoryBytes = 48 * 1024;
    d.maxPushConstantBytes = 4096; // kernel parameters
    d.matrixOps = GpuMatrixOps::Wmma; // sm_70 and later
    t.push_back(std::move(d));
  };
  cuda("cuda-sm80", "sm_80", "NVIDIA Ampere GPUs (A100, A10, RTX 30xx): PTX 8.0 for sm_80");
  cuda("cuda-sm90", "sm_90", "NVIDIA Hopper GPUs (H100, H200): PTX 8.0 for sm_90");

  // host: this machine's CPU, whatever it is.
  TargetDescription host;
  host.name = "host";
  host.kind = TargetKind::Cpu;
  llvm::Triple triple(llvm::sys::getProcessTriple());
  host.triple = triple.str();
  host.cpu = llvm::sys::getHostCPUName().str();
  std::string features;
  unsigned bits = 128;
  for (auto &f : llvm::sys::getHostCPUFeatures()) {
    if (!f.second)
      continue;
    features += (features.empty() ? "+" : ",+") + f.first().str();
    if (f.first() == "avx2" && bits < 256)
      bits = 256;
    if (f.first() == "avx512f")
      bits = 512;
  }
  host.features = features;
  host.vectorBits = bits;
  host.executableFormat = executableFormatFor(triple);
  host.summary = "this machine's CPU (" + host.cpu + ")";
  t.insert(t.begin(), std::move(host));
  return t;
}

const std::vector<TargetDescription> &allTargets() {
  static const std::vector<TargetDescription> targets = makeTargets();
  return targets;
}

const TargetDescription *lookupTarget(llvm::StringRef name) {
  for (const auto &t : allTargets())
    if (t.name == name)
      return &t;
  return nullptr;
}

/// Checks that LLVM knows the triple, the CPU and every feature of `d`.
static bool validateCpuTarget(const TargetDescription &d, std::string &error) {
  static bool initialized = [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargetMCs();
    return true;
  }();
  (void)initialized;
  llvm::Triple triple(d.triple);
  std::string lookupError;
  const llvm::Target *t = llvm::TargetRegistry::lookupTarget(triple, lookupError);
  if (!t) {
    error = "triple '" + d.triple + "' is not one this LLVM can generate code for";
    return false;
  }
  // Created for the generic CPU: LLVM warns on stderr about an unknown one.
  std::unique_ptr<llvm::MCSubtargetInfo> sti(t->createMCSubtargetInfo(triple, "", ""));
  if (!sti || !sti->isCPUStringValid(d.cpu)) {
    error = "unknown CPU '" + d.cpu + "' for " + triple.getArchName().str();
    return false;
  }
  llvm::SmallVector<llvm::StringRef> features;
  llvm::StringRef(d.features).split(features, ',');
  for (llvm::StringRef f : features) {
    f = f.trim();
    if (f.empty())
      continue;
    if (!f.consume_front("+") && !f.consume_front("-")) {
      error = "feature '" + f.str() + "' must start with '+' or '-'";
      return false;
    }
    bool known = llvm::any_of(sti->getAllProcessorFeatures(),
                              [&](const llvm::SubtargetFeatureKV &kv) {
                                return f == kv.Key;
                              });
    if (!known) {
      error = "unknown feature '" + f.str() + "' for " + triple.getArchName().str();
      return false;
    }
  }
  if (d.vectorBits == 0 || d.vectorBits % 64 != 0 || d.vectorBits > 2048) {
    error = "vector_bits must be a positive multiple of 64 (up to 2048)";
    return false;
  }
  return true;
}

/// A Vulkan device profile: the SPIR-V version, capabilities and extensions
/// its driver accepts and the limits kiln's kernels must stay within (see
/// docs/targets.md). Names are checked against MLIR's SPIR-V enums.
template <typename Fail>
static std::optional<TargetDescription> loadVulkanProfile(const llvm::json::Object &o,
                                                          Fail fail) {
  static const char *const known[] = {
      "name", "kind", "summary", "spirv_version", "capabilities", "extensions",
      "subgroup_size", "workgroup_size", "max_workgroup_invocations",
      "max_shared_memory_bytes", "max_push_constant_bytes", "matrix_ops"};
  for (const auto &kv : o)
    if (llvm::find(known, kv.first.str()) == std::end(known))
      return fail("unknown key '" + kv.first.str() + "' for a vulkan profile");
  TargetDescription d = *lookupTarget("vulkan-spirv");
  d.summary.clear();
  auto name = o.getString("name");
  if (!name || name->empty())
    return fail("\"name\" (a string) is required");
  d.name = name->str();
  if (auto s = o.getString("summary"))
    d.summary = s->str();
  else if (o.get("summary"))
    return fail("\"summary\" must be a string");
  if (const llvm::json::Value *v = o.get("spirv_version")) {
    static const char *const versions[] = {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6"};
    auto s = v->getAsString();
    if (!s || llvm::find(versions, s->str()) == std::end(versions))
      return fail("\"spirv_version\" must be one of \"1.0\" .. \"1.6\"");
    d.spirvVersion = s->str();
  }
  auto names = [&](const char *key, std::vector<std::string> &out,
                   auto valid) -> std::optional<std::string> {
    const llvm::json::Value *v = o.get(key);
    if (!v)
      return std::nullopt;
    const llvm::json::Array *a = v->getAsArray();
    if (!a)
      return std::string("\"") + key + "\" must be an array of strings";
    out.clear();
    for (const llvm::json::Value &e : *a) {
      auto s = e.getAsString();
      if (!s)
        return std::string("\"") + key + "\" must be an array of strings";
      if (!valid(*s))
        return std::string("unknown SPIR-V ") + (key[0] == 'c' ? "capability" : "extension") +
               " '" + s->str() + "'";
      out.push_back(s->str());
    }
    return std::nullopt;
  };
  if (auto e = names("capabilities", d.spirvCapabilities,
                     [](llvm::StringRef s) { return mlir::spirv::symbolizeCapability(s).has_value(); }))
    return fail(*e);
  if (auto e = names("extensions", d.spirvExtensions,
                     [](llvm::StringRef s) { return mlir::spirv::symbolizeExtension(s).has_value(); }))
    return fail(*e);
  if (!llvm::is_contained(d.spirvCapabilities, "Shader"))
    return fail("\"capabilities\" must contain \"Shader\" (Vulkan compute)");
  struct Limit {
    const char *key;
    unsigned *out;
    unsigned max;
  } limits[] = {{"subgroup_size", &d.subgroupSize, 128},
                {"workgroup_size", &d.workgroupSize, 1024},
                {"max_workgroup_invocations", &d.maxWorkgroupInvocations, 1u << 20},
                {"max_shared_memory_bytes", &d.maxSharedMemoryBytes, 1u << 30},
                {"max_push_constant_bytes", &d.maxPushConstantBytes, 1u << 16}};
  for (const Limit &l : limits) {
    const llvm::json::Value *v = o.get(l.key);
    if (!v)
      continue;
    auto n = v->getAsInteger();
    if (!n || *n <= 0 || *n > l.max)
      return fail(std::string("\"") + l.key + "\" must be an integer in 1.." + std::to_string(l.max));
    *l.out = static_cast<unsigned>(*n);
  }
  if (const llvm::json::Value *v = o.get("matrix_ops")) {
    auto s = v->getAsString();
    if (!s || (*s != "none" && *s != "emulated"))
      return fail("\"matrix_ops\" must be \"none\" or \"emulated\"");
    d.matrixOps = *s == "emulated" ? GpuMatrixOps::Emulated : GpuMatrixOps::None;
  }
  if (d.matrixOps == GpuMatrixOps::Emulated && d.workgroupSize != 128)
    return fail("\"matrix_ops\": \"emulated\" needs \"workgroup_size\": 128 (4 warps of 32, "
                "as on CUDA)");
  if (!llvm::isPowerOf2_32(d.subgroupSize))
    return fail("\"subgroup_size\" must be a power of two");
  if (d.workgroupSize > d.maxWorkgroupInvocations)
    return fail("\"workgroup_size\" exceeds \"max_workgroup_invocations\"");
  if (d.maxPushConstantBytes < 128)
    return fail("\"max_push_constant_bytes\" must be at least 128 (Vulkan's minimum)");
  if (d.summary.empty())
    d.summary = "Vulkan device profile " + d.name;
  return d;
}

std::optional<TargetDescription> loadTargetFile(llvm::StringRef path,
                                                std::string &error) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer) {
    error = "cannot read target file '" + path.str() + "': " + buffer.getError().message();
    return std::nullopt;
  }
  auto fail = [&](const std::string &why) {
    error = path.str() + ": " + why;
    return std::nullopt;
  };
  llvm::Expected<llvm::json::Value> json = llvm::json::parse((*buffer)->getBuffer());
  if (!json)
    return fail("not valid JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *o = json->getAsObject();
  if (!o)
    return fail("expected a JSON object");
  std::string kindName = "cpu";
  if (const llvm::json::Value *k = o->get("kind")) {
    if (!k->getAsString() || (*k->getAsString() != "cpu" && *k->getAsString() != "vulkan"))
      return fail("\"kind\" must be \"cpu\" or \"vulkan\"");
    kindName = k->getAsString()->str();
  }
  if (kindName == "vulkan")
    return loadVulkanProfile(*o, fail);
  static const char *const known[] = {"name", "kind", "summary", "triple", "cpu",
                                      "features", "vector_bits", "l1_cache_bytes",
                                      "l2_cache_bytes"};
  for (const auto &kv : *o)
    if (llvm::find(known, kv.first.str()) == std::end(known))
      return fail("unknown key '" + kv.first.str() + "'");
  TargetDescription d;
  auto str = [&](const char *key, std::string &out, bool required) {
    const llvm::json::Value *v = o->get(key);
    if (!v)
      return !required;
    if (auto s = v->getAsString()) {
      out = s->str();
      return true;
    }
    return false;
  };
  auto num = [&](const char *key, unsigned &out) {
    const llvm::json::Value *v = o->get(key);
    if (!v)
      return true;
    auto n = v->getAsInteger();
    if (!n || *n <= 0 || *n > (int64_t(1) << 31))
      return false;
    out = static_cast<unsigned>(*n);
    return true;
  };
  if (!str("name", d.name, true) || d.name.empty())
    return fail("\"name\" (a string) is required");
  if (!str("triple", d.triple, true))
    return fail("\"triple\" (a string) is required");
  if (!str("cpu", d.cpu, true))
    return fail("\"cpu\" (a string) is required");
  if (!str("features", d.features, false))
    return fail("\"features\" must be a string such as \"+neon,+dotprod\"");
  if (!str("summary", d.summary, false))
    return fail("\"summary\" must be a string");
  if (!num("vector_bits", d.vectorBits) || !num("l1_cache_bytes", d.l1CacheBytes) ||
      !num("l2_cache_bytes", d.l2CacheBytes))
    return fail("vector_bits, l1_cache_bytes and l2_cache_bytes must be positive integers");
  if (d.summary.empty())
    d.summary = d.cpu + " (" + d.triple + ")";
  d.kind = TargetKind::Cpu;
  d.executableFormat = executableFormatFor(llvm::Triple(d.triple));
  if (d.executableFormat.empty())
    return fail("triple '" + d.triple +
                "' has no kiln runtime (supported: x86_64 and aarch64 Linux ELF)");
  std::string why;
  if (!validateCpuTarget(d, why))
    return fail(why);
  return d;
}

TargetBackend &backendFor(TargetKind kind) {
  static std::unique_ptr<TargetBackend> cpu = createCpuBackend();
  static std::unique_ptr<TargetBackend> vulkan = createVulkanBackend();
  static std::unique_ptr<TargetBackend> cuda = createCudaBackend();
  switch (kind) {
  case TargetKind::Vulkan:
    return *vulkan;
  case TargetKind::Cuda:
    return *cuda;
  case TargetKind::Cpu:
  default:
    return *cpu;
  }
}

} // namespace kiln
