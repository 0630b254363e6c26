//===- FlattenMemrefs.cpp - N-d kernel buffers -> 1-d storage buffers ------===//
//
// A Vulkan storage buffer is a runtime array: it has no shape, and the SPIR-V
// lowering of memref.load needs strides it knows at compile time (CUDA's
// kernels take the same 1-d buffers, which keeps one ABI for both). So every
// memref argument becomes a 1-d buffer and every access one at its row-major
// linear index, computed through the views (subview, expand_shape,
// collapse_shape, cast) that lead to it. Dynamic dims come from the push
// constants the runtime fills with every argument's shape; static dims are
// constants. Temporaries get the same treatment, in private (Function) or
// workgroup memory as distributeKernel tagged them.
//
//===----------------------------------------------------------------------===//
#include "targets/gpu/GpuKernelSteps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVAttributes.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVEnums.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/SmallBitVector.h"

using namespace mlir;

namespace kiln {
namespace {

/// Largest temporary one invocation may keep in private memory.
constexpr int64_t kMaxPrivateBytes = 16 * 1024;

struct Root {
  Value flat;
  SmallVector<Value> dims;
};

class Flattener {
public:
  Flattener(func::FuncOp fn, const GpuMemorySpaces &spaces, std::string &error)
      : fn(fn), spaces(spaces), rewriter(fn.getContext()), error(error) {}

