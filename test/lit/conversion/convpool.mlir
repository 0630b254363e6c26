// The last case must fail to lower, so kiln-opt exits non-zero overall; the
// other cases' output is still printed and checked.
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>/dev/null | FileCheck %s
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR

// Conv with pads and bias: tensor.pad with 0, bias broadcast as the init, one
// generic over (n, g, oc, oh, ow, ic, kh, kw) on group-expanded tensors.
// CHECK-LABEL: func.func @conv_pad_bias
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x3x5x5xf32>{{.*}}, %[[W:[a-z0-9]+]]: tensor<4x3x3x3xf32>{{.*}}, %[[B:[a-z0-9]+]]: tensor<4xf32>
// CHECK: %[[P:.+]] = tensor.pad %[[X]] low[0, 0, 1, 1] high[0, 0, 1, 1]
// CHECK: %[[INIT:.+]] = linalg.generic {{.*}} ins(%[[B]] : tensor<4xf32>)
// CHECK: %[[XE:.+]] = tensor.expand_shape %[[P]] {{\[}}[0], [1, 2], [3], [4]] {{.*}} tensor<1x1x3x7x7xf32>
// CHECK: %[[WE:.+]] = tensor.expand_shape %[[W]] {{.*}} tensor<1x4x3x3x3xf32>
// CHECK: %[[IE:.+]] = tensor.expand_shape %[[INIT]]
// CHECK: %[[G:.+]] = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]
// CHECK-SAME: ins(%[[XE]], %[[WE]] :
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: tensor.collapse_shape %[[G]] {{.*}} into tensor<1x4x5x5xf32>
func.func @conv_pad_bias(%x: tensor<1x3x5x5xf32>, %w: tensor<4x3x3x3xf32>, %b: tensor<4xf32>) -> tensor<1x4x5x5xf32> {
  %0 = onnx.Conv %x, %w, %b {pads = [1, 1, 1, 1]} : (tensor<1x3x5x5xf32>, tensor<4x3x3x3xf32>, tensor<4xf32>) -> tensor<1x4x5x5xf32>
  return %0 : tensor<1x4x5x5xf32>
}

// -----

// Depthwise (group = channels) 1-D conv with stride 2 and no bias.
// CHECK-LABEL: func.func @conv_depthwise_1d
// CHECK: linalg.fill
// CHECK: tensor.expand_shape {{.*}} tensor<1x4x1x9xf32>
// CHECK: linalg.generic
// CHECK: tensor.collapse_shape {{.*}} into tensor<1x4x4xf32>
func.func @conv_depthwise_1d(%x: tensor<1x4x9xf32>, %w: tensor<4x1x3xf32>, %n: none) -> tensor<1x4x4xf32> {
  %0 = onnx.Conv %x, %w, %n {group = 4 : si64, strides = [2]} : (tensor<1x4x9xf32>, tensor<4x1x3xf32>, none) -> tensor<1x4x4xf32>
  return %0 : tensor<1x4x4xf32>
}

// -----

// ConvInteger pads with the x zero point and subtracts zero points in i32.
// CHECK-LABEL: func.func @conv_integer
// CHECK: %[[ZP:.+]] = tensor.extract
// CHECK: tensor.pad
// CHECK: tensor.yield %[[ZP]]
// CHECK: linalg.generic
// CHECK: arith.extui
// CHECK: arith.subi
// CHECK: arith.muli
// CHECK: arith.addi
func.func @conv_integer(%x: tensor<1x1x3x3xui8>, %w: tensor<1x1x2x2xui8>, %zp: tensor<ui8>, %n: none) -> tensor<1x1x4x4xi32> {
  %0 = onnx.ConvInteger %x, %w, %zp, %n {pads = [1, 1, 1, 1]} : (tensor<1x1x3x3xui8>, tensor<1x1x2x2xui8>, tensor<ui8>, none) -> tensor<1x1x4x4xi32>
  return %0 : tensor<1x1x4x4xi32>
}

// -----

// ConvTranspose: the input goes onto a zero tensor with stride 2, then a
// stride-1 convolution with a flipped kernel.
// CHECK-LABEL: func.func @conv_transpose
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x1x3x3xf32>
// CHECK: %[[Z:.+]] = linalg.fill {{.*}} -> tensor<1x1x9x9xf32>
// CHECK: tensor.insert_slice %[[X]] into %[[Z]][0, 0, 2, 2] [1, 1, 3, 3] [1, 1, 2, 2]
// CHECK: linalg.generic
// CHECK: tensor.collapse_shape {{.*}} into tensor<1x2x7x7xf32>
func.func @conv_transpose(%x: tensor<1x1x3x3xf32>, %w: tensor<1x2x3x3xf32>, %n: none) -> tensor<1x2x7x7xf32> {
  %0 = onnx.ConvTranspose %x, %w, %n {strides = [2, 2]} : (tensor<1x1x3x3xf32>, tensor<1x2x3x3xf32>, none) -> tensor<1x2x7x7xf32>
  return %0 : tensor<1x2x7x7xf32>
}

// -----

// MaxPool pads with -inf; ceil_mode windows get extra high padding.
// CHECK-LABEL: func.func @maxpool_ceil
// CHECK: %[[NINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK: tensor.pad {{.*}} low[0, 0, 0, 0] high[0, 0, 1, 1]
// CHECK: tensor.yield %[[NINF]]
// CHECK: %[[WIN:.+]] = tensor.empty() : tensor<3x3xf32>
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]
// CHECK: arith.maximumf
func.func @maxpool_ceil(%x: tensor<1x1x4x4xf32>) -> tensor<1x1x2x2xf32> {
  %0, %1 = onnx.MaxPool %x {ceil_mode = 1 : si64, kernel_shape = [3, 3], strides = [2, 2]} : (tensor<1x1x4x4xf32>) -> (tensor<1x1x2x2xf32>, none)
  return %0 : tensor<1x1x2x2xf32>
}

