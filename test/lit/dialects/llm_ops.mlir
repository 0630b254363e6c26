// RUN: kiln-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// Every llm op round-trips through its assembly format.
// (A matmul with a residual but no bias used to print a type list that
// parsed back as a bias: @matmul_residual_only below.)
// CHECK-LABEL: func @all_ops
// CHECK: llm.embedding %{{.*}}[%arg0] positions %{{.*}}[%arg1]
// CHECK: llm.rms_norm
// CHECK: llm.layer_norm
// CHECK: llm.matmul %{{.*}}, %{{.*}} bias %{{.*}} residual %{{.*}} {activation = "gelu_tanh"}
// CHECK: llm.gated_mlp
// CHECK: llm.gelu_mlp
// CHECK: llm.split_heads %{{.*}} {num_heads = 4 : i64}
// CHECK: llm.rotary
// CHECK: llm.kv_append
// CHECK: llm.attention %{{.*}}, %{{.*}}, %{{.*}} mask %arg3 {causal, scale = 5.000000e-01 : f32}
// CHECK: llm.merge_heads
// CHECK: llm.ukernel "kiln_uk_rms_norm_f32" ins(
func.func @all_ops(%ids: tensor<?x?xi64>, %pos: tensor<?x?xi64>, %past: tensor<?x2x?x8xf32>, %mask: tensor<?x?xi64>,
                   %table: tensor<64x32xf32>, %ptable: tensor<16x32xf32>, %w: tensor<32xf32>, %wm: tensor<32x32xf32>,
                   %b: tensor<32xf32>, %wg: tensor<32x64xf32>, %wd: tensor<64x32xf32>, %cos: tensor<16x8xf32>,
                   %wkv: tensor<32x16xf32>) -> tensor<?x?x32xf32> {
  %x = llm.embedding %table[%ids] positions %ptable[%pos] : tensor<64x32xf32>, tensor<?x?xi64>, tensor<16x32xf32>, tensor<?x?xi64> -> tensor<?x?x32xf32>
  %n = llm.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<?x?x32xf32>, tensor<32xf32>
  %l = llm.layer_norm %n, %w, %b {epsilon = 1.0e-5 : f32} : tensor<?x?x32xf32>, tensor<32xf32>, tensor<32xf32>
  %m = llm.matmul %l, %wm bias %b residual %x {activation = "gelu_tanh"} : tensor<?x?x32xf32>, tensor<32x32xf32> bias tensor<32xf32> residual tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  %g = llm.gated_mlp %m, %wg, %wg, %wd residual %m : tensor<?x?x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>, tensor<?x?x32xf32>
  %e = llm.gelu_mlp %g, %wg, %wg, %wd, %b : tensor<?x?x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>, tensor<32xf32>
  %q = llm.split_heads %e {num_heads = 4 : i64} : tensor<?x?x32xf32> -> tensor<?x4x?x8xf32>
  %qr = llm.rotary %q, %cos, %cos, %pos : tensor<?x4x?x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<?x?xi64>
  %kv = llm.matmul %e, %wkv : tensor<?x?x32xf32>, tensor<32x16xf32> -> tensor<?x?x16xf32>
  %k = llm.split_heads %kv {num_heads = 2 : i64} : tensor<?x?x16xf32> -> tensor<?x2x?x8xf32>
  %kc = llm.kv_append %past, %k : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
  %a = llm.attention %qr, %kc, %kc mask %mask {scale = 0.5 : f32, causal} : tensor<?x4x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x?xi64>
  %o = llm.merge_heads %a : tensor<?x4x?x8xf32> -> tensor<?x?x32xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %d0 = tensor.dim %o, %c0 : tensor<?x?x32xf32>
  %d1 = tensor.dim %o, %c1 : tensor<?x?x32xf32>
  %empty = tensor.empty(%d0, %d1) : tensor<?x?x32xf32>
  %u = llm.ukernel "kiln_uk_rms_norm_f32" ins(%o, %w : tensor<?x?x32xf32>, tensor<32xf32>) outs(%empty : tensor<?x?x32xf32>) args [array<i64: 0>, array<i64: 0, 0, 1>, array<i64: 0, 2>, array<i64: 1>, 1.0e-05 : f32, array<i64: 2>] -> tensor<?x?x32xf32>
  return %u : tensor<?x?x32xf32>
}

// -----

