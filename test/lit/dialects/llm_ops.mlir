// RUN: kiln-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// Every llm op round-trips through its assembly format.
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
  %m = llm.matmul %l, %wm bias %b residual %x {activation = "gelu_tanh"} : tensor<?x?x32xf32>, tensor<32x32xf32>, tensor<32xf32>, tensor<?x?x32xf32> -> tensor<?x?x32xf32>
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
