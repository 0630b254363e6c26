//===- Utils.h - Helpers shared by the onnx -> linalg patterns ----*- C++ -*-===//
#ifndef KILN_COMPILER_CONVERSION_ONNXTOLINALG_UTILS_H
#define KILN_COMPILER_CONVERSION_ONNXTOLINALG_UTILS_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Transforms/DialectConversion.h"

#include <functional>
#include <optional>

namespace kiln {

/// Body of an elementwise op: scalars of the (converted) inputs in, result out.
using ScalarFn = std::function<mlir::Value(mlir::OpBuilder &, mlir::Location,
                                           mlir::ValueRange)>;

/// Dynamic sizes of `type` for a tensor.empty, taken from `like` (same shape).
llvm::SmallVector<mlir::Value> dynamicSizes(mlir::OpBuilder &b,
                                            mlir::Location loc,
                                            mlir::Value like);

/// A linalg.generic computing `fn` over numpy-broadcast `inputs` into a new
/// tensor of `resultType` (static dims and dynamic ones taken from inputs).
mlir::Value buildElementwise(mlir::OpBuilder &b, mlir::Location loc,
                             mlir::RankedTensorType resultType,
                             mlir::ValueRange inputs, const ScalarFn &fn);

/// Broadcasts `input` to `resultType` (numpy rules) as a linalg.generic.
mlir::Value broadcastTo(mlir::OpBuilder &b, mlir::Location loc,
                        mlir::Value input, mlir::RankedTensorType resultType);

/// tensor.empty of `type` with dynamic dims taken from `like` when given.
mlir::Value emptyLike(mlir::OpBuilder &b, mlir::Location loc,
                      mlir::RankedTensorType type,
                      mlir::Value like = nullptr);

/// Zero (or the given float/int value) of an element type.
mlir::Value scalarConstant(mlir::OpBuilder &b, mlir::Location loc,
                           mlir::Type type, double value);

/// Whether an optional operand is absent (null or of type `none`).
bool isNone(mlir::Value v);

/// An integer / float attribute of `op`, or `dflt` when it is not set.
int64_t intAttrOr(mlir::Operation *op, llvm::StringRef name, int64_t dflt);
double floatAttrOr(mlir::Operation *op, llvm::StringRef name, double dflt);

/// Whether the onnx-level element type of `v` is an unsigned integer.
bool isUnsignedOnnx(mlir::Value v);

/// The values of a constant integer tensor (onnx.Constant or arith.constant,
/// before or after conversion), if it is one.
std::optional<llvm::SmallVector<int64_t>> constantInts(mlir::Value v);
std::optional<llvm::SmallVector<double>> constantFloats(mlir::Value v);

/// Normalizes a possibly negative axis; nullopt when out of range.
std::optional<int64_t> normalizeAxis(int64_t axis, int64_t rank);

/// Converts a scalar between element types with ONNX Cast semantics.
mlir::Value castScalar(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                       mlir::Type to, bool fromUnsigned, bool toUnsigned);

/// Reads an optional int/float attribute list.
llvm::SmallVector<int64_t> intsAttr(mlir::Operation *op, llvm::StringRef name);
llvm::SmallVector<float> floatsAttr(mlir::Operation *op, llvm::StringRef name);

/// The converted ranked result type of `op`'s result `i`, or null.
mlir::RankedTensorType resultType(const mlir::TypeConverter &tc,
                                  mlir::Operation *op, unsigned i = 0);

/// Body of buildGeneric: input scalars then output scalars in, new outputs out.
using GenericBodyFn = std::function<llvm::SmallVector<mlir::Value>(
    mlir::OpBuilder &, mlir::Location, mlir::ValueRange)>;

/// A linalg.generic over a domain of rank `rank`; `reduced` marks reduction
/// loops. `inits` are the outputs (their maps in `outMaps`); `body` gets the
/// input scalars followed by the output scalars. With `firstInit`, the
/// outputs start uninitialized and read as `firstInit[i]` on the first
/// reduction step.
llvm::SmallVector<mlir::Value>
buildGeneric(mlir::OpBuilder &b, mlir::Location loc, int64_t rank,
             llvm::ArrayRef<bool> reduced, mlir::ValueRange inputs,
             llvm::ArrayRef<mlir::AffineMap> inMaps, mlir::ValueRange inits,
             llvm::ArrayRef<mlir::AffineMap> outMaps, const GenericBodyFn &body,
             llvm::ArrayRef<double> firstInit = {});

/// x + y, x - y, x * y for float or integer scalars.
mlir::Value addOf(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x,
                  mlir::Value y);
mlir::Value subOf(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x,
                  mlir::Value y);
mlir::Value mulOf(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x,
                  mlir::Value y);

} // namespace kiln

#endif // KILN_COMPILER_CONVERSION_ONNXTOLINALG_UTILS_H