  LogicalResult run() {
    Block &entry = fn.getBody().front();
    Location loc = fn.getLoc();
    unsigned numArgs = fn.getNumArguments();
    rewriter.setInsertionPointToStart(&entry);
    unsigned word = 0;
    for (unsigned a = 0; a < numArgs; ++a)
      if (auto t = dyn_cast<MemRefType>(fn.getArgumentTypes()[a]))
        word += t.getRank();
    unsigned totalWords = word;
    word = 0;
    Attribute storage = spaces.buffer;
    for (unsigned a = 0; a < numArgs; ++a) {
      auto t = dyn_cast<MemRefType>(fn.getArgumentTypes()[a]);
      if (!t) {
        error = "internal: kernel argument " + std::to_string(a) + " is not a buffer";
        return failure();
      }
      if (!t.getLayout().isIdentity()) {
        error = "internal: kernel argument with a non-identity layout";
        return failure();
      }
      Root root;
      for (int64_t d = 0; d < t.getRank(); ++d, ++word) {
        if (!t.isDynamicDim(d)) {
          root.dims.push_back(arith::ConstantIndexOp::create(rewriter, loc, t.getDimSize(d)));
          continue;
        }
        Value k = arith::ConstantIntOp::create(rewriter, loc, word, 32);
        auto call = func::CallOp::create(rewriter, loc, kPushConstantFn,
                                         TypeRange{rewriter.getI32Type()}, ValueRange{k});
        root.dims.push_back(arith::IndexCastOp::create(rewriter, loc, rewriter.getIndexType(),
                                                       call.getResult(0)));
      }
      auto flatType = MemRefType::get({ShapedType::kDynamic}, t.getElementType(),
                                      MemRefLayoutAttrInterface(), storage);
      if (failed(fn.insertArgument(fn.getNumArguments(), flatType, {}, loc))) {
        error = "internal: cannot add a flat argument";
        return failure();
      }
      root.flat = fn.getArgument(fn.getNumArguments() - 1);
      roots[fn.getArgument(a)] = std::move(root);
    }
    fn->setAttr("kiln.push_constant_words", rewriter.getI32IntegerAttr(totalWords));

    // Temporaries.
    int64_t workgroupBytes = 0;
    SmallVector<Operation *> allocs;
    fn.walk([&](Operation *op) {
      if (isa<memref::AllocOp, memref::AllocaOp>(op))
        allocs.push_back(op);
    });
    for (Operation *op : allocs) {
      auto t = cast<MemRefType>(op->getResult(0).getType());
      if (!t.hasStaticShape()) {
        error = "a temporary buffer of dynamic size (" + typeString(t) +
                "); this target keeps temporaries in private or workgroup memory";
        return failure();
      }
      auto tag = op->getAttrOfType<StringAttr>("kiln.gpu_memory");
      bool shared = tag && tag.getValue() == "workgroup";
      int64_t bytes = t.getNumElements() * ((t.getElementTypeBitWidth() + 7) / 8);
      if (shared) {
        workgroupBytes += bytes;
      } else if (bytes > kMaxPrivateBytes) {
        error = "a temporary of " + std::to_string(bytes) +
                " bytes per invocation (" + typeString(t) + ") exceeds " +
                std::to_string(kMaxPrivateBytes) + " bytes of private memory";
        return failure();
      }
      Attribute space = shared ? spaces.workgroup : spaces.privateSpace;
      auto flatType = MemRefType::get({std::max<int64_t>(1, t.getNumElements())},
                                      t.getElementType(), MemRefLayoutAttrInterface(), space);
      rewriter.setInsertionPointToStart(&entry);
      Root root;
      Value flat = shared ? Value(memref::AllocOp::create(rewriter, op->getLoc(), flatType))
                          : Value(memref::AllocaOp::create(rewriter, op->getLoc(), flatType));
      root.flat = flat;
      for (int64_t s : t.getShape())
        root.dims.push_back(arith::ConstantIndexOp::create(rewriter, op->getLoc(), s));
      roots[op->getResult(0)] = std::move(root);
    }
    fn->setAttr("kiln.workgroup_bytes", rewriter.getI64IntegerAttr(workgroupBytes));

    // Accesses.
    SmallVector<Operation *> accesses;
    fn.walk([&](Operation *op) {
      if (isa<memref::LoadOp, memref::StoreOp, memref::DimOp, vector::LoadOp,
              gpu::SubgroupMmaLoadMatrixOp, gpu::SubgroupMmaStoreMatrixOp>(op))
        accesses.push_back(op);
    });
    // An op that keeps its place and reads (memref, indices) as operands:
    // they become the flat buffer and the linear index.
    auto relocate = [&](Operation *op, OpOperand &memref,
                        MutableOperandRange indices) -> LogicalResult {
      auto at = linearize(memref.get(), ValueRange(indices.getAsOperandRange()), op->getLoc());
      if (failed(at))
        return failure();
      rewriter.modifyOpInPlace(op, [&] {
        memref.assign(at->first);
        indices.assign(at->second);
      });
      return success();
    };
    for (Operation *op : accesses) {
      rewriter.setInsertionPoint(op);
      if (auto load = dyn_cast<memref::LoadOp>(op)) {
        auto at = linearize(load.getMemRef(), load.getIndices(), load.getLoc());
        if (failed(at))
          return failure();
        rewriter.replaceOpWithNewOp<memref::LoadOp>(load, at->first, ValueRange{at->second});
      } else if (auto store = dyn_cast<memref::StoreOp>(op)) {
        auto at = linearize(store.getMemRef(), store.getIndices(), store.getLoc());
        if (failed(at))
          return failure();
        rewriter.replaceOpWithNewOp<memref::StoreOp>(store, store.getValueToStore(), at->first,
                                                     ValueRange{at->second});
      } else if (auto load = dyn_cast<vector::LoadOp>(op)) {
        // A 1-d vector from its first element's linear index (CUDA's wide
        // weight loads): the same alignment.
        if (failed(relocate(op, load.getBaseMutable(), load.getIndicesMutable())))
          return failure();
      } else if (auto load = dyn_cast<gpu::SubgroupMmaLoadMatrixOp>(op)) {
        // A tile from (row, column) with the op's leading dimension: the
        // same tile from the linear index of its first element.
        if (failed(relocate(op, load.getSrcMemrefMutable(), load.getIndicesMutable())))
          return failure();
      } else if (auto store = dyn_cast<gpu::SubgroupMmaStoreMatrixOp>(op)) {
        if (failed(relocate(op, store.getDstMemrefMutable(), store.getIndicesMutable())))
          return failure();
      } else if (auto dim = cast<memref::DimOp>(op)) {
        std::optional<int64_t> index = dim.getConstantIndex();
        auto dims = dimsOf(dim.getSource(), dim.getLoc());
        if (!index || failed(dims) || *index >= static_cast<int64_t>(dims->size())) {
          if (error.empty())
            error = "internal: memref.dim with a dynamic index";
          return failure();
        }
        rewriter.replaceOp(dim, (*dims)[*index]);
      }
    }

    // The views, the old temporaries and the old arguments are dead now.
    SmallVector<Operation *> dead;
    fn.walk<WalkOrder::PostOrder>([&](Operation *op) {
      if (isa<memref::SubViewOp, memref::ExpandShapeOp, memref::CollapseShapeOp,
              memref::CastOp>(op) ||
          llvm::is_contained(allocs, op))
        dead.push_back(op);
    });
    bool changed = true;
    while (changed) {
      changed = false;
      for (Operation *&op : dead)
        if (op && op->use_empty()) {
          rewriter.eraseOp(op);
          op = nullptr;
          changed = true;
        }
    }
    for (Operation *op : dead)
      if (op) {
        Operation *user = *op->getUsers().begin();
        error = "internal: '" + user->getName().getStringRef().str() +
                "' uses a buffer this target cannot flatten";
        return failure();
      }
    for (unsigned a = 0; a < numArgs; ++a)
      if (!fn.getArgument(a).use_empty()) {
        Operation *user = *fn.getArgument(a).getUsers().begin();
        error = "'" + user->getName().getStringRef().str() +
                "' on a kernel buffer is not supported on this target";
        return failure();
      }
    llvm::BitVector erase(fn.getNumArguments(), false);
    erase.set(0, numArgs);
    if (failed(fn.eraseArguments(erase))) {
      error = "internal: cannot drop the N-d arguments";
      return failure();
    }
    return success();
  }

private:
  static std::string typeString(Type t) {
    std::string s;
    llvm::raw_string_ostream os(s);
    t.print(os);
    return s;
  }

