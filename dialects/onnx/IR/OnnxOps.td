//===- OnnxOps.td - onnx dialect ops -----------------------*- tablegen -*-===//
#ifndef KILN_ONNX_OPS
#define KILN_ONNX_OPS

include "OnnxBase.td"

def ONNX_NoValueOp : ONNX_Op<"NoValue", [Pure]> {
  let summary = "An absent optional input or output";
  let description = [{
    Stands for an optional ONNX input that the node leaves empty.

    ```mlir
    %none = onnx.NoValue : () -> none
    %y = onnx.Clip %x, %none, %max : (tensor<4xf32>, none, tensor<f32>) -> tensor<4xf32>
    ```
  }];
  let results = (outs NoneType:$none);
}

include "OnnxOpsGen.td"

// Ops of other domains that kiln imports. Their ONNX schemas are not in
// python3-onnx; the importer registers one with the ONNX library for the
// checker and shape inference (compiler/importer/OnnxImporter.cpp).

def ONNX_MatMulNBitsOp : ONNX_Op<"MatMulNBits", [Pure,
    DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "com.microsoft::MatMulNBits: A @ dequantize(B)^T (+ bias), B block-quantized along K";
  let description = [{
    ONNX Runtime's contrib op (domain `com.microsoft`, version 1) for
    weight-only block quantization, as its `MatMulNBits` quantizer and
    optimum write it. `B` holds the weight transposed, `[N, n_blocks,
    blob_size]` `ui8` with `n_blocks = ceil(K / block_size)` and `blob_size =
    block_size * bits / 8`; codes are packed along K, low bits first (for 4
    bits: element `2j` in the low nibble of byte `j`). Weight `w[n, k] =
    (code[n, k] - zero_point[n, k / block_size]) * scales[n, k / block_size]`
    and `Y = A @ w^T + bias`.

    - `scales`: `[N * n_blocks]` or `[N, n_blocks]`, A's element type.
    - `zero_points` (optional): packed `ui8` `[N * ceil(n_blocks * bits / 8)]`
      (or `[N, ...]`), same packing as `B`; or unpacked, A's element type,
      `[N * n_blocks]`. Absent: `2^(bits - 1)` (8 for 4 bits).
    - `g_idx` (optional, deprecated): `i32` `[K]`, the block of each row k
      (the default is `k / block_size`).
    - `bias` (optional): `[N]`.
    - `accuracy_level` is a hint for ONNX Runtime's kernels; kiln ignores it.

    kiln imports 4-bit weights only. `kiln-raise-llm` turns the op into an
    `llm.matmul` whose weight is an `llm.dequantize`; elsewhere it is lowered to
    linalg by dequantizing a constant `B` at compile time.

    ```mlir
    %y = onnx.MatMulNBits %a, %b, %s, %none, %none, %none {K = 64 : si64, N = 16 : si64, bits = 4 : si64, block_size = 32 : si64}
           : (tensor<?x?x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>, none, none, none) -> tensor<?x?x16xf32>
    ```
  }];
  let arguments = (ins
    AnyType:$A,
    AnyType:$B,
    AnyType:$scales,
    AnyType:$zero_points,
    AnyType:$g_idx,
    AnyType:$bias,
    SI64Attr:$K,
    SI64Attr:$N,
    DefaultValuedAttr<SI64Attr, "4">:$bits,
    SI64Attr:$block_size,
    OptionalAttr<SI64Attr>:$accuracy_level
  );
  let results = (outs
    AnyType:$Y
  );
  let extraClassDeclaration = [{
    /// Imported types may be more precise than inferred ones.
    static bool isCompatibleReturnTypes(::mlir::TypeRange l, ::mlir::TypeRange r);
  }];
  let hasVerifier = 1;
}

#endif // KILN_ONNX_OPS
