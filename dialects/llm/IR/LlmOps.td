//===- LlmOps.td - The llm dialect: what a transformer is made of -*- tablegen -*-===//
//
// Ops at the level where kiln's LLM transforms decide things. The raise pass
// (compiler/transforms/RaiseLlm.cpp) produces them from onnx graphs by
// structure; lower-llm turns them into `llm.ukernel` calls for the CPU.
//
// Layouts: activations are [batch, seq, hidden]; attention tensors are
// [batch, heads, seq, head_dim] ("BHSD"); weights are [in, out] (y = x @ w).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_LLM_OPS
#define KILN_LLM_OPS

include "mlir/IR/OpBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def Llm_Dialect : Dialect {
  let name = "llm";
  let summary = "Transformer building blocks: norms, rotary, attention, MLPs";
  let description = [{
    Produced from onnx graphs by `kiln-raise-llm` (structural patterns, never
    names) and consumed by the llm transforms and `kiln-lower-llm`.
  }];
  let cppNamespace = "::kiln::llm";
}

class Llm_Op<string mnemonic, list<Trait> traits = []>
    : Op<Llm_Dialect, mnemonic, traits>;

def Llm_EmbeddingOp : Llm_Op<"embedding", [Pure, AttrSizedOperandSegments]> {
  let summary = "Rows of a table picked by token ids (plus learned positions)";
  let description = [{
    `result[b, s] = table[ids[b, s]] (+ pos_table[positions[b, s]])`.
    Ids out of range are clamped.

    ```mlir
    %x = llm.embedding %table[%ids] : tensor<2048x256xf32>, tensor<?x?xi64> -> tensor<?x?x256xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$table, AnyRankedTensor:$ids,
                       Optional<AnyRankedTensor>:$pos_table,
                       Optional<AnyRankedTensor>:$positions);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $table `[` $ids `]` (`positions` $pos_table^ `[` $positions `]`)? attr-dict `:`
    type($table) `,` type($ids) (`,` type($pos_table)^ `,` type($positions))? `->` type($result)
  }];
  let hasVerifier = 1;
}

def Llm_RmsNormOp : Llm_Op<"rms_norm", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "x / sqrt(mean(x^2) + eps) * weight over the last dim";
  let description = [{
    ```mlir
    %y = llm.rms_norm %x, %w {epsilon = 1.0e-05 : f32} : tensor<?x?x256xf32>, tensor<256xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight, F32Attr:$epsilon);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` type($input) `,` type($weight)";
  let hasVerifier = 1;
}

def Llm_LayerNormOp : Llm_Op<"layer_norm", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "(x - mean) / sqrt(var + eps) * weight (+ bias) over the last dim";
  let description = [{
    ```mlir
    %y = llm.layer_norm %x, %w, %b {epsilon = 1.0e-05 : f32} : tensor<?x?x256xf32>, tensor<256xf32>, tensor<256xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       Optional<AnyRankedTensor>:$bias, F32Attr:$epsilon);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? attr-dict `:` type($input) `,` type($weight) (`,` type($bias)^)?
  }];
  let hasVerifier = 1;
}

