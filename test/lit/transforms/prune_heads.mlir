// RUN: kiln-opt %s --kiln-llm-paged-kv --kiln-llm-prune-heads=heads=2 | FileCheck %s
// Near miss: 3 heads is not a whole number of GQA groups (2 query heads per
// kv head): a one-line error naming the layer, exit 1.
// RUN: not kiln-opt %s --kiln-llm-paged-kv --kiln-llm-prune-heads=heads=3 2>&1 | FileCheck %s --check-prefix=ERR
// ERR: error: --prune=heads: layer 0: N = 3 must be a multiple of 2 (query heads per kv head) and less than 4 (the layer's query heads)

// Two layers of 4 query heads over 2 kv heads (head_dim 8): heads=2 removes
// one GQA group per layer, the one with the smallest
// sum ||W_v col||^2 * ||W_o row||^2. W_o's rows of heads 2-3 (group 1) are
// 0.4, those of heads 0-1 (group 0) 0.1, so group 0 goes: the pools lose a
// kv head, q keeps 2 heads, k and v 1, o_proj 16 rows (all 0.4).
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: tensor<?x?x1x8xf32> {{{.*}}onnx.name = "k_cache.0"}
// CHECK-SAME: tensor<?x?x1x8xf32> {{{.*}}onnx.name = "v_cache.1"}
// CHECK: llm.matmul %{{.+}}, %{{.+}} : tensor<?x?x16xf32>, tensor<16x16xf32> -> tensor<?x?x16xf32>
// CHECK: llm.split_heads %{{.+}} {num_heads = 2 : i64} : tensor<?x?x16xf32> -> tensor<?x2x?x8xf32>
// CHECK: llm.matmul %{{.+}}, %{{.+}} : tensor<?x?x16xf32>, tensor<16x8xf32> -> tensor<?x?x8xf32>
// CHECK: llm.split_heads %{{.+}} {num_heads = 1 : i64}
// CHECK: llm.kv_cache_write %{{.+}} : tensor<?x1x?x8xf32>, tensor<?x?x1x8xf32>, tensor<?xi32>
// CHECK: llm.paged_attention %{{.+}} : tensor<?x2x?x8xf32>, tensor<?x?x1x8xf32>, tensor<?x?x1x8xf32>
// CHECK: llm.merge_heads %{{.+}} : tensor<?x2x?x8xf32> -> tensor<?x?x16xf32>
// CHECK: %[[WO:.+]] = arith.constant dense_resource<heads.l0.o> : tensor<16x16xf32>
// CHECK: llm.matmul %{{.+}}, %[[WO]] residual %{{.+}} : tensor<?x?x16xf32>, tensor<16x16xf32>
// The kept o rows are the 0.4 ones (0x3ECCCCCD), not the 0.1 ones (0x3DCCCCCD).
// CHECK: heads.l0.o: "0x40000000CDCCCC3ECDCCCC3E

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
  %wv = arith.constant dense<0.3> : tensor<16x16xf32>
  %wo = arith.constant dense<[[0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]]> : tensor<32x16xf32>
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
  %v0 = llm.matmul %n0, %wv : tensor<?x?x16xf32>, tensor<16x16xf32> -> tensor<?x?x16xf32>
  %vh0 = llm.split_heads %v0 {num_heads = 2 : i64} : tensor<?x?x16xf32> -> tensor<?x2x?x8xf32>
  %vv0 = llm.kv_append %pv0, %vh0 : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
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
  %v1 = llm.matmul %n1, %wv : tensor<?x?x16xf32>, tensor<16x16xf32> -> tensor<?x?x16xf32>
  %vh1 = llm.split_heads %v1 {num_heads = 2 : i64} : tensor<?x?x16xf32> -> tensor<?x2x?x8xf32>
  %vv1 = llm.kv_append %pv1, %vh1 : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
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

