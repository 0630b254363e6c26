// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>/dev/null | FileCheck %s
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR
// (`not`: the near-miss case at the end is rejected by the pass.)

// keepdims: fill with the identity, reduce, then expand_shape.
// CHECK-DAG: #[[ID:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[KEPT:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func.func @reduce_max_keepdims
// CHECK-SAME: (%[[X:[^:]+]]: tensor<3x2x2xf32>
// CHECK: %[[NINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK: %[[FILL:.+]] = linalg.fill ins(%[[NINF]] : f32) outs(%{{.+}} : tensor<3x2xf32>)
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[ID]], #[[KEPT]]], iterator_types = ["parallel", "reduction", "parallel"]}
// CHECK-SAME: ins(%[[X]] : tensor<3x2x2xf32>) outs(%[[FILL]] : tensor<3x2xf32>)
// CHECK: arith.maximumf
// CHECK: tensor.expand_shape %[[R]] {{\[\[}}0], [1, 2]] output_shape [3, 1, 2] : tensor<3x2xf32> into tensor<3x1x2xf32>
func.func @reduce_max_keepdims(%x: tensor<3x2x2xf32>) -> tensor<3x1x2xf32> {
  %0 = onnx.ReduceMax %x {axes = [1], keepdims = 1 : si64} : (tensor<3x2x2xf32>) -> tensor<3x1x2xf32>
  return %0 : tensor<3x1x2xf32>
}

// -----

// Axes as a runtime input: inferred from the static shapes.
// CHECK-LABEL: func.func @reduce_sum_runtime_axes
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["reduction", "parallel", "reduction"]
// CHECK: arith.addi
// CHECK-NOT: tensor.expand_shape
// CHECK: return
func.func @reduce_sum_runtime_axes(%x: tensor<3x4x5xi32>, %axes: tensor<2xi64>) -> tensor<4xi32> {
  %0 = onnx.ReduceSum %x, %axes {keepdims = 0 : si64} : (tensor<3x4x5xi32>, tensor<2xi64>) -> tensor<4xi32>
  return %0 : tensor<4xi32>
}

// -----

// Unsigned min starts from the all-ones value and compares unsigned.
// CHECK-LABEL: func.func @reduce_min_unsigned
// CHECK: arith.constant -1 : i8
// CHECK: arith.minui
func.func @reduce_min_unsigned(%x: tensor<4xui8>) -> tensor<1xui8> {
  %0 = onnx.ReduceMin %x : (tensor<4xui8>) -> tensor<1xui8>
  return %0 : tensor<1xui8>
}

// -----

// LogSumExp subtracts the max before exponentiating.
// CHECK-LABEL: func.func @reduce_log_sum_exp
// CHECK: arith.maximumf
// CHECK: arith.subf
// CHECK: math.exp
// CHECK: math.log
func.func @reduce_log_sum_exp(%x: tensor<3x4xf32>) -> tensor<3xf32> {
  %0 = onnx.ReduceLogSumExp %x {axes = [-1], keepdims = 0 : si64} : (tensor<3x4xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// -----

// CHECK-LABEL: func.func @argmax_last
// CHECK: linalg.generic
// CHECK: arith.cmpf oge
// CHECK: linalg.index 1
// CHECK: tensor.expand_shape
// CHECK-SAME: into tensor<2x1xi64>
func.func @argmax_last(%x: tensor<2x3xf32>) -> tensor<2x1xi64> {
  %0 = onnx.ArgMax %x {axis = 1 : si64, select_last_index = 1 : si64} : (tensor<2x3xf32>) -> tensor<2x1xi64>
  return %0 : tensor<2x1xi64>
}

// -----

// Softmax: max, sum of exp(x - max), then divide.
// CHECK-LABEL: func.func @softmax
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: arith.addf
// CHECK: math.exp
// CHECK: arith.divf
func.func @softmax(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = onnx.Softmax %x {axis = -1 : si64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func.func @hardmax
// CHECK: arith.cmpf ogt
// CHECK: linalg.index 0
// CHECK: arith.cmpi eq
func.func @hardmax(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = onnx.Hardmax %x {axis = 0 : si64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// Runtime axes that the shapes leave ambiguous (dim 1 or 2?): both
// reductions are computed and the axes values pick one at run time.
// CHECK-LABEL: func.func @reduce_sum_ambiguous
// CHECK-SAME: %[[AX:[^:]+]]: tensor<1xi64>
// CHECK: %[[R1:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: %[[R2:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction", "parallel"]
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[R1]], %[[R2]] :
// CHECK: tensor.extract %[[AX]]
// CHECK: arith.shli
// CHECK: arith.select
func.func @reduce_sum_ambiguous(%x: tensor<3x2x2xf32>, %axes: tensor<1xi64>) -> tensor<3x2xf32> {
  %0 = onnx.ReduceSum %x, %axes {keepdims = 0 : si64} : (tensor<3x2x2xf32>, tensor<1xi64>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// -----

// Near miss: ReduceLogSum of integers is not lowered.
// ERR: failed to legalize operation 'onnx.ReduceLogSum'
func.func @reduce_log_sum_int(%x: tensor<3x4xi32>) -> tensor<3x1xi32> {
  %0 = onnx.ReduceLogSum %x {axes = [1]} : (tensor<3x4xi32>) -> tensor<3x1xi32>
  return %0 : tensor<3x1xi32>
}
