//===- LlmDialect.cpp - The llm dialect -----------------------------------===//
#include "dialects/llm/IR/LlmDialect.h"

#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace kiln::llm;

#include "LlmDialect.cpp.inc"

void LlmDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "LlmOps.cpp.inc"
      >();
}

std::optional<int32_t> kiln::llm::activationCode(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<int32_t>>(name)
      .Case("none", 0)
      .Case("gelu_tanh", 1)
      .Case("silu", 2)
      .Case("gelu_erf", 3)
      .Default(std::nullopt);
}
