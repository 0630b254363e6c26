// RUN: kiln-opt %s --split-input-file --kiln-lower-llm --verify-diagnostics | FileCheck %s

// A matmul whose weight is an llm.sparse_24 calls the 2:4 kernel on the
// packed kept half (kiln_uk_pack_s24): K = 16, N = 16 is one panel of 4
// groups of 144 bytes (two rows of 16 f32 values, 16 index bytes) = 576
// bytes; bits 32. No f32 weight and no sparse_24 are left.
// CHECK-LABEL: func @f32_values
// CHECK: %[[P:.*]] = arith.constant dense_resource<{{.*}}> : tensor<576xi8>
// CHECK: llm.ukernel "kiln_uk_matmul_s24_f32" ins(%arg0, %[[P]] : tensor<?x16xf32>, tensor<576xi8>) outs(%{{.*}} : tensor<?x16xf32>) args [array<i64: 0>, array<i64: 0, 0>, array<i64: 0, 1>, array<i64: 1>, 16, 32 : i32, array<i64: -1>, array<i64: -1>, 0 : i32, array<i64: 2>]
// CHECK-NOT: llm.sparse_24
// CHECK-NOT: xf32>{{.*}}dense
func.func @f32_values(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %v = arith.constant dense<0.5> : tensor<8x16xf32>
  %i16 = arith.constant dense<[[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]]> : tensor<8x16xi8>
  %w = llm.sparse_24 %v indices %i16 : tensor<8x16xf32>, tensor<8x16xi8> -> tensor<16x16xf32>
  %y = llm.matmul %x, %w : tensor<?x16xf32>, tensor<16x16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// 2:4 + w8: int8 values with one f16 scale per column (32 bytes per
// panel, then 4 groups of 48 bytes = 224); the gated MLP's gate and up run
// the 2:4 GLU kernel, the down projection the 2:4 matmul with the residual.
// CHECK-LABEL: func @gated_w8
// CHECK: llm.ukernel "kiln_uk_matmul_glu_s24_f32" ins(%arg0, %{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<224xi8>, tensor<224xi8>) {{.*}} args [{{.*}}, 16, 8 : i32, 2 : i32, array<i64: 3>]
// CHECK: llm.ukernel "kiln_uk_matmul_s24_f32" {{.*}} args [{{.*}}, 16, 8 : i32, array<i64: -1>, array<i64: 2>, 0 : i32, array<i64: 3>]
// CHECK-NOT: llm.dequantize
func.func @gated_w8(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %q = arith.constant dense<3> : tensor<8x16xi8>
  %s = arith.constant dense<0.5> : tensor<1x16xf16>
  %v = llm.dequantize %q scales %s {group_size = 8 : i64} : tensor<8x16xi8>, tensor<1x16xf16> -> tensor<8x16xf32>
  %i = arith.constant dense<[[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]]> : tensor<8x16xi8>
  %w = llm.sparse_24 %v indices %i : tensor<8x16xf32>, tensor<8x16xi8> -> tensor<16x16xf32>
  %y = llm.gated_mlp %x, %w, %w, %w residual %x : tensor<?x16xf32>, tensor<16x16xf32>, tensor<16x16xf32>, tensor<16x16xf32>, tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Near miss: a gate pruned and an up dense is refused (one kernel reads
// both).
func.func @mixed_glu(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %v = arith.constant dense<0.5> : tensor<8x16xf32>
  %i = arith.constant dense<[[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]]> : tensor<8x16xi8>
  %w = llm.sparse_24 %v indices %i : tensor<8x16xf32>, tensor<8x16xi8> -> tensor<16x16xf32>
  %u = arith.constant dense<0.5> : tensor<16x16xf32>
  // expected-error @+1 {{gate and up weights must both be 2:4 sparse or both not}}
  %y = llm.gated_mlp %x, %w, %u, %u : tensor<?x16xf32>, tensor<16x16xf32>, tensor<16x16xf32>, tensor<16x16xf32>
  return %y : tensor<?x16xf32>
}