func.func @gqa_mismatch(%q: tensor<?x3x?x8xf32>, %k: tensor<?x2x?x8xf32>) -> tensor<?x3x?x8xf32> {
  // expected-error @+1 {{query heads must be a multiple of kv heads}}
  %a = llm.attention %q, %k, %k {scale = 0.5 : f32} : tensor<?x3x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
  return %a : tensor<?x3x?x8xf32>
}

// -----

func.func @bad_activation(%x: tensor<?x8xf32>, %w: tensor<8x4xf32>) -> tensor<?x4xf32> {
  // expected-error @+1 {{unknown activation 'relu6'}}
  %m = llm.matmul %x, %w {activation = "relu6"} : tensor<?x8xf32>, tensor<8x4xf32> -> tensor<?x4xf32>
  return %m : tensor<?x4xf32>
}

// -----

func.func @matmul_k_mismatch(%x: tensor<?x8xf32>, %w: tensor<6x4xf32>) -> tensor<?x4xf32> {
  // expected-error @+1 {{input last dim does not match (6)}}
  %m = llm.matmul %x, %w : tensor<?x8xf32>, tensor<6x4xf32> -> tensor<?x4xf32>
  return %m : tensor<?x4xf32>
}

// -----

func.func @heads_do_not_tile(%x: tensor<?x?x30xf32>) -> tensor<?x4x?x8xf32> {
  // expected-error @+1 {{input last dim must be num_heads * head_dim}}
  %q = llm.split_heads %x {num_heads = 4 : i64} : tensor<?x?x30xf32> -> tensor<?x4x?x8xf32>
  return %q : tensor<?x4x?x8xf32>
}

// -----

func.func @odd_rotary(%x: tensor<?x4x?x7xf32>, %t: tensor<16x7xf32>, %p: tensor<?x?xi64>) -> tensor<?x4x?x7xf32> {
  // expected-error @+1 {{even head_dim}}
  %r = llm.rotary %x, %t, %t, %p : tensor<?x4x?x7xf32>, tensor<16x7xf32>, tensor<16x7xf32>, tensor<?x?xi64>
  return %r : tensor<?x4x?x7xf32>
}

// -----

func.func @ukernel_bad_ref(%x: tensor<4xf32>, %e: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{argument refers to a missing operand}}
  %u = llm.ukernel "f" ins(%x : tensor<4xf32>) outs(%e : tensor<4xf32>) args [array<i64: 5>] -> tensor<4xf32>
  return %u : tensor<4xf32>
}

// -----

// Paged KV: the pool write and the paged attention round-trip.
// CHECK-LABEL: func @paged
// CHECK: %[[KC:.+]] = llm.kv_cache_write %arg0, %arg1, %arg2 : tensor<1x2x?x8xf32>, tensor<?x?x2x8xf32>, tensor<?xi32>
// CHECK: llm.paged_attention %arg3, %[[KC]], %arg1, %arg4, %arg5, %arg6 {causal, scale = 5.000000e-01 : f32}
func.func @paged(%k: tensor<1x2x?x8xf32>, %pool: tensor<?x?x2x8xf32>, %slots: tensor<?xi32>,
                 %q: tensor<1x4x?x8xf32>, %tables: tensor<?x?xi32>, %lens: tensor<?xi32>,
                 %starts: tensor<?xi32>) -> tensor<1x4x?x8xf32> {
  %kc = llm.kv_cache_write %k, %pool, %slots : tensor<1x2x?x8xf32>, tensor<?x?x2x8xf32>, tensor<?xi32>
  %o = llm.paged_attention %q, %kc, %pool, %tables, %lens, %starts {scale = 0.5 : f32, causal} : tensor<1x4x?x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?xi32>, tensor<?xi32>, tensor<?xi32>
  return %o : tensor<1x4x?x8xf32>
}

// -----

func.func @cache_write_heads(%k: tensor<1x3x?x8xf32>, %pool: tensor<?x?x2x8xf32>, %slots: tensor<?xi32>) -> tensor<?x?x2x8xf32> {
  // expected-error @+1 {{new values [1, KVH, N, hd] and cache [blocks, block_size, KVH, hd] disagree}}
  %kc = llm.kv_cache_write %k, %pool, %slots : tensor<1x3x?x8xf32>, tensor<?x?x2x8xf32>, tensor<?xi32>
  return %kc : tensor<?x?x2x8xf32>
}

// -----

func.func @cache_write_i64_slots(%k: tensor<1x2x?x8xf32>, %pool: tensor<?x?x2x8xf32>, %slots: tensor<?xi64>) -> tensor<?x?x2x8xf32> {
  // expected-error @+1 {{slots must be an i32 tensor of rank 1}}
  %kc = llm.kv_cache_write %k, %pool, %slots : tensor<1x2x?x8xf32>, tensor<?x?x2x8xf32>, tensor<?xi64>
  return %kc : tensor<?x?x2x8xf32>
}

