// RUN: kiln-opt --split-input-file --canonicalize %s | FileCheck %s

// Shape arithmetic on static shapes folds to constants.
// CHECK-LABEL: func.func @shape_fold
// CHECK: %[[C:.+]] = onnx.Constant {value = dense<[6, 8]> : tensor<2xi64>}
// CHECK-NOT: onnx.Shape
// CHECK-NOT: onnx.Mul
// CHECK: return %[[C]]
func.func @shape_fold(%x: tensor<3x4xf32>) -> tensor<2xi64> {
  %s = onnx.Shape %x : (tensor<3x4xf32>) -> tensor<2xi64>
  %two = onnx.Constant {value = dense<2> : tensor<2xi64>} : () -> tensor<2xi64>
  %m = onnx.Mul %s, %two : (tensor<2xi64>, tensor<2xi64>) -> tensor<2xi64>
  return %m : tensor<2xi64>
}

// -----

// Near miss: a dynamic shape must not fold.
// CHECK-LABEL: func.func @shape_dynamic
// CHECK: onnx.Shape
func.func @shape_dynamic(%x: tensor<?x4xf32>) -> tensor<2xi64> {
  %s = onnx.Shape %x : (tensor<?x4xf32>) -> tensor<2xi64>
  return %s : tensor<2xi64>
}
