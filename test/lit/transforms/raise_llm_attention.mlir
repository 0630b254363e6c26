// RUN: kiln-opt %s --split-input-file --kiln-raise-llm | FileCheck %s

// Scaled dot-product attention as exports write it: GQA keys/values repeated
// by Unsqueeze+Expand+Reshape, a causal mask from position ranges and a
// padding mask from the [B, T] attention_mask, applied with Where.
// CHECK-LABEL: func @attention
// CHECK: %[[A:.*]] = llm.attention %arg0, %arg1, %arg2 mask %arg3 {causal, scale = 0.353553385 : f32}
// CHECK-NOT: onnx.Softmax
// CHECK: return %[[A]]
func.func @attention(%q: tensor<?x4x?x8xf32>, %k: tensor<?x2x?x8xf32>, %v: tensor<?x2x?x8xf32>, %mask: tensor<?x?xi64>) -> tensor<?x4x?x8xf32> {
  %c0 = onnx.Constant {value = dense<0> : tensor<i64>} : () -> tensor<i64>
  %c1 = onnx.Constant {value = dense<1> : tensor<i64>} : () -> tensor<i64>
  %ax0 = onnx.Constant {value = dense<0> : tensor<1xi64>} : () -> tensor<1xi64>
  %ax1 = onnx.Constant {value = dense<1> : tensor<1xi64>} : () -> tensor<1xi64>
  %ax2 = onnx.Constant {value = dense<2> : tensor<1xi64>} : () -> tensor<1xi64>
  %ax12 = onnx.Constant {value = dense<[1, 2]> : tensor<2xi64>} : () -> tensor<2xi64>
  %sh = onnx.Shape %mask : (tensor<?x?xi64>) -> tensor<2xi64>
  %T = onnx.Gather %sh, %c1 : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %kr = onnx.Range %c0, %T, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %ku = onnx.Unsqueeze %kr, %ax0 : (tensor<?xi64>, tensor<1xi64>) -> tensor<1x?xi64>
  %qu = onnx.Unsqueeze %kr, %ax1 : (tensor<?xi64>, tensor<1xi64>) -> tensor<?x1xi64>
  %causal = onnx.LessOrEqual %ku, %qu : (tensor<1x?xi64>, tensor<?x1xi64>) -> tensor<?x?xi1>
  %m1 = onnx.Unsqueeze %mask, %ax12 : (tensor<?x?xi64>, tensor<2xi64>) -> tensor<?x1x1x?xi64>
  %mb = onnx.Cast %m1 {to = 9 : si64} : (tensor<?x1x1x?xi64>) -> tensor<?x1x1x?xi1>
  %both = onnx.And %causal, %mb : (tensor<?x?xi1>, tensor<?x1x1x?xi1>) -> tensor<?x1x?x?xi1>
  %masked = onnx.Not %both : (tensor<?x1x?x?xi1>) -> tensor<?x1x?x?xi1>
  %s5 = onnx.Constant {value = dense<[1, 2, 2, 1, 8]> : tensor<5xi64>} : () -> tensor<5xi64>
  %s4 = onnx.Constant {value = dense<[0, 4, -1, 8]> : tensor<4xi64>} : () -> tensor<4xi64>
  %k5 = onnx.Unsqueeze %k, %ax2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %k5, %s5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %k4 = onnx.Reshape %ke, %s4 : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %v5 = onnx.Unsqueeze %v, %ax2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %v5, %s5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %v4 = onnx.Reshape %ve, %s4 : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %kt = onnx.Transpose %k4 {perm = [0, 1, 3, 2]} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %qk = onnx.MatMul %q, %kt : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %sqrt = onnx.Constant {value = dense<2.82842708> : tensor<f32>} : () -> tensor<f32>
  %sc = onnx.Div %qk, %sqrt : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %neg = onnx.Constant {value = dense<-3.40282347E+38> : tensor<f32>} : () -> tensor<f32>
  %w = onnx.Where %masked, %neg, %sc : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %w : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %v4 : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  return %o : tensor<?x4x?x8xf32>
}

