// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>/dev/null | FileCheck %s
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR

// Reshape takes its structure from the static result type: the runtime
// shape operand is not read.
// CHECK-LABEL: func.func @reshape_runtime_shape
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<2x3x4xf32>{{.*}}, %[[S:[a-z0-9]+]]: tensor<2xi64>
// CHECK: %[[F:.+]] = tensor.collapse_shape %[[X]] {{\[}}[0, 1, 2]] : tensor<2x3x4xf32> into tensor<24xf32>
// CHECK: %[[R:.+]] = tensor.expand_shape %[[F]] {{\[}}[0, 1]] output_shape [6, 4] : tensor<24xf32> into tensor<6x4xf32>
// CHECK-NOT: tensor.extract %[[S]]
// CHECK: return %[[R]]
func.func @reshape_runtime_shape(%x: tensor<2x3x4xf32>, %s: tensor<2xi64>) -> tensor<6x4xf32> {
  %0 = onnx.Reshape %x, %s : (tensor<2x3x4xf32>, tensor<2xi64>) -> tensor<6x4xf32>
  return %0 : tensor<6x4xf32>
}

// -----

// Unsigned element types become signless.
// CHECK-LABEL: func.func @unsqueeze_unsigned
// CHECK: tensor.expand_shape {{.*}} : tensor<3xi8> into tensor<1x3x1xi8>
func.func @unsqueeze_unsigned(%x: tensor<3xui8>, %axes: tensor<2xi64>) -> tensor<1x3x1xui8> {
  %0 = onnx.Unsqueeze %x, %axes : (tensor<3xui8>, tensor<2xi64>) -> tensor<1x3x1xui8>
  return %0 : tensor<1x3x1xui8>
}

// -----

// CHECK-LABEL: func.func @transpose_default
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<2x3x4xf32>
// CHECK: %[[E:.+]] = tensor.empty() : tensor<4x3x2xf32>
// CHECK: %[[T:.+]] = linalg.transpose ins(%[[X]] : tensor<2x3x4xf32>) outs(%[[E]] : tensor<4x3x2xf32>) permutation = [2, 1, 0]
// CHECK: return %[[T]]
func.func @transpose_default(%x: tensor<2x3x4xf32>) -> tensor<4x3x2xf32> {
  %0 = onnx.Transpose %x : (tensor<2x3x4xf32>) -> tensor<4x3x2xf32>
  return %0 : tensor<4x3x2xf32>
}

// -----

// CHECK-LABEL: func.func @concat_axis1
// CHECK-SAME: (%[[A:[a-z0-9]+]]: tensor<2x3xf32>{{.*}}, %[[B:[a-z0-9]+]]: tensor<2x2xf32>
// CHECK: %[[E:.+]] = tensor.empty() : tensor<2x5xf32>
// CHECK: %[[I0:.+]] = tensor.insert_slice %[[A]] into %[[E]][0, 0] [2, 3] [1, 1]
// CHECK: %[[I1:.+]] = tensor.insert_slice %[[B]] into %[[I0]][0, 3] [2, 2] [1, 1]
// CHECK: return %[[I1]]
func.func @concat_axis1(%a: tensor<2x3xf32>, %b: tensor<2x2xf32>) -> tensor<2x5xf32> {
  %0 = onnx.Concat %a, %b {axis = -1 : si64} : (tensor<2x3xf32>, tensor<2x2xf32>) -> tensor<2x5xf32>
  return %0 : tensor<2x5xf32>
}

// -----

