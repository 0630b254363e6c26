//===- sentencepiece_tokenizer.cc - Tokenizer over libsentencepiece --------===//
//
// The model is the serialized ModelProto the compiler copied from
// tokenizer.model; libsentencepiece does normalization, BPE/unigram, byte
// fallback and decoding exactly as the Python package the model was trained
// with.
//
// Debian's libsentencepiece carries its own copy of protobuf-lite (3.14) and
// exports its symbols. In a process that has also loaded libprotobuf (the
// ONNX code does), sentencepiece's protobuf calls bind to that other version
// and it aborts on load. kiln_llm links its users with --as-needed so that
// the LLM tools never load libprotobuf, and CheckNoForeignProtobuf turns the
// conflict into an error wherever it still happens.
#include <dlfcn.h>
#include <sentencepiece_processor.h>

#include <cstring>
#include <limits>

#include "runtime/llm/tokenizer.h"
#include "runtime/llm/utf8.h"

namespace kiln::llm {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp) : sp_(std::move(sp)) {}

  StatusOr<std::vector<int64_t>> Encode(std::string_view text) const override {
    // libsentencepiece would quietly read bad bytes as U+FFFD; refuse them
    // as the byte-level tokenizer does.
    if (!IsValidUtf8(text)) return InvalidArgumentError("text to encode is not valid UTF-8");
    std::vector<int> ids;
    sentencepiece::util::Status s = sp_->Encode(text, &ids);
    if (!s.ok()) return InvalidArgumentError(StrCat("sentencepiece: cannot encode: ", s.message()));
    return std::vector<int64_t>(ids.begin(), ids.end());
  }

  StatusOr<std::string> Decode(std::span<const int64_t> ids) const override {
    std::vector<int> narrow;
    narrow.reserve(ids.size());
    for (int64_t id : ids) {
      if (id < 0 || id >= vocab_size())
        return InvalidArgumentError(StrCat("token id ", id, " is outside the vocabulary of ", vocab_size()));
      narrow.push_back(static_cast<int>(id));
    }
    std::string text;
    sentencepiece::util::Status s = sp_->Decode(narrow, &text);
    if (!s.ok()) return InvalidArgumentError(StrCat("sentencepiece: cannot decode: ", s.message()));
    return text;
  }

  int64_t vocab_size() const override { return sp_->GetPieceSize(); }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

/// Fails when protobuf's version check resolves to a library other than
/// libsentencepiece (see the top of this file).
Status CheckNoForeignProtobuf() {
  void* symbol = dlsym(RTLD_DEFAULT, "_ZN6google8protobuf8internal13VerifyVersionEiiPKc");
  Dl_info info{};
  if (!symbol || !dladdr(symbol, &info) || !info.dli_fname) return OkStatus();
  if (std::strstr(info.dli_fname, "sentencepiece")) return OkStatus();
  return FailedPreconditionError(StrCat("sentencepiece: this process has loaded another protobuf (", info.dli_fname,
                                        ") that conflicts with the one inside libsentencepiece; link without "
                                        "libprotobuf to use SentencePiece tokenizers"));
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> CreateSentencePieceTokenizer(std::string_view model_proto) {
  if (model_proto.empty()) return InvalidArgumentError("sentencepiece: the tokenizer model is empty");
  KILN_RETURN_IF_ERROR(CheckNoForeignProtobuf());
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  sentencepiece::util::Status s = sp->LoadFromSerializedProto(model_proto);
  if (!s.ok()) return InvalidArgumentError(StrCat("sentencepiece: cannot load the tokenizer model: ", s.message()));
  if (sp->GetPieceSize() <= 0) return InvalidArgumentError("sentencepiece: the tokenizer model has no pieces");
  return std::unique_ptr<Tokenizer>(new SentencePieceTokenizer(std::move(sp)));
}

}  // namespace kiln::llm
