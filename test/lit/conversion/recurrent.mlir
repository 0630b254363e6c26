// The last case must fail to lower, so kiln-opt exits non-zero overall; the
// other cases' output is still printed and checked.
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>/dev/null | FileCheck %s
// RUN: not kiln-opt --split-input-file --kiln-convert-onnx-to-linalg %s 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR

// Forward RNN, Y_h only: the input projection for all steps is one
// contraction before the loop; each step contracts H with R^T, applies tanh
// and copies the new state into the carried tensor.
// CHECK-LABEL: func.func @rnn_forward
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<2x3x4xf32>{{.*}}, %[[W:[a-z0-9]+]]: tensor<1x5x4xf32>{{.*}}, %[[R:[a-z0-9]+]]: tensor<1x5x5xf32>
// CHECK-DAG: %[[C2:.+]] = arith.constant 2 : index
// CHECK-DAG: %[[WD:.+]] = tensor.extract_slice %[[W]][0, 0, 0] [1, 5, 4] [1, 1, 1] : tensor<1x5x4xf32> to tensor<5x4xf32>
// CHECK-DAG: %[[RD:.+]] = tensor.extract_slice %[[R]][0, 0, 0] [1, 5, 5] [1, 1, 1] : tensor<1x5x5xf32> to tensor<5x5xf32>
// CHECK: %[[XW:.+]] = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME: ins(%[[X]], %[[WD]] : tensor<2x3x4xf32>, tensor<5x4xf32>)
// CHECK: %[[LOOP:.+]] = scf.for %[[S:[a-z0-9]+]] = %{{.+}} to %[[C2]] step %{{.+}} iter_args(%[[H:.+]] = %{{.+}}) -> (tensor<3x5xf32>)
// CHECK: %[[XT:.+]] = tensor.extract_slice %[[XW]][%[[S]], 0, 0] [1, 3, 5]
// CHECK: %[[HR:.+]] = linalg.generic {{.*}} ins(%[[H]], %[[RD]] : tensor<3x5xf32>, tensor<5x5xf32>)
// CHECK: %[[CELL:.+]] = linalg.generic {{.*}} ins(%[[XT]], %[[HR]], %[[H]] :
// CHECK: math.tanh
// CHECK: %[[NEW:.+]] = linalg.copy ins(%[[CELL]] : tensor<3x5xf32>) outs(%[[H]] : tensor<3x5xf32>)
// CHECK: scf.yield %[[NEW]]
// CHECK: tensor.insert_slice %[[LOOP]] into %{{.+}}[0, 0, 0] [1, 3, 5]
func.func @rnn_forward(%x: tensor<2x3x4xf32>, %w: tensor<1x5x4xf32>, %r: tensor<1x5x5xf32>, %n: none) -> tensor<1x3x5xf32> {
  %Y, %Y_h = onnx.RNN %x, %w, %r, %n, %n, %n {hidden_size = 5 : si64} : (tensor<2x3x4xf32>, tensor<1x5x4xf32>, tensor<1x5x5xf32>, none, none, none) -> (none, tensor<1x3x5xf32>)
  return %Y_h : tensor<1x3x5xf32>
}

// -----

// Bidirectional LSTM with layout = 1 and all three outputs: one loop per
// direction carrying H, C and Y; the reverse one walks t = T - 1 - s; the
// results are transposed back to batch-major.
// CHECK-LABEL: func.func @lstm_bidi_batchwise
// CHECK: scf.for {{.*}} -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<4x2x2x3xf32>)
// CHECK: math.tanh
// CHECK: tensor.insert_slice {{.*}} [1, 1, 2, 3] [1, 1, 1, 1] : tensor<2x3xf32> into tensor<4x2x2x3xf32>
// CHECK: scf.for %[[S:[a-z0-9]+]] = {{.*}} -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<4x2x2x3xf32>)
// CHECK: %[[T:.+]] = arith.subi %{{.+}}, %[[S]] : index
// CHECK: tensor.extract_slice %{{.+}}[%[[T]], 0, 0] [1, 2, 12]
// CHECK: tensor.insert_slice {{.*}}[%[[T]], 1, 0, 0] [1, 1, 2, 3]
// CHECK: linalg.generic {{.*}} outs(%{{.+}} : tensor<2x4x2x3xf32>)
// CHECK: return {{.*}} : tensor<2x4x2x3xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>
func.func @lstm_bidi_batchwise(%x: tensor<2x4x5xf32>, %w: tensor<2x12x5xf32>, %r: tensor<2x12x3xf32>, %b: tensor<2x24xf32>, %n: none) -> (tensor<2x4x2x3xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>) {
  %Y, %Y_h, %Y_c = onnx.LSTM %x, %w, %r, %b, %n, %n, %n, %n {direction = "bidirectional", hidden_size = 3 : si64, layout = 1 : si64} : (tensor<2x4x5xf32>, tensor<2x12x5xf32>, tensor<2x12x3xf32>, tensor<2x24xf32>, none, none, none, none) -> (tensor<2x4x2x3xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>)
  return %Y, %Y_h, %Y_c : tensor<2x4x2x3xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>
}

// -----

// Reverse GRU with sequence_lens: each batch entry starts at its own last
// valid step, so the step input is gathered with tensor.extract and the
// state update is masked by s < len.
// CHECK-LABEL: func.func @gru_reverse_seq_lens
// CHECK-SAME: %[[SEQ:[a-z0-9]+]]: tensor<2xi32>
// CHECK: scf.for %[[S:[a-z0-9]+]] = {{.*}} -> (tensor<2x3xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[SEQ]] : tensor<2xi32>)
// CHECK: arith.index_cast
// CHECK: tensor.extract %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}] : tensor<4x2x9xf32>
// CHECK: math.tanh
// CHECK: arith.cmpi slt, %[[S]]
// CHECK: arith.select
func.func @gru_reverse_seq_lens(%x: tensor<4x2x1xf32>, %w: tensor<1x9x1xf32>, %r: tensor<1x9x3xf32>, %s: tensor<2xi32>, %n: none) -> tensor<1x2x3xf32> {
  %Y, %Y_h = onnx.GRU %x, %w, %r, %n, %s, %n {direction = "reverse", hidden_size = 3 : si64, linear_before_reset = 1 : si64} : (tensor<4x2x1xf32>, tensor<1x9x1xf32>, tensor<1x9x3xf32>, none, tensor<2xi32>, none) -> (none, tensor<1x2x3xf32>)
  return %Y_h : tensor<1x2x3xf32>
}

// -----

// Near miss: an unknown activation function is not lowered (the only error).
// ERR-NOT: error:
// ERR: error: failed to legalize operation 'onnx.RNN'
// ERR-NOT: error:
func.func @rnn_unknown_activation(%x: tensor<2x3x4xf32>, %w: tensor<1x5x4xf32>, %r: tensor<1x5x5xf32>, %n: none) -> tensor<1x3x5xf32> {
  %Y, %Y_h = onnx.RNN %x, %w, %r, %n, %n, %n {activations = ["Gelu"], hidden_size = 5 : si64} : (tensor<2x3x4xf32>, tensor<1x5x4xf32>, tensor<1x5x5xf32>, none, none, none) -> (none, tensor<1x3x5xf32>)
  return %Y_h : tensor<1x3x5xf32>
}
