//===- LayerSkip.cpp - A self-speculative draft from the target's first layers ===//
//
// Self-speculative decoding by layer skipping: the draft is the target cut
// after N of its L layers. In the raised `forward` every layer adds twice to
// the residual stream (the attention's output projection and the MLP carry
// a `residual` operand), so the stream after layer N-1 is the result of the
// 2N-th residual op, and the final norm reads the result of the last one.
// The draft is a clone of `forward` whose final norm reads the stream after
// layer N-1 instead; everything the cut makes dead (the later layers, their
// KV pool writes and their pool arguments) is removed. The clone refers to
// the same constants, so lowering packs each shared weight once and the
// artifact stores it once.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/LayerSkip.h"

#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/BitVector.h"

using namespace mlir;

namespace kiln {
namespace {

/// Ops that add to the residual stream, in program order.
SmallVector<Operation *> residualOps(func::FuncOp fn) {
  SmallVector<Operation *> ops;
  fn.walk([&](Operation *op) {
    if (auto m = dyn_cast<llm::MatmulOp>(op); m && m.getResidual())
      ops.push_back(op);
    else if (auto g = dyn_cast<llm::GatedMlpOp>(op); g && g.getResidual())
      ops.push_back(op);
    else if (auto g = dyn_cast<llm::GeluMlpOp>(op); g && g.getResidual())
      ops.push_back(op);
  });
  return ops;
}

int countAttention(func::FuncOp fn) {
  int n = 0;
  fn.walk([&](llm::PagedAttentionOp) { ++n; });
  return n;
}

/// Erases ops whose results nobody reads, repeatedly (KV pool writes are not
/// pure, but a write whose pool nobody reads afterwards is dead here: its
/// layer is gone).
void removeDeadOps(func::FuncOp fn) {
  bool changed = true;
  while (changed) {
    changed = false;
    // Collected first: erasing through a std::reverse_iterator would
    // invalidate the iterator it holds (it points one past its element).
    SmallVector<Operation *> ops;
    for (Operation &op : fn.getBody().front().without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops)) {
      if (op->getNumResults() == 0 || !op->use_empty())
        continue;
      op->erase();
      changed = true;
    }
  }
}

} // namespace

LogicalResult addLayerSkipDraft(ModuleOp module, int layers, std::string &summary, std::string &error) {
  auto fwd = module.lookupSymbol<func::FuncOp>("forward");
  if (!fwd) {
    error = "layer-skip speculation needs the paged forward (an LLM compiled with --kv-cache=paged)";
    return failure();
  }
  if (module.lookupSymbol("draft_forward")) {
    error = "the module already has a draft_forward";
    return failure();
  }
  const int total = countAttention(fwd);
  SmallVector<Operation *> stream = residualOps(fwd);
  if (total < 2 || (int)stream.size() != 2 * total) {
    error = "layer-skip: cannot find the layers (" + std::to_string(total) + " attentions, " +
            std::to_string(stream.size()) + " residual adds; expected two per layer)";
    return failure();
  }
  if (layers < 1 || layers >= total) {
    error = "layer-skip:" + std::to_string(layers) + " needs 1 <= N < " + std::to_string(total) +
            " (the model has " + std::to_string(total) + " layers)";
    return failure();
  }

  OpBuilder b(module.getContext());
  b.setInsertionPointAfter(fwd);
  auto draft = cast<func::FuncOp>(b.clone(*fwd));
  draft.setSymName("draft_forward");
  SmallVector<Operation *> dstream = residualOps(draft);
  Value last = dstream.back()->getResult(0);
  Value cut = dstream[2 * layers - 1]->getResult(0);
  last.replaceAllUsesWith(cut);
  removeDeadOps(draft);

  // The dropped layers' pools are arguments nothing reads now.
  llvm::BitVector unused(draft.getNumArguments());
  for (BlockArgument arg : draft.getArguments())
    if (arg.use_empty())
      unused.set(arg.getArgNumber());
  int dropped = unused.count();
  if (failed(draft.eraseArguments(unused))) {
    error = "layer-skip: cannot drop the unused pool arguments";
    return failure();
  }
  if (countAttention(draft) != layers) {
    error = "layer-skip: the draft kept " + std::to_string(countAttention(draft)) + " layers, not " +
            std::to_string(layers);
    return failure();
  }
  summary = "draft_forward: layer-skip, layers 0.." + std::to_string(layers - 1) + " of " +
            std::to_string(total) + " + the target's final norm and LM head; weights shared with forward " +
            "(no copy); " + std::to_string(2 * layers) + " KV pools (" + std::to_string(dropped) + " dropped)";
  return success();
}

} // namespace kiln
