//===- text_stream.h - Print generated text token by token ----------------===//
//
// Decoding one id at a time is wrong twice over: SentencePiece drops the
// leading space of the first piece it decodes, and one character may span
// several byte tokens. TextStream decodes a short window that starts at an
// id already printed and prints only what the window adds, holding back text
// that ends in U+FFFD (an incomplete character). The pieces it returns, put
// together, are Decode(all ids).
#ifndef KILN_RUNTIME_LLM_TEXT_STREAM_H_
#define KILN_RUNTIME_LLM_TEXT_STREAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/llm/tokenizer.h"

namespace kiln::llm {

class TextStream {
 public:
  /// `tokenizer` is borrowed and must outlive the stream.
  explicit TextStream(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  /// Adds an id; returns the text that is now certain (maybe "").
  StatusOr<std::string> Push(int64_t id);
  /// Returns whatever is held back (call once at the end).
  StatusOr<std::string> Flush();

 private:
  StatusOr<std::string> Emit(bool final);

  const Tokenizer& tokenizer_;
  std::vector<int64_t> ids_;
  size_t prefix_ = 0;  // window start: an id whose text was already printed
  size_t read_ = 0;    // ids before this one have been printed
};

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_TEXT_STREAM_H_
