// kv8: the same models as paged_kv.mlir, with int8 pools: each row is
// head_dim int8 values and an f32 scale (hd + 4 bytes); kernels write and
// read them through the same ops.
// RUN: kiln-opt %S/paged_kv.mlir --split-input-file --kiln-llm-paged-kv=kv8=true --verify-diagnostics | FileCheck %s
// RUN: kiln-opt %S/paged_kv.mlir --split-input-file --kiln-llm-paged-kv=kv8=true --kiln-lower-llm --verify-diagnostics 2>&1 | FileCheck %s --check-prefix=LOWER
// CHECK: func.func @forward(
// CHECK-SAME: xi8> {exec.inplace
// CHECK: llm.kv_cache_write {{.*}} : tensor<?x2x?x8xf32>, tensor<?x?x2x12xi8>, tensor<?xi32>
// CHECK: llm.paged_attention
// CHECK-NOT: xf32> {exec.inplace
// LOWER: llm.ukernel "kiln_uk_kv_cache_write_q8"
// LOWER: llm.ukernel "kiln_uk_paged_attention_q8"
