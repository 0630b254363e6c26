//===- regex.h - PCRE2 pre-tokenizer patterns (UTF + UCP) ------------------===//
//
// Byte-level BPE tokenizers cut text into words with a regular expression
// (GPT-2's uses \p{L}, \p{N} and a look-ahead) before merging bytes. PCRE2 in
// UTF mode with Unicode properties (UCP) gives the same classes as Python's
// `regex` module and Rust's `fancy-regex` that Hugging Face uses.
#ifndef KILN_RUNTIME_LLM_REGEX_H_
#define KILN_RUNTIME_LLM_REGEX_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"

namespace kiln::llm {

/// The pre-tokenizer pattern of GPT-2 (and of HF's ByteLevel with use_regex).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Regex {
 public:
  /// Compiles `pattern` (JIT where PCRE2 has it); `literal` matches the
  /// pattern as plain text. A bad pattern is an error with PCRE2's message.
  static StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern, bool literal = false);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Splits `text` (which the caller has checked is valid UTF-8) into the
  /// matches and the text between them, in order, dropping empty pieces
  /// (Hugging Face's "Isolated" split behaviour). Pieces point into `text`.
  StatusOr<std::vector<std::string_view>> SplitIsolated(std::string_view text) const;

 private:
  Regex() = default;
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so the header needs no PCRE2
};

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_REGEX_H_
