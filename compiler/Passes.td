//===- Passes.td - kiln compiler passes --------------------*- tablegen -*-===//
#ifndef KILN_COMPILER_PASSES
#define KILN_COMPILER_PASSES

include "mlir/Pass/PassBase.td"

def ConvertOnnxToLinalgPass : Pass<"kiln-convert-onnx-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower onnx ops to linalg, tensor, arith and math";
  let description = [{
    Applies every `populateOnnx*Patterns` set of compiler/conversion/OnnxToLinalg
    in one partial conversion. Unsigned integer types become signless; the
    entry function's arguments and results record their runtime dtype in an
    `exec.dtype` attribute first. An op no pattern accepts is reported as
    `unsupported op '<Op>' for lowering`.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect", "mlir::linalg::LinalgDialect",
    "mlir::tensor::TensorDialect", "mlir::math::MathDialect",
    "mlir::scf::SCFDialect", "mlir::bufferization::BufferizationDialect"
  ];
}

def FormDispatchesPass : Pass<"kiln-form-dispatches", "mlir::ModuleOp"> {
  let summary = "Group tensor work into kernels and build the exec host schedule";
  let description = [{
    Each op computing a tensor is a root; elementwise consumers that only it
    feeds join its group. Every group is outlined into an `exec.kernel`
    function taking (workgroup id, workgroup count, inputs..., outs...), and
    the entry function becomes an `exec` host schedule of allocs, dims,
    constants and dispatches.
  }];
  let dependentDialects = [
    "kiln::exec::ExecDialect", "mlir::bufferization::BufferizationDialect"
  ];
}

def RaiseLlmPass : Pass<"kiln-raise-llm", "mlir::ModuleOp"> {
  let summary = "Raise transformer blocks of onnx graphs to llm ops, by structure";
  let description = [{
    Embeddings, RMSNorm/LayerNorm, linear layers with bias, GELU and residual
    epilogues, gated and GELU MLPs, head split/merge, rotary embeddings, KV
    concat and scaled-dot-product attention (GQA, causal and padding masks)
    become llm ops; the shape and mask arithmetic around them dies. See
    compiler/transforms/RaiseLlm.cpp.
  }];
  let dependentDialects = ["kiln::llm::LlmDialect"];
}

def AddKvCachePass : Pass<"kiln-add-kv-cache", "mlir::ModuleOp"> {
  let summary = "Give attention without a KV cache past/present arguments";
  let dependentDialects = ["kiln::llm::LlmDialect"];
}

def PagedKvPass : Pass<"kiln-llm-paged-kv", "mlir::ModuleOp"> {
  let summary = "Turn a concat-style KV cache into the paged `forward` entry of the runtime ABI";
  let description = [{
    The raised `main` (input_ids, attention_mask, position_ids,
    past_key_values.N.* -> logits, present.N.*) becomes `forward` over a
    flattened batch (tokens, positions, query_start, seq_lens, block_tables,
    slot_mapping, logits_indices, k_cache.N / v_cache.N pools updated in
    place -> logits [L, vocab]): kv_append + attention become
    kv_cache_write + paged_attention and the LM head runs on the
    logits_indices rows only. Functions without a KV cache are left alone.
    With `kv8` the pools are int8 rows with a per-row f32 scale.
  }];
  let options = [Option<"kv8", "kv8", "bool", "false", "int8 KV pools (hd int8 values + f32 scale per row)">];
  let dependentDialects = ["kiln::llm::LlmDialect", "mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect", "mlir::arith::ArithDialect"];
}

