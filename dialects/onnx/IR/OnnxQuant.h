//===- OnnxQuant.h - Reading quantized weights of onnx ops --------*- C++ -*-===//
//
// Constant data of quantized weights as plain arrays: the bytes and floats of
// an ElementsAttr (dense or a resource blob), and the weight of a
// com.microsoft::MatMulNBits unpacked into the [K, N] order of `y = x @ w`.
// Shared by kiln-raise-llm (which turns them into llm.dequantize) and the
// onnx -> linalg lowering (which dequantizes them to f32 at compile time).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_DIALECTS_ONNX_IR_ONNXQUANT_H
#define KILN_DIALECTS_ONNX_IR_ONNXQUANT_H

#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/IR/BuiltinAttributes.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::onnx {

/// The constant (onnx.Constant, arith.constant) defining `v`, or null.
mlir::ElementsAttr constantOf(mlir::Value v);

/// The raw little-endian bytes of a constant of 1-, 2-, 4- or 8-byte elements,
/// or of integers narrower than a byte (i4: one element per byte, as MLIR
/// stores them); a splat is expanded. A view of a resource blob or of the
/// dense storage, or a copy in `storage`. None for i1 and for blobs that were
/// dropped.
std::optional<llvm::ArrayRef<char>> rawBytes(mlir::ElementsAttr attr,
                                             std::vector<char> &storage);

/// The values of an f32, f16 or bf16 constant as floats.
std::optional<std::vector<float>> floatValues(mlir::ElementsAttr attr);

/// The values of an integer constant of <= 64 bits, sign- or zero-extended by
/// its signedness (signless reads as signed).
std::optional<std::vector<int64_t>> intValues(mlir::ElementsAttr attr);

/// A MatMulNBits weight with constant B, scales, zero points and g_idx, in
/// the [K, N] order of `y = x @ w`:
/// `w[k, n] = (codes[k * N + n] - zeroPoints[g * N + n]) * scales[g * N + n]`
/// with `g = groupOf[k]`.
struct UnpackedNBits {
  int64_t K = 0, N = 0, blockSize = 0, numBlocks = 0;
  std::vector<uint8_t> codes;    ///< [K, N], 0 .. 2^bits - 1
  std::vector<float> scales;     ///< [numBlocks, N]
  std::vector<float> zeroPoints; ///< [numBlocks, N]; 2^(bits-1) when absent
  std::vector<int32_t> groupOf;  ///< [K]: g_idx, or k / blockSize
  /// g_idx is absent or equal to k / blockSize for every k.
  bool defaultGroups = true;
  /// Zero points given as uint8 codes (or absent): integers in 0 .. 2^bits-1.
  bool integerZeroPoints = true;
};

/// Unpacks `op`'s weight; fails with a one-line reason in `why` when an
/// operand is not a constant or does not have the layout of the spec.
mlir::FailureOr<UnpackedNBits> unpackMatMulNBits(MatMulNBitsOp op,
                                                 std::string &why);

} // namespace kiln::onnx

#endif // KILN_DIALECTS_ONNX_IR_ONNXQUANT_H
