// RUN: kiln-opt %s --split-input-file --kiln-raise-llm | FileCheck %s

// SwiGLU whose three weights are QDQ int8: one llm.gated_mlp reading three
// llm.dequantize ops.
// CHECK-LABEL: func @gated_mlp_qdq
// CHECK-DAG: %[[G:.+]] = llm.dequantize %{{.+}} scales %{{.+}} {group_size = 8 : i64} : tensor<8x16xi8>, tensor<1x16xf16> -> tensor<8x16xf32>
// CHECK-DAG: %[[U:.+]] = llm.dequantize %{{.+}} scales %{{.+}} {group_size = 8 : i64} : tensor<8x16xi8>, tensor<1x16xf16> -> tensor<8x16xf32>
// CHECK-DAG: %[[D:.+]] = llm.dequantize %{{.+}} scales %{{.+}} {group_size = 16 : i64} : tensor<16x8xi8>, tensor<1x8xf16> -> tensor<16x8xf32>
// CHECK: %[[M:.+]] = llm.gated_mlp %arg0, %[[G]], %[[U]], %[[D]] residual %arg0
// CHECK-NOT: onnx.DequantizeLinear
// CHECK: return %[[M]]
func.func @gated_mlp_qdq(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %qg = onnx.Constant {value = dense<3> : tensor<8x16xi8>} : () -> tensor<8x16xi8>
  %qu = onnx.Constant {value = dense<-5> : tensor<8x16xi8>} : () -> tensor<8x16xi8>
  %qd = onnx.Constant {value = dense<7> : tensor<16x8xi8>} : () -> tensor<16x8xi8>
  %s16 = onnx.Constant {value = dense<0.125> : tensor<16xf32>} : () -> tensor<16xf32>
  %s8 = onnx.Constant {value = dense<0.25> : tensor<8xf32>} : () -> tensor<8xf32>
  %z16 = onnx.Constant {value = dense<0> : tensor<16xi8>} : () -> tensor<16xi8>
  %none = onnx.NoValue : () -> none
  %wg = onnx.DequantizeLinear %qg, %s16, %z16 {axis = 1 : si64} : (tensor<8x16xi8>, tensor<16xf32>, tensor<16xi8>) -> tensor<8x16xf32>
  %wu = onnx.DequantizeLinear %qu, %s16, %none {axis = 1 : si64} : (tensor<8x16xi8>, tensor<16xf32>, none) -> tensor<8x16xf32>
  %wd = onnx.DequantizeLinear %qd, %s8, %none {axis = 1 : si64} : (tensor<16x8xi8>, tensor<8xf32>, none) -> tensor<16x8xf32>
  %g = onnx.MatMul %x, %wg : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  %s = onnx.Sigmoid %g : (tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %silu = onnx.Mul %g, %s : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %u = onnx.MatMul %x, %wu : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  %h = onnx.Mul %silu, %u : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %d = onnx.MatMul %h, %wd : (tensor<?x?x16xf32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  %y = onnx.Add %x, %d : (tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// A fused projection (x @ W + b, then Split) with an int4 MatMulNBits weight:
// data, scales and zero points are cut along N like an f32 weight.
// CHECK-LABEL: func @split_nbits
// CHECK: %[[A:.+]] = llm.dequantize {{.*}} {group_size = 16 : i64} : tensor<16x4xi4>, tensor<1x4xf16>, tensor<1x4xi8> -> tensor<16x4xf32>
// CHECK: llm.matmul %arg0, %[[A]] bias %{{.+}} : {{.*}} -> tensor<?x?x4xf32>
// CHECK: %[[B:.+]] = llm.dequantize {{.*}} {group_size = 16 : i64} : tensor<16x2xi4>, tensor<1x2xf16>, tensor<1x2xi8> -> tensor<16x2xf32>
// CHECK: llm.matmul %arg0, %[[B]] bias %{{.+}} : {{.*}} -> tensor<?x?x2xf32>
// CHECK-NOT: onnx.Split
func.func @split_nbits(%x: tensor<?x?x16xf32>) -> (tensor<?x?x4xf32>, tensor<?x?x2xf32>) {
  %b = onnx.Constant {value = dense<33> : tensor<6x1x8xui8>} : () -> tensor<6x1x8xui8>
  %s = onnx.Constant {value = dense<0.5> : tensor<6xf32>} : () -> tensor<6xf32>
  %bias = onnx.Constant {value = dense<1.0> : tensor<6xf32>} : () -> tensor<6xf32>
  %sizes = onnx.Constant {value = dense<[4, 2]> : tensor<2xi64>} : () -> tensor<2xi64>
  %none = onnx.NoValue : () -> none
  %m = onnx.MatMulNBits %x, %b, %s, %none, %none, %none {K = 16 : si64, N = 6 : si64, bits = 4 : si64, block_size = 16 : si64} : (tensor<?x?x16xf32>, tensor<6x1x8xui8>, tensor<6xf32>, none, none, none) -> tensor<?x?x6xf32>
  %a = onnx.Add %m, %bias : (tensor<?x?x6xf32>, tensor<6xf32>) -> tensor<?x?x6xf32>
  %p:2 = onnx.Split %a, %sizes {axis = -1 : si64} : (tensor<?x?x6xf32>, tensor<2xi64>) -> (tensor<?x?x4xf32>, tensor<?x?x2xf32>)
  return %p#0, %p#1 : tensor<?x?x4xf32>, tensor<?x?x2xf32>
}

// -----

// Near miss: one scale per row of K (axis 0 of a [K, N] weight) is not a
// per-output-channel scale; the f32 onnx ops stay.
// CHECK-LABEL: func @scale_per_k_row
// CHECK-NOT: llm.
// CHECK: onnx.DequantizeLinear
// CHECK: onnx.MatMul
func.func @scale_per_k_row(%x: tensor<?x?x8xf32>) -> tensor<?x?x16xf32> {
  %q = onnx.Constant {value = dense<3> : tensor<8x16xi8>} : () -> tensor<8x16xi8>
  %s = onnx.Constant {value = dense<0.125> : tensor<8xf32>} : () -> tensor<8xf32>
  %none = onnx.NoValue : () -> none
  %w = onnx.DequantizeLinear %q, %s, %none {axis = 0 : si64} : (tensor<8x16xi8>, tensor<8xf32>, none) -> tensor<8x16xf32>
  %y = onnx.MatMul %x, %w : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

// Near miss: a scale f16 cannot hold (1e-9 is below its subnormals) keeps
// the exact f32 path.
// CHECK-LABEL: func @scale_out_of_f16_range
// CHECK-NOT: llm.dequantize
// CHECK: onnx.DequantizeLinear
func.func @scale_out_of_f16_range(%x: tensor<?x?x8xf32>) -> tensor<?x?x16xf32> {
  %q = onnx.Constant {value = dense<3> : tensor<8x16xi8>} : () -> tensor<8x16xi8>
  %s = onnx.Constant {value = dense<1.0e-9> : tensor<f32>} : () -> tensor<f32>
  %none = onnx.NoValue : () -> none
  %w = onnx.DequantizeLinear %q, %s, %none : (tensor<8x16xi8>, tensor<f32>, none) -> tensor<8x16xf32>
  %y = onnx.MatMul %x, %w : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

// Near miss: K = 48 is not a multiple of block_size = 32 (the last block is
// padded in B), which llm.dequantize's groups cannot express.
// CHECK-LABEL: func @nbits_partial_block
// CHECK-NOT: llm.dequantize
// CHECK: onnx.MatMulNBits
func.func @nbits_partial_block(%x: tensor<?x?x48xf32>) -> tensor<?x?x4xf32> {
  %b = onnx.Constant {value = dense<136> : tensor<4x2x16xui8>} : () -> tensor<4x2x16xui8>
  %s = onnx.Constant {value = dense<0.5> : tensor<8xf32>} : () -> tensor<8xf32>
  %none = onnx.NoValue : () -> none
  %y = onnx.MatMulNBits %x, %b, %s, %none, %none, %none {K = 48 : si64, N = 4 : si64, bits = 4 : si64, block_size = 32 : si64} : (tensor<?x?x48xf32>, tensor<4x2x16xui8>, tensor<8xf32>, none, none, none) -> tensor<?x?x4xf32>
  return %y : tensor<?x?x4xf32>
}