// -----

func.func @paged_batch_dims(%q: tensor<1x4x?x8xf32>, %pool: tensor<?x?x2x8xf32>, %tables: tensor<3x?xi32>,
                            %lens: tensor<3xi32>, %starts: tensor<3xi32>) -> tensor<1x4x?x8xf32> {
  // expected-error @+1 {{block_tables [B, M], seq_lens [B] and query_start [B+1] disagree}}
  %o = llm.paged_attention %q, %pool, %pool, %tables, %lens, %starts {scale = 0.5 : f32} : tensor<1x4x?x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<3x?xi32>, tensor<3xi32>, tensor<3xi32>
  return %o : tensor<1x4x?x8xf32>
}

// -----

func.func @paged_gqa(%q: tensor<1x3x?x8xf32>, %pool: tensor<?x?x2x8xf32>, %tables: tensor<?x?xi32>,
                     %lens: tensor<?xi32>, %starts: tensor<?xi32>) -> tensor<1x3x?x8xf32> {
  // expected-error @+1 {{query heads must be a multiple of kv heads}}
  %o = llm.paged_attention %q, %pool, %pool, %tables, %lens, %starts {scale = 0.5 : f32} : tensor<1x3x?x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?xi32>, tensor<?xi32>, tensor<?xi32>
  return %o : tensor<1x3x?x8xf32>
}

// -----