def Llm_MatmulOp : Llm_Op<"matmul", [Pure, AttrSizedOperandSegments]> {
  let summary = "act(x @ weight + bias) + residual, weight constant [K, N]";
  let description = [{
    The linear layer. `activation` is one of `none`, `gelu_tanh`, `gelu_erf`,
    `silu`. `residual` (same shape as the result) is added after the
    activation, which is how residual connections fuse into the projection
    that precedes them.

    ```mlir
    %y = llm.matmul %x, %w : tensor<?x?x256xf32>, tensor<256x768xf32> -> tensor<?x?x768xf32>
    %z = llm.matmul %x, %w bias %b residual %r {activation = "gelu_tanh"}
           : tensor<?x?x256xf32>, tensor<256x768xf32> bias tensor<768xf32>
             residual tensor<?x?x768xf32> -> tensor<?x?x768xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       Optional<AnyRankedTensor>:$bias,
                       Optional<AnyRankedTensor>:$residual,
                       DefaultValuedStrAttr<StrAttr, "none">:$activation);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? (`residual` $residual^)? attr-dict `:`
    type($input) `,` type($weight) (`bias` type($bias)^)? (`residual` type($residual)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def Llm_DequantizeOp : Llm_Op<"dequantize", [Pure]> {
  let summary = "Integer weights read as f32: (data - zero_point) * scale per group";
  let description = [{
    `result[k, n] = (data[k, n] - zero_points[k / group_size, n]) *
    scales[k / group_size, n]`, with `group_size` consecutive rows of the
    reduction axis K sharing one scale per output column (`group_size = K`:
    per output channel). `data` is `i8` (signed, -128..127) or `i4` (unsigned,
    0..15); `scales` are `f16` [K / group_size, N]; `zero_points` (absent
    means 0) are `i8` [K / group_size, N] on the same scale as `data`.

    The op only exists in the IR, as the weight operand of `llm.matmul`,
    `llm.gated_mlp` and `llm.gelu_mlp`: `kiln-lower-llm` fuses it into the
    kernel that reads the weight, which unpacks the integers in registers.
    The f32 weight never exists in memory.

    `activation_bits = 8` asks the matmuls that read the weight to also
    quantize their input, in the weight's groups along K: each group x of
    `group_size` inputs of a row becomes `round(x * 127 / max|x|)` in int8
    at run time, the product is taken on integers (int32 sums: `sdot` on
    targets with the Armv8.2 dot product, `vpmaddubsw` with AVX2) and
    scaled back by `max|x| / 127` and the weight's scale. With i8 data it
    takes one scale per column and no zero points (w8a8: the group is the
    whole row); with i4 data any group (w4gNa8). The op's own value is
    still the f32 weight; only the kernels differ.

    ```mlir
    %w = llm.dequantize %q scales %s zero_points %z {group_size = 32 : i64}
           : tensor<256x768xi4>, tensor<8x768xf16>, tensor<8x768xi8> -> tensor<256x768xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$data, AnyRankedTensor:$scales,
                       Optional<AnyRankedTensor>:$zero_points,
                       I64Attr:$group_size,
                       OptionalAttr<I64Attr>:$activation_bits);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $data `scales` $scales (`zero_points` $zero_points^)? attr-dict `:`
    type($data) `,` type($scales) (`,` type($zero_points)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def Llm_GatedMlpOp : Llm_Op<"gated_mlp", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "down(act(x @ gate) * (x @ up)) (+ residual): SwiGLU and kin";
  let description = [{
    ```mlir
    %y = llm.gated_mlp %x, %gate, %up, %down {activation = "silu"} : tensor<?x?x256xf32>, tensor<256x768xf32>, tensor<256x768xf32>, tensor<768x256xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$gate,
                       AnyRankedTensor:$up, AnyRankedTensor:$down,
                       Optional<AnyRankedTensor>:$residual,
                       DefaultValuedStrAttr<StrAttr, "silu">:$activation);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `,` $gate `,` $up `,` $down (`residual` $residual^)? attr-dict `:`
    type($input) `,` type($gate) `,` type($up) `,` type($down) (`,` type($residual)^)?
  }];
  let hasVerifier = 1;
}

def Llm_GeluMlpOp : Llm_Op<"gelu_mlp", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "gelu(x @ fc + fc_bias) @ proj + proj_bias (+ residual)";
  let description = [{
    ```mlir
    %y = llm.gelu_mlp %x, %fc, %fcb, %proj, %projb {approximate = "tanh"} : ...
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$fc,
                       AnyRankedTensor:$fc_bias, AnyRankedTensor:$proj,
                       AnyRankedTensor:$proj_bias,
                       Optional<AnyRankedTensor>:$residual,
                       DefaultValuedStrAttr<StrAttr, "tanh">:$approximate);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `,` $fc `,` $fc_bias `,` $proj `,` $proj_bias (`residual` $residual^)? attr-dict `:`
    type($input) `,` type($fc) `,` type($fc_bias) `,` type($proj) `,` type($proj_bias) (`,` type($residual)^)?
  }];
  let hasVerifier = 1;
}

def Llm_SplitHeadsOp : Llm_Op<"split_heads", [Pure]> {
  let summary = "[B, S, H*hd] -> [B, H, S, hd]";
  let description = [{
    ```mlir
    %q = llm.split_heads %x {num_heads = 8 : i64} : tensor<?x?x256xf32> -> tensor<?x8x?x32xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, I64Attr:$num_heads);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Llm_MergeHeadsOp : Llm_Op<"merge_heads", [Pure]> {
  let summary = "[B, H, S, hd] -> [B, S, H*hd]";
  let description = [{
    ```mlir
    %x = llm.merge_heads %a : tensor<?x8x?x32xf32> -> tensor<?x?x256xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Llm_RotaryOp : Llm_Op<"rotary", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Rotary position embedding (rotate-half form) on [B, H, S, hd]";
  let description = [{
    `x * cos[pos] + rotate_half(x) * sin[pos]` with `cos`/`sin` tables
    [max_pos, hd] and positions [B, S].

    ```mlir
    %r = llm.rotary %q, %cos, %sin, %pos : tensor<?x8x?x32xf32>, tensor<1024x32xf32>, tensor<1024x32xf32>, tensor<?x?xi64>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$cos,
                       AnyRankedTensor:$sin, AnyRankedTensor:$positions);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `,` $cos `,` $sin `,` $positions attr-dict `:`
    type($input) `,` type($cos) `,` type($sin) `,` type($positions)
  }];
  let hasVerifier = 1;
}

def Llm_KvAppendOp : Llm_Op<"kv_append", [Pure]> {
  let summary = "The KV cache update: concat(past, new) along the sequence";
  let description = [{
    ```mlir
    %k = llm.kv_append %past, %new : tensor<?x2x?x32xf32>, tensor<?x2x?x32xf32> -> tensor<?x2x?x32xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$past, AnyRankedTensor:$new_value);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$past `,` $new_value attr-dict `:` type($past) `,` type($new_value) `->` type($result)";
  let hasVerifier = 1;
}

def Llm_AttentionOp : Llm_Op<"attention", [Pure, AllTypesMatch<["query", "result"]>]> {
  let summary = "softmax(scale * q k^T + masks) v with GQA";
  let description = [{
    q [B, H, S, hd], k and v [B, KVH, T, hd] with H a multiple of KVH (query
    head h reads kv head h / (H / KVH)). `causal`: query s sits at position
    T - S + s and sees keys up to it. `mask` [B, T] (optional): keys where
    it is 0 are not seen.

    ```mlir
    %o = llm.attention %q, %k, %v mask %m {scale = 0.17677 : f32, causal} : ...
    ```
  }];
  let arguments = (ins AnyRankedTensor:$query, AnyRankedTensor:$key,
                       AnyRankedTensor:$value, Optional<AnyRankedTensor>:$mask,
                       F32Attr:$scale, UnitAttr:$causal);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`mask` $mask^)? attr-dict `:`
    type($query) `,` type($key) `,` type($value) (`,` type($mask)^)?
  }];
  let hasVerifier = 1;
}

def Llm_KvCacheWriteOp : Llm_Op<"kv_cache_write", [AllTypesMatch<["cache", "result"]>]> {
  let summary = "Writes new K or V rows into a paged pool at slot_mapping";
  let description = [{
    `new_value` [1, KVH, N, hd] (the step's new tokens, head-major), `cache`
    [num_blocks, block_size, KVH, hd], `slots` i32 [N]: token t goes to row
    `slots[t]` of the pool viewed as [num_blocks * block_size, KVH, hd];
    -1 skips it. The result is the updated pool. When `cache` is an argument
    of the entry function the update happens in place (the runtime's pools,
    see the `forward` ABI): dispatch formation writes into the argument's
    buffer instead of a copy.

    ```mlir
    %kc1 = llm.kv_cache_write %k, %kc, %slots : tensor<1x2x?x32xf32>, tensor<?x?x2x32xf32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$new_value, AnyRankedTensor:$cache, AnyRankedTensor:$slots);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$new_value `,` $cache `,` $slots attr-dict `:` type($new_value) `,` type($cache) `,` type($slots)";
  let hasVerifier = 1;
}

def Llm_PagedAttentionOp : Llm_Op<"paged_attention", [Pure, AllTypesMatch<["query", "result"]>]> {
  let summary = "Attention of a flattened batch over paged K/V pools";
  let description = [{
    q [1, H, N, hd]: sequence b owns rows `query_start[b] .. query_start[b+1]`
    and has `seq_lens[b]` tokens of context (cached + new); its key j lives in
    block `block_tables[b, j / block_size]` at offset `j % block_size` of the
    pools `key_cache`, `value_cache` [num_blocks, block_size, KVH, hd]. GQA as
    in `llm.attention`; `causal`: a sequence's row s sits at position
    seq_len - S_b + s. All index operands are i32.

    ```mlir
    %o = llm.paged_attention %q, %kc, %vc, %tables, %lens, %starts {scale = 0.17677 : f32, causal} : ...
    ```
  }];
  let arguments = (ins AnyRankedTensor:$query, AnyRankedTensor:$key_cache,
                       AnyRankedTensor:$value_cache, AnyRankedTensor:$block_tables,
                       AnyRankedTensor:$seq_lens, AnyRankedTensor:$query_start,
                       F32Attr:$scale, UnitAttr:$causal);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $query `,` $key_cache `,` $value_cache `,` $block_tables `,` $seq_lens `,` $query_start attr-dict `:`
    type($query) `,` type($key_cache) `,` type($value_cache) `,` type($block_tables) `,` type($seq_lens) `,` type($query_start)
  }];
  let hasVerifier = 1;
}

def Llm_UkernelOp : Llm_Op<"ukernel", [AttrSizedOperandSegments,
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<ReifyRankedShapedTypeOpInterface, ["reifyResultShapes"]>,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "A call of a CPU microkernel on tensors or buffers";
  let description = [{
    Calls the C function `callee` (targets/cpu/ukernels) with the argument
    list `args`, whose entries are, in order:
      - `[i]`: the data pointer of operand i (ins then outs), or null for a
        negative i;
      - `[i, d0, d1, ...]`: the product of dims d0, d1, ... of operand i (i64);
      - an integer or float attribute: that literal (its own width);
    followed by the workgroup id and count (i64). The microkernel splits its
    work over workgroups itself. On tensors the results are the `outs`.

    ```mlir
    %y = llm.ukernel "kiln_uk_rms_norm_f32" ins(%x, %w : ...) outs(%e : ...)
           args [[0], [0, 0, 1], [0, 2], [1], 1.0e-05 : f32, [2]] -> tensor<?x?x256xf32>
    ```
  }];
  let arguments = (ins StrAttr:$callee, Variadic<AnyShaped>:$inputs,
                       Variadic<AnyShaped>:$outputs, ArrayAttr:$args);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    $callee (`ins` `(` $inputs^ `:` type($inputs) `)`)? `outs` `(` $outputs `:` type($outputs) `)`
    `args` $args attr-dict (`->` type($results)^)?
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    mlir::MutableOperandRange getDpsInitsMutable() { return getOutputsMutable(); }
  }];
}

def Llm_Sparse24Op : Llm_Op<"sparse_24", [Pure]> {
  let summary = "A 2:4 sparse weight: two kept values of each group of 4 rows of K";
  let description = [{
    The f32 weight [K, N] (K a multiple of 4) of which, in each column, only
    two of every four consecutive rows of K are non-zero (semi-structured
    2:4 sparsity, `kiln-llm-prune`). `values` [K/2, N] holds the kept
    weights and `indices` [K/2, N] (i8, 0..3) their positions: rows 2g and
    2g + 1 are the two kept weights of group g (rows 4g .. 4g+3), at rows
    4g + indices[2g, n] and 4g + indices[2g + 1, n], in increasing order.

    `values` is an f32 constant, or an `llm.dequantize` of one (2:4 + w8:
    int8 values with a per-column scale, `group_size` = K/2). Like
    `llm.dequantize`, the op only exists as the weight of `llm.matmul`,
    `llm.gated_mlp` and `llm.gelu_mlp`: `kiln-lower-llm` packs it for the
    2:4 kernels, which read and multiply only the kept half. The dense
    weight never exists.

    ```mlir
    %w = llm.sparse_24 %v indices %i
           : tensor<128x768xf32>, tensor<128x768xi8> -> tensor<256x768xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$values, AnyRankedTensor:$indices);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $values `indices` $indices attr-dict `:` type($values) `,` type($indices) `->` type($result)
  }];
  let hasVerifier = 1;
}

#endif // KILN_LLM_OPS
