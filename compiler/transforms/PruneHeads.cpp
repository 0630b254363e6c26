//===- PruneHeads.cpp - llm-prune-heads: structured attention head pruning -===//
//
// kiln-compile --prune=heads:N. Per llm.paged_attention, the attention block
// is matched from its operands back to the projections that feed it:
//
//   q: llm.matmul -> llm.split_heads [-> llm.rotary] -> paged_attention
//   k: llm.matmul -> llm.split_heads [-> llm.rotary] -> kv_cache_write(pool arg)
//   v: llm.matmul -> llm.split_heads -> kv_cache_write(pool arg)
//   out: paged_attention -> llm.merge_heads -> llm.matmul (o_proj)
//
// The unit removed is a GQA group: one kv head and the H / KVH query heads
// that read it (a single head in multi-head attention), so every remaining
// query head still has its kv head. The removed groups' columns of W_q,
// W_k, W_v (and biases) and rows of W_o go; the types of everything between
// shrink; the layer's K/V pool arguments lose the kv heads, so the runtime
// (which sizes pools from the signature) allocates a smaller KV cache.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/PruneHeads.h"

#include "compiler/transforms/GraphMatch.h"
#include "compiler/transforms/LinearWeights.h"
#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <numeric>

using namespace mlir;

namespace kiln {
namespace {

/// One head-split projection: matmul -> split_heads [-> rotary].
struct HeadPath {
  llm::MatmulOp proj;
  llm::SplitHeadsOp split;
  llm::RotaryOp rotary; // may be null
};

/// Follows `v` (the head-major value an attention or cache write reads)
/// back to its projection.
FailureOr<HeadPath> headPath(Value v, bool rotaryAllowed) {
  HeadPath p;
  if (auto r = v.getDefiningOp<llm::RotaryOp>(); r && rotaryAllowed) {
    p.rotary = r;
    v = r.getInput();
  }
  p.split = v.getDefiningOp<llm::SplitHeadsOp>();
  if (!p.split)
    return failure();
  p.proj = p.split.getInput().getDefiningOp<llm::MatmulOp>();
  if (!p.proj || p.proj.getResidual() || p.proj.getActivation() != "none" ||
      !p.proj.getResult().hasOneUse() || !p.split.getResult().hasOneUse() ||
      !match::constant(p.proj.getWeight()) ||
      (p.proj.getBias() && !match::constant(p.proj.getBias())))
    return failure();
  return p;
}

/// `t` with dim `d` set to `size`.
RankedTensorType withDim(Type t, int64_t d, int64_t size) {
  auto r = cast<RankedTensorType>(t);
  SmallVector<int64_t> shape(r.getShape());
  shape[d] = size;
  return RankedTensorType::get(shape, r.getElementType(), r.getEncoding());
}

/// A copy of the f32 constant `w` ([K, N] or [N]) keeping the rows
/// (axis 0) or columns (axis 1) in `keep`, as a new constant before `user`.
FailureOr<Value> sliceConstant(OpBuilder &b, Value w, int axis, ArrayRef<int64_t> keep, Operation *user,
                               StringRef name) {
  ElementsAttr attr = match::constant(w);
  SmallVector<float> storage;
  std::optional<ArrayRef<float>> data = match::floatData(attr, storage);
  auto type = cast<RankedTensorType>(w.getType());
  if (!data || (int64_t)data->size() != type.getNumElements())
    return failure();
  std::vector<float> out;
  SmallVector<int64_t> shape(type.getShape());
  if (type.getRank() == 1) {
    for (int64_t i : keep)
      out.push_back((*data)[i]);
    shape[0] = keep.size();
  } else if (axis == 0) {
    const int64_t N = shape[1];
    for (int64_t r : keep)
      out.insert(out.end(), data->begin() + r * N, data->begin() + (r + 1) * N);
    shape[0] = keep.size();
  } else {
    const int64_t K = shape[0], N = shape[1];
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c : keep)
        out.push_back((*data)[k * N + c]);
    shape[1] = keep.size();
  }
  auto t = RankedTensorType::get(shape, b.getF32Type());
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(user);
  return arith::ConstantOp::create(b, w.getLoc(), t, blobAttr(t, name, out.data(), out.size() * 4))
      .getResult();
}

int64_t bytesOf(Value v) {
  return v ? cast<RankedTensorType>(v.getType()).getNumElements() * 4 : 0;
}

/// Replaces operand `i` of `op` by `v` and erases the old constant when
/// nothing reads it any more.
void setConstantOperand(Operation *op, unsigned i, Value v) {
  Value old = op->getOperand(i);
  op->setOperand(i, v);
  if (old.use_empty())
    if (Operation *def = old.getDefiningOp())
      eraseConstant(def);
}

} // namespace

