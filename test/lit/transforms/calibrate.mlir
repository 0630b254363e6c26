// RUN: kiln-opt %s --split-input-file --kiln-llm-calibrate | FileCheck %s

// The norm output read by q and k is one result; the gated MLP is split so
// that its down weight's input (silu(x gate) * (x up)) is a value, and
// gate/up share the input q.
// CHECK-LABEL: func @block
// CHECK-SAME: -> (tensor<?x?x8xf32>, tensor<?x?x8xf32> {onnx.name = "calibration.0"}, tensor<?x?x8xf32> {onnx.name = "calibration.1"}, tensor<?x?x16xf32> {onnx.name = "calibration.2"})
// CHECK: %[[N:.+]] = llm.rms_norm
// CHECK: %[[Q:.+]] = llm.matmul %[[N]], %{{.+}} : tensor<?x?x8xf32>, tensor<8x8xf32>
// CHECK: llm.matmul %[[N]], %{{.+}} : tensor<?x?x8xf32>, tensor<8x4xf32>
// CHECK: %[[G:.+]] = llm.matmul %[[Q]], %{{.+}} {activation = "silu"} : tensor<?x?x8xf32>, tensor<8x16xf32>
// CHECK: %[[U:.+]] = llm.matmul %[[Q]], %{{.+}} : tensor<?x?x8xf32>, tensor<8x16xf32>
// CHECK: %[[P:.+]] = linalg.generic {{.*}} ins(%[[G]], %[[U]] : {{.*}})
// CHECK: arith.mulf
// CHECK: %[[D:.+]] = llm.matmul %[[P]], %{{.+}} residual %arg0 : tensor<?x?x16xf32>, tensor<16x8xf32>
// CHECK-NOT: llm.gated_mlp
// CHECK: return %[[D]], %[[N]], %[[Q]], %[[P]]
func.func @block(%x: tensor<?x?x8xf32>, %g: tensor<8xf32>) -> tensor<?x?x8xf32> {
  %wq = arith.constant dense<0.5> : tensor<8x8xf32>
  %wk = arith.constant dense<0.25> : tensor<8x4xf32>
  %wg = arith.constant dense<1.0> : tensor<8x16xf32>
  %wu = arith.constant dense<2.0> : tensor<8x16xf32>
  %wd = arith.constant dense<3.0> : tensor<16x8xf32>
  %n = llm.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x?x8xf32>, tensor<8xf32>
  %q = llm.matmul %n, %wq : tensor<?x?x8xf32>, tensor<8x8xf32> -> tensor<?x?x8xf32>
  %k = llm.matmul %n, %wk : tensor<?x?x8xf32>, tensor<8x4xf32> -> tensor<?x?x4xf32>
  %m = llm.gated_mlp %q, %wg, %wu, %wd residual %x : tensor<?x?x8xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<16x8xf32>, tensor<?x?x8xf32>
  return %m : tensor<?x?x8xf32>
}

// -----

// A GELU MLP becomes fc (bias, gelu) and proj (bias, residual) matmuls; the
// fc input and the hidden activation are returned.
// CHECK-LABEL: func @gelu
// CHECK-SAME: {onnx.name = "calibration.0"}, tensor<?x?x32xf32> {onnx.name = "calibration.1"})
// CHECK: %[[H:.+]] = llm.matmul %arg0, %{{.+}} bias %{{.+}} {activation = "gelu_tanh"}
// CHECK: %[[Y:.+]] = llm.matmul %[[H]], %{{.+}} bias %{{.+}} residual %arg0
// CHECK: return %[[Y]], %arg0, %[[H]]
func.func @gelu(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %fc = arith.constant dense<0.5> : tensor<8x32xf32>
  %fcb = arith.constant dense<0.0> : tensor<32xf32>
  %pr = arith.constant dense<0.25> : tensor<32x8xf32>
  %prb = arith.constant dense<0.0> : tensor<8xf32>
  %y = llm.gelu_mlp %x, %fc, %fcb, %pr, %prb residual %x {approximate = "tanh"} : tensor<?x?x8xf32>, tensor<8x32xf32>, tensor<32xf32>, tensor<32x8xf32>, tensor<8xf32>, tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// Near misses, left alone: a weight that is a function argument (not a
// constant), an f16 constant, and a gated MLP whose down weight is not a
// constant (it stays fused; gate and up still expose their input).
// CHECK-LABEL: func @near_miss
// CHECK-SAME: -> (tensor<?x8xf32>, tensor<?x8xf32> {onnx.name = "calibration.0"})
// CHECK: llm.matmul %arg0, %arg1
// CHECK: llm.matmul %{{.+}}, %{{.+}} : tensor<?x8xf32>, tensor<8x8xf16>
// CHECK: %[[M:.+]] = llm.gated_mlp %{{.+}}, %{{.+}}, %{{.+}}, %arg2
// CHECK-NOT: linalg.generic
// CHECK: return %[[M]], %{{.+}} : tensor<?x8xf32>, tensor<?x8xf32>
func.func @near_miss(%x: tensor<?x8xf32>, %w: tensor<8x8xf32>, %d: tensor<16x8xf32>) -> tensor<?x8xf32> {
  %h = arith.constant dense<0.5> : tensor<8x8xf16>
  %wg = arith.constant dense<1.0> : tensor<8x16xf32>
  %wu = arith.constant dense<2.0> : tensor<8x16xf32>
  %a = llm.matmul %x, %w : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  %b = llm.matmul %a, %h : tensor<?x8xf32>, tensor<8x8xf16> -> tensor<?x8xf32>
  %m = llm.gated_mlp %b, %wg, %wu, %d : tensor<?x8xf32>, tensor<8x16xf32>, tensor<8x16xf32>, tensor<16x8xf32>
  return %m : tensor<?x8xf32>
}

// -----

// A function without llm ops keeps its signature, and a weight another
// function already exposed (a draft sharing the target's layers) is not
// exposed again.
// CHECK-LABEL: func @plain
// CHECK-SAME: -> tensor<4xf32>
// CHECK-LABEL: func @target
// CHECK-SAME: {onnx.name = "calibration.0"})
// CHECK-LABEL: func @draft
// CHECK-SAME: -> tensor<?x8xf32> {
// CHECK-NOT: calibration
func.func @plain(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @target(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %w = arith.constant dense<0.5> : tensor<8x8xf32>
  %y = llm.matmul %x, %w : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
func.func @draft(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %w = arith.constant dense<0.5> : tensor<8x8xf32>
  %y = llm.matmul %x, %w : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
