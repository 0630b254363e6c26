//===- FormDispatches.cpp - Dispatch formation and outlining --------------===//
//
// Input: tensor-level linalg/tensor/arith in `func.func @main`.
// Output: the same module where @main is a host schedule in the exec dialect
// and every piece of tensor math lives in an outlined `exec.kernel` function
//
//   func.func @kernel_N(%wg_id: index, %wg_count: index, %ins..., %outs...)
//       -> (results tied to %outs through materialize_in_destination)
//
// Grouping: each op that computes a tensor is a root; elementwise consumers
// (all-parallel linalg.generic with identity output maps) that are the only
// user of the group's result join its group, so a matmul + bias + activation
// is one kernel. Cheap ops (scalar arithmetic, tensor.empty, tensor.dim,
// tensor.extract, small constants) are cloned into every kernel that uses
// them; large constants become exec.constant bindings.
//
//===----------------------------------------------------------------------===//
#include "compiler/dispatch/FormDispatches.h"

#include "dialects/exec/IR/ExecDialect.h"
#include "dialects/llm/IR/LlmDialect.h"
#include "compiler/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;

namespace kiln {
#define GEN_PASS_DEF_FORMDISPATCHESPASS
#include "compiler/Passes.h.inc"
namespace {

/// Constants with at most this many elements are cloned into kernels.
constexpr int64_t kInlineConstantLimit = 64;

bool isLargeConstant(Operation *op) {
  auto c = dyn_cast<arith::ConstantOp>(op);
  if (!c)
    return false;
  auto type = dyn_cast<RankedTensorType>(c.getType());
  if (!type)
    return false;
  if (auto dense = dyn_cast<DenseElementsAttr>(c.getValue()))
    if (dense.isSplat())
      return false;
  return !isa<DenseElementsAttr>(c.getValue()) ||
         type.getNumElements() > kInlineConstantLimit;
}

/// Ops that are recomputed wherever they are needed instead of dispatched.
bool isCheap(Operation *op) {
  if (isa<arith::ConstantOp>(op))
    return !isLargeConstant(op);
  // A fill of a fresh tensor is recomputed inside the kernel that consumes
  // it (the init of a matmul or reduction) rather than dispatched alone.
  if (auto fill = dyn_cast<linalg::FillOp>(op))
    return fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>() &&
           llvm::none_of(op->getUsers(), [](Operation *u) {
             return isa<func::ReturnOp>(u);
           });
  if (isa<tensor::EmptyOp, tensor::DimOp, tensor::ExtractOp, affine::AffineApplyOp,
          affine::AffineMinOp, affine::AffineMaxOp>(op))
    return true;
  // Scalar arithmetic.
  if (op->getDialect() && isa<arith::ArithDialect>(op->getDialect()))
    return llvm::none_of(op->getResultTypes(),
                         [](Type t) { return isa<ShapedType>(t); });
  return false;
}

bool isElementwiseConsumer(Operation *op) {
  auto generic = dyn_cast<linalg::GenericOp>(op);
  if (!generic || generic.getNumDpsInits() != 1 || generic.getNumResults() != 1)
    return false;
  if (generic.getNumParallelLoops() != generic.getNumLoops())
    return false;
  return llvm::all_of(generic.getIndexingMapsArray(),
                      [](AffineMap m) { return m.isProjectedPermutation(); }) &&
         generic.getIndexingMapsArray().back().isIdentity();
}

class DispatchFormer {
public:
  DispatchFormer(ModuleOp module, func::FuncOp entry)
      : module(module), entry(entry), symbols(module) {}

  LogicalResult run();

private:
  LogicalResult outline(ArrayRef<Operation *> group);
  /// Host-side value for a dynamic size needed by a kernel result.
  Value hostSize(OpBuilder &b, Value v, const llvm::SetVector<Operation *> &group);
  LogicalResult finishHost();

