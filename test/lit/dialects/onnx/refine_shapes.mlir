// RUN: kiln-opt --split-input-file --kiln-onnx-refine-shapes %s | FileCheck %s

// The Shape operand folds to a constant; the Reshape result becomes static
// and the function signature follows.
// CHECK-LABEL: func.func @reshape_by_shape
// CHECK-SAME: -> tensor<3x5xf32>
// CHECK: %[[R:.+]] = onnx.Reshape %{{.+}}, %{{.+}} : (tensor<3x5x1xf32>, tensor<2xi64>) -> tensor<3x5xf32>
// CHECK: return %[[R]] : tensor<3x5xf32>
func.func @reshape_by_shape(%x: tensor<3x5xf32>, %y: tensor<3x5x1xf32>) -> tensor<*xf32> {
  %s = onnx.Shape %x : (tensor<3x5xf32>) -> tensor<2xi64>
  %r = onnx.Reshape %y, %s : (tensor<3x5x1xf32>, tensor<2xi64>) -> tensor<*xf32>
  return %r : tensor<*xf32>
}

// -----

// 0 copies the input dim, -1 takes what is left.
// CHECK-LABEL: func.func @reshape_zero_and_minus_one
// CHECK: onnx.Reshape {{.+}} -> tensor<2x4x3xf32>
// CHECK: onnx.Reshape {{.+}} {allowzero = 1 : si64} {{.+}} -> tensor<5x0xf32>
func.func @reshape_zero_and_minus_one(%x: tensor<2x3x4xf32>, %z: tensor<0x5xf32>) -> (tensor<*xf32>, tensor<*xf32>) {
  %c = onnx.Constant {value = dense<[0, 4, -1]> : tensor<3xi64>} : () -> tensor<3xi64>
  %r = onnx.Reshape %x, %c : (tensor<2x3x4xf32>, tensor<3xi64>) -> tensor<*xf32>
  %c2 = onnx.Constant {value = dense<[5, 0]> : tensor<2xi64>} : () -> tensor<2xi64>
  %r2 = onnx.Reshape %z, %c2 {allowzero = 1 : si64} : (tensor<0x5xf32>, tensor<2xi64>) -> tensor<*xf32>
  return %r, %r2 : tensor<*xf32>, tensor<*xf32>
}

// -----

// Shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat) folds and types
// ConstantOfShape, which then folds to a splat because it is small.
// CHECK-LABEL: func.func @constant_of_shape
// CHECK-SAME: -> tensor<4x1xi64>
// CHECK: %[[C:.+]] = onnx.Constant {value = dense<7> : tensor<4x1xi64>}
// CHECK-NOT: onnx.ConstantOfShape
// CHECK: return %[[C]]
func.func @constant_of_shape(%x: tensor<4x6xf32>) -> tensor<?x?xi64> {
  %s = onnx.Shape %x : (tensor<4x6xf32>) -> tensor<2xi64>
  %i = onnx.Constant {value = dense<0> : tensor<i64>} : () -> tensor<i64>
  %d = onnx.Gather %s, %i : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %a = onnx.Constant {value = dense<0> : tensor<1xi64>} : () -> tensor<1xi64>
  %u = onnx.Unsqueeze %d, %a : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %one = onnx.Constant {value = dense<1> : tensor<1xi64>} : () -> tensor<1xi64>
  %shape = onnx.Concat %u, %one {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<?xi64>
  %c = onnx.ConstantOfShape %shape {value = dense<7> : tensor<1xi64>} : (tensor<?xi64>) -> tensor<?x?xi64>
  return %c : tensor<?x?xi64>
}

// -----

// Near miss: a large ConstantOfShape is typed but not materialized.
// CHECK-LABEL: func.func @constant_of_shape_large
// CHECK: onnx.ConstantOfShape {{.+}} -> tensor<100x100xf32>
func.func @constant_of_shape_large() -> tensor<*xf32> {
  %s = onnx.Constant {value = dense<100> : tensor<2xi64>} : () -> tensor<2xi64>
  %c = onnx.ConstantOfShape %s : (tensor<2xi64>) -> tensor<*xf32>
  return %c : tensor<*xf32>
}

// -----

// CHECK-LABEL: func.func @expand_range_slice
// CHECK: onnx.Expand {{.+}} -> tensor<2x3x4xf32>
// CHECK: onnx.Range {{.+}} -> tensor<4xi64>
// CHECK: onnx.Range {{.+}} -> tensor<3xf32>
// CHECK: onnx.Slice {{.+}} -> tensor<2x2x2xf32>
// CHECK: onnx.Squeeze {{.+}} -> tensor<3x4xf32>
func.func @expand_range_slice(%x: tensor<3x1xf32>, %y: tensor<1x3x4xf32>) -> (tensor<*xf32>, tensor<?xi64>, tensor<?xf32>, tensor<*xf32>, tensor<*xf32>) {
  %none = onnx.NoValue : () -> none
  %s = onnx.Constant {value = dense<[2, 1, 4]> : tensor<3xi64>} : () -> tensor<3xi64>
  %e = onnx.Expand %x, %s : (tensor<3x1xf32>, tensor<3xi64>) -> tensor<*xf32>
  %r0 = onnx.Constant {value = dense<1> : tensor<i64>} : () -> tensor<i64>
  %r1 = onnx.Constant {value = dense<9> : tensor<i64>} : () -> tensor<i64>
  %r2 = onnx.Constant {value = dense<2> : tensor<i64>} : () -> tensor<i64>
  %r = onnx.Range %r0, %r1, %r2 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %f0 = onnx.Constant {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
  %f1 = onnx.Constant {value = dense<-0.5> : tensor<f32>} : () -> tensor<f32>
  %f2 = onnx.Constant {value = dense<-0.6> : tensor<f32>} : () -> tensor<f32>
  %rf = onnx.Range %f0, %f1, %f2 : (tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<?xf32>
  %st = onnx.Constant {value = dense<[-1, 0]> : tensor<2xi64>} : () -> tensor<2xi64>
  %en = onnx.Constant {value = dense<[-100, 9223372036854775807]> : tensor<2xi64>} : () -> tensor<2xi64>
  %ax = onnx.Constant {value = dense<[1, 2]> : tensor<2xi64>} : () -> tensor<2xi64>
  %sp = onnx.Constant {value = dense<[-2, 3]> : tensor<2xi64>} : () -> tensor<2xi64>
  %sl = onnx.Slice %e, %st, %en, %ax, %sp : (tensor<*xf32>, tensor<2xi64>, tensor<2xi64>, tensor<2xi64>, tensor<2xi64>) -> tensor<*xf32>
  %sq = onnx.Squeeze %y, %none : (tensor<1x3x4xf32>, none) -> tensor<*xf32>
  return %e, %r, %rf, %sl, %sq : tensor<*xf32>, tensor<?xi64>, tensor<?xf32>, tensor<*xf32>, tensor<*xf32>
}

// -----

// Types flow through elementwise ops, casts and reductions.
// CHECK-LABEL: func.func @propagate
// CHECK-SAME: -> (tensor<6x1xi32>, tensor<6xf32>)
// CHECK: onnx.Cast {{.+}} -> tensor<6x2xi32>
// CHECK: onnx.ReduceSum {{.+}} -> tensor<6x1xi32>
// CHECK: onnx.ReduceMean {{.+}} -> tensor<6xf32>
func.func @propagate(%x: tensor<3x4xf32>) -> (tensor<*xi32>, tensor<*xf32>) {
  %none = onnx.NoValue : () -> none
  %c = onnx.Constant {value = dense<[6, 2]> : tensor<2xi64>} : () -> tensor<2xi64>
  %r = onnx.Reshape %x, %c : (tensor<3x4xf32>, tensor<2xi64>) -> tensor<*xf32>
  %n = onnx.Neg %r : (tensor<*xf32>) -> tensor<*xf32>
  %i = onnx.Cast %n {to = 6 : si64} : (tensor<*xf32>) -> tensor<*xi32>
  %ax = onnx.Constant {value = dense<1> : tensor<1xi64>} : () -> tensor<1xi64>
  %s = onnx.ReduceSum %i, %ax : (tensor<*xi32>, tensor<1xi64>) -> tensor<*xi32>
  %m = onnx.ReduceMean %n {axes = [-1], keepdims = 0 : si64} : (tensor<*xf32>) -> tensor<*xf32>
  return %s, %m : tensor<*xi32>, tensor<*xf32>
}

// -----

// Near miss: a shape that depends on runtime data stays unknown (the rank is
// known from the length of the shape operand), and an inferred dim never
// overrides a static one.
// CHECK-LABEL: func.func @runtime_shape
// CHECK: onnx.Reshape {{.+}} -> tensor<?x?xf32>
// CHECK: onnx.Expand {{.+}} -> tensor<2x3xf32>
func.func @runtime_shape(%x: tensor<6xf32>, %s: tensor<2xi64>, %y: tensor<3xf32>) -> (tensor<*xf32>, tensor<2x3xf32>) {
  %r = onnx.Reshape %x, %s : (tensor<6xf32>, tensor<2xi64>) -> tensor<*xf32>
  %e = onnx.Expand %y, %s : (tensor<3xf32>, tensor<2xi64>) -> tensor<2x3xf32>
  return %r, %e : tensor<*xf32>, tensor<2x3xf32>
}
