// RUN: kiln-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// llm.sparse_24: a [K, N] weight from its kept half, f32 values or an int8
// llm.dequantize with one scale per column (group_size = K/2).
// CHECK-LABEL: func @round_trip
// CHECK: %[[W:.*]] = llm.sparse_24 %arg1 indices %arg2 : tensor<8x16xf32>, tensor<8x16xi8> -> tensor<16x16xf32>
// CHECK: llm.matmul %arg0, %[[W]]
// CHECK: %[[V:.*]] = llm.dequantize %arg3 scales %arg4 {group_size = 8 : i64}
// CHECK: llm.sparse_24 %[[V]] indices %arg2 : tensor<8x16xf32>, tensor<8x16xi8> -> tensor<16x16xf32>
func.func @round_trip(%x: tensor<?x16xf32>, %v: tensor<8x16xf32>, %i: tensor<8x16xi8>,
                      %q: tensor<8x16xi8>, %s: tensor<1x16xf16>) -> (tensor<?x16xf32>, tensor<16x16xf32>) {
  %w = llm.sparse_24 %v indices %i : tensor<8x16xf32>, tensor<8x16xi8> -> tensor<16x16xf32>
  %y = llm.matmul %x, %w : tensor<?x16xf32>, tensor<16x16xf32> -> tensor<?x16xf32>
  %vq = llm.dequantize %q scales %s {group_size = 8 : i64} : tensor<8x16xi8>, tensor<1x16xf16> -> tensor<8x16xf32>
  %w8 = llm.sparse_24 %vq indices %i : tensor<8x16xf32>, tensor<8x16xi8> -> tensor<16x16xf32>
  return %y, %w8 : tensor<?x16xf32>, tensor<16x16xf32>
}

// -----

// Constant indices in increasing order within each group verify.
// CHECK-LABEL: func @constant_indices
// CHECK: llm.sparse_24
func.func @constant_indices(%v: tensor<2x2xf32>) -> tensor<4x2xf32> {
  %i = arith.constant dense<[[0, 1], [3, 2]]> : tensor<2x2xi8>
  %w = llm.sparse_24 %v indices %i : tensor<2x2xf32>, tensor<2x2xi8> -> tensor<4x2xf32>
  return %w : tensor<4x2xf32>
}

// -----

func.func @k_not_multiple_of_4(%v: tensor<3x16xf32>, %i: tensor<3x16xi8>) -> tensor<6x16xf32> {
  // expected-error @+1 {{K = 6 must be a multiple of 4}}
  %w = llm.sparse_24 %v indices %i : tensor<3x16xf32>, tensor<3x16xi8> -> tensor<6x16xf32>
  return %w : tensor<6x16xf32>
}

// -----

func.func @values_not_half(%v: tensor<16x16xf32>, %i: tensor<8x16xi8>) -> tensor<16x16xf32> {
  // expected-error @+1 {{values must be f32 [8, 16]}}
  %w = llm.sparse_24 %v indices %i : tensor<16x16xf32>, tensor<8x16xi8> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @wide_indices(%v: tensor<8x16xf32>, %i: tensor<8x16xi32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{indices must be i8 [8, 16]}}
  %w = llm.sparse_24 %v indices %i : tensor<8x16xf32>, tensor<8x16xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @repeated_position(%v: tensor<2x2xf32>) -> tensor<4x2xf32> {
  %i = arith.constant dense<[[0, 1], [0, 2]]> : tensor<2x2xi8>
  // expected-error @+1 {{indices of group 0, column 0 must be two increasing positions in 0..3, got 0, 0}}
  %w = llm.sparse_24 %v indices %i : tensor<2x2xf32>, tensor<2x2xi8> -> tensor<4x2xf32>
  return %w : tensor<4x2xf32>
}
