//===- utf8.h - UTF-8 helpers shared by the tokenizers ---------------------===//
#ifndef KILN_RUNTIME_LLM_UTF8_H_
#define KILN_RUNTIME_LLM_UTF8_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::llm {

/// The UTF-8 encoding of U+FFFD, which lossy decoding puts in place of bad bytes.
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

/// `bytes` as valid UTF-8: every maximal ill-formed subpart becomes one U+FFFD
/// (the Unicode recommendation, which Python's errors="replace" and Rust's
/// from_utf8_lossy both follow, so decoded text matches Hugging Face's).
std::string Utf8Lossy(std::string_view bytes);

/// True when `text` is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

/// Appends the UTF-8 encoding of `code_point` (< 0x110000) to `out`.
void AppendUtf8(char32_t code_point, std::string& out);

/// Decodes the code point starting at `text[pos]` and advances `pos`; returns
/// -1 (and advances by one byte) on an ill-formed sequence.
int32_t NextCodePoint(std::string_view text, size_t& pos);

}  // namespace kiln::llm

#endif  // KILN_RUNTIME_LLM_UTF8_H_
