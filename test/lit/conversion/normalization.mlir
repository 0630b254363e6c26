// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>/dev/null | FileCheck %s
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR

// LayerNormalization over the last axis: sum, mean, squared deviations,
// inverse std-dev, then one generic over X; Mean comes back as 2x3x1.
// CHECK-LABEL: func.func @layernorm
// CHECK-SAME: (%[[X:.+]]: tensor<2x3x4xf32> {{.*}}, %[[S:.+]]: tensor<4xf32> {{.*}}, %[[B:.+]]: tensor<4xf32>
// CHECK: %[[SUM:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]] : tensor<2x3x4xf32>)
// CHECK: %[[MEAN:.+]] = linalg.generic {{.*}} ins(%[[SUM]] : tensor<2x3xf32>)
// CHECK: arith.divf
// CHECK: %[[SQ:.+]] = linalg.generic {{.*}} ins(%[[X]], %[[MEAN]] : tensor<2x3x4xf32>, tensor<2x3xf32>)
// CHECK: arith.subf
// CHECK: arith.mulf
// CHECK: math.sqrt
// CHECK: %[[Y:.+]] = linalg.generic {{.*}} ins(%[[X]], %[[MEAN]], %{{.+}}, %[[S]], %[[B]] :
// CHECK: %[[M:.+]] = tensor.expand_shape %[[MEAN]] {{\[\[}}0], [1, 2]] output_shape [2, 3, 1]
// CHECK: return %[[Y]], %[[M]]
func.func @layernorm(%x: tensor<2x3x4xf32>, %s: tensor<4xf32>, %b: tensor<4xf32>) -> (tensor<2x3x4xf32>, tensor<2x3x1xf32>) {
  %y, %m, %i = onnx.LayerNormalization %x, %s, %b {axis = -1 : si64, epsilon = 1.0e-05 : f32} : (tensor<2x3x4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<2x3x4xf32>, tensor<2x3x1xf32>, none)
  return %y, %m : tensor<2x3x4xf32>, tensor<2x3x1xf32>
}

// -----

// f16 LayerNormalization computes in f32 and truncates the result.
// CHECK-LABEL: func.func @layernorm_f16
// CHECK: arith.extf %{{.+}} : f16 to f32
// CHECK: math.sqrt %{{.+}} : f32
// CHECK: arith.truncf %{{.+}} : f32 to f16
func.func @layernorm_f16(%x: tensor<2x4xf16>, %s: tensor<4xf16>, %b: tensor<4xf16>) -> tensor<2x4xf16> {
  %y, %m, %i = onnx.LayerNormalization %x, %s, %b : (tensor<2x4xf16>, tensor<4xf16>, tensor<4xf16>) -> (tensor<2x4xf16>, none, none)
  return %y : tensor<2x4xf16>
}

// -----

