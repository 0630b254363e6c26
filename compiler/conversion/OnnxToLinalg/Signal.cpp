//===- Signal.cpp - onnx Signal ops -> linalg ------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"

using namespace mlir;

namespace kiln {

void populateOnnxSignalPatterns(RewritePatternSet &patterns,
                              const TypeConverter &converter) {}

} // namespace kiln