  ModuleOp module;
  func::FuncOp entry;
  SymbolTable symbols;
  int kernelCounter = 0;
};

LogicalResult DispatchFormer::run() {
  Block &body = entry.getBody().front();
  // Collect groups first; outlining mutates the block.
  SmallVector<SmallVector<Operation *>> groups;
  llvm::DenseSet<Operation *> grouped;
  for (Operation &op : body.without_terminator()) {
    if (grouped.contains(&op) || isCheap(&op) || isLargeConstant(&op))
      continue;
    if (llvm::none_of(op.getResultTypes(),
                      [](Type t) { return isa<RankedTensorType>(t); }))
      continue;
    SmallVector<Operation *> group{&op};
    grouped.insert(&op);
    Operation *last = &op;
    // A microkernel splits its own work over workgroups; an epilogue in the
    // same kernel could read rows another workgroup has not written yet.
    bool sealed = isa<llm::UkernelOp>(op);
    while (!sealed && last->getNumResults() == 1 && last->getResult(0).hasOneUse()) {
      Operation *user = *last->getResult(0).getUsers().begin();
      if (user->getBlock() != &body || !isElementwiseConsumer(user) ||
          grouped.contains(user))
        break;
      // The consumer's other operands must not come from ops after the group
      // root that are not yet grouped (they are defined before `user` anyway).
      group.push_back(user);
      grouped.insert(user);
      last = user;
    }
    groups.push_back(std::move(group));
  }
  for (auto &group : groups)
    if (failed(outline(group)))
      return failure();
  return finishHost();
}

Value DispatchFormer::hostSize(OpBuilder &b, Value v,
                               const llvm::SetVector<Operation *> &group) {
  Operation *def = v.getDefiningOp();
  if (!def)
    return v;
  if (auto dim = dyn_cast<tensor::DimOp>(def)) {
    auto index = dim.getConstantIndex();
    Operation *src = dim.getSource().getDefiningOp();
    if (!index || !src)
      return v; // a dim of an entry argument
    if (auto empty = dyn_cast<tensor::EmptyOp>(src))
      return hostSize(b, empty.getDynamicSize(*index), group);
    if (!group.contains(src) && !isCheap(src))
      return v; // a dim of another dispatch's result
    if (auto dps = dyn_cast<DestinationStyleOpInterface>(src)) {
      OpOperand *init = dps.getTiedOpOperand(cast<OpResult>(dim.getSource()));
      Value d = tensor::DimOp::create(b, dim.getLoc(), init->get(), *index);
      return hostSize(b, d, group);
    }
    return Value();
  }
  if (group.contains(def))
    return Value();
  // Index arithmetic (e.g. affine.apply from reification): resolve operands.
  for (OpOperand &operand : def->getOpOperands()) {
    Value r = hostSize(b, operand.get(), group);
    if (!r)
      return Value();
    if (r != operand.get())
      operand.set(r);
  }
  return v;
}

LogicalResult DispatchFormer::outline(ArrayRef<Operation *> groupOps) {
  llvm::SetVector<Operation *> group(groupOps.begin(), groupOps.end());
  Operation *last = groupOps.back();
  MLIRContext *ctx = module.getContext();
  Location loc = groupOps.front()->getLoc();

  // A microkernel whose destination is an entry argument marked
  // `exec.inplace` (a paged KV pool) updates that argument's buffer: the
  // argument is the dispatch's out operand, not an input plus a fresh copy.
  llvm::DenseMap<Value, BlockArgument> inplaceOf; // group result -> argument
  llvm::DenseSet<Value> inplaceArgs;
  if (groupOps.size() == 1)
    if (auto uk = dyn_cast<llm::UkernelOp>(groupOps.front()))
      for (auto [init, r] : llvm::zip(uk.getOutputs(), uk.getResults()))
        if (auto arg = dyn_cast<BlockArgument>(init))
          if (arg.getOwner() == &entry.getBody().front() &&
              entry.getArgAttr(arg.getArgNumber(), exec::kInplaceAttr) &&
              !inplaceArgs.contains(arg)) {
            inplaceOf[r] = arg;
            inplaceArgs.insert(arg);
          }

  // Values the group needs from outside, and cheap producers to clone.
  llvm::SetVector<Value> inputs;
  llvm::SetVector<Operation *> toClone;
  std::function<LogicalResult(Value)> need = [&](Value v) -> LogicalResult {
    if (inplaceArgs.contains(v))
      return success(); // bound to the kernel's out argument below
    Operation *def = v.getDefiningOp();
    if (def && group.contains(def))
      return success();
    if (def && isCheap(def)) {
      if (toClone.contains(def))
        return success();
      for (Value o : def->getOperands())
        if (failed(need(o)))
          return failure();
      toClone.insert(def);
      return success();
    }
    if (!isa<RankedTensorType>(v.getType()))
      return emitError(v.getLoc(), "kernel needs a scalar computed on device");
    inputs.insert(v);
    return success();
  };
  for (Operation *op : groupOps) {
    WalkResult r = op->walk([&](Operation *nested) {
      for (Value v : nested->getOperands()) {
        Operation *def = v.getDefiningOp();
        bool inside = def ? op->isAncestor(def)
                          : op->isAncestor(v.getParentBlock()->getParentOp());
        if (inside)
          continue;
        if (failed(need(v)))
          return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (r.wasInterrupted())
      return failure();
  }
  // The group's results used outside of it.
  SmallVector<Value> results;
  for (Operation *op : groupOps)
    for (Value r : op->getResults())
      if (llvm::any_of(r.getUsers(),
                       [&](Operation *u) { return !group.contains(u); }))
        results.push_back(r);
  if (results.empty())
    return success(); // dead code

  // Host: allocate every result buffer before the dispatch.
  OpBuilder hb(last);
  hb.setInsertionPointAfter(last);
  SmallVector<Value> outs;
  for (Value r : results) {
    if (BlockArgument arg = inplaceOf.lookup(r)) {
      outs.push_back(arg);
      continue;
    }
    auto type = dyn_cast<RankedTensorType>(r.getType());
    if (!type)
      return emitError(r.getLoc(), "kernel result is not a ranked tensor");
    SmallVector<Value> dyn;
    if (!type.hasStaticShape()) {
      SmallVector<SmallVector<OpFoldResult>> shapes;
      OpBuilder &rb = hb; // keeps dims, alloc and dispatch in order
      Operation *def = r.getDefiningOp();
      if (failed(reifyResultShapes(rb, def, shapes)))
        return emitError(r.getLoc(), "cannot compute the shape of a kernel result");
      auto &shape = shapes[cast<OpResult>(r).getResultNumber()];
      for (int64_t i = 0; i < type.getRank(); ++i) {
        if (!type.isDynamicDim(i))
          continue;
        Value s = getValueOrCreateConstantIndexOp(rb, loc, shape[i]);
        Value h = hostSize(rb, s, group);
        if (!h)
          return emitError(r.getLoc(),
                           "kernel result size depends on its own data");
        dyn.push_back(h);
      }
    }
    outs.push_back(exec::AllocOp::create(hb, loc, type, dyn));
  }

  // Kernel function.
  // A microkernel call names its kernel (kernel_7_matmul_glu_f32) so that
  // profiles and symbol tables say what a dispatch does.
  std::string name = "kernel_" + std::to_string(kernelCounter++);
  for (Operation *op : groupOps)
    if (auto uk = dyn_cast<llm::UkernelOp>(op)) {
      StringRef callee = uk.getCallee();
      callee.consume_front("kiln_uk_");
      name += "_" + callee.str();
      break;
    }
  SmallVector<Type> argTypes{IndexType::get(ctx), IndexType::get(ctx)};
  for (Value v : inputs)
    argTypes.push_back(v.getType());
  for (Value v : results)
    argTypes.push_back(v.getType());
  OpBuilder mb(ctx);
  mb.setInsertionPoint(entry);
  auto kernel = func::FuncOp::create(
      mb, loc, name,
      FunctionType::get(ctx, argTypes, ValueRange(results).getTypes()));
  kernel->setAttr(exec::kKernelAttr, UnitAttr::get(ctx));
  kernel.setPrivate();
  symbols.insert(kernel);
  Block *kb = kernel.addEntryBlock();
  OpBuilder kbld = OpBuilder::atBlockEnd(kb);
  IRMapping map;
  unsigned argIndex = exec::kNumWorkgroupArgs;
  for (Value v : inputs)
    map.map(v, kb->getArgument(argIndex++));
  for (auto [i, r] : llvm::enumerate(results))
    if (BlockArgument arg = inplaceOf.lookup(r))
      map.map(arg, kb->getArgument(argIndex + i));
  // Cheap producers in program order.
  SmallVector<Operation *> clones(toClone.begin(), toClone.end());
  llvm::sort(clones, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  for (Operation *op : clones)
    kbld.clone(*op, map);
  for (Operation *op : groupOps)
    kbld.clone(*op, map);
  SmallVector<Value> yielded;
  for (Value r : results) {
    Value out = kb->getArgument(argIndex++);
    Value v = map.lookup(r);
    yielded.push_back(bufferization::MaterializeInDestinationOp::create(
                          kbld, loc, v, out)
                          .getResult());
  }
  func::ReturnOp::create(kbld, loc, yielded);

  // Host: the dispatch.
  auto dispatch = exec::DispatchOp::create(
      hb, loc, ValueRange(outs).getTypes(), kernel.getSymName(),
      inputs.getArrayRef(), outs);
  for (auto [r, d] : llvm::zip(results, dispatch.getResults()))
    r.replaceAllUsesWith(d);
  // Shape ops that reification created on group values are dead now.
  bool changed = true;
  while (changed) {
    changed = false;
    for (Operation *op : groupOps)
      for (Operation *user : llvm::make_early_inc_range(op->getUsers()))
        if (!group.contains(user) && isOpTriviallyDead(user)) {
          user->erase();
          changed = true;
        }
  }
  for (Operation *op : llvm::reverse(groupOps))
    op->erase();
  return success();
}

LogicalResult DispatchFormer::finishHost() {
  Block &body = entry.getBody().front();
  IRRewriter rewriter(module.getContext());
  // Host leftovers: dims, constants; dead cheap ops go away.
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body))) {
    if (op.hasTrait<OpTrait::IsTerminator>())
      continue;
    if (isOpTriviallyDead(&op)) {
      op.erase();
      continue;
    }
    rewriter.setInsertionPoint(&op);
    if (auto dim = dyn_cast<tensor::DimOp>(&op)) {
      auto index = dim.getConstantIndex();
      if (!index)
        return dim.emitError("dynamic dim index on the host");
      Value d = exec::DimOp::create(rewriter, dim.getLoc(),
                                    rewriter.getIndexType(), dim.getSource(),
                                    rewriter.getI64IntegerAttr(*index));
      rewriter.replaceOp(&op, d);
    } else if (auto c = dyn_cast<arith::ConstantOp>(&op)) {
      if (auto type = dyn_cast<RankedTensorType>(c.getType()))
        rewriter.replaceOpWithNewOp<exec::ConstantOp>(
            &op, type, cast<ElementsAttr>(c.getValue()));
    }
  }
  // Outputs must be fresh buffers: copy inputs, constants and repeats.
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  llvm::DenseSet<Value> seen;
  rewriter.setInsertionPoint(ret);
  for (OpOperand &operand : ret->getOpOperands()) {
    Value v = operand.get();
    bool fresh = v.getDefiningOp<exec::DispatchOp>() && !seen.contains(v);
    seen.insert(v);
    if (!fresh)
      operand.set(exec::CopyOp::create(rewriter, ret.getLoc(), v.getType(), v));
  }
  // The artifact writer rejects whatever is left that the host cannot run.
  return success();
}

struct FormDispatchesPass : impl::FormDispatchesPassBase<FormDispatchesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> entries;
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn->hasAttr(exec::kKernelAttr) && !fn.isExternal())
        entries.push_back(fn);
    for (func::FuncOp fn : entries) {
      fn->setAttr(exec::kEntryAttr, UnitAttr::get(&getContext()));
      if (failed(DispatchFormer(module, fn).run()))
        return signalPassFailure();
    }
  }
};

} // namespace


} // namespace kiln
