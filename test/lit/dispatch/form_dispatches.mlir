// RUN: kiln-opt --split-input-file --kiln-form-dispatches %s | FileCheck %s

// A matmul with its bias add and relu is one kernel; the fill of its init is
// cloned into the kernel; the weights become a constant binding.
// CHECK-LABEL: func.func private @kernel_0
// CHECK-SAME: (%{{.+}}: index, %{{.+}}: index, %[[X:.+]]: tensor<2x8xf32>, %[[W:.+]]: tensor<8x8xf32>, %[[OUT:.+]]: tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK-SAME: exec.kernel
// CHECK: linalg.fill
// CHECK: linalg.matmul
// CHECK: linalg.generic
// CHECK: arith.addf
// CHECK: arith.maximumf
// CHECK: bufferization.materialize_in_destination %{{.+}} in %[[OUT]]
// CHECK-LABEL: func.func @main
// CHECK-SAME: exec.entry
// CHECK: %[[C:.+]] = exec.constant dense_resource<weights>
// CHECK: %[[B:.+]] = exec.alloc() : tensor<2x8xf32>
// CHECK: %[[R:.+]] = exec.dispatch @kernel_0(%arg0, %[[C]]) outs(%[[B]] : tensor<2x8xf32>)
// CHECK-NOT: exec.dispatch
// CHECK: return %[[R]]
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %wr = arith.constant dense_resource<weights> : tensor<8x8xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<2x8xf32>) -> tensor<2x8xf32>
  %m = linalg.matmul ins(%x, %wr : tensor<2x8xf32>, tensor<8x8xf32>) outs(%f : tensor<2x8xf32>) -> tensor<2x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%m : tensor<2x8xf32>) outs(%e : tensor<2x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %one = arith.constant 1.0 : f32
    %s = arith.addf %a, %one : f32
    %t = arith.maximumf %s, %zero : f32
    linalg.yield %t : f32
  } -> tensor<2x8xf32>
  return %r : tensor<2x8xf32>
}

{-#
  dialect_resources: {
    builtin: {
      weights: "0x040000000000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F"
    }
  }
#-}

// -----

// Near miss: a consumer that is not elementwise (a reduction) starts a
// kernel of its own; dynamic result dims come from the host.
// CHECK-LABEL: func.func @main
// CHECK: %[[N:.+]] = exec.dim %arg0, 0 : tensor<?x4xf32>
// CHECK: %[[B0:.+]] = exec.alloc(%[[N]]) : tensor<?x4xf32>
// CHECK: %[[R0:.+]] = exec.dispatch @kernel_0(%arg0) outs(%[[B0]] : tensor<?x4xf32>)
// CHECK: exec.alloc(%{{.+}}) : tensor<?xf32>
// CHECK: exec.dispatch @kernel_1(%[[R0]], %arg0)
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @main(%x: tensor<?x4xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x4xf32>
  %e = tensor.empty(%n) : tensor<?x4xf32>
  %sq = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<?x4xf32>) outs(%e : tensor<?x4xf32>) {
  ^bb0(%a: f32, %o: f32):
    %s = arith.mulf %a, %a : f32
    linalg.yield %s : f32
  } -> tensor<?x4xf32>
  %zero = arith.constant 0.0 : f32
  %e1 = tensor.empty(%n) : tensor<?xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e1 : tensor<?xf32>) -> tensor<?xf32>
  %sum = linalg.generic {indexing_maps = [#id2, #row], iterator_types = ["parallel", "reduction"]}
      ins(%sq : tensor<?x4xf32>) outs(%f : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %s = arith.addf %a, %acc : f32
    linalg.yield %s : f32
  } -> tensor<?xf32>
  return %sum : tensor<?xf32>
}

// -----

// An entry point that returns its input gets a fresh copy.
// CHECK-LABEL: func.func @main
// CHECK: %[[C:.+]] = exec.copy %arg0 : tensor<4xf32>
// CHECK: return %[[C]]
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// A microkernel whose destination is an `exec.inplace` argument (a paged KV
// pool) updates the argument's buffer: the argument is the dispatch's out,
// with no alloc and no copy, and the kernel writes through its out argument.
// CHECK-LABEL: func.func private @kernel_0_kv_cache_write_f32(
// CHECK-SAME: %{{.+}}: index, %{{.+}}: index, %[[NEW:.+]]: tensor<1x2x?x8xf32>, %[[SL:.+]]: tensor<?xi32>, %[[OUT:.+]]: tensor<?x?x2x8xf32>)
// CHECK: llm.ukernel "kiln_uk_kv_cache_write_f32" ins(%[[NEW]], %[[SL]] : {{.*}}) outs(%[[OUT]] :
// CHECK-LABEL: func.func @inplace
// CHECK-NOT: exec.alloc
// CHECK: %[[R:.+]] = exec.dispatch @kernel_0_kv_cache_write_f32(%arg0, %arg2) outs(%arg1 : tensor<?x?x2x8xf32>)
// CHECK-NOT: exec.copy
// CHECK: exec.dispatch @kernel_1_{{.*}}(%[[R]])
func.func @inplace(%new: tensor<1x2x?x8xf32>, %pool: tensor<?x?x2x8xf32> {exec.inplace}, %slots: tensor<?xi32>) -> tensor<?x?x2x8xf32> {
  %w = llm.ukernel "kiln_uk_kv_cache_write_f32" ins(%new, %slots : tensor<1x2x?x8xf32>, tensor<?xi32>) outs(%pool : tensor<?x?x2x8xf32>) args [array<i64: 0>, array<i64: 1>, array<i64: 0, 1>, array<i64: 0, 2>, array<i64: 0, 3>, array<i64: 2, 0, 1>, array<i64: 2>] -> tensor<?x?x2x8xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %d0 = tensor.dim %w, %c0 : tensor<?x?x2x8xf32>
  %d1 = tensor.dim %w, %c1 : tensor<?x?x2x8xf32>
  %e = tensor.empty(%d0, %d1) : tensor<?x?x2x8xf32>
  %r = llm.ukernel "kiln_uk_copy_f32" ins(%w : tensor<?x?x2x8xf32>) outs(%e : tensor<?x?x2x8xf32>) args [array<i64: 0>, array<i64: 1>] -> tensor<?x?x2x8xf32>
  return %r : tensor<?x?x2x8xf32>
}

// -----

// Near miss: the same call on an argument without `exec.inplace` writes a
// fresh buffer (the caller's input is never modified).
// CHECK-LABEL: func.func @not_inplace
// CHECK: %[[B:.+]] = exec.alloc
// CHECK: exec.dispatch @kernel_0_kv_cache_write_f32(%arg0, %arg2, %arg1) outs(%[[B]] :
func.func @not_inplace(%new: tensor<1x2x?x8xf32>, %pool: tensor<?x?x2x8xf32>, %slots: tensor<?xi32>) -> tensor<?x?x2x8xf32> {
  %w = llm.ukernel "kiln_uk_kv_cache_write_f32" ins(%new, %slots : tensor<1x2x?x8xf32>, tensor<?xi32>) outs(%pool : tensor<?x?x2x8xf32>) args [array<i64: 0>, array<i64: 1>, array<i64: 0, 1>, array<i64: 0, 2>, array<i64: 0, 3>, array<i64: 2, 0, 1>, array<i64: 2>] -> tensor<?x?x2x8xf32>
  return %w : tensor<?x?x2x8xf32>
}
