//===- TokenizeTool.cpp - kiln-tokenize: text -> ids with an artifact's tokenizer -===//
//
//   kiln-tokenize MODEL.kiln --text FILE [--out IDS.bin] [--bos]
//
// Encodes FILE (UTF-8) with the tokenizer embedded in MODEL.kiln, without
// BOS unless --bos, exactly as kiln-perplexity does. Writes the ids as
// little-endian int32 to --out, or prints them space-separated on stdout.
// Errors: one line "kiln-tokenize: error: ..." on stderr, exit 1.
//
// Runtime only (no LLVM, no MLIR, no libprotobuf): kiln-compile runs it for
// --calibration, because libsentencepiece's protobuf cannot live in the
// compiler's process beside the ONNX importer's.
//
//===----------------------------------------------------------------------===//
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/artifact/artifact.h"
#include "runtime/base/tool_error.h"
#include "runtime/io/file.h"
#include "runtime/llm/config.h"
#include "runtime/llm/tokenizer.h"

namespace {

kiln::Status Run(const std::string &artifactPath, const std::string &textPath, const std::string &outPath,
                 bool bos) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::artifact::Artifact> artifact,
                        kiln::artifact::Artifact::Open(artifactPath));
  KILN_ASSIGN_OR_RETURN(kiln::llm::ModelConfig config, kiln::llm::ModelConfig::FromArtifact(*artifact));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::llm::Tokenizer> tokenizer, kiln::llm::LoadTokenizer(*artifact, config));
  if (!tokenizer) return kiln::InvalidArgumentError("the artifact has no tokenizer");
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, kiln::io::ReadFileBytes(textPath));
  std::string_view text(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  kiln::StatusOr<std::vector<int64_t>> encoded = tokenizer->Encode(text);
  if (!encoded.ok()) return encoded.status().Annotate(textPath);
  std::vector<int64_t> ids = bos ? tokenizer->WithBos(std::move(*encoded)) : std::move(*encoded);
  if (outPath.empty()) {
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %lld" : "%lld", static_cast<long long>(ids[i]));
    std::printf("\n");
    return kiln::OkStatus();
  }
  std::vector<int32_t> narrow(ids.begin(), ids.end());
  FILE *f = std::fopen(outPath.c_str(), "wb");
  if (!f) return kiln::InvalidArgumentError("cannot write '" + outPath + "'");
  bool ok = std::fwrite(narrow.data(), 4, narrow.size(), f) == narrow.size();
  ok &= std::fclose(f) == 0;
  if (!ok) return kiln::InvalidArgumentError("cannot write '" + outPath + "'");
  return kiln::OkStatus();
}

}  // namespace

int main(int argc, char **argv) {
  std::string artifact, text, out;
  bool bos = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--text" || a == "--out") && i + 1 < argc) {
      (a == "--text" ? text : out) = argv[++i];
    } else if (a == "--bos") {
      bos = true;
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: kiln-tokenize MODEL.kiln --text FILE [--out IDS.bin] [--bos]\n");
      return 0;
    } else if (!a.empty() && a[0] != '-' && artifact.empty()) {
      artifact = a;
    } else {
      return kiln::ToolError("kiln-tokenize", "unexpected argument '" + a + "' (usage: kiln-tokenize MODEL.kiln --text FILE [--out IDS.bin] [--bos])");
    }
  }
  if (artifact.empty() || text.empty())
    return kiln::ToolError("kiln-tokenize", "usage: kiln-tokenize MODEL.kiln --text FILE [--out IDS.bin] [--bos]");
  kiln::Status status = Run(artifact, text, out, bos);
  if (!status.ok()) return kiln::ToolError("kiln-tokenize", status.message());
  return 0;
}
