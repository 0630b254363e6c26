//===- PagedKv.cpp - Concat-style KV cache -> the paged `forward` ABI ------===//
//
// After raising (and kiln-add-kv-cache for cache-less exports) an LLM's
// cache is `present = llm.kv_append(past, new)` feeding `llm.attention`,
// one sequence at a time with the whole cache copied every step. This pass
// turns the entry into the vLLM-style `forward` of DESIGN.md:
//
//   tokens, positions, slot_mapping   i32 [T]   (all sequences' new tokens)
//   query_start i32 [B+1], seq_lens i32 [B], block_tables i32 [B, M]
//   logits_indices i32 [L]
//   k_cache.N, v_cache.N [num_blocks, block_size, KVH, hd]   (in place)
//   -> logits f32 [L, vocab]
//
// The flattened batch is one row of T tokens ([1, T, D]): every op other
// than attention works per token, so only attention needs to know where one
// sequence ends. Per layer:
//   kv_append(past, new) -> kv_cache_write(new, pool, slot_mapping)
//   attention(q, k, v, mask) -> paged_attention(q, pools, block tables, ...)
// and the LM head runs on the `logits_indices` rows only (a gather of its
// input), so a prefill of T tokens computes one row of logits, not T.
// Ids and positions are widened to the i64 [1, T] the raised ops read.
// Inputs are found by structure: the embedding's ids, the rotary/embedding
// positions, the attention masks and the kv_append pasts.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/PagedKv.h"

#include "dialects/exec/IR/ExecDialect.h"
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;

namespace kiln {
namespace {

/// i32 [T] -> i64 [1, T] (the [batch, seq] ids/positions the raised ops
/// read), as one elementwise linalg op.
Value asBatchOfOne(OpBuilder &b, Location loc, Value v) {
  MLIRContext *ctx = b.getContext();
  auto i64 = IntegerType::get(ctx, 64);
  Value n = tensor::DimOp::create(b, loc, v, 0);
  Value init = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{1, ShapedType::kDynamic}, i64, ValueRange{n});
  AffineExpr d1 = getAffineDimExpr(1, ctx);
  SmallVector<AffineMap> maps{AffineMap::get(2, 0, {d1}, ctx), AffineMap::getMultiDimIdentityMap(2, ctx)};
  SmallVector<utils::IteratorType> iters(2, utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), ValueRange{v}, ValueRange{init}, maps, iters,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        linalg::YieldOp::create(nb, nl, ValueRange{arith::ExtSIOp::create(nb, nl, i64, args[0])});
      });
  return generic.getResult(0);
}

/// rows [L, D] = hidden[0, indices[l], :] for hidden [1, T, D], i32 indices.
Value gatherRows(OpBuilder &b, Location loc, Value hidden, Value indices) {
  MLIRContext *ctx = b.getContext();
  auto ht = cast<RankedTensorType>(hidden.getType());
  Value n = tensor::DimOp::create(b, loc, indices, 0);
  SmallVector<Value> dyn{n};
  if (ht.isDynamicDim(2))
    dyn.push_back(tensor::DimOp::create(b, loc, hidden, 2));
  Value init = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{ShapedType::kDynamic, ht.getDimSize(2)},
                                       ht.getElementType(), dyn);
  SmallVector<AffineMap> maps{AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx),
                              AffineMap::getMultiDimIdentityMap(2, ctx)};
  SmallVector<utils::IteratorType> iters(2, utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), ValueRange{indices}, ValueRange{init}, maps, iters,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value row = arith::IndexCastOp::create(nb, nl, nb.getIndexType(), args[0]);
        Value zero = arith::ConstantIndexOp::create(nb, nl, 0);
        Value col = linalg::IndexOp::create(nb, nl, 1);
        Value x = tensor::ExtractOp::create(nb, nl, hidden, ValueRange{zero, row, col});
        linalg::YieldOp::create(nb, nl, ValueRange{x});
      });
  return generic.getResult(0);
}

DictionaryAttr argAttrs(OpBuilder &b, StringRef name, ArrayRef<StringRef> dims, bool inplace = false) {
  SmallVector<NamedAttribute> attrs;
  attrs.push_back(b.getNamedAttr("onnx.name", b.getStringAttr(name)));
  SmallVector<Attribute> d;
  for (StringRef s : dims)
    d.push_back(b.getStringAttr(s));
  attrs.push_back(b.getNamedAttr("onnx.dim_names", b.getArrayAttr(d)));
  if (inplace)
    attrs.push_back(b.getNamedAttr(exec::kInplaceAttr, b.getUnitAttr()));
  return DictionaryAttr::get(b.getContext(), attrs);
}

BlockArgument argOf(Value v, Block &entry) {
  auto arg = dyn_cast<BlockArgument>(v);
  return arg && arg.getOwner() == &entry ? arg : BlockArgument();
}

} // namespace

