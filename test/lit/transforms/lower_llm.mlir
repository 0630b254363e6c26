// RUN: kiln-opt %s --split-input-file --kiln-lower-llm --verify-diagnostics | FileCheck %s

// A linear layer becomes one microkernel call on a packed weight: N = 20
// columns need two 16-wide panels, so the [2, 20] weight packs to 2*2*16.
// CHECK-LABEL: func @matmul
// CHECK: %[[P:.*]] = arith.constant dense_resource<{{.*}}> : tensor<64xf32>
// CHECK: %[[E:.*]] = tensor.empty(%{{.*}}) : tensor<?x20xf32>
// CHECK: llm.ukernel "kiln_uk_matmul_f32" ins(%arg0, %[[P]] : tensor<?x2xf32>, tensor<64xf32>) outs(%[[E]] : tensor<?x20xf32>) args [array<i64: 0>, array<i64: 0, 0>, array<i64: 0, 1>, array<i64: 1>, 20, array<i64: -1>, array<i64: -1>, 0 : i32, array<i64: 2>]
// CHECK-NOT: llm.matmul
func.func @matmul(%x: tensor<?x2xf32>) -> tensor<?x20xf32> {
  %w = arith.constant dense<1.0> : tensor<2x20xf32>
  %y = llm.matmul %x, %w : tensor<?x2xf32>, tensor<2x20xf32> -> tensor<?x20xf32>
  return %y : tensor<?x20xf32>
}

// -----

// Near miss: weights computed at run time cannot be packed at compile time.
func.func @runtime_weight(%x: tensor<?x2xf32>, %w: tensor<2x20xf32>) -> tensor<?x20xf32> {
  // expected-error @+1 {{weights must be a constant f32 [K, N] tensor}}
  %y = llm.matmul %x, %w : tensor<?x2xf32>, tensor<2x20xf32> -> tensor<?x20xf32>
  return %y : tensor<?x20xf32>
}

// -----

// The KV append allocates past + new rows.
// CHECK-LABEL: func @kv_append
// CHECK: %[[T:.*]] = arith.addi
// CHECK: tensor.empty(%{{.*}}, %[[T]]) : tensor<?x2x?x8xf32>
// CHECK: llm.ukernel "kiln_uk_kv_append_f32"
func.func @kv_append(%p: tensor<?x2x?x8xf32>, %n: tensor<?x2x?x8xf32>) -> tensor<?x2x?x8xf32> {
  %k = llm.kv_append %p, %n : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32> -> tensor<?x2x?x8xf32>
  return %k : tensor<?x2x?x8xf32>
}