LogicalResult pruneAttentionHeads(func::FuncOp fn, const PruneHeadsOptions &options,
                                  std::vector<PrunedHeads> &report, std::string &error) {
  SmallVector<llm::PagedAttentionOp> attentions;
  fn.walk([&](llm::PagedAttentionOp a) { attentions.push_back(a); });
  if (attentions.empty()) {
    error = "--prune=heads:N needs the paged attention of an LLM (compiled with --kv-cache=paged, "
            "the default); @" + fn.getSymName().str() + " has none";
    return failure();
  }
  OpBuilder b(fn.getContext());
  int layer = 0;
  for (llm::PagedAttentionOp attn : attentions) {
    auto fail = [&](const std::string &what) {
      error = "--prune=heads: layer " + std::to_string(layer) + ": " + what;
      return failure();
    };
    FailureOr<HeadPath> q = headPath(attn.getQuery(), true);
    auto kWrite = attn.getKeyCache().getDefiningOp<llm::KvCacheWriteOp>();
    auto vWrite = attn.getValueCache().getDefiningOp<llm::KvCacheWriteOp>();
    if (failed(q) || !kWrite || !vWrite)
      return fail("the attention's query or caches do not come from constant projections");
    FailureOr<HeadPath> k = headPath(kWrite.getNewValue(), true);
    FailureOr<HeadPath> v = headPath(vWrite.getNewValue(), true);
    auto kPool = dyn_cast<BlockArgument>(kWrite.getCache());
    auto vPool = dyn_cast<BlockArgument>(vWrite.getCache());
    if (failed(k) || failed(v) || !kPool || !vPool || !kWrite.getResult().hasOneUse() ||
        !vWrite.getResult().hasOneUse() || !attn.getResult().hasOneUse())
      return fail("the keys and values do not come from constant projections into pool arguments");
    auto merge = dyn_cast<llm::MergeHeadsOp>(*attn.getResult().getUsers().begin());
    llm::MatmulOp out;
    if (merge && merge.getResult().hasOneUse())
      out = dyn_cast<llm::MatmulOp>(*merge.getResult().getUsers().begin());
    if (!out || out.getInput() != merge.getResult() || !match::constant(out.getWeight()))
      return fail("the attention's output does not feed a constant projection through merge_heads");

    const int64_t H = q->split.getNumHeads(), KVH = k->split.getNumHeads();
    const int64_t hd = cast<RankedTensorType>(attn.getQuery().getType()).getDimSize(3);
    if (v->split.getNumHeads() != KVH || KVH <= 0 || H % KVH)
      return fail("query heads (" + std::to_string(H) + ") are not a multiple of kv heads (" +
                  std::to_string(KVH) + ")");
    const int64_t group = H / KVH;
    if (options.heads <= 0 || options.heads % group || options.heads >= H)
      return fail("N = " + std::to_string(options.heads) + " must be a multiple of " +
                  std::to_string(group) + " (query heads per kv head) and less than " +
                  std::to_string(H) + " (the layer's query heads)");
    const int64_t removeKv = options.heads / group;

    // Importance of each group: sum over its channels c (query head h, dim
    // j) of E[x_c^2] * ||W_o[c, :]||^2.
    SmallVector<float> woStore, wvStore;
    std::optional<ArrayRef<float>> wo = match::floatData(match::constant(out.getWeight()), woStore);
    std::optional<ArrayRef<float>> wv = match::floatData(match::constant(v->proj.getWeight()), wvStore);
    if (!wo || !wv)
      return fail("o_proj or v_proj is not an f32 constant");
    const int64_t D = cast<RankedTensorType>(out.getWeight().getType()).getDimSize(1);
    const int64_t Dv = cast<RankedTensorType>(v->proj.getWeight().getType()).getDimSize(0);
    std::vector<double> energy;
    if (options.channelEnergy)
      energy = options.channelEnergy(match::constant(out.getWeight()));
    const bool calibrated = (int64_t)energy.size() == H * hd;
    std::vector<double> importance(KVH, 0.0);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < hd; ++j) {
        const int64_t c = h * hd + j, g = h / group;
        double rowNorm = 0.0;
        for (int64_t n = 0; n < D; ++n)
          rowNorm += double((*wo)[c * D + n]) * (*wo)[c * D + n];
        double e = 0.0;
        if (calibrated) {
          e = energy[c];
        } else {
          for (int64_t r = 0; r < Dv; ++r)
            e += double((*wv)[r * KVH * hd + g * hd + j]) * (*wv)[r * KVH * hd + g * hd + j];
        }
        importance[g] += e * rowNorm;
      }
    std::vector<int64_t> order(KVH);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t c) { return importance[a] < importance[c]; });
    std::vector<int64_t> removed(order.begin(), order.begin() + removeKv);
    std::sort(removed.begin(), removed.end());
    std::vector<int64_t> keptKv;
    for (int64_t g = 0; g < KVH; ++g)
      if (!std::binary_search(removed.begin(), removed.end(), g))
        keptKv.push_back(g);
    std::vector<int64_t> qChannels, kvChannels;
    for (int64_t g : keptKv) {
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t j = 0; j < hd; ++j)
          qChannels.push_back(h * hd + j);
      for (int64_t j = 0; j < hd; ++j)
        kvChannels.push_back(g * hd + j);
    }
    const int64_t H2 = H - options.heads, KVH2 = KVH - removeKv;

    PrunedHeads entry;
    entry.layer = layer;
    entry.headsBefore = H;
    entry.headsAfter = H2;
    entry.kvHeadsBefore = KVH;
    entry.kvHeadsAfter = KVH2;
    entry.removedKvHeads = removed;
    entry.calibrated = calibrated;
    for (llm::MatmulOp m : {q->proj, k->proj, v->proj, out})
      entry.bytesBefore += bytesOf(m.getWeight()) + (m == out ? 0 : bytesOf(m.getBias()));

    // New weights: columns of q / k / v (and biases), rows of o.
    std::string base = "heads.l" + std::to_string(layer);
    auto slice = [&](llm::MatmulOp m, unsigned operand, int axis, ArrayRef<int64_t> keep,
                     StringRef what) -> LogicalResult {
      FailureOr<Value> s = sliceConstant(b, m->getOperand(operand), axis, keep, m, base + "." + what.str());
      if (failed(s))
        return failure();
      setConstantOperand(m, operand, *s);
      return success();
    };
    // Operand order of llm.matmul: input, weight, [bias], [residual].
    auto biasOperand = [](llm::MatmulOp m) { return m.getBias() ? std::optional<unsigned>(2) : std::nullopt; };
    if (failed(slice(q->proj, 1, 1, qChannels, "q")) || failed(slice(k->proj, 1, 1, kvChannels, "k")) ||
        failed(slice(v->proj, 1, 1, kvChannels, "v")) || failed(slice(out, 1, 0, qChannels, "o")))
      return fail("a projection's weight data is missing");
    for (auto [m, keep, what] : {std::tuple{q->proj, &qChannels, "q_bias"}, std::tuple{k->proj, &kvChannels, "k_bias"},
                                 std::tuple{v->proj, &kvChannels, "v_bias"}})
      if (std::optional<unsigned> bi = biasOperand(m))
        if (failed(slice(m, *bi, 0, *keep, what)))
          return fail("a projection's bias data is missing");
    for (llm::MatmulOp m : {q->proj, k->proj, v->proj, out})
      entry.bytesAfter += bytesOf(m.getWeight()) + (m == out ? 0 : bytesOf(m.getBias()));

    // Types, from the projections to o_proj's input.
    auto shrink = [&](HeadPath p, int64_t heads) {
      Value r = p.proj->getResult(0);
      r.setType(withDim(r.getType(), cast<RankedTensorType>(r.getType()).getRank() - 1, heads * hd));
      p.split.setNumHeads(heads);
      p.split->getResult(0).setType(withDim(p.split.getResult().getType(), 1, heads));
      if (p.rotary)
        p.rotary->getResult(0).setType(withDim(p.rotary.getResult().getType(), 1, heads));
    };
    shrink(*q, H2);
    shrink(*k, KVH2);
    shrink(*v, KVH2);
    for (BlockArgument pool : {kPool, vPool})
      pool.setType(withDim(pool.getType(), 2, KVH2));
    kWrite->getResult(0).setType(kPool.getType());
    vWrite->getResult(0).setType(vPool.getType());
    attn->getResult(0).setType(attn.getQuery().getType());
    Value merged = merge->getResult(0);
    merged.setType(withDim(merged.getType(), cast<RankedTensorType>(merged.getType()).getRank() - 1, H2 * hd));
    report.push_back(entry);
    ++layer;
  }
  // The pool arguments' types changed: so did the function's.
  Block &body = fn.getBody().front();
  fn.setType(FunctionType::get(fn.getContext(), body.getArgumentTypes(), fn.getResultTypes()));
  if (failed(mlir::verify(fn))) {
    error = "--prune=heads: the pruned @" + fn.getSymName().str() + " does not verify";
    return failure();
  }
  return success();
}

std::string formatPrunedHeads(StringRef function, const std::vector<PrunedHeads> &report) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "pruned attention heads of @" << function
     << " (layer: query heads, kv heads, removed kv heads, q/k/v/o bytes before -> after):\n";
  int64_t before = 0, after = 0;
  for (const PrunedHeads &p : report) {
    os << "  layer " << p.layer << ": heads " << p.headsBefore << " -> " << p.headsAfter << ", kv heads "
       << p.kvHeadsBefore << " -> " << p.kvHeadsAfter << ", removed kv head";
    for (int64_t g : p.removedKvHeads)
      os << " " << g;
    os << (p.calibrated ? " (calibrated)" : " (by weights)")
       << llvm::format("; %.2f MiB -> %.2f MiB\n", p.bytesBefore / 1048576.0, p.bytesAfter / 1048576.0);
    before += p.bytesBefore;
    after += p.bytesAfter;
  }
  os << llvm::format("  total: %.2f MiB -> %.2f MiB\n", before / 1048576.0, after / 1048576.0);
  return s;
}

} // namespace kiln
