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

// -----

// Shape arithmetic on small integer constants: broadcasting binaries, Neg,
// Size, Gather, Slice, Concat, Unsqueeze and Equal/Where fold.
// CHECK-LABEL: func.func @shape_arith
// CHECK-DAG: onnx.Constant {value = dense<[4, 7]> : tensor<2xi64>}
// CHECK-DAG: onnx.Constant {value = dense<-3> : tensor<1xi64>}
// CHECK-DAG: onnx.Constant {value = dense<24> : tensor<i64>}
// CHECK-DAG: onnx.Constant {value = dense<[4, 3, 2]> : tensor<3xi64>}
// CHECK-DAG: onnx.Constant {value = dense<[4, 2, 1]> : tensor<3xi64>}
// CHECK-DAG: onnx.Constant {value = dense<2> : tensor<2xi64>}
// CHECK-NOT: onnx.Gather
// CHECK-NOT: onnx.Slice
// CHECK-NOT: onnx.Concat
// CHECK-NOT: onnx.Where
func.func @shape_arith(%x: tensor<2x3x4xf32>) -> (tensor<2xi64>, tensor<1xi64>, tensor<i64>, tensor<3xi64>, tensor<3xi64>, tensor<2xi64>) {
  %s = onnx.Shape %x : (tensor<2x3x4xf32>) -> tensor<3xi64>
  %one = onnx.Constant {value = dense<1> : tensor<i64>} : () -> tensor<i64>
  %i = onnx.Constant {value = dense<[2, 0]> : tensor<2xi64>} : () -> tensor<2xi64>
  %g = onnx.Gather %s, %i : (tensor<3xi64>, tensor<2xi64>) -> tensor<2xi64>
  %k = onnx.Constant {value = dense<[0, 5]> : tensor<2xi64>} : () -> tensor<2xi64>
  %a = onnx.Add %g, %k : (tensor<2xi64>, tensor<2xi64>) -> tensor<2xi64>
  %c = onnx.Mul %a, %one : (tensor<2xi64>, tensor<i64>) -> tensor<2xi64>
  %three = onnx.Constant {value = dense<3> : tensor<1xi64>} : () -> tensor<1xi64>
  %n = onnx.Neg %three : (tensor<1xi64>) -> tensor<1xi64>
  %sz = onnx.Size %x : (tensor<2x3x4xf32>) -> tensor<i64>
  %st = onnx.Constant {value = dense<-1> : tensor<1xi64>} : () -> tensor<1xi64>
  %en = onnx.Constant {value = dense<-9223372036854775807> : tensor<1xi64>} : () -> tensor<1xi64>
  %sp = onnx.Constant {value = dense<-1> : tensor<1xi64>} : () -> tensor<1xi64>
  %none = onnx.NoValue : () -> none
  %sl = onnx.Slice %s, %st, %en, %none, %sp : (tensor<3xi64>, tensor<1xi64>, tensor<1xi64>, none, tensor<1xi64>) -> tensor<3xi64>
  %ax = onnx.Constant {value = dense<0> : tensor<1xi64>} : () -> tensor<1xi64>
  %u = onnx.Unsqueeze %one, %ax : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %head = onnx.Slice %s, %ax, %three, %none, %none : (tensor<3xi64>, tensor<1xi64>, tensor<1xi64>, none, none) -> tensor<3xi64>
  %h2 = onnx.Gather %head, %i : (tensor<3xi64>, tensor<2xi64>) -> tensor<2xi64>
  %cat = onnx.Concat %h2, %u {axis = 0 : si64} : (tensor<2xi64>, tensor<1xi64>) -> tensor<3xi64>
  %zero = onnx.Constant {value = dense<0> : tensor<2xi64>} : () -> tensor<2xi64>
  %eq = onnx.Equal %i, %zero : (tensor<2xi64>, tensor<2xi64>) -> tensor<2xi1>
  %w = onnx.Where %eq, %g, %i : (tensor<2xi1>, tensor<2xi64>, tensor<2xi64>) -> tensor<2xi64>
  return %c, %n, %sz, %sl, %cat, %w : tensor<2xi64>, tensor<1xi64>, tensor<i64>, tensor<3xi64>, tensor<3xi64>, tensor<2xi64>
}

// -----

// Near miss: float tensors and big integer tensors are data, not shapes.
// CHECK-LABEL: func.func @no_data_fold
// CHECK: onnx.Add
// CHECK: onnx.ConstantOfShape
func.func @no_data_fold() -> (tensor<2xf32>, tensor<100xi64>) {
  %a = onnx.Constant {value = dense<[1.0, 2.0]> : tensor<2xf32>} : () -> tensor<2xf32>
  %s = onnx.Add %a, %a : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %n = onnx.Constant {value = dense<100> : tensor<1xi64>} : () -> tensor<1xi64>
  %c = onnx.ConstantOfShape %n {value = dense<1> : tensor<1xi64>} : (tensor<1xi64>) -> tensor<100xi64>
  return %s, %c : tensor<2xf32>, tensor<100xi64>
}
