//===- Recurrent.cpp - onnx Recurrent ops -> linalg ------------------------------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"
#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "dialects/onnx/IR/OnnxDialect.h"

using namespace mlir;

namespace kiln {

void populateOnnxRecurrentPatterns(RewritePatternSet &patterns,
                              const TypeConverter &converter) {}

} // namespace kiln
