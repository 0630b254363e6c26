//===- GpuDistribute.cpp - Spread a kernel's loops over GPU invocations ----===//
//
// After bufferization a kernel is a sequence of loop nests. When it is one
// parallel nest (the common case after tileForInvocations) its iterations
// are spread over every invocation of every workgroup with a grid-stride
// loop: invocation g of G runs linear iterations g, g + G, ... so the kernel
// is correct for any workgroup count and neighbouring invocations touch
// neighbouring elements. Otherwise the kernel runs in one workgroup: each
// parallel nest is spread over its invocations, a barrier separates nests,
// and a step that writes but is not parallel runs in invocation 0.
//
// A parallel loop tagged kiln.gpu_cooperative (GpuWorkgroup.h) has work
// items for whole workgroups: alone in a kernel, item i goes to workgroups
// i, i + G, ...; as one step of several, the one workgroup runs the items
// in turn.
//
// Temporaries are tagged for flattenKernelMemrefs: allocated inside a
// parallel loop = private to an invocation; outside = shared by the
// workgroup.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuKernelSteps.h"
#include "targets/gpu/GpuWorkgroup.h"

#include "targets/TargetRegistry.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;

namespace kiln {
namespace {

constexpr llvm::StringLiteral kMemoryAttr = "kiln.gpu_memory";

bool isCooperative(scf::ParallelOp p) { return p->hasAttr(kCooperativeAttr); }

/// A temporary already placed in workgroup memory (a cooperative kernel's
/// scratch).
bool isWorkgroupAlloc(Operation *op) {
  auto tag = op->getAttrOfType<StringAttr>(kMemoryAttr);
  return isa<memref::AllocOp>(op) && tag && tag.getValue() == "workgroup";
}

/// Replaces `p` by a loop over its linearized iteration space starting at
/// `id` with step `count`.
void gridStride(RewriterBase &rewriter, scf::ParallelOp p, Value id,
                Value count) {
  Location loc = p.getLoc();
  rewriter.setInsertionPoint(p);
  Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
  SmallVector<Value> trips;
  Value total = one;
  for (auto [lb, ub, step] :
       llvm::zip(p.getLowerBound(), p.getUpperBound(), p.getStep())) {
    Value span = arith::SubIOp::create(rewriter, loc, ub, lb);
    span = arith::MaxSIOp::create(rewriter, loc, span, zero);
    Value trip = arith::CeilDivUIOp::create(rewriter, loc, span, step);
    trips.push_back(trip);
    total = arith::MulIOp::create(rewriter, loc, total, trip);
  }
  auto loop = scf::ForOp::create(rewriter, loc, id, total, count);
  rewriter.setInsertionPointToStart(loop.getBody());
  unsigned n = trips.size();
  SmallVector<Value> ivs(n);
  Value rem = loop.getInductionVar();
  for (int d = n - 1; d >= 0; --d) {
    Value idx = rem;
    if (d > 0) {
      idx = arith::RemUIOp::create(rewriter, loc, rem, trips[d]);
      rem = arith::DivUIOp::create(rewriter, loc, rem, trips[d]);
    }
    Value scaled = arith::MulIOp::create(rewriter, loc, idx, p.getStep()[d]);
    ivs[d] = arith::AddIOp::create(rewriter, loc, p.getLowerBound()[d], scaled);
  }
  Block *body = p.getBody();
  rewriter.eraseOp(body->getTerminator());
  rewriter.inlineBlockBefore(body, loop.getBody()->getTerminator(), ivs);
  rewriter.eraseOp(p);
}

/// A parallel loop inside an invocation's share runs serially.
void serialize(RewriterBase &rewriter, scf::ParallelOp p) {
  rewriter.setInsertionPoint(p);
  SmallVector<Value> ivs;
  for (auto [lb, ub, step] :
       llvm::zip(p.getLowerBound(), p.getUpperBound(), p.getStep())) {
    auto loop = scf::ForOp::create(rewriter, p.getLoc(), lb, ub, step);
    ivs.push_back(loop.getInductionVar());
    rewriter.setInsertionPoint(loop.getBody()->getTerminator());
  }
  Block *body = p.getBody();
  rewriter.eraseOp(body->getTerminator());
  rewriter.inlineBlockBefore(body, rewriter.getInsertionBlock(),
                             rewriter.getInsertionPoint(), ivs);
  rewriter.eraseOp(p);
}

bool containsParallel(Operation *op) {
  bool found = false;
  op->walk([&](scf::ParallelOp) { found = true; });
  return found;
}

bool onlyReads(Operation *op) {
  if (isMemoryEffectFree(op))
    return true;
  bool writes = false;
  op->walk([&](Operation *inner) {
    auto effects = dyn_cast<MemoryEffectOpInterface>(inner);
    if (!effects) {
      if (!inner->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
        writes = true;
      return;
    }
    if (effects.hasEffect<MemoryEffects::Write>() ||
        effects.hasEffect<MemoryEffects::Free>())
      writes = true;
  });
  return !writes;
}

/// Workgroup mode: spreads the parallel loops of `block` over the
/// invocations of one workgroup with a barrier after each step that writes.
LogicalResult spreadOverWorkgroup(RewriterBase &rewriter, Block &block,
                                  Value tid, Value size, std::string &error) {
  SmallVector<Operation *> ops;
  for (Operation &op : block.without_terminator())
    ops.push_back(&op);
  for (Operation *op : ops) {
    Location loc = op->getLoc();
    if (isa<memref::AllocOp, memref::AllocaOp>(op)) {
      op->setAttr(kMemoryAttr, rewriter.getStringAttr("workgroup"));
      continue;
    }
    if (auto p = dyn_cast<scf::ParallelOp>(op); p && isCooperative(p)) {
      // The whole workgroup runs every item, one after another.
      p->walk([&](Operation *a) {
        if (isa<memref::AllocaOp>(a))
          a->setAttr(kMemoryAttr, rewriter.getStringAttr("private"));
      });
      rewriter.setInsertionPointAfter(p);
      gpu::BarrierOp::create(rewriter, loc);
      serialize(rewriter, p);
      continue;
    }
    if (auto p = dyn_cast<scf::ParallelOp>(op)) {
      p->walk([&](Operation *a) {
        if (isa<memref::AllocOp, memref::AllocaOp>(a))
          a->setAttr(kMemoryAttr, rewriter.getStringAttr("private"));
      });
      rewriter.setInsertionPointAfter(p);
      gpu::BarrierOp::create(rewriter, loc);
      gridStride(rewriter, p, tid, size);
      continue;
    }
    // Loops and branches on values every invocation computes alike: all
    // invocations take them together, so barriers inside stay uniform.
    if (auto f = dyn_cast<scf::ForOp>(op); f && containsParallel(f)) {
      if (failed(spreadOverWorkgroup(rewriter, *f.getBody(), tid, size, error)))
        return failure();
      continue;
    }
    if (auto i = dyn_cast<scf::IfOp>(op); i && containsParallel(i)) {
      if (i->getNumResults() != 0) {
        error = "a branch with results around a parallel loop";
        return failure();
      }
      for (Region *r : {&i.getThenRegion(), &i.getElseRegion()})
        if (!r->empty() &&
            failed(spreadOverWorkgroup(rewriter, r->front(), tid, size, error)))
          return failure();
      continue;
    }
    if (containsParallel(op)) {
      error = "a parallel loop nested in '" +
              op->getName().getStringRef().str() +
              "' (only scf.for can hold one on this target)";
      return failure();
    }
    if (onlyReads(op))
      continue; // every invocation computes the same values
    if (op->getNumResults() != 0) {
      error = "a serial step with results that also writes memory ('" +
              op->getName().getStringRef().str() + "')";
      return failure();
    }
    // Writes that are not a parallel loop: invocation 0 does them.
    op->walk([&](Operation *a) {
      if (isa<memref::AllocOp, memref::AllocaOp>(a))
        a->setAttr(kMemoryAttr, rewriter.getStringAttr("private"));
    });
    rewriter.setInsertionPoint(op);
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value first = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq,
                                        tid, zero);
    auto guard = scf::IfOp::create(rewriter, loc, first, /*withElse=*/false);
    rewriter.moveOpBefore(op, guard.thenBlock()->getTerminator());
    rewriter.setInsertionPointAfter(guard);
    gpu::BarrierOp::create(rewriter, loc);
  }
  return success();
}

} // namespace

FailureOr<GpuMapping> distributeKernel(func::FuncOp fn,
                                       const TargetDescription &target,
                                       std::string &error) {
  Block &body = fn.getBody().front();
  IRRewriter rewriter(fn.getContext());
  Location loc = fn.getLoc();
  for (auto dealloc : llvm::make_early_inc_range(body.getOps<memref::DeallocOp>()))
    rewriter.eraseOp(dealloc);
  scf::ParallelOp only;
  bool grid = true;
  for (Operation &op : body.without_terminator()) {
    if (auto p = dyn_cast<scf::ParallelOp>(&op)) {
      grid &= !only;
      only = p;
      continue;
    }
    grid &= isMemoryEffectFree(&op) || isWorkgroupAlloc(&op);
  }
  grid &= static_cast<bool>(only);

  rewriter.setInsertionPointToStart(&body);
  Value wgSize = arith::ConstantIndexOp::create(rewriter, loc, target.workgroupSize);
  Value wgId = fn.getArgument(0), wgCount = fn.getArgument(1);
  GpuMapping mapping;
  if (grid) {
    only->walk([&](Operation *a) {
      if (isa<memref::AllocOp, memref::AllocaOp>(a))
        a->setAttr(kMemoryAttr, rewriter.getStringAttr("private"));
    });
    if (isCooperative(only)) {
      Value group = gpu::BlockIdOp::create(rewriter, loc, gpu::Dimension::x);
      Value groups = gpu::GridDimOp::create(rewriter, loc, gpu::Dimension::x);
      gridStride(rewriter, only, group, groups);
    } else {
      Value id = gpu::GlobalIdOp::create(rewriter, loc, gpu::Dimension::x);
      Value groups = gpu::GridDimOp::create(rewriter, loc, gpu::Dimension::x);
      Value count = arith::MulIOp::create(rewriter, loc, groups, wgSize);
      gridStride(rewriter, only, id, count);
    }
    mapping = GpuMapping::Grid;
  } else {
    // Workgroups other than the first have nothing to do (the runtime
    // dispatches one, but a kernel is correct for any count).
    Value tid = gpu::ThreadIdOp::create(rewriter, loc, gpu::Dimension::x);
    Value group = gpu::BlockIdOp::create(rewriter, loc, gpu::Dimension::x);
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value first = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq,
                                        group, zero);
    auto guard = scf::IfOp::create(rewriter, loc, first, /*withElse=*/false);
    Operation *firstMoved = guard->getNextNode();
    Operation *terminator = body.getTerminator();
    Block *then = guard.thenBlock();
    then->getOperations().splice(then->getTerminator()->getIterator(),
                                 body.getOperations(), firstMoved->getIterator(),
                                 terminator->getIterator());
    if (failed(spreadOverWorkgroup(rewriter, *then, tid, wgSize, error)))
      return failure();
    mapping = GpuMapping::Workgroup;
  }
  SmallVector<scf::ParallelOp> nested;
  fn.walk([&](scf::ParallelOp p) { nested.push_back(p); });
  for (scf::ParallelOp p : llvm::reverse(nested))
    serialize(rewriter, p);
  // The workgroup arguments of the CPU ABI are gone.
  if (!wgId.use_empty() || !wgCount.use_empty()) {
    rewriter.setInsertionPointToStart(&body);
    Value group = gpu::BlockIdOp::create(rewriter, loc, gpu::Dimension::x);
    Value groups = gpu::GridDimOp::create(rewriter, loc, gpu::Dimension::x);
    rewriter.replaceAllUsesWith(wgId, group);
    rewriter.replaceAllUsesWith(wgCount, groups);
  }
  if (failed(fn.eraseArguments(llvm::BitVector(fn.getNumArguments(), false)
                                   .set(0, 2)))) {
    error = "internal: cannot drop the workgroup arguments";
    return failure();
  }
  return mapping;
}

} // namespace kiln
