// RUN: kiln-opt %s | kiln-opt | FileCheck %s

// CHECK-LABEL: func.func @roundtrip
// CHECK: %[[N:.+]] = onnx.NoValue : () -> none
// CHECK: onnx.Clip %{{.+}}, %[[N]], %{{.+}} : (tensor<4xf32>, none, tensor<f32>) -> tensor<4xf32>
// CHECK: onnx.Transpose %{{.+}} {perm = [1, 0]} : (tensor<2x3xf32>) -> tensor<3x2xf32>
// CHECK: onnx.Constant {value = dense<[1, 2]> : tensor<2xi64>}
func.func @roundtrip(%x: tensor<4xf32>, %m: tensor<f32>, %t: tensor<2x3xf32>) -> (tensor<4xf32>, tensor<3x2xf32>, tensor<2xi64>) {
  %none = onnx.NoValue : () -> none
  %0 = onnx.Clip %x, %none, %m : (tensor<4xf32>, none, tensor<f32>) -> tensor<4xf32>
  %1 = onnx.Transpose %t {perm = [1, 0]} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  %2 = onnx.Constant {value = dense<[1, 2]> : tensor<2xi64>} : () -> tensor<2xi64>
  return %0, %1, %2 : tensor<4xf32>, tensor<3x2xf32>, tensor<2xi64>
}
