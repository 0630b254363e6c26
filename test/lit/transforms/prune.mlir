// RUN: kiln-opt %s --split-input-file --kiln-llm-prune | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-llm-prune="values=w8" | FileCheck %s --check-prefix=W8
// RUN: kiln-opt %s --split-input-file --kiln-llm-prune="prune-head=true" | FileCheck %s --check-prefix=HEAD

// Magnitude 2:4: per column, the two largest |W| of rows 0..3 are kept, in
// row order. Column 0: |0.1|, |-4|, |0.2|, |3| -> rows 1 and 3 (-4, 3);
// column 1: 5, 0, 0, -6 -> rows 0 and 3 (5, -6). Values [2, 2] f32 row by
// row: -4, 5, 3, -6; indices [[1, 0], [3, 3]].
// CHECK-LABEL: func @magnitude
// CHECK: %[[I:.*]] = arith.constant dense_resource<[[IN:.*]]> : tensor<2x2xi8>
// CHECK: %[[V:.*]] = arith.constant dense_resource<[[VN:.*]]> : tensor<2x2xf32>
// CHECK: %[[W:.*]] = llm.sparse_24 %[[V]] indices %[[I]] : tensor<2x2xf32>, tensor<2x2xi8> -> tensor<4x2xf32>
// CHECK: llm.matmul %arg0, %[[W]]
// CHECK-NOT: tensor<4x2xf32> = dense
// CHECK: [[IN]]: "0x4000000001000303"
// CHECK: [[VN]]: "0x40000000000080C00000A040000040400000C0C0"
// W8-LABEL: func @magnitude
// W8: %[[I:.*]] = arith.constant dense_resource<{{.*}}> : tensor<2x2xi8>
// W8: %[[Q:.*]] = arith.constant dense_resource<{{.*}}> : tensor<2x2xi8>
// W8: %[[S:.*]] = arith.constant dense_resource<{{.*}}> : tensor<1x2xf16>
// W8: %[[V:.*]] = llm.dequantize %[[Q]] scales %[[S]] {group_size = 2 : i64}
// W8: llm.sparse_24 %[[V]] indices %[[I]]
func.func @magnitude(%x: tensor<?x4xf32>) -> tensor<?x2xf32> {
  %w = arith.constant dense<[[0.1, 5.0], [-4.0, 0.0], [0.2, 0.0], [3.0, -6.0]]> : tensor<4x2xf32>
  %y = llm.matmul %x, %w : tensor<?x4xf32>, tensor<4x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// Left alone: a weight that is not a constant, a K that is not a multiple
// of 4, the LM head (the matmul onto the embedding's 10 rows) unless
// prune-head; the gated MLP's gate and up (one shared constant) and down
// are pruned.
// CHECK-LABEL: func @layer
// CHECK: llm.embedding
// CHECK: llm.matmul %{{.*}}, %arg2 residual
// CHECK: llm.matmul %arg3, %{{.*}} residual %{{.*}} : tensor<?x?x6xf32>, tensor<6x8xf32>
// CHECK: %[[G:.*]] = llm.sparse_24 {{.*}} -> tensor<8x12xf32>
// CHECK: %[[D:.*]] = llm.sparse_24 {{.*}} -> tensor<12x8xf32>
// CHECK: llm.gated_mlp %{{.*}}, %[[G]], %[[G]], %[[D]] residual
// CHECK: llm.matmul %{{.*}}, %{{.*}} : tensor<?x?x8xf32>, tensor<8x10xf32>
// CHECK-NOT: llm.sparse_24
// CHECK: return
// HEAD-LABEL: func @layer
// HEAD: llm.sparse_24 {{.*}} -> tensor<8x10xf32>
func.func @layer(%ids: tensor<?x?xi64>, %table: tensor<10x8xf32>, %wr: tensor<8x8xf32>,
                 %x6: tensor<?x?x6xf32>) -> tensor<?x?x10xf32> {
  %x = llm.embedding %table[%ids] : tensor<10x8xf32>, tensor<?x?xi64> -> tensor<?x?x8xf32>
  %a = llm.matmul %x, %wr residual %x : tensor<?x?x8xf32>, tensor<8x8xf32> residual tensor<?x?x8xf32> -> tensor<?x?x8xf32>
  %w6 = arith.constant dense<2.0> : tensor<6x8xf32>
  %b = llm.matmul %x6, %w6 residual %a : tensor<?x?x6xf32>, tensor<6x8xf32> residual tensor<?x?x8xf32> -> tensor<?x?x8xf32>
  %g = arith.constant dense<0.25> : tensor<8x12xf32>
  %d = arith.constant dense<0.5> : tensor<12x8xf32>
  %m = llm.gated_mlp %b, %g, %g, %d residual %b : tensor<?x?x8xf32>, tensor<8x12xf32>, tensor<8x12xf32>, tensor<12x8xf32>, tensor<?x?x8xf32>
  %head = arith.constant dense<1.0> : tensor<8x10xf32>
  %l = llm.matmul %m, %head : tensor<?x?x8xf32>, tensor<8x10xf32> -> tensor<?x?x10xf32>
  return %l : tensor<?x?x10xf32>
}