// -----

// MaxPool on unsigned bytes pads with 0 and uses an unsigned max; the Indices
// output is a second result of the same generic.
// CHECK-LABEL: func.func @maxpool_u8_indices
// CHECK: linalg.generic
// CHECK: arith.cmpi ugt
// CHECK: arith.select
// CHECK: linalg.yield {{.*}} : i8, i64
func.func @maxpool_u8_indices(%x: tensor<1x1x4x4xui8>) -> (tensor<1x1x2x2xui8>, tensor<1x1x2x2xi64>) {
  %0, %1 = onnx.MaxPool %x {kernel_shape = [2, 2], strides = [2, 2]} : (tensor<1x1x4x4xui8>) -> (tensor<1x1x2x2xui8>, tensor<1x1x2x2xi64>)
  return %0, %1 : tensor<1x1x2x2xui8>, tensor<1x1x2x2xi64>
}

// -----

// AveragePool with pads: per-position divisors as a constant.
// CHECK-LABEL: func.func @avgpool_pads
// CHECK: tensor.pad
// CHECK: linalg.generic
// CHECK: arith.addf
// CHECK: %[[D:.+]] = arith.constant dense<{{\[}}[4.000000e+00, 6.000000e+00, 4.000000e+00]
// CHECK: linalg.generic {{.*}} ins(%{{.+}}, %[[D]] :
// CHECK: arith.divf
func.func @avgpool_pads(%x: tensor<1x1x3x3xf32>) -> tensor<1x1x3x3xf32> {
  %0 = onnx.AveragePool %x {kernel_shape = [3, 3], pads = [1, 1, 1, 1]} : (tensor<1x1x3x3xf32>) -> tensor<1x1x3x3xf32>
  return %0 : tensor<1x1x3x3xf32>
}

// -----

// CHECK-LABEL: func.func @global_avg
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction", "reduction"]
// CHECK: arith.divf
// CHECK: tensor.expand_shape {{.*}} into tensor<2x3x1x1xf32>
func.func @global_avg(%x: tensor<2x3x4x5xf32>) -> tensor<2x3x1x1xf32> {
  %0 = onnx.GlobalAveragePool %x : (tensor<2x3x4x5xf32>) -> tensor<2x3x1x1xf32>
  return %0 : tensor<2x3x1x1xf32>
}

// -----

// CHECK-LABEL: func.func @lrn
// CHECK: tensor.pad {{.*}} low[0, 1, 0, 0] high[0, 1, 0, 0]
// CHECK: linalg.generic
// CHECK: math.powf
// CHECK: arith.divf
func.func @lrn(%x: tensor<1x5x2x2xf32>) -> tensor<1x5x2x2xf32> {
  %0 = onnx.LRN %x {size = 3 : si64} : (tensor<1x5x2x2xf32>) -> tensor<1x5x2x2xf32>
  return %0 : tensor<1x5x2x2xf32>
}

// -----

// Resize (linear, scales read at run time): a generic over the output that
// gathers the neighbours with tensor.extract; N and C keep their coordinates.
// CHECK-LABEL: func.func @resize_linear
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x1x2x2xf32>{{.*}}, %{{[a-z0-9]+}}: none{{.*}}, %[[S:[a-z0-9]+]]: tensor<4xf32>
// CHECK: tensor.extract %[[S]]
// CHECK: linalg.generic
// CHECK: math.floor
// CHECK-COUNT-4: tensor.extract %[[X]]
// CHECK-NOT: tensor.extract %[[X]]
// CHECK: linalg.yield
func.func @resize_linear(%x: tensor<1x1x2x2xf32>, %roi: none, %s: tensor<4xf32>, %sz: none) -> tensor<1x1x4x4xf32> {
  %0 = onnx.Resize %x, %roi, %s, %sz {mode = "linear"} : (tensor<1x1x2x2xf32>, none, tensor<4xf32>, none) -> tensor<1x1x4x4xf32>
  return %0 : tensor<1x1x4x4xf32>
}

// -----

// CHECK-LABEL: func.func @maxunpool
// CHECK: linalg.generic
// CHECK: tensor.extract
// CHECK: arith.select
func.func @maxunpool(%x: tensor<1x1x2x2xf32>, %i: tensor<1x1x2x2xi64>, %n: none) -> tensor<1x1x4x4xf32> {
  %0 = onnx.MaxUnpool %x, %i, %n {kernel_shape = [2, 2], strides = [2, 2]} : (tensor<1x1x2x2xf32>, tensor<1x1x2x2xi64>, none) -> tensor<1x1x4x4xf32>
  return %0 : tensor<1x1x4x4xf32>
}

// -----

// Near miss: a dynamic spatial size is not lowered.
// CHECK-NOT: func.func @conv_dynamic
// ERR-NOT: error:
// ERR: error: failed to legalize operation 'onnx.Conv'
// ERR-NOT: error:
func.func @conv_dynamic(%x: tensor<1x1x?x5xf32>, %w: tensor<1x1x3x3xf32>, %n: none) -> tensor<1x1x?x3xf32> {
  %0 = onnx.Conv %x, %w, %n : (tensor<1x1x?x5xf32>, tensor<1x1x3x3xf32>, none) -> tensor<1x1x?x3xf32>
  return %0 : tensor<1x1x?x3xf32>
}