// CHECK-LABEL: func @matmul_residual_only
// CHECK: llm.matmul %arg0, %arg1 residual %arg0 : tensor<?x?x8xf32>, tensor<8x8xf32> residual tensor<?x?x8xf32> -> tensor<?x?x8xf32>
func.func @matmul_residual_only(%x: tensor<?x?x8xf32>, %w: tensor<8x8xf32>) -> tensor<?x?x8xf32> {
  %y = llm.matmul %x, %w residual %x : tensor<?x?x8xf32>, tensor<8x8xf32> residual tensor<?x?x8xf32> -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// A quantized weight read by a matmul: int4 with zero points, and int8
// per output channel (group_size = K).
// CHECK-LABEL: func @dequantize
// CHECK: llm.dequantize %arg1 scales %arg2 zero_points %arg3 {group_size = 32 : i64} : tensor<64x16xi4>, tensor<2x16xf16>, tensor<2x16xi8> -> tensor<64x16xf32>
// CHECK: llm.dequantize %arg4 scales %arg5 {group_size = 64 : i64} : tensor<64x16xi8>, tensor<1x16xf16> -> tensor<64x16xf32>
func.func @dequantize(%x: tensor<?x64xf32>, %q4: tensor<64x16xi4>, %s4: tensor<2x16xf16>, %z4: tensor<2x16xi8>,
                      %q8: tensor<64x16xi8>, %s8: tensor<1x16xf16>) -> (tensor<?x16xf32>, tensor<?x16xf32>) {
  %w4 = llm.dequantize %q4 scales %s4 zero_points %z4 {group_size = 32 : i64} : tensor<64x16xi4>, tensor<2x16xf16>, tensor<2x16xi8> -> tensor<64x16xf32>
  %w8 = llm.dequantize %q8 scales %s8 {group_size = 64 : i64} : tensor<64x16xi8>, tensor<1x16xf16> -> tensor<64x16xf32>
  %a = llm.matmul %x, %w4 : tensor<?x64xf32>, tensor<64x16xf32> -> tensor<?x16xf32>
  %b = llm.matmul %x, %w8 : tensor<?x64xf32>, tensor<64x16xf32> -> tensor<?x16xf32>
  return %a, %b : tensor<?x16xf32>, tensor<?x16xf32>
}

// -----

// w8a8: int8 activations at run time on an int8 per-column weight.
// CHECK-LABEL: func @dequantize_w8a8
// CHECK: llm.dequantize %arg0 scales %arg1 {activation_bits = 8 : i64, group_size = 64 : i64}
func.func @dequantize_w8a8(%q: tensor<64x16xi8>, %s: tensor<1x16xf16>) -> tensor<64x16xf32> {
  %w = llm.dequantize %q scales %s {activation_bits = 8 : i64, group_size = 64 : i64} : tensor<64x16xi8>, tensor<1x16xf16> -> tensor<64x16xf32>
  return %w : tensor<64x16xf32>
}

// -----

// w4gNa8: int4 weights in groups, int8 activations per group.
// CHECK-LABEL: func @dequantize_w4a8
// CHECK: llm.dequantize %arg0 scales %arg1 zero_points %arg2 {activation_bits = 8 : i64, group_size = 32 : i64}
func.func @dequantize_w4a8(%q: tensor<64x16xi4>, %s: tensor<2x16xf16>, %z: tensor<2x16xi8>) -> tensor<64x16xf32> {
  %w = llm.dequantize %q scales %s zero_points %z {activation_bits = 8 : i64, group_size = 32 : i64} : tensor<64x16xi4>, tensor<2x16xf16>, tensor<2x16xi8> -> tensor<64x16xf32>
  return %w : tensor<64x16xf32>
}

// -----

func.func @dequantize_w8a8_grouped(%q: tensor<64x16xi8>, %s: tensor<2x16xf16>) -> tensor<64x16xf32> {
  // expected-error @+1 {{activation_bits = 8 takes i8 data with one scale per column (group_size = K) and no zero points}}
  %w = llm.dequantize %q scales %s {activation_bits = 8 : i64, group_size = 32 : i64} : tensor<64x16xi8>, tensor<2x16xf16> -> tensor<64x16xf32>
  return %w : tensor<64x16xf32>
}

// -----

func.func @dequantize_w8a8_bits(%q: tensor<64x16xi8>, %s: tensor<1x16xf16>) -> tensor<64x16xf32> {
  // expected-error @+1 {{activation_bits must be 8, got 4}}
  %w = llm.dequantize %q scales %s {activation_bits = 4 : i64, group_size = 64 : i64} : tensor<64x16xi8>, tensor<1x16xf16> -> tensor<64x16xf32>
  return %w : tensor<64x16xf32>
}

// -----

func.func @dequantize_group_not_dividing(%q: tensor<64x16xi4>, %s: tensor<3x16xf16>) -> tensor<64x16xf32> {
  // expected-error @+1 {{group_size 24 must divide K = 64}}
  %w = llm.dequantize %q scales %s {group_size = 24 : i64} : tensor<64x16xi4>, tensor<3x16xf16> -> tensor<64x16xf32>
  return %w : tensor<64x16xf32>
}

// -----

func.func @dequantize_f32_scales(%q: tensor<64x16xi8>, %s: tensor<2x16xf32>) -> tensor<64x16xf32> {
  // expected-error @+1 {{scales must be f16 [2, 16]}}
  %w = llm.dequantize %q scales %s {group_size = 32 : i64} : tensor<64x16xi8>, tensor<2x16xf32> -> tensor<64x16xf32>
  return %w : tensor<64x16xf32>
}

// -----

func.func @dequantize_float_data(%q: tensor<64x16xf32>, %s: tensor<2x16xf16>) -> tensor<64x16xf32> {
  // expected-error @+1 {{data must be i8 or i4, got 'f32'}}
  %w = llm.dequantize %q scales %s {group_size = 32 : i64} : tensor<64x16xf32>, tensor<2x16xf16> -> tensor<64x16xf32>
  return %w : tensor<64x16xf32>
}

// -----

// kv8 pools: int8 rows of head_dim + 4 bytes (values, then the f32 scale).
// CHECK-LABEL: func @int8_pools
// CHECK: llm.kv_cache_write %arg0, %arg1, %arg2 : tensor<1x2x?x8xf32>, tensor<?x16x2x12xi8>, tensor<?xi32>
func.func @int8_pools(%new: tensor<1x2x?x8xf32>, %pool: tensor<?x16x2x12xi8>, %slots: tensor<?xi32>) -> tensor<?x16x2x12xi8> {
  %p = llm.kv_cache_write %new, %pool, %slots : tensor<1x2x?x8xf32>, tensor<?x16x2x12xi8>, tensor<?xi32>
  return %p : tensor<?x16x2x12xi8>
}

// -----

func.func @int8_pool_without_scale_bytes(%new: tensor<1x2x?x8xf32>, %pool: tensor<?x16x2x8xi8>, %slots: tensor<?xi32>) -> tensor<?x16x2x8xi8> {
  // expected-error @+1 {{new values [1, KVH, N, hd] and int8 cache [blocks, block_size, KVH, hd + 4] disagree}}
  %p = llm.kv_cache_write %new, %pool, %slots : tensor<1x2x?x8xf32>, tensor<?x16x2x8xi8>, tensor<?xi32>
  return %p : tensor<?x16x2x8xi8>
}