int convertToPagedKv(func::FuncOp fn, std::string &error, bool int8Cache) {
  Block &entry = fn.getBody().front();
  auto ret = cast<func::ReturnOp>(entry.getTerminator());
  SmallVector<llm::AttentionOp> attentions;
  fn.walk([&](llm::AttentionOp a) { attentions.push_back(a); });
  bool anyAppend = false;
  fn.walk([&](llm::KvAppendOp) { anyAppend = true; });
  if (!anyAppend)
    return 0;
  auto fail = [&](Operation *op, const Twine &why) {
    error = ("paged KV cache: " + why).str();
    if (op)
      op->emitError(error);
    return -1;
  };

  // What the rewrite replaces, found by structure.
  llvm::SetVector<Value> oldArgs; // input_ids, positions, masks, pasts
  llvm::DenseSet<Value> presents;
  struct Layer {
    llm::AttentionOp attention;
    llm::KvAppendOp key, value;
  };
  SmallVector<Layer> layers;
  for (llm::AttentionOp a : attentions) {
    auto k = a.getKey().getDefiningOp<llm::KvAppendOp>();
    auto v = a.getValue().getDefiningOp<llm::KvAppendOp>();
    if (!k || !v)
      return fail(a, "an attention whose keys/values do not come from the KV cache");
    for (llm::KvAppendOp app : {k, v}) {
      BlockArgument past = argOf(app.getPast(), entry);
      if (!past)
        return fail(app, "a KV cache whose past is not an argument of the entry");
      oldArgs.insert(past);
      for (Operation *user : app->getUsers())
        if (user != a.getOperation() && !isa<func::ReturnOp>(user))
          return fail(user, "the KV cache is read by something other than its attention");
      presents.insert(app.getResult());
    }
    if (Value m = a.getMask()) {
      BlockArgument arg = argOf(m, entry);
      if (!arg)
        return fail(a, "an attention mask that is not an argument (only [B, T] padding masks are dropped)");
      oldArgs.insert(arg);
    }
    layers.push_back({a, k, v});
  }
  SmallVector<llm::EmbeddingOp> embeddings;
  fn.walk([&](llm::EmbeddingOp e) { embeddings.push_back(e); });
  if (embeddings.size() != 1)
    return fail(fn, "expected one token embedding, found " + Twine(embeddings.size()));
  BlockArgument ids = argOf(embeddings[0].getIds(), entry);
  if (!ids)
    return fail(embeddings[0], "token ids that are not an argument");
  BlockArgument positionArg;
  auto notePositions = [&](Operation *op, Value p) -> bool {
    BlockArgument arg = argOf(p, entry);
    if (!arg || (positionArg && arg != positionArg)) {
      fail(op, "positions that are not the one position_ids argument");
      return false;
    }
    positionArg = arg;
    return true;
  };
  if (Value p = embeddings[0].getPositions())
    if (!notePositions(embeddings[0], p))
      return -1;
  bool badRotary = false;
  fn.walk([&](llm::RotaryOp r) { badRotary |= !notePositions(r, r.getPositions()); });
  if (badRotary)
    return -1;
  if (!positionArg)
    return fail(fn, "no position_ids argument (learned or rotary positions are needed)");
  Value logits;
  for (Value v : ret.getOperands())
    if (!presents.contains(v)) {
      if (logits)
        return fail(ret, "more than one output besides the KV cache");
      logits = v;
    }
  if (!logits)
    return fail(ret, "no logits output");
  auto logitsType = cast<RankedTensorType>(logits.getType());
  if (logitsType.getRank() != 3)
    return fail(ret, "logits are not [batch, seq, vocab]");

  if (int8Cache)
    for (auto &layer : layers) {
      int64_t hd = cast<RankedTensorType>(layer.key.getNewValue().getType()).getDimSize(3);
      if (ShapedType::isDynamic(hd) || hd > 256)
        return fail(layer.key, "an int8 KV cache (kv8) needs a static head_dim of at most 256");
    }

  // The new arguments.
  OpBuilder b(fn.getContext());
  MLIRContext *ctx = fn.getContext();
  Location loc = fn.getLoc();
  const int64_t dyn = ShapedType::kDynamic;
  auto i32 = IntegerType::get(ctx, 32);
  auto vec = RankedTensorType::get({dyn}, i32);
  auto add = [&](Type t, DictionaryAttr attrs) {
    unsigned i = fn.getNumArguments();
    (void)fn.insertArgument(i, t, attrs, loc);
    return fn.getArgument(i);
  };
  Value tokens = add(vec, argAttrs(b, "tokens", {"num_tokens"}));
  Value positions = add(vec, argAttrs(b, "positions", {"num_tokens"}));
  Value queryStart = add(vec, argAttrs(b, "query_start", {"num_seqs_plus_one"}));
  Value seqLens = add(vec, argAttrs(b, "seq_lens", {"num_seqs"}));
  Value blockTables = add(RankedTensorType::get({dyn, dyn}, i32),
                          argAttrs(b, "block_tables", {"num_seqs", "max_blocks_per_seq"}));
  Value slotMapping = add(vec, argAttrs(b, "slot_mapping", {"num_tokens"}));
  Value logitsIndices = add(vec, argAttrs(b, "logits_indices", {"num_logits"}));
  SmallVector<Value> pools;
  for (auto [n, layer] : llvm::enumerate(layers))
    for (auto [which, app] : llvm::enumerate(SmallVector<llm::KvAppendOp>{layer.key, layer.value})) {
      auto t = cast<RankedTensorType>(app.getNewValue().getType());
      // kv8: each (token, kv head) row is hd int8 values followed by its f32
      // scale (4 bytes), one pool per layer and K/V as in f32.
      auto pool = int8Cache ? RankedTensorType::get({dyn, dyn, t.getDimSize(1), t.getDimSize(3) + 4},
                                                    IntegerType::get(ctx, 8))
                            : RankedTensorType::get({dyn, dyn, t.getDimSize(1), t.getDimSize(3)},
                                                    t.getElementType());
      std::string name = (which == 0 ? "k_cache." : "v_cache.") + std::to_string(n);
      pools.push_back(add(pool, argAttrs(b, name, {"num_blocks", "block_size", "", ""}, /*inplace=*/true)));
    }

  // Ids and positions as a batch of one.
  b.setInsertionPointToStart(&entry);
  ids.replaceAllUsesWith(asBatchOfOne(b, loc, tokens));
  positionArg.replaceAllUsesWith(asBatchOfOne(b, loc, positions));
  oldArgs.insert(ids);
  oldArgs.insert(positionArg);

  // Attention through the pools.
  for (auto [n, layer] : llvm::enumerate(layers)) {
    llm::AttentionOp a = layer.attention;
    b.setInsertionPoint(a);
    Value kc = llm::KvCacheWriteOp::create(b, layer.key.getLoc(), pools[2 * n].getType(),
                                           layer.key.getNewValue(), pools[2 * n], slotMapping);
    Value vc = llm::KvCacheWriteOp::create(b, layer.value.getLoc(), pools[2 * n + 1].getType(),
                                           layer.value.getNewValue(), pools[2 * n + 1], slotMapping);
    Value o = llm::PagedAttentionOp::create(b, a.getLoc(), a.getType(), a.getQuery(), kc, vc, blockTables,
                                            seqLens, queryStart, a.getScaleAttr(), a.getCausalAttr());
    a.getResult().replaceAllUsesWith(o);
    a.erase();
  }

  // Logits of the wanted rows only: the LM head reads the gathered rows of
  // its input ([L, D]) and gives [L, vocab] directly.
  auto head = logits.getDefiningOp<llm::MatmulOp>();
  if (!head || head.getResidual() || !head.getResult().hasOneUse())
    return fail(ret, "logits that do not come straight from an LM-head matmul");
  b.setInsertionPoint(head);
  Value rows = gatherRows(b, loc, head.getInput(), logitsIndices);
  auto flatType = RankedTensorType::get({dyn, logitsType.getDimSize(2)}, logitsType.getElementType());
  Value flat = llm::MatmulOp::create(b, head.getLoc(), flatType, rows, head.getWeight(), head.getBias(),
                                     Value(), head.getActivationAttr());
  ret->setOperands({flat});
  head.erase();
  for (Layer &layer : layers) {
    layer.key.erase();
    layer.value.erase();
  }

  // Drop the old interface; every use must be gone.
  llvm::BitVector erase(fn.getNumArguments());
  for (Value v : oldArgs) {
    auto arg = cast<BlockArgument>(v);
    if (!arg.use_empty())
      return fail(fn, "argument " + Twine(arg.getArgNumber()) + " of the old interface is still used");
    erase.set(arg.getArgNumber());
  }
  (void)fn.eraseArguments(erase);
  fn.setType(FunctionType::get(ctx, fn.getArgumentTypes(), {flat.getType()}));
  SmallVector<DictionaryAttr> resultAttrs{DictionaryAttr::get(
      ctx, {b.getNamedAttr("onnx.name", b.getStringAttr("logits")),
            b.getNamedAttr("onnx.dim_names",
                           b.getArrayAttr({b.getStringAttr("num_logits"), b.getStringAttr("")}))})};
  fn.setAllResultAttrs(resultAttrs);
  fn.setSymName("forward");
  return static_cast<int>(layers.size());
}

} // namespace kiln