def LayerSkipDraftPass : Pass<"kiln-llm-speculative-layer-skip", "mlir::ModuleOp"> {
  let summary = "Add draft_forward: the paged forward's first N layers, final norm and LM head";
  let description = [{
    Self-speculative decoding: clones `forward` into `draft_forward` cut
    after `layers` transformer layers (the stream after layer N-1 feeds the
    target's own final norm and LM head), sharing the target's weights and
    keeping only those layers' KV pools.
  }];
  let options = [Option<"layers", "layers", "int", "1", "layers the draft keeps">];
  let dependentDialects = ["kiln::llm::LlmDialect"];
}

def QuantizePass : Pass<"kiln-llm-quantize", "mlir::ModuleOp"> {
  let summary = "Quantize the constant weights of llm matmuls (round to nearest)";
  let description = [{
    Every constant f32 weight [K, N] of llm.matmul, llm.gated_mlp and
    llm.gelu_mlp becomes an llm.dequantize of integer constants: `w8` (int8,
    symmetric, per output channel) or `w4gG` (int4 with zero points, groups
    of G rows of K). The LM head (a matmul onto the embedding's vocabulary)
    stays f32 unless `quantize-head`. Weights that cannot be quantized
    (group not dividing K, not constant) are left f32.
  }];
  let options = [
    Option<"scheme", "scheme", "std::string", "\"w8\"", "w8, w4g32, w4g128, w4gN, w8gN">,
    Option<"quantizeHead", "quantize-head", "bool", "false", "quantize the LM head too">,
  ];
  let dependentDialects = ["kiln::llm::LlmDialect", "mlir::arith::ArithDialect"];
}

def CalibratePass : Pass<"kiln-llm-calibrate", "mlir::ModuleOp"> {
  let summary = "Return the activations that constant llm weights read (for calibration)";
  let description = [{
    Every function gains one result, named `calibration.N`, per distinct
    input of a constant f32 weight [K, N] of llm.matmul, llm.gated_mlp and
    llm.gelu_mlp (q, k and v share one; so do gate and up). llm.gated_mlp
    and llm.gelu_mlp whose down/proj weight is constant are split into
    llm.matmul ops (and a linalg product of the gate and up halves) so that
    the input of that weight is a value too. A weight read in an earlier
    function is not exposed again. kiln-compile --calibration compiles and
    runs such a copy of the model to gather X^T X and mean |x| per input for
    --quant-method=awq|gptq; the model it ships is never rewritten like this.
  }];
  let dependentDialects = ["kiln::llm::LlmDialect", "mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect", "mlir::arith::ArithDialect"];
}

def PrunePass : Pass<"kiln-llm-prune", "mlir::ModuleOp"> {
  let summary = "2:4 semi-structured pruning of the constant weights of llm matmuls";
  let description = [{
    Every constant f32 weight [K, N] (K a multiple of 4) of llm.matmul,
    llm.gated_mlp and llm.gelu_mlp keeps the two largest-magnitude weights
    of each group of 4 consecutive rows of K per column and becomes an
    llm.sparse_24 of the kept values and their positions (`values=w8`: int8
    values with one f16 scale per column, as an llm.dequantize). The LM head
    stays dense unless `prune-head`; embeddings are never pruned; a gated
    MLP's gate and up are pruned together or not at all. Wanda (calibrated)
    scoring is only available from kiln-compile, which runs the calibration.
  }];
  let options = [
    Option<"values", "values", "std::string", "\"f32\"", "kept values: f32 or w8">,
    Option<"pruneHead", "prune-head", "bool", "false", "prune the LM head too">,
  ];
  let dependentDialects = ["kiln::llm::LlmDialect", "mlir::arith::ArithDialect"];
}

def PruneHeadsPass : Pass<"kiln-llm-prune-heads", "mlir::ModuleOp"> {
  let summary = "Structured pruning: remove attention heads (whole GQA groups) from every layer";
  let description = [{
    Per llm.paged_attention of each function, removes `heads` query heads,
    as whole GQA groups (a kv head and the query heads reading it): the
    least important by sum over the group's channels of ||W_v[:, c]||^2 *
    ||W_o[c, :]||^2 (kiln-compile --calibration uses the o_proj input's
    mean squares instead of W_v's norms). The q, k, v projections lose the
    groups' columns (and bias entries), o_proj its rows, and the layer's
    K/V pool arguments the kv heads. `heads` must be a multiple of the
    group size and less than the layer's heads.
  }];
  let options = [
    Option<"heads", "heads", "int64_t", "0", "query heads removed per layer">,
  ];
  let dependentDialects = ["kiln::llm::LlmDialect", "mlir::arith::ArithDialect"];
}

def LowerLlmPass : Pass<"kiln-lower-llm", "mlir::ModuleOp"> {
  let summary = "Lower llm ops to CPU microkernel calls, packing weights";
  let dependentDialects = ["kiln::llm::LlmDialect", "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect"];
}

#endif // KILN_COMPILER_PASSES
