//===- tool_error.h - The one-line error every runtime tool prints ---------===//
#ifndef KILN_RUNTIME_BASE_TOOL_ERROR_H_
#define KILN_RUNTIME_BASE_TOOL_ERROR_H_

#include <cstdio>
#include <string>
#include <string_view>

namespace kiln {

/// Prints "TOOL: error: MESSAGE" on stderr as one line — control characters
/// from model or artifact names become spaces — and returns exit code 1.
inline int ToolError(std::string_view tool, std::string message) {
  for (char& c : message)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  std::fprintf(stderr, "%.*s: error: %s\n", static_cast<int>(tool.size()), tool.data(),
               message.c_str());
  return 1;
}

}  // namespace kiln

#endif  // KILN_RUNTIME_BASE_TOOL_ERROR_H_
