//===- main.cc - kiln-run: run a compiled .kiln artifact on .npy/.pb inputs ===//
//
//   kiln-run OUT.kiln [--device=cpu] [--threads N] --input NAME=FILE ...
//            [--output-dir DIR] [--function NAME]
//
// Writes each output to DIR/<name>.npy and prints "<name> <dtype> <shape>"
// per output. Any error is one line "kiln-run: error: ..." on stderr, exit 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runtime/base/tool_error.h"
#include "runtime/artifact/artifact.h"
#include "runtime/exec/executor.h"
#include "runtime/hal/registry.h"
#include "runtime/io/file.h"
#include "runtime/io/npy.h"
#include "runtime/io/tensor_file.h"

namespace {

struct Flags {
  std::string artifact;
  std::string device = "cpu";
  int threads = 0;
  bool profile = false;
  std::vector<std::string> inputs;
  std::string output_dir = ".";
  std::string function;  // empty: "main", else "forward" (a paged LLM), else the only one
};

kiln::Status RunTool(const Flags& flags) {
  using kiln::StrCat;
  KILN_ASSIGN_OR_RETURN(auto artifact, kiln::artifact::Artifact::Open(flags.artifact));
  kiln::hal::DeviceOptions options;
  options.threads = flags.threads;
  KILN_ASSIGN_OR_RETURN(auto device, kiln::hal::CreateDevice(flags.device, options));
  std::vector<kiln::io::NamedTensor> inputs;
  for (const std::string& spec : flags.inputs) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      return kiln::InvalidArgumentError(StrCat("--input expects NAME=FILE, got '", spec, "'"));
    std::string name = spec.substr(0, eq);
    kiln::StatusOr<kiln::io::Tensor> tensor = kiln::io::ReadTensorFile(spec.substr(eq + 1));
    if (!tensor.ok()) return tensor.status().Annotate(StrCat("input '", name, "'"));
    inputs.push_back({std::move(name), std::move(tensor).value()});
  }

  std::string function = flags.function;
  if (function.empty()) {
    const auto* fns = artifact->model().functions();
    function = artifact->FindFunction("main") ? "main" : artifact->FindFunction("forward") ? "forward" : "";
    if (function.empty() && fns && fns->size() == 1) function = fns->Get(0)->name()->str();
    if (function.empty()) return kiln::InvalidArgumentError("the artifact has no 'main' or 'forward': pick one with --function");
  }
  kiln::exec::Profile profile;
  kiln::exec::ExecutorOptions executor_options;
  if (flags.profile) executor_options.profile = &profile;
  KILN_ASSIGN_OR_RETURN(auto executor, kiln::exec::Executor::Create(*artifact, *device, executor_options));
  // ONNX's own test data stores bfloat16 tensors as uint16 bit patterns;
  // take a u16 file for a bf16 input as those bits.
  if (const auto* fn = executor->FindFunction(function); fn && fn->inputs()) {
    for (kiln::io::NamedTensor& in : inputs)
      for (const auto* sig : *fn->inputs())
        if (sig->name() && sig->name()->string_view() == in.name &&
            static_cast<kiln::DType>(sig->dtype()) == kiln::DType::kBF16 &&
            in.tensor.dtype == kiln::DType::kU16)
          in.tensor.dtype = kiln::DType::kBF16;
  }
  KILN_ASSIGN_OR_RETURN(auto outputs, executor->Run(function, inputs));
  if (flags.profile) std::fprintf(stderr, "%s", profile.Report().c_str());

  std::error_code ec;
  std::filesystem::create_directories(flags.output_dir, ec);
  if (ec) return kiln::InvalidArgumentError(StrCat("cannot create output directory '", flags.output_dir, "': ", ec.message()));
  std::set<std::string> used;  // distinct names may sanitize to one file name
  for (const kiln::io::NamedTensor& out : outputs) {
    std::string base = kiln::io::SafeFileName(out.name);
    std::string file = base;
    for (int n = 1; !used.insert(file).second; ++n) file = StrCat(base, "_", n);
    std::string path = (std::filesystem::path(flags.output_dir) / (file + ".npy")).string();
    KILN_RETURN_IF_ERROR(kiln::io::WriteNpy(path, out.tensor).Annotate(StrCat("output '", out.name, "'")));
    std::printf("%s %s %s\n", out.name.c_str(), std::string(kiln::DTypeName(out.tensor.dtype)).c_str(),
                kiln::ShapeToString(out.tensor.shape).c_str());
  }
  return kiln::OkStatus();
}

int Fail(std::string message) { return kiln::ToolError("kiln-run", std::move(message)); }

}  // namespace

int main(int argc, char** argv) {
  // CLI11 and the standard library report by exception; none may escape.
  try {
    Flags flags;
    CLI::App app{"Run a compiled .kiln artifact.", "kiln-run"};
    app.add_option("artifact", flags.artifact, "the .kiln file")->required();
    app.add_option("--device", flags.device, "HAL driver: cpu, vulkan, vulkan:N (Nth Vulkan device), cuda, cuda:N (Nth NVIDIA GPU), null")->capture_default_str();
    app.add_option("--threads", flags.threads, "cpu worker threads (0 = all cores)")->capture_default_str();
    app.add_flag("--profile", flags.profile, "print time per kernel and host work on stderr at the end");
    app.add_option("-i,--input", flags.inputs, "NAME=FILE (.npy or ONNX TensorProto .pb), repeatable")
        ->allow_extra_args(false);
    app.add_option("-o,--output-dir", flags.output_dir, "where <output>.npy files go")->capture_default_str();
    app.add_option("-f,--function", flags.function, "entry point to run (default: main, else forward)");
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
      return Fail(e.what());
    }
    if (flags.threads < 0) return Fail("--threads must be >= 0, got " + std::to_string(flags.threads));
    kiln::Status status = RunTool(flags);
    if (!status.ok()) return Fail(status.message());
    return 0;
  } catch (const std::exception& e) {
    return Fail(e.what());
  } catch (...) {
    return Fail("unknown internal error");
  }
}
