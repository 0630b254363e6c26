// RUN: kiln-opt %s --split-input-file --kiln-lower-llm --verify-diagnostics | FileCheck %s

// A matmul whose weight is an llm.dequantize calls the quantized kernel on
// the packed integers (kiln_uk_pack_q): N = 16 is one panel of 64 x 8 bytes
// of nibbles plus, per group of 32, 16 f16 scales and 16 zero points
// (2 x 48 bytes): 608 bytes. bits 4, group 32, zero points 1. No f32
// weight and no dequantize are left.
// CHECK-LABEL: func @w4
// CHECK: %[[P:.*]] = arith.constant dense_resource<{{.*}}> : tensor<608xi8>
// CHECK: llm.ukernel "kiln_uk_matmul_q_f32" ins(%arg0, %[[P]] : tensor<?x64xf32>, tensor<608xi8>) outs(%{{.*}} : tensor<?x16xf32>) args [array<i64: 0>, array<i64: 0, 0>, array<i64: 0, 1>, array<i64: 1>, 16, 4 : i32, 32, 1 : i32, array<i64: -1>, array<i64: -1>, 0 : i32, array<i64: 2>]
// CHECK-NOT: llm.dequantize
// CHECK-NOT: xf32>{{.*}}dense
func.func @w4(%x: tensor<?x64xf32>) -> tensor<?x16xf32> {
  %q = arith.constant dense<3> : tensor<64x16xi4>
  %s = arith.constant dense<1.0> : tensor<2x16xf16>
  %z = arith.constant dense<8> : tensor<2x16xi8>
  %w = llm.dequantize %q scales %s zero_points %z {group_size = 32 : i64} : tensor<64x16xi4>, tensor<2x16xf16>, tensor<2x16xi8> -> tensor<64x16xf32>
  %y = llm.matmul %x, %w : tensor<?x64xf32>, tensor<64x16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// The gated MLP: gate and up share one quantized GLU kernel (the up weight
// has no zero points, the gate has: both are packed with them), the down
// projection (int8 per channel, no zero points) its own quantized matmul.
// CHECK-LABEL: func @gated
// CHECK: llm.ukernel "kiln_uk_matmul_glu_q_f32" {{.*}} args [{{.*}}, 64, 4 : i32, 32, 1 : i32, 2 : i32, array<i64: 3>]
// CHECK: llm.ukernel "kiln_uk_matmul_q_f32" {{.*}} args [{{.*}}, 32, 8 : i32, 64, 0 : i32,
func.func @gated(%x: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %q = arith.constant dense<3> : tensor<32x64xi4>
  %s = arith.constant dense<1.0> : tensor<1x64xf16>
  %z = arith.constant dense<8> : tensor<1x64xi8>
  %g = llm.dequantize %q scales %s zero_points %z {group_size = 32 : i64} : tensor<32x64xi4>, tensor<1x64xf16>, tensor<1x64xi8> -> tensor<32x64xf32>
  %u = llm.dequantize %q scales %s {group_size = 32 : i64} : tensor<32x64xi4>, tensor<1x64xf16> -> tensor<32x64xf32>
  %qd = arith.constant dense<-5> : tensor<64x32xi8>
  %sd = arith.constant dense<0.5> : tensor<1x32xf16>
  %d = llm.dequantize %qd scales %sd {group_size = 64 : i64} : tensor<64x32xi8>, tensor<1x32xf16> -> tensor<64x32xf32>
  %y = llm.gated_mlp %x, %g, %u, %d : tensor<?x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// w8a8 (activation_bits = 8): the int8 x int8 kernels on the k4-interleaved
// layout (kiln_uk_pack_q8a8): K = 64 x 16 columns of bytes plus 16 f32
// scales = 1088 bytes, with no bits / group / zero-point arguments. The GLU
// gets its w8a8 form; a plain w8 weight (no activation_bits) next to them
// keeps the f32-activation kernel.
// CHECK-LABEL: func @w8a8
// CHECK: llm.ukernel "kiln_uk_matmul_glu_q8a8_f32" {{.*}} args [{{.*}}, 64, 2 : i32, array<i64: 3>]
// CHECK: llm.ukernel "kiln_uk_matmul_q8a8_f32" {{.*}} tensor<2176xi8>) {{.*}} args [array<i64: 0>, array<i64: 0, 0>, array<i64: 0, 1>, array<i64: 1>, 32, array<i64: -1>, array<i64: -1>, 0 : i32, array<i64: 2>]
// CHECK: llm.ukernel "kiln_uk_matmul_q_f32" {{.*}} args [{{.*}}, 32, 8 : i32, 32, 0 : i32,
// CHECK-NOT: llm.dequantize
func.func @w8a8(%x: tensor<?x32xf32>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
  %q = arith.constant dense<3> : tensor<32x64xi8>
  %s = arith.constant dense<1.0> : tensor<1x64xf16>
  %g = llm.dequantize %q scales %s {activation_bits = 8 : i64, group_size = 32 : i64} : tensor<32x64xi8>, tensor<1x64xf16> -> tensor<32x64xf32>
  %u = llm.dequantize %q scales %s {activation_bits = 8 : i64, group_size = 32 : i64} : tensor<32x64xi8>, tensor<1x64xf16> -> tensor<32x64xf32>
  %qd = arith.constant dense<-5> : tensor<64x32xi8>
  %sd = arith.constant dense<0.5> : tensor<1x32xf16>
  %d = llm.dequantize %qd scales %sd {activation_bits = 8 : i64, group_size = 64 : i64} : tensor<64x32xi8>, tensor<1x32xf16> -> tensor<64x32xf32>
  %y = llm.gated_mlp %x, %g, %u, %d : tensor<?x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>
  %qe = arith.constant dense<-7> : tensor<32x32xi8>
  %se = arith.constant dense<0.25> : tensor<1x32xf16>
  %e = llm.dequantize %qe scales %se {group_size = 32 : i64} : tensor<32x32xi8>, tensor<1x32xf16> -> tensor<32x32xf32>
  %z = llm.matmul %x, %e : tensor<?x32xf32>, tensor<32x32xf32> -> tensor<?x32xf32>
  return %y, %z : tensor<?x32xf32>, tensor<?x32xf32>
}

// -----

// int4 with int8 activations per group (activation_bits = 8 on i4): the
// same kiln_uk_pack_q layout (608 bytes as in @w4) and arguments, the
// int4 x int8 kernels; the GLU too.
// CHECK-LABEL: func @w4a8
// CHECK: llm.ukernel "kiln_uk_matmul_qa8_f32" ins(%arg0, %{{.*}} : tensor<?x64xf32>, tensor<608xi8>) {{.*}} args [{{.*}}, 16, 4 : i32, 32, 1 : i32,
// CHECK: llm.ukernel "kiln_uk_matmul_glu_qa8_f32" {{.*}} args [{{.*}}, 16, 4 : i32, 32, 1 : i32, 2 : i32,
// CHECK-NOT: llm.dequantize
func.func @w4a8(%x: tensor<?x64xf32>) -> (tensor<?x16xf32>, tensor<?x64xf32>) {
  %q = arith.constant dense<3> : tensor<64x16xi4>
  %s = arith.constant dense<1.0> : tensor<2x16xf16>
  %z = arith.constant dense<8> : tensor<2x16xi8>
  %w = llm.dequantize %q scales %s zero_points %z {activation_bits = 8 : i64, group_size = 32 : i64} : tensor<64x16xi4>, tensor<2x16xf16>, tensor<2x16xi8> -> tensor<64x16xf32>
  %y = llm.matmul %x, %w : tensor<?x64xf32>, tensor<64x16xf32> -> tensor<?x16xf32>
  %qd = arith.constant dense<1.0> : tensor<16x64xf32>
  %g = llm.gated_mlp %x, %w, %w, %qd : tensor<?x64xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<16x64xf32>
  return %y, %g : tensor<?x16xf32>, tensor<?x64xf32>
}

// -----

// Near miss: gate and up quantized unalike (only one has int8 activations).
func.func @w8a8_mixed_glu(%x: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %q = arith.constant dense<3> : tensor<32x64xi8>
  %s = arith.constant dense<1.0> : tensor<1x64xf16>
  %g = llm.dequantize %q scales %s {activation_bits = 8 : i64, group_size = 32 : i64} : tensor<32x64xi8>, tensor<1x64xf16> -> tensor<32x64xf32>
  %u = llm.dequantize %q scales %s {group_size = 32 : i64} : tensor<32x64xi8>, tensor<1x64xf16> -> tensor<32x64xf32>
  %d = arith.constant dense<1.0> : tensor<64x32xf32>
  // expected-error @+1 {{gate and up weights must be quantized alike}}
  %y = llm.gated_mlp %x, %g, %u, %d : tensor<?x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Near miss: a dequantized weight read by anything but a matmul kernel
// would have to exist in f32: refused.
func.func @not_a_weight(%x: tensor<64x16xf32>) -> tensor<64x16xf32> {
  %q = arith.constant dense<3> : tensor<64x16xi8>
  %s = arith.constant dense<1.0> : tensor<1x16xf16>
  // expected-error @+1 {{is not the weight of a matmul}}
  %w = llm.dequantize %q scales %s {group_size = 64 : i64} : tensor<64x16xi8>, tensor<1x16xf16> -> tensor<64x16xf32>
  return %w : tensor<64x16xf32>
}

// -----

// Near miss: an int4 group the kernels do not take (not a multiple of 8).
func.func @odd_group(%x: tensor<?x12xf32>) -> tensor<?x16xf32> {
  %q = arith.constant dense<3> : tensor<12x16xi4>
  %s = arith.constant dense<1.0> : tensor<3x16xf16>
  %w = llm.dequantize %q scales %s {group_size = 4 : i64} : tensor<12x16xi4>, tensor<3x16xf16> -> tensor<12x16xf32>
  // expected-error @+1 {{no quantized kernel takes 4-bit weights [12, 16] in groups of 4}}
  %y = llm.matmul %x, %w : tensor<?x12xf32>, tensor<12x16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
