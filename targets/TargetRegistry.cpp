//===- TargetRegistry.cpp - Target descriptions and their registry --------===//
#include "targets/TargetRegistry.h"

#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

#include <mutex>

namespace kiln {

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
  host.executableFormat =
      triple.getArch() == llvm::Triple::aarch64 ? "elf-aarch64" : "elf-x86_64";
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

TargetBackend &backendFor(TargetKind kind) {
  static std::unique_ptr<TargetBackend> cpu = createCpuBackend();
  switch (kind) {
  case TargetKind::Cpu:
    return *cpu;
  default:
    return *cpu; // only the CPU backend exists so far; lookup never yields others
  }
}

} // namespace kiln
