//===- RefineShapes.cpp - Propagate static shapes through onnx ops --------===//
//
// ONNX's own shape inference gives up on results whose shape depends on the
// data of another tensor (Reshape's `shape`, ConstantOfShape, Expand, Range,
// ...). Once folding has turned those operands into constants, the onnx ops'
// InferTypeOpInterface can say more; this pass re-infers each op's result
// types in program order, keeps whatever is more precise than the current
// type (never contradicting a static dim), folds, and repeats until nothing
// changes. Finally the function signatures follow the returned values.
//
//===----------------------------------------------------------------------===//
#include "dialects/onnx/Transforms/Passes.h"

#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Rewrite/FrozenRewritePatternSet.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace kiln::onnx {
namespace {

/// The meet of the current type `current` and the inferred `inferred`: the
/// current element type with the most precise shape both agree on. Returns
/// `current` when they contradict each other.
Type refine(Type current, Type inferred) {
  auto cur = dyn_cast<TensorType>(current);
  auto inf = dyn_cast<RankedTensorType>(inferred);
  if (!cur || !inf)
    return current;
  if (!cur.hasRank())
    return RankedTensorType::get(inf.getShape(), cur.getElementType());
  auto ranked = cast<RankedTensorType>(cur);
  if (ranked.getRank() != inf.getRank())
    return current;
  SmallVector<int64_t> shape(ranked.getShape());
  for (auto [d, i] : llvm::zip(shape, inf.getShape())) {
    if (ShapedType::isDynamic(i))
      continue;
    if (ShapedType::isDynamic(d))
      d = i;
    else if (d != i)
      return current;
  }
  return RankedTensorType::get(shape, ranked.getElementType(),
                               ranked.getEncoding());
}

/// Re-infers the result types of the onnx ops of `func` once, in order.
/// Returns whether a type changed.
bool refineOnce(func::FuncOp func) {
  bool changed = false;
  func.walk([&](Operation *op) {
    if (!isa_and_nonnull<ONNXDialect>(op->getDialect()))
      return;
    auto infer = dyn_cast<InferTypeOpInterface>(op);
    if (!infer)
      return;
    SmallVector<Type> inferred;
    if (failed(infer.inferReturnTypes(
            op->getContext(), op->getLoc(), op->getOperands(),
            op->getRawDictionaryAttrs(), op->getPropertiesStorage(),
            op->getRegions(), inferred)) ||
        inferred.size() != op->getNumResults())
      return;
    for (auto [result, type] : llvm::zip(op->getResults(), inferred)) {
      Type refined = refine(result.getType(), type);
      if (refined != result.getType()) {
        result.setType(refined);
        changed = true;
      }
    }
  });
  return changed;
}

/// Makes the function's result types those of the returned values.
void updateSignature(func::FuncOp func) {
  if (func.isExternal())
    return;
  Operation *terminator = func.getBody().back().getTerminator();
  auto ret = dyn_cast<func::ReturnOp>(terminator);
  if (!ret)
    return;
  auto type = func.getFunctionType();
  SmallVector<Type> results(ret.getOperandTypes());
  if (ArrayRef<Type>(results) == type.getResults())
    return;
  func.setFunctionType(
      FunctionType::get(func.getContext(), type.getInputs(), results));
}

struct RefineShapesPass
    : public PassWrapper<RefineShapesPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(RefineShapesPass)

  StringRef getArgument() const override { return "kiln-onnx-refine-shapes"; }
  StringRef getDescription() const override {
    return "Refine onnx result types from constant shape operands, folding "
           "shape arithmetic to a fixpoint";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<ONNXDialect, func::FuncDialect>();
  }

  LogicalResult initialize(MLIRContext *ctx) override {
    RewritePatternSet set(ctx);
    if (auto *dialect = ctx->getLoadedDialect<ONNXDialect>())
      dialect->getCanonicalizationPatterns(set);
    for (RegisteredOperationName name : ctx->getRegisteredOperations())
      if (name.getDialectNamespace() == ONNXDialect::getDialectNamespace())
        name.getCanonicalizationPatterns(set, ctx);
    patterns = FrozenRewritePatternSet(std::move(set));
    return success();
  }

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      // Each round makes at least one type more precise or folds an op, so
      // this terminates; the bound only guards against a folder ping-pong.
      for (int round = 0; round < 32; ++round) {
        bool refined = refineOnce(func);
        bool folded = false;
        GreedyRewriteConfig config;
        config.enableFolding(true);
        (void)applyPatternsGreedily(func.getBody(), patterns, config, &folded);
        if (!refined && !folded)
          break;
      }
      updateSignature(func);
    }
  }

  FrozenRewritePatternSet patterns;
};

} // namespace

std::unique_ptr<mlir::Pass> createRefineShapesPass() {
  return std::make_unique<RefineShapesPass>();
}

} // namespace kiln::onnx
