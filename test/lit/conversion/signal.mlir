// The last case must fail to lower, so kiln-opt exits non-zero overall; the
// other cases' output is still printed and checked.
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>/dev/null | FileCheck %s
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR

// Real-input DFT along axis 1: one generic with a reduction over the input
// samples, accumulated in f64, then truncated to f32.
// CHECK-LABEL: func.func @dft_real
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<2x8x1xf32>
// CHECK: %[[ACC:.+]] = linalg.fill ins(%{{.+}} : f64) outs(%{{.+}} : tensor<2x8x2xf64>)
// CHECK: %[[G:.+]] = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME: ins(%[[X]] : tensor<2x8x1xf32>) outs(%[[ACC]] : tensor<2x8x2xf64>)
// CHECK: math.cos
// CHECK: math.sin
// CHECK: linalg.generic {{.*}} ins(%[[G]] : tensor<2x8x2xf64>)
// CHECK: arith.truncf
func.func @dft_real(%x: tensor<2x8x1xf32>, %n: none) -> tensor<2x8x2xf32> {
  %0 = onnx.DFT %x, %n : (tensor<2x8x1xf32>, none) -> tensor<2x8x2xf32>
  return %0 : tensor<2x8x2xf32>
}

// -----

// Inverse, complex input, runtime dft_length: the length is read with
// tensor.extract and the result scaled by 1/L.
// CHECK-LABEL: func.func @dft_inverse_runtime_length
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<3x6x2xf32>{{.*}}, %[[L:[a-z0-9]+]]: tensor<i64>
// CHECK: %[[LV:.+]] = tensor.extract %[[L]][] : tensor<i64>
// CHECK: linalg.generic {{.*}} ins(%[[X]], %[[X]] : tensor<3x6x2xf32>, tensor<3x6x2xf32>)
// CHECK: arith.divf
// CHECK: linalg.generic
// CHECK: arith.mulf
func.func @dft_inverse_runtime_length(%x: tensor<3x6x2xf32>, %l: tensor<i64>) -> tensor<3x6x2xf32> {
  %0 = onnx.DFT %x, %l {inverse = 1 : si64} : (tensor<3x6x2xf32>, tensor<i64>) -> tensor<3x6x2xf32>
  return %0 : tensor<3x6x2xf32>
}

// -----

// STFT with a window: the frames are read from the signal with
// tensor.extract at frame * step + n.
// CHECK-LABEL: func.func @stft_window
// CHECK-SAME: (%[[S:[a-z0-9]+]]: tensor<1x64x1xf32>{{.*}}, %[[STEP:[a-z0-9]+]]: tensor<i64>{{.*}}, %[[W:[a-z0-9]+]]: tensor<16xf32>
// CHECK: tensor.extract %[[STEP]][]
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]
// CHECK: tensor.extract %[[S]]
// CHECK: tensor.extract %[[W]]
// CHECK: -> tensor<1x7x9x2xf64>
func.func @stft_window(%s: tensor<1x64x1xf32>, %step: tensor<i64>, %w: tensor<16xf32>, %n: none) -> tensor<1x7x9x2xf32> {
  %0 = onnx.STFT %s, %step, %w, %n : (tensor<1x64x1xf32>, tensor<i64>, tensor<16xf32>, none) -> tensor<1x7x9x2xf32>
  return %0 : tensor<1x7x9x2xf32>
}

// -----

// Bilinear GridSample: one generic over the output reading both grid
// components through constant-index maps and the input with tensor.extract.
// CHECK-DAG: #[[GX:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d2, d3, 0)>
// CHECK-DAG: #[[GY:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d2, d3, 1)>
// CHECK-LABEL: func.func @gridsample_bilinear
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x2x4x5xf32>{{.*}}, %[[G:[a-z0-9]+]]: tensor<1x3x6x2xf32>
// CHECK: linalg.generic {indexing_maps = [#[[GX]], #[[GY]], #{{.+}}]
// CHECK-SAME: ins(%[[G]], %[[G]] :
// CHECK: math.floor
// CHECK-COUNT-4: tensor.extract %[[X]]
// CHECK: -> tensor<1x2x3x6xf32>
func.func @gridsample_bilinear(%x: tensor<1x2x4x5xf32>, %g: tensor<1x3x6x2xf32>) -> tensor<1x2x3x6xf32> {
  %0 = onnx.GridSample %x, %g : (tensor<1x2x4x5xf32>, tensor<1x3x6x2xf32>) -> tensor<1x2x3x6xf32>
  return %0 : tensor<1x2x3x6xf32>
}

// -----

// RoiAlign (avg, adaptive sampling grid): the per-bin sampling loops are an
// scf.for nest inside the generic body.
// CHECK-LABEL: func.func @roialign_adaptive
// CHECK: linalg.generic
// CHECK: math.ceil
// CHECK: scf.for
// CHECK: scf.for
// CHECK: tensor.extract
// CHECK: -> tensor<3x2x2x2xf32>
func.func @roialign_adaptive(%x: tensor<1x2x8x8xf32>, %r: tensor<3x4xf32>, %b: tensor<3xi64>) -> tensor<3x2x2x2xf32> {
  %0 = onnx.RoiAlign %x, %r, %b {output_height = 2 : si64, output_width = 2 : si64} : (tensor<1x2x8x8xf32>, tensor<3x4xf32>, tensor<3xi64>) -> tensor<3x2x2x2xf32>
  return %0 : tensor<3x2x2x2xf32>
}

// -----

// MelWeightMatrix: sizes from the result type, scalars read with
// tensor.extract, the mel edges computed in the kernel.
// CHECK-LABEL: func.func @melweightmatrix
// CHECK-SAME: (%[[N:[a-z0-9]+]]: tensor<i32>{{.*}}, %[[D:[a-z0-9]+]]: tensor<i32>
// CHECK-DAG: tensor.extract %[[D]][] : tensor<i32>
// CHECK: linalg.generic
// CHECK: math.log10
// CHECK: math.powf
// CHECK: -> tensor<9x8xf32>
func.func @melweightmatrix(%n: tensor<i32>, %d: tensor<i32>, %sr: tensor<i32>, %lo: tensor<f32>, %hi: tensor<f32>) -> tensor<9x8xf32> {
  %0 = onnx.MelWeightMatrix %n, %d, %sr, %lo, %hi : (tensor<i32>, tensor<i32>, tensor<i32>, tensor<f32>, tensor<f32>) -> tensor<9x8xf32>
  return %0 : tensor<9x8xf32>
}

// -----

// Near miss: a 3-D (volumetric) GridSample is not lowered (the only error).
// ERR-NOT: error:
// ERR: error: failed to legalize operation 'onnx.GridSample'
// ERR-NOT: error:
func.func @gridsample_3d(%x: tensor<1x1x2x3x4xf32>, %g: tensor<1x2x2x2x3xf32>) -> tensor<1x1x2x2x2xf32> {
  %0 = onnx.GridSample %x, %g : (tensor<1x1x2x3x4xf32>, tensor<1x2x2x2x3xf32>) -> tensor<1x1x2x2x2xf32>
  return %0 : tensor<1x1x2x2x2xf32>
}