// -----

// Near miss: the mask comes from a precomputed boolean tensor, not from the
// [B, T] padding mask and positions: its meaning is unknown, so the
// attention is left as it is.
// CHECK-LABEL: func @opaque_mask
// CHECK-NOT: llm.attention
// CHECK: onnx.Softmax
func.func @opaque_mask(%q: tensor<?x4x?x8xf32>, %k: tensor<?x4x?x8xf32>, %v: tensor<?x4x?x8xf32>, %masked: tensor<?x1x?x?xi1>) -> tensor<?x4x?x8xf32> {
  %kt = onnx.Transpose %k {perm = [0, 1, 3, 2]} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %qk = onnx.MatMul %q, %kt : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %neg = onnx.Constant {value = dense<-3.40282347E+38> : tensor<f32>} : () -> tensor<f32>
  %w = onnx.Where %masked, %neg, %qk : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %w : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %v : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  return %o : tensor<?x4x?x8xf32>
}

// -----

// The KV cache update: concat of past and new keys along the sequence.
// CHECK-LABEL: func @kv_append
// CHECK: llm.kv_append %arg0, %arg1
func.func @kv_append(%past: tensor<?x2x?x8xf32>, %new: tensor<?x2x?x8xf32>) -> tensor<?x2x?x8xf32> {
  %c = onnx.Concat %past, %new {axis = 2 : si64} : (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) -> tensor<?x2x?x8xf32>
  return %c : tensor<?x2x?x8xf32>
}

// -----

// Near miss: concatenating heads (axis 1) is not a cache update.
// CHECK-LABEL: func @concat_heads
// CHECK-NOT: llm.kv_append
// CHECK: onnx.Concat
func.func @concat_heads(%a: tensor<?x2x?x8xf32>, %b: tensor<?x2x?x8xf32>) -> tensor<?x4x?x8xf32> {
  %c = onnx.Concat %a, %b {axis = 1 : si64} : (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) -> tensor<?x4x?x8xf32>
  return %c : tensor<?x4x?x8xf32>
}

// -----

// Heads split [B,S,H*hd] -> [B,H,S,hd] and merged back.
// CHECK-LABEL: func @heads
// CHECK: %[[S:.*]] = llm.split_heads %arg0 {num_heads = 4 : i64} : tensor<?x?x32xf32> -> tensor<?x4x?x8xf32>
// CHECK: llm.merge_heads %[[S]] : tensor<?x4x?x8xf32> -> tensor<?x?x32xf32>
func.func @heads(%x: tensor<?x?x32xf32>) -> tensor<?x?x32xf32> {
  %s4 = onnx.Constant {value = dense<[0, 0, 4, 8]> : tensor<4xi64>} : () -> tensor<4xi64>
  %s3 = onnx.Constant {value = dense<[0, 0, 32]> : tensor<3xi64>} : () -> tensor<3xi64>
  %r = onnx.Reshape %x, %s4 : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %t = onnx.Transpose %r {perm = [0, 2, 1, 3]} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %b = onnx.Transpose %t {perm = [0, 2, 1, 3]} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %m = onnx.Reshape %b, %s3 : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  return %m : tensor<?x?x32xf32>
}

// -----

// Near miss: heads of 8 taken from a width of 32 with 3 heads do not tile it.
// CHECK-LABEL: func @bad_heads
// CHECK-NOT: llm.split_heads
// CHECK: onnx.Transpose
func.func @bad_heads(%x: tensor<?x?x32xf32>) -> tensor<?x3x?x?xf32> {
  %s4 = onnx.Constant {value = dense<[0, 0, 3, -1]> : tensor<4xi64>} : () -> tensor<4xi64>
  %r = onnx.Reshape %x, %s4 : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x3x?xf32>
  %t = onnx.Transpose %r {perm = [0, 2, 1, 3]} : (tensor<?x?x3x?xf32>) -> tensor<?x3x?x?xf32>
  return %t : tensor<?x3x?x?xf32>
}
