// RUN: kiln-opt %s --split-input-file --kiln-raise-llm | FileCheck %s

// RMSNorm written the way PyTorch exports LLaMA's: x * 1/sqrt(mean(x^2)+eps) * w.
// CHECK-LABEL: func @rms_norm
// CHECK: %[[N:.*]] = llm.rms_norm %arg0, %{{.*}} {epsilon = 9.99999974E-6 : f32}
// CHECK-NOT: onnx.ReduceMean
// CHECK: return %[[N]]
func.func @rms_norm(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %w = onnx.Constant {value = dense<2.0> : tensor<8xf32>} : () -> tensor<8xf32>
  %two = onnx.Constant {value = dense<2.0> : tensor<f32>} : () -> tensor<f32>
  %eps = onnx.Constant {value = dense<1.0e-5> : tensor<f32>} : () -> tensor<f32>
  %one = onnx.Constant {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
  %p = onnx.Pow %x, %two : (tensor<?x?x8xf32>, tensor<f32>) -> tensor<?x?x8xf32>
  %m = onnx.ReduceMean %p {axes = [-1]} : (tensor<?x?x8xf32>) -> tensor<?x?x1xf32>
  %a = onnx.Add %m, %eps : (tensor<?x?x1xf32>, tensor<f32>) -> tensor<?x?x1xf32>
  %s = onnx.Sqrt %a : (tensor<?x?x1xf32>) -> tensor<?x?x1xf32>
  %r = onnx.Div %one, %s : (tensor<f32>, tensor<?x?x1xf32>) -> tensor<?x?x1xf32>
  %n = onnx.Mul %x, %r : (tensor<?x?x8xf32>, tensor<?x?x1xf32>) -> tensor<?x?x8xf32>
  %y = onnx.Mul %w, %n : (tensor<8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// Near miss: the mean is over x^3, which is not an RMS.
// CHECK-LABEL: func @cube_is_not_rms
// CHECK-NOT: llm.rms_norm
// CHECK: onnx.ReduceMean
func.func @cube_is_not_rms(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %w = onnx.Constant {value = dense<2.0> : tensor<8xf32>} : () -> tensor<8xf32>
  %three = onnx.Constant {value = dense<3.0> : tensor<f32>} : () -> tensor<f32>
  %eps = onnx.Constant {value = dense<1.0e-5> : tensor<f32>} : () -> tensor<f32>
  %one = onnx.Constant {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
  %p = onnx.Pow %x, %three : (tensor<?x?x8xf32>, tensor<f32>) -> tensor<?x?x8xf32>
  %m = onnx.ReduceMean %p {axes = [-1]} : (tensor<?x?x8xf32>) -> tensor<?x?x1xf32>
  %a = onnx.Add %m, %eps : (tensor<?x?x1xf32>, tensor<f32>) -> tensor<?x?x1xf32>
  %s = onnx.Sqrt %a : (tensor<?x?x1xf32>) -> tensor<?x?x1xf32>
  %r = onnx.Div %one, %s : (tensor<f32>, tensor<?x?x1xf32>) -> tensor<?x?x1xf32>
  %n = onnx.Mul %x, %r : (tensor<?x?x8xf32>, tensor<?x?x1xf32>) -> tensor<?x?x8xf32>
  %y = onnx.Mul %w, %n : (tensor<8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// CHECK-LABEL: func @layer_norm
// CHECK: llm.layer_norm %arg0, %{{.*}}, %{{.*}} {epsilon = 9.99999974E-6 : f32}
func.func @layer_norm(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %w = onnx.Constant {value = dense<2.0> : tensor<8xf32>} : () -> tensor<8xf32>
  %b = onnx.Constant {value = dense<0.5> : tensor<8xf32>} : () -> tensor<8xf32>
  %y, %m, %i = onnx.LayerNormalization %x, %w, %b : (tensor<?x?x8xf32>, tensor<8xf32>, tensor<8xf32>) -> (tensor<?x?x8xf32>, none, none)
  return %y : tensor<?x?x8xf32>
}

// -----

// Near miss: normalizing over the middle axis is not a transformer norm.
// CHECK-LABEL: func @layer_norm_other_axis
// CHECK-NOT: llm.layer_norm
// CHECK: onnx.LayerNormalization
func.func @layer_norm_other_axis(%x: tensor<?x8x8xf32>) -> tensor<?x8x8xf32> {
  %w = onnx.Constant {value = dense<2.0> : tensor<8x8xf32>} : () -> tensor<8x8xf32>
  %b = onnx.Constant {value = dense<0.5> : tensor<8x8xf32>} : () -> tensor<8x8xf32>
  %y, %m, %i = onnx.LayerNormalization %x, %w, %b {axis = 1 : si64} : (tensor<?x8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> (tensor<?x8x8xf32>, none, none)
  return %y : tensor<?x8x8xf32>
}
