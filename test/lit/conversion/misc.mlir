// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>/dev/null | FileCheck %s
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR

// Per-axis QuantizeLinear: scale and zero point indexed by the axis dim;
// round half to even, add the zero point, saturate to [0, 255].
// CHECK-LABEL: func.func @quantize_axis
// CHECK-SAME: (%[[X:.+]]: tensor<1x3x2xf32> {{.*}}, %[[S:.+]]: tensor<3xf32> {{.*}}, %[[Z:.+]]: tensor<3xi8>
// CHECK: linalg.generic {indexing_maps = [#{{.+}}, #[[AX:.+]], #[[AX]], #{{.+}}], {{.*}} ins(%[[X]], %[[S]], %[[Z]] :
// CHECK: arith.divf
// CHECK: arith.uitofp %{{.+}} : i8 to f32
// CHECK: math.roundeven
// CHECK: arith.constant 2.550000e+02
// CHECK: arith.fptoui %{{.+}} : f32 to i8
func.func @quantize_axis(%x: tensor<1x3x2xf32>, %s: tensor<3xf32>, %z: tensor<3xui8>) -> tensor<1x3x2xui8> {
  %0 = onnx.QuantizeLinear %x, %s, %z : (tensor<1x3x2xf32>, tensor<3xf32>, tensor<3xui8>) -> tensor<1x3x2xui8>
  return %0 : tensor<1x3x2xui8>
}

// -----

// Signed int8 saturates to [-128, 127].
// CHECK-LABEL: func.func @quantize_i8
// CHECK: arith.sitofp %{{.+}} : i8 to f32
// CHECK: arith.constant -1.280000e+02
// CHECK: arith.constant 1.270000e+02
// CHECK: arith.fptosi %{{.+}} : f32 to i8
func.func @quantize_i8(%x: tensor<4xf32>, %s: tensor<f32>, %z: tensor<i8>) -> tensor<4xi8> {
  %0 = onnx.QuantizeLinear %x, %s, %z : (tensor<4xf32>, tensor<f32>, tensor<i8>) -> tensor<4xi8>
  return %0 : tensor<4xi8>
}

// -----

// CHECK-LABEL: func.func @dequantize
// CHECK: arith.sitofp %{{.+}} : i8 to f32
// CHECK: arith.sitofp %{{.+}} : i8 to f32
// CHECK: arith.subf
// CHECK: arith.mulf
func.func @dequantize(%x: tensor<4xi8>, %s: tensor<f32>, %z: tensor<i8>) -> tensor<4xf32> {
  %0 = onnx.DequantizeLinear %x, %s, %z : (tensor<4xi8>, tensor<f32>, tensor<i8>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// DynamicQuantizeLinear: one min/max reduction (both starting at 0), then
// scale, zero point and the quantized values.
// CHECK-LABEL: func.func @dynamic_quantize
// CHECK: %[[MM:.+]]:2 = linalg.generic {{.*}} iterator_types = ["reduction"]
// CHECK: arith.minimumf
// CHECK: arith.maximumf
// CHECK: %[[S:.+]] = linalg.generic {{.*}} ins(%[[MM]]#0, %[[MM]]#1 : tensor<f32>, tensor<f32>)
// CHECK: %[[ZF:.+]] = linalg.generic {{.*}} ins(%[[MM]]#0, %[[S]] : tensor<f32>, tensor<f32>)
// CHECK: %[[Z:.+]] = linalg.generic {{.*}} ins(%[[ZF]] : tensor<f32>) outs(%{{.+}} : tensor<i8>)
// CHECK: %[[Y:.+]] = linalg.generic {{.*}} ins(%{{.+}}, %[[S]], %[[ZF]] : tensor<6xf32>, tensor<f32>, tensor<f32>)
// CHECK: return %[[Y]], %[[S]], %[[Z]]
func.func @dynamic_quantize(%x: tensor<6xf32>) -> (tensor<6xui8>, tensor<f32>, tensor<ui8>) {
  %y, %s, %z = onnx.DynamicQuantizeLinear %x : (tensor<6xf32>) -> (tensor<6xui8>, tensor<f32>, tensor<ui8>)
  return %y, %s, %z : tensor<6xui8>, tensor<f32>, tensor<ui8>
}

// -----

// QLinearMatMul accumulates zero-point-corrected products in i32, then
// requantizes.
// CHECK-LABEL: func.func @qlinearmatmul
// CHECK: %[[ACC:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]{{.*}} outs(%{{.+}} : tensor<2x3xi32>)
// CHECK: arith.extui %{{.+}} : i8 to i32
// CHECK: arith.muli
// CHECK: linalg.generic {{.*}} ins(%[[ACC]], {{.*}}) outs(%{{.+}} : tensor<2x3xi8>)
// CHECK: math.roundeven
func.func @qlinearmatmul(%a: tensor<2x4xui8>, %as: tensor<1xf32>, %az: tensor<1xui8>, %b: tensor<4x3xui8>, %bs: tensor<1xf32>, %bz: tensor<1xui8>, %ys: tensor<1xf32>, %yz: tensor<1xui8>) -> tensor<2x3xui8> {
  %0 = onnx.QLinearMatMul %a, %as, %az, %b, %bs, %bz, %ys, %yz : (tensor<2x4xui8>, tensor<1xf32>, tensor<1xui8>, tensor<4x3xui8>, tensor<1xf32>, tensor<1xui8>, tensor<1xf32>, tensor<1xui8>) -> tensor<2x3xui8>
  return %0 : tensor<2x3xui8>
}

// -----

// Windows take their length from the static result type; a symmetric window
// divides by N - 1.
// CHECK-LABEL: func.func @hann_symmetric
// CHECK: linalg.generic {{.*}} outs(%{{.+}} : tensor<10xf32>)
// CHECK: linalg.index 0
// CHECK: arith.constant 9.000000e+00 : f64
// CHECK: math.cos
func.func @hann_symmetric(%n: tensor<i32>) -> tensor<10xf32> {
  %0 = onnx.HannWindow %n {periodic = 0 : si64} : (tensor<i32>) -> tensor<10xf32>
  return %0 : tensor<10xf32>
}

// -----

// CHECK-LABEL: func.func @blackman_periodic
// CHECK: arith.constant 8.000000e+00 : f64
// CHECK: math.cos
// CHECK: math.cos
// CHECK: arith.constant 8.000000e-02 : f64
func.func @blackman_periodic(%n: tensor<i64>) -> tensor<8xf32> {
  %0 = onnx.BlackmanWindow %n : (tensor<i64>) -> tensor<8xf32>
  return %0 : tensor<8xf32>
}

// -----

// Near miss: a window whose length is not static in the result type.
// CHECK-NOT: func.func @hann_dynamic
// ERR-NOT: error:
// ERR: error: failed to legalize operation 'onnx.HannWindow'
// ERR-NOT: error:
func.func @hann_dynamic(%n: tensor<i32>) -> tensor<?xf32> {
  %0 = onnx.HannWindow %n : (tensor<i32>) -> tensor<?xf32>
  return %0 : tensor<?xf32>
}