  Value value(OpFoldResult ofr, Location loc) {
    return getValueOrCreateConstantIndexOp(rewriter, loc, ofr);
  }

  /// Horner's rule: ((i0 * d1 + i1) * d2 + i2) ...
  Value rowMajor(ValueRange idx, ArrayRef<Value> dims, Location loc) {
    if (idx.empty())
      return arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value lin = idx[0];
    for (size_t d = 1; d < idx.size(); ++d) {
      lin = arith::MulIOp::create(rewriter, loc, lin, dims[d]);
      lin = arith::AddIOp::create(rewriter, loc, lin, idx[d]);
    }
    return lin;
  }

  FailureOr<SmallVector<Value>> dimsOf(Value m, Location loc) {
    auto it = roots.find(m);
    if (it != roots.end())
      return it->second.dims;
    Operation *op = m.getDefiningOp();
    if (auto sv = dyn_cast_or_null<memref::SubViewOp>(op)) {
      llvm::SmallBitVector dropped = sv.getDroppedDims();
      SmallVector<Value> out;
      for (auto [d, size] : llvm::enumerate(sv.getMixedSizes()))
        if (!dropped.test(d))
          out.push_back(value(size, loc));
      return out;
    }
    if (auto ex = dyn_cast_or_null<memref::ExpandShapeOp>(op)) {
      SmallVector<Value> out;
      for (OpFoldResult s : ex.getMixedOutputShape())
        out.push_back(value(s, loc));
      return out;
    }
    if (auto co = dyn_cast_or_null<memref::CollapseShapeOp>(op)) {
      auto src = dimsOf(co.getSrc(), loc);
      if (failed(src))
        return failure();
      SmallVector<Value> out;
      for (const ReassociationIndices &group : co.getReassociationIndices()) {
        Value p = arith::ConstantIndexOp::create(rewriter, loc, 1);
        for (int64_t d : group)
          p = arith::MulIOp::create(rewriter, loc, p, (*src)[d]);
        out.push_back(p);
      }
      return out;
    }
    if (auto cast = dyn_cast_or_null<memref::CastOp>(op))
      return dimsOf(cast.getSource(), loc);
    return unsupported(m);
  }

