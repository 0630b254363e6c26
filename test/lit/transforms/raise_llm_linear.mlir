// RUN: kiln-opt %s --split-input-file --kiln-raise-llm | FileCheck %s

// x @ W + b, then the residual add, fold into one llm.matmul.
// CHECK-LABEL: func @linear_bias_residual
// CHECK: %[[M:.*]] = llm.matmul %arg0, %{{.*}} bias %{{.*}} residual %arg1
// CHECK-NOT: onnx.Add
// CHECK: return %[[M]]
func.func @linear_bias_residual(%x: tensor<?x?x8xf32>, %r: tensor<?x?x4xf32>) -> tensor<?x?x4xf32> {
  %w = onnx.Constant {value = dense<0.5> : tensor<8x4xf32>} : () -> tensor<8x4xf32>
  %b = onnx.Constant {value = dense<0.25> : tensor<4xf32>} : () -> tensor<4xf32>
  %m = onnx.MatMul %x, %w : (tensor<?x?x8xf32>, tensor<8x4xf32>) -> tensor<?x?x4xf32>
  %a = onnx.Add %b, %m : (tensor<4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x4xf32>
  %y = onnx.Add %r, %a : (tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x4xf32>
  return %y : tensor<?x?x4xf32>
}

// -----

// Near miss: a weight computed at run time is not a linear layer.
// CHECK-LABEL: func @activation_times_activation
// CHECK-NOT: llm.matmul
// CHECK: onnx.MatMul
func.func @activation_times_activation(%x: tensor<?x?x8xf32>, %w: tensor<8x4xf32>) -> tensor<?x?x4xf32> {
  %m = onnx.MatMul %x, %w : (tensor<?x?x8xf32>, tensor<8x4xf32>) -> tensor<?x?x4xf32>
  return %m : tensor<?x?x4xf32>
}

// -----

// SwiGLU: down(silu(x @ gate) * (x @ up)) + x.
// CHECK-LABEL: func @gated_mlp
// CHECK: %[[G:.*]] = llm.gated_mlp %arg0, %{{.*}}, %{{.*}}, %{{.*}} residual %arg0 :
// CHECK: return %[[G]]
func.func @gated_mlp(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %wg = onnx.Constant {value = dense<0.5> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
  %wu = onnx.Constant {value = dense<0.25> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
  %wd = onnx.Constant {value = dense<0.125> : tensor<16x8xf32>} : () -> tensor<16x8xf32>
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

// Near miss: the sigmoid gates a different value than it multiplies (not SiLU).
// CHECK-LABEL: func @not_silu
// CHECK-NOT: llm.gated_mlp
// CHECK: onnx.Sigmoid
func.func @not_silu(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %wg = onnx.Constant {value = dense<0.5> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
  %wu = onnx.Constant {value = dense<0.25> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
  %wd = onnx.Constant {value = dense<0.125> : tensor<16x8xf32>} : () -> tensor<16x8xf32>
  %g = onnx.MatMul %x, %wg : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  %u = onnx.MatMul %x, %wu : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  %s = onnx.Sigmoid %u : (tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %silu = onnx.Mul %g, %s : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %h = onnx.Mul %silu, %u : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %d = onnx.MatMul %h, %wd : (tensor<?x?x16xf32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  return %d : tensor<?x?x8xf32>
}

// -----

// GPT-2's MLP: proj(gelu_tanh(fc(x) + b1)) + b2 + x.
// CHECK-LABEL: func @gelu_mlp
// CHECK: %[[G:.*]] = llm.gelu_mlp %arg0, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} residual %arg0 :
// CHECK-NOT: onnx.Tanh
// CHECK: return %[[G]]
func.func @gelu_mlp(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %w1 = onnx.Constant {value = dense<0.5> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
  %b1 = onnx.Constant {value = dense<0.1> : tensor<16xf32>} : () -> tensor<16xf32>
  %w2 = onnx.Constant {value = dense<0.25> : tensor<16x8xf32>} : () -> tensor<16x8xf32>
  %b2 = onnx.Constant {value = dense<0.2> : tensor<8xf32>} : () -> tensor<8xf32>
  %half = onnx.Constant {value = dense<0.5> : tensor<f32>} : () -> tensor<f32>
  %one = onnx.Constant {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
  %c = onnx.Constant {value = dense<0.797884583> : tensor<f32>} : () -> tensor<f32>
  %k = onnx.Constant {value = dense<0.044715> : tensor<f32>} : () -> tensor<f32>
  %m = onnx.MatMul %x, %w1 : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  %h = onnx.Add %b1, %m : (tensor<16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %sq = onnx.Mul %h, %h : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %cube = onnx.Mul %h, %sq : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %kc = onnx.Mul %k, %cube : (tensor<f32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %in = onnx.Add %h, %kc : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %sc = onnx.Mul %c, %in : (tensor<f32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %t = onnx.Tanh %sc : (tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %op = onnx.Add %one, %t : (tensor<f32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %xm = onnx.Mul %h, %op : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %g = onnx.Mul %half, %xm : (tensor<f32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %p = onnx.MatMul %g, %w2 : (tensor<?x?x16xf32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  %pb = onnx.Add %b2, %p : (tensor<8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %y = onnx.Add %x, %pb : (tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// Near miss: 0.05 instead of GELU's 0.044715 — some other function; the
// MLP stays two matmuls with the tanh in between.
// CHECK-LABEL: func @not_gelu
// CHECK-NOT: llm.gelu_mlp
// CHECK: onnx.Tanh
func.func @not_gelu(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %w1 = onnx.Constant {value = dense<0.5> : tensor<8x16xf32>} : () -> tensor<8x16xf32>
  %b1 = onnx.Constant {value = dense<0.1> : tensor<16xf32>} : () -> tensor<16xf32>
  %w2 = onnx.Constant {value = dense<0.25> : tensor<16x8xf32>} : () -> tensor<16x8xf32>
  %b2 = onnx.Constant {value = dense<0.2> : tensor<8xf32>} : () -> tensor<8xf32>
  %half = onnx.Constant {value = dense<0.5> : tensor<f32>} : () -> tensor<f32>
  %one = onnx.Constant {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
  %c = onnx.Constant {value = dense<0.797884583> : tensor<f32>} : () -> tensor<f32>
  %k = onnx.Constant {value = dense<0.05> : tensor<f32>} : () -> tensor<f32>
  %m = onnx.MatMul %x, %w1 : (tensor<?x?x8xf32>, tensor<8x16xf32>) -> tensor<?x?x16xf32>
  %h = onnx.Add %b1, %m : (tensor<16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %sq = onnx.Mul %h, %h : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %cube = onnx.Mul %h, %sq : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %kc = onnx.Mul %k, %cube : (tensor<f32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %in = onnx.Add %h, %kc : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %sc = onnx.Mul %c, %in : (tensor<f32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %t = onnx.Tanh %sc : (tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %op = onnx.Add %one, %t : (tensor<f32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %xm = onnx.Mul %h, %op : (tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %g = onnx.Mul %half, %xm : (tensor<f32>, tensor<?x?x16xf32>) -> tensor<?x?x16xf32>
  %p = onnx.MatMul %g, %w2 : (tensor<?x?x16xf32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  %pb = onnx.Add %b2, %p : (tensor<8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %pb : tensor<?x?x8xf32>
}

// -----

// CHECK-LABEL: func @embedding
// CHECK: llm.embedding %{{.*}}[%arg0] positions %{{.*}}[%arg1]
func.func @embedding(%ids: tensor<?x?xi64>, %pos: tensor<?x?xi64>) -> tensor<?x?x8xf32> {
  %t = onnx.Constant {value = dense<0.5> : tensor<32x8xf32>} : () -> tensor<32x8xf32>
  %p = onnx.Constant {value = dense<0.25> : tensor<16x8xf32>} : () -> tensor<16x8xf32>
  %e = onnx.Gather %t, %ids : (tensor<32x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %q = onnx.Gather %p, %pos : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %y = onnx.Add %e, %q : (tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// Near miss: gathering columns (axis 1) is not a table lookup.
// CHECK-LABEL: func @gather_columns
// CHECK-NOT: llm.embedding
// CHECK: onnx.Gather
func.func @gather_columns(%ids: tensor<?xi64>) -> tensor<32x?xf32> {
  %t = onnx.Constant {value = dense<0.5> : tensor<32x8xf32>} : () -> tensor<32x8xf32>
  %e = onnx.Gather %t, %ids {axis = 1 : si64} : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<32x?xf32>
  return %e : tensor<32x?xf32>
}
