// RUN: kiln-opt %s --split-input-file --kiln-llm-paged-kv --kiln-llm-speculative-layer-skip=layers=1 --verify-diagnostics | FileCheck %s

// Two layers; the draft keeps layer 0, then the target's own final norm and
// LM head (the same constants), and only layer 0's pools.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: onnx.name = "k_cache.1"
// CHECK-COUNT-2: llm.paged_attention
// CHECK-LABEL: func.func @draft_forward(
// CHECK-SAME: onnx.name = "k_cache.0"
// CHECK-SAME: onnx.name = "v_cache.0"
// CHECK-NOT: k_cache.1
// CHECK-SAME: -> (tensor<?x32xf32>
// CHECK: llm.paged_attention
// CHECK-NOT: llm.paged_attention
// CHECK: %[[MLP0:.+]] = llm.gated_mlp {{.*}} residual
// CHECK-NOT: llm.gated_mlp
// CHECK: %[[FINAL:.+]] = llm.rms_norm %[[MLP0]], %[[FINALW:[a-z0-9_]+]]
// CHECK: llm.matmul %{{.+}}, %{{.+}} : tensor<?x16xf32>, tensor<16x32xf32> -> tensor<?x32xf32>
func.func @main(%ids: tensor<?x?xi64>, %mask: tensor<?x?xi64>, %pos: tensor<?x?xi64>,
                %pk0: tensor<?x2x?x8xf32>, %pv0: tensor<?x2x?x8xf32>, %pk1: tensor<?x2x?x8xf32>, %pv1: tensor<?x2x?x8xf32>)
    -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %table = arith.constant dense<0.5> : tensor<32x16xf32>
  %cos = arith.constant dense<1.0> : tensor<64x8xf32>
  %sin = arith.constant dense<0.0> : tensor<64x8xf32>
  %norm = arith.constant dense<1.0> : tensor<16xf32>
  %fnorm = arith.constant dense<2.0> : tensor<16xf32>
  %wq = arith.constant dense<0.1> : tensor<16x32xf32>
  %wk = arith.constant dense<0.2> : tensor<16x16xf32>
  %wo = arith.constant dense<0.4> : tensor<32x16xf32>
  %wg = arith.constant dense<0.5> : tensor<16x24xf32>
  %wu = arith.constant dense<0.6> : tensor<16x24xf32>
  %wd = arith.constant dense<0.7> : tensor<24x16xf32>
  %head = arith.constant dense<0.3> : tensor<16x32xf32>
  %x = llm.embedding %table[%ids] : tensor<32x16xf32>, tensor<?x?xi64> -> tensor<?x?x16xf32>
  // layer 0
  %n0 = llm.rms_norm %x, %norm {epsilon = 1.0e-5 : f32} : tensor<?x?x16xf32>, tensor<16xf32>
  %q0 = llm.matmul %n0, %wq : tensor<?x?x16xf32>, tensor<16x32xf32> -> tensor<?x?x32xf32>
  %qh0 = llm.split_heads %q0 {num_heads = 4 : i64} : tensor<?x?x32xf32> -> tensor<?x4x?x8xf32>
  %k0 = llm.matmul %n0, %wk : tensor<?x?x16xf32>, tensor<16x16xf32> -> tensor<?x?x16xf32>
  %kh0 = llm.split_heads %k0 {num_heads = 2 : i64} : tensor<?x?x16xf32> -> tensor<?x2x?x8xf32>
  %qr0 = llm.rotary %qh0, %cos, %sin, %pos : tensor<?x4x?x8xf32>, tensor<64x8xf32>, tensor<64x8xf32>, tensor<?x?xi64>
  %kr0 = llm.rotary %kh0, %cos, %sin, %pos : tensor<?x2x?x8xf32>, tensor<64x8xf32>, tensor<64x8xf32>, tensor<?x?xi64>
  %kk0 = llm.kv_append %pk0, %kr0 : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
  %vv0 = llm.kv_append %pv0, %kh0 : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
  %a0 = llm.attention %qr0, %kk0, %vv0 mask %mask {scale = 0.35 : f32, causal} : tensor<?x4x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x?xi64>
  %m0 = llm.merge_heads %a0 : tensor<?x4x?x8xf32> -> tensor<?x?x32xf32>
  %h0 = llm.matmul %m0, %wo residual %x : tensor<?x?x32xf32>, tensor<32x16xf32> residual tensor<?x?x16xf32> -> tensor<?x?x16xf32>
  %p0 = llm.rms_norm %h0, %norm {epsilon = 1.0e-5 : f32} : tensor<?x?x16xf32>, tensor<16xf32>
  %y0 = llm.gated_mlp %p0, %wg, %wu, %wd residual %h0 : tensor<?x?x16xf32>, tensor<16x24xf32>, tensor<16x24xf32>, tensor<24x16xf32>, tensor<?x?x16xf32>
  // layer 1
  %n1 = llm.rms_norm %y0, %norm {epsilon = 1.0e-5 : f32} : tensor<?x?x16xf32>, tensor<16xf32>
  %q1 = llm.matmul %n1, %wq : tensor<?x?x16xf32>, tensor<16x32xf32> -> tensor<?x?x32xf32>
  %qh1 = llm.split_heads %q1 {num_heads = 4 : i64} : tensor<?x?x32xf32> -> tensor<?x4x?x8xf32>
  %k1 = llm.matmul %n1, %wk : tensor<?x?x16xf32>, tensor<16x16xf32> -> tensor<?x?x16xf32>
  %kh1 = llm.split_heads %k1 {num_heads = 2 : i64} : tensor<?x?x16xf32> -> tensor<?x2x?x8xf32>
  %qr1 = llm.rotary %qh1, %cos, %sin, %pos : tensor<?x4x?x8xf32>, tensor<64x8xf32>, tensor<64x8xf32>, tensor<?x?xi64>
  %kr1 = llm.rotary %kh1, %cos, %sin, %pos : tensor<?x2x?x8xf32>, tensor<64x8xf32>, tensor<64x8xf32>, tensor<?x?xi64>
  %kk1 = llm.kv_append %pk1, %kr1 : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
  %vv1 = llm.kv_append %pv1, %kh1 : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
  %a1 = llm.attention %qr1, %kk1, %vv1 mask %mask {scale = 0.35 : f32, causal} : tensor<?x4x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x?xi64>
  %m1 = llm.merge_heads %a1 : tensor<?x4x?x8xf32> -> tensor<?x?x32xf32>
  %h1 = llm.matmul %m1, %wo residual %y0 : tensor<?x?x32xf32>, tensor<32x16xf32> residual tensor<?x?x16xf32> -> tensor<?x?x16xf32>
  %p1 = llm.rms_norm %h1, %norm {epsilon = 1.0e-5 : f32} : tensor<?x?x16xf32>, tensor<16xf32>
  %y1 = llm.gated_mlp %p1, %wg, %wu, %wd residual %h1 : tensor<?x?x16xf32>, tensor<16x24xf32>, tensor<16x24xf32>, tensor<24x16xf32>, tensor<?x?x16xf32>
  // final norm and LM head
  %f = llm.rms_norm %y1, %fnorm {epsilon = 1.0e-5 : f32} : tensor<?x?x16xf32>, tensor<16xf32>
  %logits = llm.matmul %f, %head : tensor<?x?x16xf32>, tensor<16x32xf32> -> tensor<?x?x32xf32>
  return %logits, %kk0, %vv0, %kk1, %vv1 : tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}
