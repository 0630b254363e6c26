//===- OnnxToLinalg.h - onnx -> linalg/tensor/arith/math ----------*- C++ -*-===//
#ifndef KILN_COMPILER_CONVERSION_ONNXTOLINALG_ONNXTOLINALG_H
#define KILN_COMPILER_CONVERSION_ONNXTOLINALG_ONNXTOLINALG_H

#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/DialectConversion.h"

#include <memory>

namespace kiln {

/// Maps onnx-level types to what linalg and arith accept: unsigned integers
/// become signless (the patterns read signedness from the original op).
class OnnxTypeConverter : public mlir::TypeConverter {
public:
  OnnxTypeConverter();
};

/// All onnx -> linalg patterns; each op family adds its own below.
void populateOnnxToLinalgPatterns(mlir::RewritePatternSet &patterns,
                                  const mlir::TypeConverter &converter);

void populateOnnxElementwisePatterns(mlir::RewritePatternSet &patterns,
                                     const mlir::TypeConverter &converter);
void populateOnnxTensorPatterns(mlir::RewritePatternSet &patterns,
                                const mlir::TypeConverter &converter);
void populateOnnxMatmulPatterns(mlir::RewritePatternSet &patterns,
                                const mlir::TypeConverter &converter);
void populateOnnxReductionPatterns(mlir::RewritePatternSet &patterns,
                                   const mlir::TypeConverter &converter);
void populateOnnxConvPoolPatterns(mlir::RewritePatternSet &patterns,
                                  const mlir::TypeConverter &converter);
void populateOnnxIndexingPatterns(mlir::RewritePatternSet &patterns,
                                  const mlir::TypeConverter &converter);
void populateOnnxNormalizationPatterns(mlir::RewritePatternSet &patterns,
                                       const mlir::TypeConverter &converter);
void populateOnnxRecurrentPatterns(mlir::RewritePatternSet &patterns,
                                   const mlir::TypeConverter &converter);
void populateOnnxSignalPatterns(mlir::RewritePatternSet &patterns,
                                const mlir::TypeConverter &converter);
void populateOnnxMiscPatterns(mlir::RewritePatternSet &patterns,
                              const mlir::TypeConverter &converter);

std::unique_ptr<mlir::Pass> createConvertOnnxToLinalgPass();

} // namespace kiln

#endif // KILN_COMPILER_CONVERSION_ONNXTOLINALG_ONNXTOLINALG_H
