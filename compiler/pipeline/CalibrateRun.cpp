//===- CalibrateRun.cpp - Run a calibration artifact with the runtime -----===//
#include "compiler/pipeline/CalibrateRun.h"

#include "runtime/artifact/artifact.h"
#include "runtime/exec/executor.h"
#include "runtime/hal/registry.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <unistd.h>

namespace kiln {
namespace {

/// tqdm-like: "calibrating [#####     ] 4096/8192 tokens, 2.1 s".
class ProgressBar {
public:
  ProgressBar(const CalibrationRunOptions &options, int64_t total)
      : bar(options.bar), lines(options.lines), total(total), start(clock::now()) {}
  void update(int64_t done) {
    double s = std::chrono::duration<double>(clock::now() - start).count();
    if (bar) {
      const int width = 30;
      int fill = total ? int(width * done / total) : width;
      std::string cells(fill, '#');
      cells.resize(width, ' ');
      std::fprintf(stderr, "\rcalibrating [%s] %lld/%lld tokens, %.1f s", cells.c_str(),
                   (long long)done, (long long)total, s);
      if (done >= total)
        std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else if (lines) {
      int quarter = total ? int(4 * done / total) : 4;
      if (quarter > lastQuarter) {
        lastQuarter = quarter;
        std::fprintf(stderr, "calibrating: %lld/%lld tokens, %.1f s\n", (long long)done,
                     (long long)total, s);
      }
    }
  }

private:
  using clock = std::chrono::steady_clock;
  bool bar, lines;
  int64_t total;
  int lastQuarter = 0;
  clock::time_point start;
};

io::Tensor i32(std::vector<int64_t> shape, const std::vector<int32_t> &values) {
  return io::Tensor::FromValues(DType::kI32, std::move(shape), values);
}

} // namespace

bool runCalibration(const std::string &path, const std::vector<int32_t> &ids,
                    const std::vector<CalibrationOutput> &outputs,
                    const CalibrationRunOptions &options, std::string &error) {
  auto fail = [&](const Status &s) {
    error = "calibration: " + s.message();
    return false;
  };
  StatusOr<std::unique_ptr<artifact::Artifact>> art = artifact::Artifact::Open(path);
  if (!art.ok())
    return fail(art.status());
  hal::DeviceOptions deviceOptions;
  deviceOptions.threads = options.threads;
  StatusOr<std::unique_ptr<hal::Device>> device = hal::CreateDevice("cpu", deviceOptions);
  if (!device.ok())
    return fail(device.status());
  StatusOr<std::unique_ptr<exec::Executor>> executor =
      exec::Executor::Create(**art, **device);
  if (!executor.ok())
    return fail(executor.status());

  std::map<std::string, std::vector<const CalibrationOutput *>> byFunction;
  for (const CalibrationOutput &o : outputs)
    byFunction[o.function].push_back(&o);

  const int64_t total = (int64_t)ids.size();
  const int64_t window = std::max<int64_t>(1, options.window);
  ProgressBar progress(options, total);
  progress.update(0);
  for (int64_t begin = 0; begin < total; begin += window) {
    const int64_t t = std::min(window, total - begin);
    for (auto &[function, outs] : byFunction) {
      const fb::Function *fn = (*executor)->FindFunction(function);
      if (!fn || !fn->inputs())
        return fail(InternalError("the calibration artifact has no '" + function + "'"));
      // One sequence of t tokens at positions 0..t-1 in blocks 0, 1, ...
      std::vector<io::NamedTensor> inputs;
      for (const fb::TensorSig *sig : *fn->inputs()) {
        const std::string name = sig->name() ? sig->name()->str() : "";
        std::vector<int64_t> shape;
        if (sig->shape())
          shape.assign(sig->shape()->begin(), sig->shape()->end());
        std::vector<int32_t> seq(t);
        for (int64_t i = 0; i < t; ++i)
          seq[i] = (int32_t)i;
        if (name == "tokens") {
          inputs.push_back({name, i32({t}, std::vector<int32_t>(ids.begin() + begin,
                                                                 ids.begin() + begin + t))});
        } else if (name == "positions" || name == "slot_mapping") {
          inputs.push_back({name, i32({t}, seq)});
        } else if (name == "query_start") {
          inputs.push_back({name, i32({2}, {0, (int32_t)t})});
        } else if (name == "seq_lens") {
          inputs.push_back({name, i32({1}, {(int32_t)t})});
        } else if (name == "logits_indices") {
          // Every row: the LM head's input is the gathered rows.
          inputs.push_back({name, i32({t}, seq)});
        } else if (name == "block_tables" || name.rfind("k_cache.", 0) == 0 ||
                   name.rfind("v_cache.", 0) == 0) {
          // Pools [num_blocks, block_size, kv_heads, head_dim] (dynamic
          // block dims: 16 tokens a block) and the one table over them.
          continue;
        } else {
          return fail(InvalidArgumentError("'" + function + "' has an input '" + name +
                                           "' calibration does not know (it runs the paged "
                                           "forward; --kv-cache=concat is not supported)"));
        }
      }
      int64_t blockSize = 16;
      for (const fb::TensorSig *sig : *fn->inputs()) {
        const std::string name = sig->name() ? sig->name()->str() : "";
        if (name.rfind("k_cache.", 0) == 0 && sig->shape() && sig->shape()->size() == 4 &&
            sig->shape()->Get(1) > 0)
          blockSize = sig->shape()->Get(1);
      }
      const int64_t blocks = (t + blockSize - 1) / blockSize;
      std::vector<int32_t> table(blocks);
      for (int64_t i = 0; i < blocks; ++i)
        table[i] = (int32_t)i;
      for (const fb::TensorSig *sig : *fn->inputs()) {
        const std::string name = sig->name() ? sig->name()->str() : "";
        if (name == "block_tables") {
          inputs.push_back({name, i32({1, blocks}, table)});
        } else if (name.rfind("k_cache.", 0) == 0 || name.rfind("v_cache.", 0) == 0) {
          if (!sig->shape() || sig->shape()->size() != 4 || sig->shape()->Get(2) < 0 ||
              sig->shape()->Get(3) < 0)
            return fail(InvalidArgumentError("pool '" + name + "' has no static head shape"));
          StatusOr<io::Tensor> pool = io::Tensor::Create(
              static_cast<DType>(sig->dtype()),
              {blocks, blockSize, sig->shape()->Get(2), sig->shape()->Get(3)});
          if (!pool.ok())
            return fail(pool.status());
          inputs.push_back({name, std::move(*pool)});
        }
      }
      StatusOr<std::vector<io::NamedTensor>> results = (*executor)->Run(function, inputs);
      if (!results.ok())
        return fail(results.status());
      for (const CalibrationOutput *o : outs) {
        if (o->result >= results->size())
          return fail(InternalError("'" + function + "' returned too few results"));
        const io::Tensor &x = (*results)[o->result].tensor;
        const int64_t K = o->stats->channels;
        if (x.dtype != DType::kF32 || x.shape.empty() || x.shape.back() != K)
          return fail(InternalError("calibration result " + std::to_string(o->result) +
                                    " of '" + function + "' is not f32 [..., " +
                                    std::to_string(K) + "]"));
        auto values = x.values<float>();
        o->stats->accumulate(values.data(), (int64_t)values.size() / K);
      }
    }
    progress.update(begin + t);
  }
  return true;
}

bool tokenizeWithArtifact(const std::string &tool, const std::string &path,
                          const std::string &text, std::vector<int32_t> &ids,
                          std::string &error) {
  if (!llvm::sys::fs::can_execute(tool)) {
    error = "calibration: kiln-tokenize is not beside the compiler (looked for " + tool + ")";
    return false;
  }
  llvm::SmallString<128> out, err;
  if (llvm::sys::fs::createTemporaryFile("kiln-calibration-ids", "bin", out) ||
      llvm::sys::fs::createTemporaryFile("kiln-calibration-ids", "err", err)) {
    error = "calibration: cannot create a temporary file";
    return false;
  }
  llvm::scope_exit cleanup([&] {
    llvm::sys::fs::remove(out);
    llvm::sys::fs::remove(err);
  });
  llvm::StringRef args[] = {tool, path, "--text", text, "--out", out};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(""),
                                                llvm::StringRef(err)};
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(tool, args, std::nullopt, redirects, 0, 0, &message);
  if (rc != 0) {
    // The tool's own one-line error, else why it did not run.
    std::string why = message;
    if (auto buf = llvm::MemoryBuffer::getFile(err)) {
      llvm::StringRef e = (*buf)->getBuffer().trim();
      e.consume_front("kiln-tokenize: error: ");
      if (!e.empty())
        why = e.rsplit('\n').second.empty() ? e.str() : e.rsplit('\n').second.str();
    }
    error = "calibration: tokenizing '" + text + "' failed: " + (why.empty() ? "exit " + std::to_string(rc) : why);
    return false;
  }
  auto buf = llvm::MemoryBuffer::getFile(out, /*IsText=*/false);
  if (!buf) {
    error = "calibration: no ids from " + tool;
    return false;
  }
  llvm::StringRef bytes = (*buf)->getBuffer();
  ids.resize(bytes.size() / 4);
  std::memcpy(ids.data(), bytes.data(), ids.size() * 4);
  return true;
}

} // namespace kiln
