//===- regex.cc - PCRE2 pre-tokenizer patterns (UTF + UCP) -----------------===//
#define PCRE2_CODE_UNIT_WIDTH 8
#include "runtime/llm/regex.h"

#include <pcre2.h>

#include "runtime/llm/utf8.h"

namespace kiln::llm {
namespace {

std::string PcreMessage(int error) {
  PCRE2_UCHAR buffer[256];
  int n = pcre2_get_error_message(error, buffer, sizeof(buffer));
  return n < 0 ? StrCat("PCRE2 error ", error) : std::string(reinterpret_cast<const char*>(buffer), n);
}

pcre2_code* Code(void* code) { return static_cast<pcre2_code*>(code); }

}  // namespace

StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern, bool literal) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error,
                                   &offset, nullptr);
  if (!code)
    return InvalidArgumentError(StrCat("bad pre-tokenizer pattern at offset ", offset, ": ", PcreMessage(error)));
  // JIT is an optimization only: without it (or where it fails) the
  // interpreter gives the same matches.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::unique_ptr<Regex> regex(new Regex());
  regex->code_ = code;
  return regex;
}

Regex::~Regex() { pcre2_code_free(Code(code_)); }

StatusOr<std::vector<std::string_view>> Regex::SplitIsolated(std::string_view text) const {
  std::vector<std::string_view> pieces;
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(Code(code_), nullptr);
  if (!match) return ResourceExhaustedError("cannot allocate PCRE2 match data");
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;  // where the next search begins
  size_t last = 0;   // end of the previous piece
  Status status;
  while (start <= text.size()) {
    // The caller validated the UTF-8 once; without NO_UTF_CHECK PCRE2 would
    // re-check the whole subject on every call (quadratic on a long file).
    int rc = pcre2_match(Code(code_), subject, text.size(), start, PCRE2_NO_UTF_CHECK, match, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      status = InvalidArgumentError(StrCat("pre-tokenizer regex failed: ", PcreMessage(rc)));
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
    size_t begin = ov[0], end = ov[1];
    if (begin > last) pieces.push_back(text.substr(last, begin - last));
    if (end > begin) {
      pieces.push_back(text.substr(begin, end - begin));
      last = end;
      start = end;
    } else {
      // An empty match: step over one whole character to make progress.
      last = begin;
      if (begin >= text.size()) break;
      size_t next = begin;
      NextCodePoint(text, next);
      start = next;
    }
  }
  if (last < text.size()) pieces.push_back(text.substr(last));
  pcre2_match_data_free(match);
  if (!status.ok()) return status;
  return pieces;
}

}  // namespace kiln::llm
