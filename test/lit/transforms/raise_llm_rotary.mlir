// RUN: kiln-opt %s --split-input-file --kiln-raise-llm | FileCheck %s

// LLaMA's rotary embedding: x * cos[pos] + rotate_half(x) * sin[pos].
// CHECK-LABEL: func @rotary
// CHECK: %[[R:.*]] = llm.rotary %arg0, %{{.*}}, %{{.*}}, %arg1
// CHECK-NOT: onnx.Neg
// CHECK: return %[[R]]
func.func @rotary(%x: tensor<?x4x?x8xf32>, %pos: tensor<?x?xi64>) -> tensor<?x4x?x8xf32> {
  %cos = onnx.Constant {value = dense<0.5> : tensor<16x8xf32>} : () -> tensor<16x8xf32>
  %sin = onnx.Constant {value = dense<0.25> : tensor<16x8xf32>} : () -> tensor<16x8xf32>
  %ax1 = onnx.Constant {value = dense<1> : tensor<1xi64>} : () -> tensor<1xi64>
  %axl = onnx.Constant {value = dense<-1> : tensor<1xi64>} : () -> tensor<1xi64>
  %c0 = onnx.Constant {value = dense<0> : tensor<1xi64>} : () -> tensor<1xi64>
  %c4 = onnx.Constant {value = dense<4> : tensor<1xi64>} : () -> tensor<1xi64>
  %big = onnx.Constant {value = dense<9223372036854775807> : tensor<1xi64>} : () -> tensor<1xi64>
  %one = onnx.Constant {value = dense<1> : tensor<1xi64>} : () -> tensor<1xi64>
  %cg = onnx.Gather %cos, %pos : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %c = onnx.Unsqueeze %cg, %ax1 : (tensor<?x?x8xf32>, tensor<1xi64>) -> tensor<?x1x?x8xf32>
  %sg = onnx.Gather %sin, %pos : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %s = onnx.Unsqueeze %sg, %ax1 : (tensor<?x?x8xf32>, tensor<1xi64>) -> tensor<?x1x?x8xf32>
  %xc = onnx.Mul %x, %c : (tensor<?x4x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %hi = onnx.Slice %x, %c4, %big, %axl, %one : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %lo = onnx.Slice %x, %c0, %c4, %axl, %one : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %nh = onnx.Neg %hi : (tensor<?x4x?x4xf32>) -> tensor<?x4x?x4xf32>
  %rh = onnx.Concat %nh, %lo {axis = -1 : si64} : (tensor<?x4x?x4xf32>, tensor<?x4x?x4xf32>) -> tensor<?x4x?x8xf32>
  %rs = onnx.Mul %rh, %s : (tensor<?x4x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %y = onnx.Add %xc, %rs : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  return %y : tensor<?x4x?x8xf32>
}

// -----

// Near miss: the halves are not swapped (concat(-lo, hi)), so this is not a
// rotation by the position's angle.
// CHECK-LABEL: func @halves_not_swapped
// CHECK-NOT: llm.rotary
// CHECK: onnx.Neg
func.func @halves_not_swapped(%x: tensor<?x4x?x8xf32>, %pos: tensor<?x?xi64>) -> tensor<?x4x?x8xf32> {
  %cos = onnx.Constant {value = dense<0.5> : tensor<16x8xf32>} : () -> tensor<16x8xf32>
  %sin = onnx.Constant {value = dense<0.25> : tensor<16x8xf32>} : () -> tensor<16x8xf32>
  %ax1 = onnx.Constant {value = dense<1> : tensor<1xi64>} : () -> tensor<1xi64>
  %axl = onnx.Constant {value = dense<-1> : tensor<1xi64>} : () -> tensor<1xi64>
  %c0 = onnx.Constant {value = dense<0> : tensor<1xi64>} : () -> tensor<1xi64>
  %c4 = onnx.Constant {value = dense<4> : tensor<1xi64>} : () -> tensor<1xi64>
  %big = onnx.Constant {value = dense<9223372036854775807> : tensor<1xi64>} : () -> tensor<1xi64>
  %one = onnx.Constant {value = dense<1> : tensor<1xi64>} : () -> tensor<1xi64>
  %cg = onnx.Gather %cos, %pos : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %c = onnx.Unsqueeze %cg, %ax1 : (tensor<?x?x8xf32>, tensor<1xi64>) -> tensor<?x1x?x8xf32>
  %sg = onnx.Gather %sin, %pos : (tensor<16x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %s = onnx.Unsqueeze %sg, %ax1 : (tensor<?x?x8xf32>, tensor<1xi64>) -> tensor<?x1x?x8xf32>
  %xc = onnx.Mul %x, %c : (tensor<?x4x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %hi = onnx.Slice %x, %c4, %big, %axl, %one : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %lo = onnx.Slice %x, %c0, %c4, %axl, %one : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %nl = onnx.Neg %lo : (tensor<?x4x?x4xf32>) -> tensor<?x4x?x4xf32>
  %rh = onnx.Concat %nl, %hi {axis = -1 : si64} : (tensor<?x4x?x4xf32>, tensor<?x4x?x4xf32>) -> tensor<?x4x?x8xf32>
  %rs = onnx.Mul %rh, %s : (tensor<?x4x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %y = onnx.Add %xc, %rs : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  return %y : tensor<?x4x?x8xf32>
}
