// RUN: kiln-opt %s --split-input-file --kiln-llm-paged-kv --verify-diagnostics | FileCheck %s

// One raised layer with a concat-style cache becomes `forward` over a
// flattened batch: pools written in place, paged attention, the LM head on
// the logits_indices rows only.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[TOK:[a-z0-9]+]]: tensor<?xi32> {onnx.dim_names = ["num_tokens"], onnx.name = "tokens"}
// CHECK-SAME: %[[POS:[a-z0-9]+]]: tensor<?xi32> {onnx.dim_names = ["num_tokens"], onnx.name = "positions"}
// CHECK-SAME: %[[QS:[a-z0-9]+]]: tensor<?xi32> {{.*}}onnx.name = "query_start"
// CHECK-SAME: %[[LENS:[a-z0-9]+]]: tensor<?xi32> {{.*}}onnx.name = "seq_lens"
// CHECK-SAME: %[[TABLES:[a-z0-9]+]]: tensor<?x?xi32> {{.*}}onnx.name = "block_tables"
// CHECK-SAME: %[[SLOTS:[a-z0-9]+]]: tensor<?xi32> {{.*}}onnx.name = "slot_mapping"
// CHECK-SAME: %[[LI:[a-z0-9]+]]: tensor<?xi32> {{.*}}onnx.name = "logits_indices"
// CHECK-SAME: %[[KC:[a-z0-9]+]]: tensor<?x?x2x8xf32> {exec.inplace, onnx.dim_names = ["num_blocks", "block_size", "", ""], onnx.name = "k_cache.0"}
// CHECK-SAME: %[[VC:[a-z0-9]+]]: tensor<?x?x2x8xf32> {exec.inplace, {{.*}}onnx.name = "v_cache.0"}
// CHECK-SAME: -> (tensor<?x32xf32> {onnx.dim_names = ["num_logits", ""], onnx.name = "logits"})
// CHECK: %[[IDS:.+]] = linalg.generic {{.*}} ins(%[[TOK]] : tensor<?xi32>) outs(%{{.+}} : tensor<1x?xi64>)
// CHECK: arith.extsi
// CHECK: llm.embedding %{{.+}}[%[[IDS]]]
// CHECK-NOT: llm.kv_append
// CHECK: %[[K:.+]] = llm.kv_cache_write %{{.+}}, %[[KC]], %[[SLOTS]]
// CHECK: %[[V:.+]] = llm.kv_cache_write %{{.+}}, %[[VC]], %[[SLOTS]]
// CHECK: llm.paged_attention %{{.+}}, %[[K]], %[[V]], %[[TABLES]], %[[LENS]], %[[QS]] {causal, scale = 0.35355{{[0-9]+}} : f32}
// CHECK-NOT: llm.attention
// CHECK: %[[ROWS:.+]] = linalg.generic {{.*}} ins(%[[LI]] : tensor<?xi32>) outs(%{{.+}} : tensor<?x16xf32>)
// CHECK: tensor.extract
// CHECK: %[[LOGITS:.+]] = llm.matmul %[[ROWS]], %{{.+}} : tensor<?x16xf32>, tensor<16x32xf32> -> tensor<?x32xf32>
// CHECK: return %[[LOGITS]] : tensor<?x32xf32>
func.func @main(%ids: tensor<?x?xi64> {onnx.name = "input_ids"}, %mask: tensor<?x?xi64> {onnx.name = "attention_mask"},
                %pos: tensor<?x?xi64> {onnx.name = "position_ids"},
                %pk: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.key"},
                %pv: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.value"})
    -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %table = arith.constant dense<0.5> : tensor<32x16xf32>
  %cos = arith.constant dense<1.0> : tensor<64x8xf32>
  %sin = arith.constant dense<0.0> : tensor<64x8xf32>
  %wq = arith.constant dense<0.1> : tensor<16x32xf32>
  %wk = arith.constant dense<0.2> : tensor<16x16xf32>
  %head = arith.constant dense<0.3> : tensor<16x32xf32>
  %wo = arith.constant dense<0.4> : tensor<32x16xf32>
  %x = llm.embedding %table[%ids] : tensor<32x16xf32>, tensor<?x?xi64> -> tensor<?x?x16xf32>
  %q0 = llm.matmul %x, %wq : tensor<?x?x16xf32>, tensor<16x32xf32> -> tensor<?x?x32xf32>
  %q1 = llm.split_heads %q0 {num_heads = 4 : i64} : tensor<?x?x32xf32> -> tensor<?x4x?x8xf32>
  %k0 = llm.matmul %x, %wk : tensor<?x?x16xf32>, tensor<16x16xf32> -> tensor<?x?x16xf32>
  %k1 = llm.split_heads %k0 {num_heads = 2 : i64} : tensor<?x?x16xf32> -> tensor<?x2x?x8xf32>
  %q = llm.rotary %q1, %cos, %sin, %pos : tensor<?x4x?x8xf32>, tensor<64x8xf32>, tensor<64x8xf32>, tensor<?x?xi64>
  %k = llm.rotary %k1, %cos, %sin, %pos : tensor<?x2x?x8xf32>, tensor<64x8xf32>, tensor<64x8xf32>, tensor<?x?xi64>
  %kk = llm.kv_append %pk, %k : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
  %vv = llm.kv_append %pv, %k1 : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
  %a = llm.attention %q, %kk, %vv mask %mask {scale = 0.353553385 : f32, causal} : tensor<?x4x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x?xi64>
  %m = llm.merge_heads %a : tensor<?x4x?x8xf32> -> tensor<?x?x32xf32>
  %h = llm.matmul %m, %wo residual %x : tensor<?x?x32xf32>, tensor<32x16xf32> residual tensor<?x?x16xf32> -> tensor<?x?x16xf32>
  %logits = llm.matmul %h, %head : tensor<?x?x16xf32>, tensor<16x32xf32> -> tensor<?x?x32xf32>
  return %logits, %kk, %vv : tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}

// -----

// Near miss: no KV cache (no kv_append), so nothing to page: left alone.
// CHECK-LABEL: func.func @no_cache
// CHECK: llm.attention
// CHECK-NOT: llm.paged_attention
func.func @no_cache(%q: tensor<?x4x?x8xf32>, %k: tensor<?x2x?x8xf32>) -> tensor<?x4x?x8xf32> {
  %a = llm.attention %q, %k, %k {scale = 0.5 : f32, causal} : tensor<?x4x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
  return %a : tensor<?x4x?x8xf32>
}

// -----

// Near miss: a mask computed in the graph (not the [B, T] padding argument)
// is not something a flattened batch can drop: an error, not a silent rewrite.
func.func @computed_mask(%ids: tensor<?x?xi64>, %pos: tensor<?x?xi64>, %pk: tensor<?x2x?x8xf32>,
                         %q: tensor<?x4x?x8xf32>, %k: tensor<?x2x?x8xf32>, %mask: tensor<?x?xi64>)
    -> (tensor<?x4x?x8xf32>, tensor<?x2x?x8xf32>) {
  %kk = llm.kv_append %pk, %k : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
  %m2 = arith.addi %mask, %mask : tensor<?x?xi64>
  // expected-error @+1 {{paged KV cache: an attention mask that is not an argument}}
  %a = llm.attention %q, %kk, %kk mask %m2 {scale = 0.5 : f32, causal} : tensor<?x4x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x?xi64>
  return %a, %kk : tensor<?x4x?x8xf32>, tensor<?x2x?x8xf32>
}
