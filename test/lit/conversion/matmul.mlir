// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>/dev/null | FileCheck %s
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR
// (`not`: the near-miss cases at the end are rejected by the pass.)

// CHECK-LABEL: func.func @matmul_2d
// CHECK-SAME: (%[[A:[^:]+]]: tensor<2x3xf32>{{.*}}, %[[B:[^:]+]]: tensor<3x4xf32>
// CHECK: %[[Z:.+]] = linalg.fill
// CHECK: linalg.matmul ins(%[[A]], %[[B]] : tensor<2x3xf32>, tensor<3x4xf32>) outs(%[[Z]] : tensor<2x4xf32>)
func.func @matmul_2d(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %0 = onnx.MatMul %a, %b : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

// CHECK-LABEL: func.func @matmul_batch
// CHECK: linalg.batch_matmul
func.func @matmul_batch(%a: tensor<5x2x3xf32>, %b: tensor<5x3x4xf32>) -> tensor<5x2x4xf32> {
  %0 = onnx.MatMul %a, %b : (tensor<5x2x3xf32>, tensor<5x3x4xf32>) -> tensor<5x2x4xf32>
  return %0 : tensor<5x2x4xf32>
}

// -----

// Broadcast batch dims and a 1-D right operand: one generic contraction.
// CHECK-DAG: #[[MA:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[MB:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-DAG: #[[MO:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @matmul_broadcast_vec
// CHECK: linalg.generic
// CHECK-SAME: indexing_maps = [#[[MA]], #[[MB]], #[[MO]]]
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: arith.muli
// CHECK: arith.addi
func.func @matmul_broadcast_vec(%a: tensor<4x2x3xi32>, %b: tensor<3xi32>) -> tensor<4x2xi32> {
  %0 = onnx.MatMul %a, %b : (tensor<4x2x3xi32>, tensor<3xi32>) -> tensor<4x2xi32>
  return %0 : tensor<4x2xi32>
}

// -----

// CHECK-LABEL: func.func @matmul_integer
// CHECK: linalg.generic
// CHECK: arith.extui
// CHECK: arith.extsi
// CHECK: arith.subi
// CHECK: arith.muli
// CHECK: -> tensor<4x2xi32>
func.func @matmul_integer(%a: tensor<4x3xui8>, %b: tensor<3x2xi8>, %az: tensor<ui8>, %bz: tensor<i8>) -> tensor<4x2xi32> {
  %0 = onnx.MatMulInteger %a, %b, %az, %bz : (tensor<4x3xui8>, tensor<3x2xi8>, tensor<ui8>, tensor<i8>) -> tensor<4x2xi32>
  return %0 : tensor<4x2xi32>
}

// -----

// transA: generic with (k, m) map for A, then alpha/beta epilogue with C.
// CHECK-DAG: #[[TA:.+]] = affine_map<(d0, d1, d2) -> (d2, d0)>
// CHECK-LABEL: func.func @gemm_trans
// CHECK-SAME: %[[C:[^:]+]]: tensor<4xf32>
// CHECK: %[[AB:.+]] = linalg.generic {indexing_maps = [#[[TA]]
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[AB]], %[[C]] : tensor<2x4xf32>, tensor<4xf32>)
// CHECK: arith.constant 2.5
// CHECK: arith.mulf
func.func @gemm_trans(%a: tensor<3x2xf32>, %b: tensor<3x4xf32>, %c: tensor<4xf32>) -> tensor<2x4xf32> {
  %0 = onnx.Gemm %a, %b, %c {transA = 1 : si64, alpha = 2.5 : f32} : (tensor<3x2xf32>, tensor<3x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

// Diagonal with an ellipsis: the repeated label maps to one loop twice.
// CHECK-DAG: #[[IN:.+]] = affine_map<(d0, d1) -> (d0, d1, d1)>
// CHECK-DAG: #[[OUT:.+]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @einsum_diag
// CHECK: linalg.generic {indexing_maps = [#[[IN]], #[[OUT]]], iterator_types = ["parallel", "parallel"]}
func.func @einsum_diag(%x: tensor<3x5x5xf64>) -> tensor<3x5xf64> {
  %0 = onnx.Einsum %x {equation = "...ii ->...i"} : (tensor<3x5x5xf64>) -> tensor<3x5xf64>
  return %0 : tensor<3x5xf64>
}

// -----

// Implicit output: the shared label is summed.
// CHECK-LABEL: func.func @einsum_inner
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["reduction"]
// CHECK: -> tensor<f32>
func.func @einsum_inner(%x: tensor<5xf32>, %y: tensor<5xf32>) -> tensor<f32> {
  %0 = onnx.Einsum %x, %y {equation = "i,i"} : (tensor<5xf32>, tensor<5xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

// CHECK-LABEL: func.func @det_batch
// CHECK: linalg.generic
// CHECK: tensor.extract
// CHECK: -> tensor<3xf32>
func.func @det_batch(%x: tensor<3x2x2xf32>) -> tensor<3xf32> {
  %0 = onnx.Det %x : (tensor<3x2x2xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// -----

// Near miss: a dynamic batch dim that may broadcast against a static one.
// ERR: failed to legalize operation 'onnx.MatMul'
func.func @matmul_dyn_broadcast(%a: tensor<?x2x3xf32>, %b: tensor<5x3x4xf32>) -> tensor<5x2x4xf32> {
  %0 = onnx.MatMul %a, %b : (tensor<?x2x3xf32>, tensor<5x3x4xf32>) -> tensor<5x2x4xf32>
  return %0 : tensor<5x2x4xf32>
}

// -----

// Near miss: Det of a matrix larger than 8x8 is not unrolled.
// ERR: failed to legalize operation 'onnx.Det'
func.func @det_too_big(%x: tensor<9x9xf32>) -> tensor<f32> {
  %0 = onnx.Det %x : (tensor<9x9xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}