// Split sizes come from the static result types.
// CHECK-LABEL: func.func @split_variable
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<6xf32>{{.*}}, %[[S:[a-z0-9]+]]: tensor<2xi64>
// CHECK: %[[A:.+]] = tensor.extract_slice %[[X]][0] [2] [1] : tensor<6xf32> to tensor<2xf32>
// CHECK: %[[B:.+]] = tensor.extract_slice %[[X]][2] [4] [1] : tensor<6xf32> to tensor<4xf32>
// CHECK: return %[[A]], %[[B]]
func.func @split_variable(%x: tensor<6xf32>, %s: tensor<2xi64>) -> (tensor<2xf32>, tensor<4xf32>) {
  %0:2 = onnx.Split %x, %s : (tensor<6xf32>, tensor<2xi64>) -> (tensor<2xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<2xf32>, tensor<4xf32>
}

// -----

// Slice with runtime starts/axes/steps reads them as scalars and gathers.
// CHECK-LABEL: func.func @slice_runtime
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<20x10xf32>{{.*}}, %[[ST:[a-z0-9]+]]: tensor<1xi64>{{.*}}, %[[EN:[a-z0-9]+]]: tensor<1xi64>{{.*}}, %[[AX:[a-z0-9]+]]: tensor<1xi64>{{.*}}, %[[SP:[a-z0-9]+]]: tensor<1xi64>
// CHECK-DAG: tensor.extract %[[ST]]
// CHECK-DAG: tensor.extract %[[AX]]
// CHECK-DAG: tensor.extract %[[SP]]
// CHECK: linalg.generic
// CHECK: linalg.index
// CHECK: tensor.extract %[[X]]
func.func @slice_runtime(%x: tensor<20x10xf32>, %s: tensor<1xi64>, %e: tensor<1xi64>, %a: tensor<1xi64>, %p: tensor<1xi64>) -> tensor<20x3xf32> {
  %0 = onnx.Slice %x, %s, %e, %a, %p : (tensor<20x10xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<20x3xf32>
  return %0 : tensor<20x3xf32>
}

// -----

// CHECK-LABEL: func.func @pad_reflect
// CHECK: linalg.generic
// CHECK: arith.select
// CHECK: tensor.extract
func.func @pad_reflect(%x: tensor<3x4xf32>, %p: tensor<4xi64>, %n: none) -> tensor<3x8xf32> {
  %0 = onnx.Pad %x, %p, %n {mode = "reflect"} : (tensor<3x4xf32>, tensor<4xi64>, none) -> tensor<3x8xf32>
  return %0 : tensor<3x8xf32>
}

// -----

// Near miss: wrap padding (opset 19) is not lowered; the pass reports it.
// ERR-NOT: error:
// ERR: error: failed to legalize operation 'onnx.Pad'
// ERR-NOT: error:
// CHECK-NOT: func.func @pad_wrap_unsupported
func.func @pad_wrap_unsupported(%x: tensor<3x4xf32>, %p: tensor<4xi64>, %n: none) -> tensor<3x8xf32> {
  %0 = onnx.Pad %x, %p, %n {mode = "wrap"} : (tensor<3x4xf32>, tensor<4xi64>, none) -> tensor<3x8xf32>
  return %0 : tensor<3x8xf32>
}

// -----

// CHECK-LABEL: func.func @shape_start
// CHECK: %[[C:.+]] = arith.constant dense<[3, 4]> : tensor<2xi64>
// CHECK: return %[[C]]
func.func @shape_start(%x: tensor<2x3x4xf32>) -> tensor<2xi64> {
  %0 = onnx.Shape %x {start = 1 : si64} : (tensor<2x3x4xf32>) -> tensor<2xi64>
  return %0 : tensor<2xi64>
}

// -----

// CHECK-LABEL: func.func @dropout_mask
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<3x4xf32>
// CHECK: %[[T:.+]] = arith.constant true
// CHECK: %[[M:.+]] = linalg.fill ins(%[[T]] : i1) outs(%{{.+}} : tensor<3x4xi1>)
// CHECK: return %[[X]], %[[M]]
func.func @dropout_mask(%x: tensor<3x4xf32>, %n: none) -> (tensor<3x4xf32>, tensor<3x4xi1>) {
  %0:2 = onnx.Dropout %x, %n, %n : (tensor<3x4xf32>, none, none) -> (tensor<3x4xf32>, tensor<3x4xi1>)
  return %0#0, %0#1 : tensor<3x4xf32>, tensor<3x4xi1>
}

// -----

// CHECK-LABEL: func.func @cumsum_reverse
// CHECK: linalg.fill
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: arith.cmpi sge
// CHECK: arith.addf
func.func @cumsum_reverse(%x: tensor<2x3xf32>, %axis: tensor<i64>) -> tensor<2x3xf32> {
  %0 = onnx.CumSum %x, %axis {reverse = 1 : si64} : (tensor<2x3xf32>, tensor<i64>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func.func @trilu_lower
// CHECK: linalg.generic
// CHECK: arith.cmpi sle
// CHECK: arith.select
func.func @trilu_lower(%x: tensor<3x4xi64>, %k: tensor<i64>) -> tensor<3x4xi64> {
  %0 = onnx.Trilu %x, %k {upper = 0 : si64} : (tensor<3x4xi64>, tensor<i64>) -> tensor<3x4xi64>
  return %0 : tensor<3x4xi64>
}
