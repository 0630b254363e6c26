// RUN: kiln-opt %s --split-input-file --kiln-llm-quantize=scheme=w8 | FileCheck %s --check-prefix=W8
// RUN: kiln-opt %s --split-input-file --kiln-llm-quantize=scheme=w4g32 | FileCheck %s --check-prefix=W4
// RUN: kiln-opt %s --split-input-file --kiln-llm-quantize="scheme=w4g32 quantize-head=true" | FileCheck %s --check-prefix=HEAD
// RUN: kiln-opt %s --split-input-file --kiln-llm-quantize=scheme=w8a8 | FileCheck %s --check-prefix=W8A8
// RUN: kiln-opt %s --split-input-file --kiln-llm-quantize=scheme=w4g32a8 | FileCheck %s --check-prefix=W4A8

// w8: int8 per output column, s = max|W| / 127 rounded to f16 (0x2008 =
// 0.0078735), q = round(W / s): 0.5 -> 64, -1 -> -127, 1 -> 127, 0.25 -> 32.
// W8-LABEL: func @w8
// W8: %[[Q:.*]] = arith.constant dense_resource<[[QN:.*]]> : tensor<2x2xi8>
// W8: %[[S:.*]] = arith.constant dense_resource<[[SN:.*]]> : tensor<1x2xf16>
// W8: %[[W:.*]] = llm.dequantize %[[Q]] scales %[[S]] {group_size = 2 : i64} : tensor<2x2xi8>, tensor<1x2xf16> -> tensor<2x2xf32>
// W8-NOT: activation_bits
// W8: llm.matmul %arg0, %[[W]]
// W8: [[QN]]: "0x4000000040817F20"
// W8: [[SN]]: "0x4000000008200820"
// w8a8: the same integers and scales; the dequantize also asks its matmul
// for int8 activations.
// W8A8-LABEL: func @w8
// W8A8: %[[Q:.*]] = arith.constant dense_resource<[[QN:.*]]> : tensor<2x2xi8>
// W8A8: %[[S:.*]] = arith.constant dense_resource<[[SN:.*]]> : tensor<1x2xf16>
// W8A8: llm.dequantize %[[Q]] scales %[[S]] {activation_bits = 8 : i64, group_size = 2 : i64}
// W8A8: [[QN]]: "0x4000000040817F20"
// W8A8: [[SN]]: "0x4000000008200820"
func.func @w8(%x: tensor<?x2xf32>) -> tensor<?x2xf32> {
  %w = arith.constant dense<[[0.5, -1.0], [1.0, 0.25]]> : tensor<2x2xf32>
  %y = llm.matmul %x, %w : tensor<?x2xf32>, tensor<2x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// w4g32: int4 with zero points in groups of 32 rows of K. The range
// [0, 0.5] in 15 steps: s = 0.0333 (f16 0x2844), z = 0, q = 15. The
// residual projection (K = 16) is not a multiple of the group and stays
// f32, and so does the LM head (N = the embedding's 10 rows) unless
// quantize-head. In w8 every weight but the head is quantized.
// W4-LABEL: func @layer
// W4: %[[Q:.*]] = arith.constant dense_resource<[[QN:.*]]> : tensor<64x16xi4>
// W4: %[[S:.*]] = arith.constant dense_resource<[[SN:.*]]> : tensor<2x16xf16>
// W4: %[[Z:.*]] = arith.constant dense_resource<[[ZN:.*]]> : tensor<2x16xi8>
// W4: %[[W:.*]] = llm.dequantize %[[Q]] scales %[[S]] zero_points %[[Z]] {group_size = 32 : i64}
// W4: %[[D:.*]] = arith.constant dense<2.500000e-01> : tensor<16x64xf32>
// W4: %[[H:.*]] = arith.constant dense<1.000000e+00> : tensor<64x10xf32>
// W4: %[[A:.*]] = llm.matmul %{{.*}}, %[[W]] :
// W4: %[[B:.*]] = llm.matmul %[[A]], %[[D]] residual
// W4: llm.matmul %[[B]], %[[H]] :
// W4: [[QN]]: "0x400000000F0F0F0F0F0F0F0F
// W4: [[SN]]: "0x40000000442844284428
// W4: [[ZN]]: "0x4000000000000000000000

// w4g32a8: the same int4 weight, asking its matmul for int8 inputs per
// group (the pass itself picks no activations: plain w4g32 has none).
// W4A8-LABEL: func @layer
// W4A8: llm.dequantize {{.*}} zero_points {{.*}} {activation_bits = 8 : i64, group_size = 32 : i64} : tensor<64x16xi4>
// W4-NOT: activation_bits

// W8-LABEL: func @layer
// W8-COUNT-2: llm.dequantize
// W8-NOT: llm.dequantize
// W8: return

// HEAD-LABEL: func @layer
// HEAD: llm.dequantize {{.*}} -> tensor<64x16xf32>
// HEAD: llm.dequantize {{.*}} -> tensor<64x10xf32>
// HEAD-NOT: llm.dequantize
// HEAD: return
func.func @layer(%ids: tensor<?x?xi64>, %table: tensor<10x64xf32>) -> tensor<?x?x10xf32> {
  %w = arith.constant dense<0.5> : tensor<64x16xf32>
  %d = arith.constant dense<0.25> : tensor<16x64xf32>
  %h = arith.constant dense<1.0> : tensor<64x10xf32>
  %x = llm.embedding %table[%ids] : tensor<10x64xf32>, tensor<?x?xi64> -> tensor<?x?x64xf32>
  %a = llm.matmul %x, %w : tensor<?x?x64xf32>, tensor<64x16xf32> -> tensor<?x?x16xf32>
  %b = llm.matmul %a, %d residual %x : tensor<?x?x16xf32>, tensor<16x64xf32> residual tensor<?x?x64xf32> -> tensor<?x?x64xf32>
  %l = llm.matmul %b, %h : tensor<?x?x64xf32>, tensor<64x10xf32> -> tensor<?x?x10xf32>
  return %l : tensor<?x?x10xf32>
}

// -----

// Near miss: a weight that is not a constant is left alone.
// W8-LABEL: func @runtime_weight
// W8-NOT: llm.dequantize
// W8: llm.matmul %arg0, %arg1
func.func @runtime_weight(%x: tensor<?x8xf32>, %w: tensor<8x8xf32>) -> tensor<?x8xf32> {
  %y = llm.matmul %x, %w : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// A gated MLP: gate, up and down each get their own quantized weight; one
// weight read twice is quantized once.
// W4-LABEL: func @gated
// W4-COUNT-2: llm.dequantize {{.*}} -> tensor<32x64xf32>
// W4: %[[DN:.*]] = llm.dequantize {{.*}} -> tensor<64x32xf32>
// W4: llm.gated_mlp %arg0, %{{.*}}, %{{.*}}, %[[DN]]
// W4: llm.gated_mlp %{{.*}}, %{{.*}}, %{{.*}}, %[[DN]]
func.func @gated(%x: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %g = arith.constant dense<0.5> : tensor<32x64xf32>
  %u = arith.constant dense<-0.5> : tensor<32x64xf32>
  %d = arith.constant dense<0.125> : tensor<64x32xf32>
  %y = llm.gated_mlp %x, %g, %u, %d : tensor<?x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>
  %z = llm.gated_mlp %y, %g, %u, %d : tensor<?x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>
  return %z : tensor<?x32xf32>
}