  FailureOr<std::pair<Value, Value>> linearize(Value m, ValueRange idx, Location loc) {
    auto it = roots.find(m);
    if (it != roots.end())
      return std::make_pair(it->second.flat, rowMajor(idx, it->second.dims, loc));
    Operation *op = m.getDefiningOp();
    if (auto sv = dyn_cast_or_null<memref::SubViewOp>(op)) {
      llvm::SmallBitVector dropped = sv.getDroppedDims();
      SmallVector<OpFoldResult> offsets = sv.getMixedOffsets(), strides = sv.getMixedStrides();
      SmallVector<Value> src;
      unsigned k = 0;
      for (unsigned d = 0; d < offsets.size(); ++d) {
        Value off = value(offsets[d], loc);
        if (dropped.test(d)) {
          src.push_back(off);
          continue;
        }
        Value i = idx[k++];
        std::optional<int64_t> s = getConstantIntValue(strides[d]);
        if (!s || *s != 1)
          i = arith::MulIOp::create(rewriter, loc, i, value(strides[d], loc));
        src.push_back(arith::AddIOp::create(rewriter, loc, off, i));
      }
      return linearize(sv.getSource(), src, loc);
    }
    if (auto ex = dyn_cast_or_null<memref::ExpandShapeOp>(op)) {
      SmallVector<Value> shape;
      for (OpFoldResult s : ex.getMixedOutputShape())
        shape.push_back(value(s, loc));
      SmallVector<Value> src;
      for (const ReassociationIndices &group : ex.getReassociationIndices()) {
        SmallVector<Value> gi, gd;
        for (int64_t d : group) {
          gi.push_back(idx[d]);
          gd.push_back(shape[d]);
        }
        src.push_back(rowMajor(gi, gd, loc));
      }
      return linearize(ex.getSrc(), src, loc);
    }
    if (auto co = dyn_cast_or_null<memref::CollapseShapeOp>(op)) {
      auto dims = dimsOf(co.getSrc(), loc);
      if (failed(dims))
        return failure();
      SmallVector<Value> src(dims->size());
      for (auto [g, group] : llvm::enumerate(co.getReassociationIndices())) {
        Value rem = idx[g];
        for (int k = group.size() - 1; k >= 0; --k) {
          int64_t d = group[k];
          if (k == 0) {
            src[d] = rem;
            break;
          }
          src[d] = arith::RemUIOp::create(rewriter, loc, rem, (*dims)[d]);
          rem = arith::DivUIOp::create(rewriter, loc, rem, (*dims)[d]);
        }
      }
      return linearize(co.getSrc(), src, loc);
    }
    if (auto cast = dyn_cast_or_null<memref::CastOp>(op))
      return linearize(cast.getSource(), idx, loc);
    return unsupported(m);
  }

  LogicalResult unsupported(Value m) {
    Operation *op = m.getDefiningOp();
    error = op ? "'" + op->getName().getStringRef().str() +
                     "' makes a buffer this target cannot flatten"
               : std::string("internal: an unknown buffer in a kernel");
    return failure();
  }

  func::FuncOp fn;
  const GpuMemorySpaces &spaces;
  IRRewriter rewriter;
  std::string &error;
  llvm::DenseMap<Value, Root> roots;
};

} // namespace

LogicalResult flattenKernelMemrefs(func::FuncOp fn, const GpuMemorySpaces &spaces,
                                   std::string &error) {
  return Flattener(fn, spaces, error).run();
}

GpuMemorySpaces GpuMemorySpaces::spirv(MLIRContext *ctx) {
  return {spirv::StorageClassAttr::get(ctx, spirv::StorageClass::StorageBuffer),
          spirv::StorageClassAttr::get(ctx, spirv::StorageClass::Workgroup),
          spirv::StorageClassAttr::get(ctx, spirv::StorageClass::Function)};
}

} // namespace kiln
