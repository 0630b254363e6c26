//===- text_stream.cc - Print generated text token by token ---------------===//
#include "runtime/llm/text_stream.h"

#include <span>

#include "runtime/llm/utf8.h"

namespace kiln::llm {

StatusOr<std::string> TextStream::Push(int64_t id) {
  ids_.push_back(id);
  return Emit(/*final=*/false);
}

StatusOr<std::string> TextStream::Flush() { return Emit(/*final=*/true); }

StatusOr<std::string> TextStream::Emit(bool final) {
  std::span<const int64_t> all(ids_);
  KILN_ASSIGN_OR_RETURN(std::string printed, tokenizer_.Decode(all.subspan(prefix_, read_ - prefix_)));
  KILN_ASSIGN_OR_RETURN(std::string text, tokenizer_.Decode(all.subspan(prefix_)));
  const bool incomplete = text.size() >= kReplacementChar.size() &&
                          text.compare(text.size() - kReplacementChar.size(), kReplacementChar.size(),
                                       kReplacementChar) == 0;
  if (text.size() <= printed.size() || (incomplete && !final)) return std::string();
  // The window grew: print what it added and slide it forward.
  prefix_ = read_;
  read_ = ids_.size();
  return text.substr(printed.size());
}

}  // namespace kiln::llm
