// RUN: kiln-opt --split-input-file --verify-diagnostics %s | FileCheck %s

// com.microsoft::MatMulNBits round-trips; its result type is A's shape with N
// last (the type is inferred when a pass creates it).
// CHECK-LABEL: func @matmul_nbits
// CHECK: onnx.MatMulNBits %arg0, %arg1, %arg2, %arg3, %arg4, %arg5 {K = 64 : si64, N = 16 : si64, accuracy_level = 4 : si64, block_size = 32 : si64} : (tensor<?x?x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>, tensor<16xui8>, none, tensor<16xf32>) -> tensor<?x?x16xf32>
func.func @matmul_nbits(%a: tensor<?x?x64xf32>, %b: tensor<16x2x16xui8>, %s: tensor<32xf32>, %z: tensor<16xui8>,
                        %g: none, %bias: tensor<16xf32>) -> tensor<?x?x16xf32> {
  %y = onnx.MatMulNBits %a, %b, %s, %z, %g, %bias {K = 64 : si64, N = 16 : si64, bits = 4 : si64, block_size = 32 : si64, accuracy_level = 4 : si64} : (tensor<?x?x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>, tensor<16xui8>, none, tensor<16xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

func.func @matmul_nbits_8bit(%a: tensor<?x64xf32>, %b: tensor<16x2x32xui8>, %s: tensor<32xf32>, %n: none) -> tensor<?x16xf32> {
  // expected-error @+1 {{only 4-bit weights are supported, got bits = 8}}
  %y = onnx.MatMulNBits %a, %b, %s, %n, %n, %n {K = 64 : si64, N = 16 : si64, bits = 8 : si64, block_size = 32 : si64} : (tensor<?x64xf32>, tensor<16x2x32xui8>, tensor<32xf32>, none, none, none) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @matmul_nbits_bad_b(%a: tensor<?x64xf32>, %b: tensor<16x4x16xui8>, %s: tensor<32xf32>, %n: none) -> tensor<?x16xf32> {
  // expected-error @+1 {{B must be [N, ceil(K / block_size), block_size * bits / 8] = [16, 2, 16]}}
  %y = onnx.MatMulNBits %a, %b, %s, %n, %n, %n {K = 64 : si64, N = 16 : si64, block_size = 32 : si64} : (tensor<?x64xf32>, tensor<16x4x16xui8>, tensor<32xf32>, none, none, none) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @matmul_nbits_block(%a: tensor<?x64xf32>, %b: tensor<16x3x12xui8>, %s: tensor<48xf32>, %n: none) -> tensor<?x16xf32> {
  // expected-error @+1 {{block_size must be a power of two >= 16, got 24}}
  %y = onnx.MatMulNBits %a, %b, %s, %n, %n, %n {K = 64 : si64, N = 16 : si64, block_size = 24 : si64} : (tensor<?x64xf32>, tensor<16x3x12xui8>, tensor<48xf32>, none, none, none) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @matmul_nbits_k(%a: tensor<?x48xf32>, %b: tensor<16x2x16xui8>, %s: tensor<32xf32>, %n: none) -> tensor<?x16xf32> {
  // expected-error @+1 {{A's last dim must be K = 64}}
  %y = onnx.MatMulNBits %a, %b, %s, %n, %n, %n {K = 64 : si64, N = 16 : si64, block_size = 32 : si64} : (tensor<?x48xf32>, tensor<16x2x16xui8>, tensor<32xf32>, none, none, none) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @matmul_nbits_scales(%a: tensor<?x64xf32>, %b: tensor<16x2x16xui8>, %s: tensor<16xf32>, %n: none) -> tensor<?x16xf32> {
  // expected-error @+1 {{scales must have N * n_blocks = 32 elements}}
  %y = onnx.MatMulNBits %a, %b, %s, %n, %n, %n {K = 64 : si64, N = 16 : si64, block_size = 32 : si64} : (tensor<?x64xf32>, tensor<16x2x16xui8>, tensor<16xf32>, none, none, none) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