// Inference-mode BatchNormalization is one parallel generic with per-channel
// parameters; no reductions.
// CHECK-LABEL: func.func @batchnorm
// CHECK-SAME: (%[[X:.+]]: tensor<2x3x4xf32> {{.*}}, %[[S:.+]]: tensor<3xf32> {{.*}}, %[[B:.+]]: tensor<3xf32> {{.*}}, %[[M:.+]]: tensor<3xf32> {{.*}}, %[[V:.+]]: tensor<3xf32>
// CHECK-NOT: reduction
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[X]], %[[S]], %[[B]], %[[M]], %[[V]] :
// CHECK: math.sqrt
// CHECK-NOT: reduction
// CHECK: return
func.func @batchnorm(%x: tensor<2x3x4xf32>, %s: tensor<3xf32>, %b: tensor<3xf32>, %m: tensor<3xf32>, %v: tensor<3xf32>) -> tensor<2x3x4xf32> {
  %y, %rm, %rv = onnx.BatchNormalization %x, %s, %b, %m, %v : (tensor<2x3x4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> (tensor<2x3x4xf32>, none, none)
  return %y : tensor<2x3x4xf32>
}

// -----

// Training mode reduces over every dim but the channel and updates the
// running statistics with the momentum.
// CHECK-LABEL: func.func @batchnorm_training
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel", "reduction"]
// CHECK: arith.constant 0.899999976 : f32
// CHECK: return
func.func @batchnorm_training(%x: tensor<2x3x4xf32>, %s: tensor<3xf32>, %b: tensor<3xf32>, %m: tensor<3xf32>, %v: tensor<3xf32>) -> (tensor<2x3x4xf32>, tensor<3xf32>, tensor<3xf32>) {
  %y, %rm, %rv = onnx.BatchNormalization %x, %s, %b, %m, %v {training_mode = 1 : si64} : (tensor<2x3x4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> (tensor<2x3x4xf32>, tensor<3xf32>, tensor<3xf32>)
  return %y, %rm, %rv : tensor<2x3x4xf32>, tensor<3xf32>, tensor<3xf32>
}

// -----

// InstanceNormalization reduces the spatial dims per (n, c).
// CHECK-LABEL: func.func @instancenorm
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction", "reduction"]
// CHECK: return
func.func @instancenorm(%x: tensor<1x2x3x4xf32>, %s: tensor<2xf32>, %b: tensor<2xf32>) -> tensor<1x2x3x4xf32> {
  %0 = onnx.InstanceNormalization %x, %s, %b : (tensor<1x2x3x4xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x3x4xf32>
  return %0 : tensor<1x2x3x4xf32>
}

// -----

// MeanVarianceNormalization defaults to axes [0, 2, 3].
// CHECK-LABEL: func.func @mvn
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel", "reduction", "reduction"]
// CHECK: arith.constant 9.99999971E-10
func.func @mvn(%x: tensor<2x3x4x5xf32>) -> tensor<2x3x4x5xf32> {
  %0 = onnx.MeanVarianceNormalization %x : (tensor<2x3x4x5xf32>) -> tensor<2x3x4x5xf32>
  return %0 : tensor<2x3x4x5xf32>
}

// -----

// NegativeLogLikelihoodLoss: the class dim is a reduction selecting the
// target class (ignore_index excluded); `mean` divides by the weight sum.
// CHECK-LABEL: func.func @nll_mean
// CHECK-SAME: (%[[X:.+]]: tensor<3x5x2xf32> {{.*}}, %[[T:.+]]: tensor<3x2xi64> {{.*}}, %[[W:.+]]: tensor<5xf32>
// CHECK: %[[L:.+]]:2 = linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "parallel"]} ins(%[[X]], %[[T]], %[[W]] : {{.*}}) outs(%{{.+}}, %{{.+}} : tensor<3x2xf32>, tensor<3x2xf32>)
// CHECK: linalg.index 1
// CHECK: arith.cmpi eq
// CHECK: arith.constant 1 : i64
// CHECK: arith.cmpi ne
// CHECK: %[[S:.+]]:2 = linalg.generic {{.*}} ins(%[[L]]#0, %[[L]]#1 : {{.*}}) outs({{.*}} : tensor<f32>, tensor<f32>)
// CHECK: linalg.generic {{.*}} ins(%[[S]]#0, %[[S]]#1 : tensor<f32>, tensor<f32>)
// CHECK: arith.divf
func.func @nll_mean(%x: tensor<3x5x2xf32>, %t: tensor<3x2xi64>, %w: tensor<5xf32>) -> tensor<f32> {
  %0 = onnx.NegativeLogLikelihoodLoss %x, %t, %w {ignore_index = 1 : si64} : (tensor<3x5x2xf32>, tensor<3x2xi64>, tensor<5xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

// reduction = "none" keeps the per-element losses and needs no weight sum.
// CHECK-LABEL: func.func @nll_none
// CHECK: %[[L:.+]] = linalg.generic {{.*}} outs(%{{.+}} : tensor<3x2xf32>)
// CHECK-NOT: linalg.generic
// CHECK: return %[[L]]
func.func @nll_none(%x: tensor<3x5x2xf32>, %t: tensor<3x2xi32>, %w: tensor<5xf32>) -> tensor<3x2xf32> {
  %0 = onnx.NegativeLogLikelihoodLoss %x, %t, %w {reduction = "none"} : (tensor<3x5x2xf32>, tensor<3x2xi32>, tensor<5xf32>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// -----

// SoftmaxCrossEntropyLoss: log-softmax over the class dim (max, sum of exp,
// log), returned as log_prob, then the NLL loss summed.
// CHECK-LABEL: func.func @sce_sum
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: math.log
// CHECK: %[[LP:.+]] = linalg.generic {{.*}} outs(%{{.+}} : tensor<3x5xf32>)
// CHECK: arith.subf
// CHECK: linalg.generic {{.*}} ins(%[[LP]], %{{.+}}, %{{.+}} : tensor<3x5xf32>, tensor<3xi64>, tensor<5xf32>)
// CHECK: return %{{.+}}, %[[LP]]
func.func @sce_sum(%x: tensor<3x5xf32>, %t: tensor<3xi64>, %w: tensor<5xf32>) -> (tensor<f32>, tensor<3x5xf32>) {
  %0, %1 = onnx.SoftmaxCrossEntropyLoss %x, %t, %w {reduction = "sum"} : (tensor<3x5xf32>, tensor<3xi64>, tensor<5xf32>) -> (tensor<f32>, tensor<3x5xf32>)
  return %0, %1 : tensor<f32>, tensor<3x5xf32>
}

// -----

// Near miss: an unknown reduction is not lowered.
// CHECK-NOT: func.func @nll_bad_reduction
// ERR-NOT: error:
// ERR: error: failed to legalize operation 'onnx.NegativeLogLikelihoodLoss'
// ERR-NOT: error:
func.func @nll_bad_reduction(%x: tensor<3x5xf32>, %t: tensor<3xi64>, %w: tensor<5xf32>) -> tensor<f32> {
  %0 = onnx.NegativeLogLikelihoodLoss %x, %t, %w {reduction = "max"} : (tensor<3x5xf32>, tensor<3xi64>, tensor<5xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}
