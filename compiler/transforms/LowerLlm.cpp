//===- LowerLlm.cpp - llm ops -> CPU microkernel calls ----------------------===//
//
// Each llm op becomes one or two `llm.ukernel` calls on fresh destination
// tensors (dynamic dims read off the operands), so that dispatch formation
// outlines each as its own kernel. Weights of linear layers are packed at
// compile time by the microkernels' own packer (targets/cpu/ukernels/
// pack.c: panels of 16 output columns, k-major inside a panel), and the
// unpacked original is released as soon as nothing else uses it, so the
// compiler never holds two full copies of the weights.
//
// A weight that is an llm.dequantize of integer constants is packed by the
// quantized packer instead (pack_q.c: integers, f16 group scales, zero
// points) and its matmul calls the quantized kernel, which unpacks the
// integers in registers: the dequantize is fused away and the f32 weight
// never exists.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/LowerLlm.h"

#include "compiler/transforms/GraphMatch.h"
#include "compiler/transforms/LinearWeights.h"
#include "ukernels.h"

#include "dialects/llm/IR/LlmDialect.h"
#include "dialects/onnx/IR/OnnxQuant.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Builders.h"

#include <cmath>
#include <vector>

using namespace mlir;

namespace kiln {
namespace {

/// The argument-list builder of one ukernel call (see llm.ukernel).
struct Args {
  Builder &b;
  SmallVector<Attribute> list;
  Args &ptr(int64_t operand) {
    list.push_back(b.getDenseI64ArrayAttr({operand}));
    return *this;
  }
  Args &null() { return ptr(-1); }
  Args &dims(int64_t operand, ArrayRef<int64_t> ds) {
    SmallVector<int64_t> v{operand};
    v.append(ds.begin(), ds.end());
    list.push_back(b.getDenseI64ArrayAttr(v));
    return *this;
  }
  Args &i64(int64_t x) {
    list.push_back(b.getI64IntegerAttr(x));
    return *this;
  }
  Args &i32(int32_t x) {
    list.push_back(b.getI32IntegerAttr(x));
    return *this;
  }
  Args &f32(float x) {
    list.push_back(b.getF32FloatAttr(x));
    return *this;
  }
};

class Lowerer {
public:
  Lowerer(func::FuncOp fn, PackCache *cache, const LowerLlmOptions &options)
      : fn(fn), b(fn.getContext()), cache(cache), weights(options.floatWeights) {}

  LogicalResult run() {
    SmallVector<Operation *> ops;
    fn.walk([&](Operation *op) {
      if (isa<llm::LlmDialect>(op->getDialect()) &&
          !isa<llm::UkernelOp, llm::DequantizeOp, llm::Sparse24Op>(op))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      b.setInsertionPoint(op);
      FailureOr<Value> r = lower(op);
      if (failed(r))
        return failure();
      op->getResult(0).replaceAllUsesWith(*r);
      op->erase();
      // Free each unpacked weight as soon as its last reader is lowered,
      // so that at most one weight exists twice at any time.
      releaseUnpacked();
      releaseSparse();
    }
    if (fn.walk([&](llm::Sparse24Op sp) {
            sp.emitOpError("is not the weight of a matmul: 2:4 sparse weights are only read "
                           "by matmul kernels");
            return WalkResult::interrupt();
          }).wasInterrupted())
      return failure();
    // Every dequantize was a weight read by a kernel: none may be left.
    WalkResult left = fn.walk([&](llm::DequantizeOp dq) {
      dq.emitOpError("is not the weight of a matmul: quantized weights are "
                     "only read by matmul kernels");
      return WalkResult::interrupt();
    });
    return failure(left.wasInterrupted());
  }

private:
  Value dim(Value v, int64_t i) {
    return tensor::DimOp::create(b, v.getLoc(), v, i);
  }

  /// An empty destination of `type` whose dynamic dims are `sizes[i]`
  /// (only read where the type is dynamic).
  Value empty(RankedTensorType type, ArrayRef<Value> sizes) {
    SmallVector<Value> dyn;
    for (int64_t i = 0; i < type.getRank(); ++i)
      if (type.isDynamicDim(i))
        dyn.push_back(sizes[i]);
    return tensor::EmptyOp::create(b, fn.getLoc(), type.getShape(),
                                   type.getElementType(), dyn);
  }

  /// Same shape as `like` (dims read from it).
  Value emptyLike(Value like) {
    auto t = cast<RankedTensorType>(like.getType());
    SmallVector<Value> sizes;
    for (int64_t i = 0; i < t.getRank(); ++i)
      sizes.push_back(t.isDynamicDim(i) ? dim(like, i) : Value());
    return empty(t, sizes);
  }

  /// `like` with its last dim replaced by n.
  Value emptyWithLast(Value like, int64_t n) {
    auto t = cast<RankedTensorType>(like.getType());
    SmallVector<int64_t> shape(t.getShape());
    shape.back() = n;
    SmallVector<Value> sizes;
    for (int64_t i = 0; i < t.getRank(); ++i)
      sizes.push_back(t.isDynamicDim(i) && i + 1 < t.getRank() ? dim(like, i)
                                                               : Value());
    return empty(RankedTensorType::get(shape, t.getElementType()), sizes);
  }

  Value call(Location loc, StringRef callee, ArrayRef<Value> ins, Value out,
             Args &args) {
    auto uk = llm::UkernelOp::create(b, loc, TypeRange{out.getType()},
                                     b.getStringAttr(callee), ins,
                                     ValueRange{out}, b.getArrayAttr(args.list));
    return uk.getResult(0);
  }

  /// Leading dims of a rank-r operand as one product (rows).
  static SmallVector<int64_t> leading(Value v) {
    SmallVector<int64_t> d;
    for (int64_t i = 0; i + 1 < cast<RankedTensorType>(v.getType()).getRank(); ++i)
      d.push_back(i);
    return d;
  }
  static int64_t lastDim(Value v) {
    return cast<RankedTensorType>(v.getType()).getRank() - 1;
  }

  /// The weight `w` [K, N] packed into panels; one packed copy per weight.
  FailureOr<Value> packed(Value w, Operation *user) {
    if (Value p = packedOf.lookup(w))
      return p;
    ElementsAttr attr = match::constant(w);
    auto type = cast<RankedTensorType>(w.getType());
    if (!attr || type.getRank() != 2 || !type.getElementType().isF32())
      return user->emitOpError("weights must be a constant f32 [K, N] tensor");
    if (cache)
      if (Attribute shared = cache->lookup(attr)) {
        // Another function of the module packed this weight already.
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointAfterValue(w);
        auto typed = cast<TypedAttr>(shared);
        Value p = arith::ConstantOp::create(b, w.getLoc(), typed.getType(), typed);
        packedOf[w] = p;
        if (isa<DenseResourceElementsAttr>(attr))
          originals.push_back(w);
        return p;
      }
    int64_t K = type.getDimSize(0), N = type.getDimSize(1);
    SmallVector<float> storage;
    std::optional<ArrayRef<float>> src = match::floatData(attr, storage);
    if (!src || (int64_t)src->size() != K * N)
      return user->emitOpError("weight data is missing");
    // The microkernels' own packer: one definition of the panel layout.
    int64_t size = kiln_uk_packed_b_size(K, N);
    bool narrow = weights != FloatWeights::F32;
    auto blob = HeapAsmResourceBlob::allocate(size_t(size) * (narrow ? 2 : sizeof(float)),
                                              alignof(float) * 16);
    if (narrow) {
      // The same panels, element (k, n) at (n / 16) * K * 16 + k * 16 +
      // n % 16 (kiln_uk_pack_b_f32), rounded to half or bfloat16 (nearest
      // even); padding is +0.
      bool bf16 = weights == FloatWeights::BF16;
      std::vector<float> panels(size);
      kiln_uk_pack_b_f32(src->data(), K, N, panels.data());
      auto *out = reinterpret_cast<uint16_t *>(blob.getMutableData().data());
      for (int64_t i = 0; i < size; ++i) {
        out[i] = bf16 ? toBf16(panels[i]) : toHalf(panels[i]);
        bool finite = bf16 ? (out[i] & 0x7f80) != 0x7f80 : (out[i] & 0x7c00) != 0x7c00;
        if (!finite)
          return user->emitOpError("a weight of magnitude ")
                 << panels[i] << " is beyond " << (bf16 ? "bf16" : "f16")
                 << "'s range (--quantize=" << (bf16 ? "bf16" : "f16") << ")";
      }
    } else {
      kiln_uk_pack_b_f32(src->data(), K, N,
                         reinterpret_cast<float *>(blob.getMutableData().data()));
    }
    // bfloat16 panels are typed as their i16 bits: SPIR-V has no bfloat16
    // type, and every kernel widens them with a shift.
    Type element = weights == FloatWeights::F16    ? Type(b.getF16Type())
                   : weights == FloatWeights::BF16 ? Type(b.getI16Type())
                                                   : Type(b.getF32Type());
    auto ptype = RankedTensorType::get({size}, element);
    std::string name = "packed" + std::to_string(packedOf.size());
    if (auto res = dyn_cast<DenseResourceElementsAttr>(attr))
      name = (res.getRawHandle().getKey() + ".packed").str();
    auto pattr = DenseResourceElementsAttr::get(ptype, name, std::move(blob));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointAfterValue(w);
    Value p = arith::ConstantOp::create(b, w.getLoc(), ptype, pattr);
    packedOf[w] = p;
    if (cache)
      (*cache)[attr] = pattr;
    if (isa<DenseResourceElementsAttr>(attr))
      originals.push_back(w);
    return p;
  }

  /// How a quantized weight was packed (kiln_uk_pack_q, or
  /// kiln_uk_pack_q8a8 for a w8a8 weight).
  struct QuantInfo {
    int32_t bits = 0;
    int64_t group = 0;
    bool zeroPoints = false;
    bool int8Activations = false;
    /// w8a8's own layout (int8 weights with int8 activations); int4 weights
    /// with int8 activations keep kiln_uk_pack_q's.
    bool q8a8() const { return int8Activations && bits == 8; }
  };

  /// The weight `dq` (an llm.dequantize of constants) packed for the
  /// quantized kernels; `zeroPoints` forces zero points into the layout
  /// (the two weights of a GLU must agree).
  FailureOr<Value> packedQuant(llm::DequantizeOp dq, Operation *user, bool zeroPoints,
                               QuantInfo &info) {
    Value w = dq.getResult();
    ElementsAttr data = match::constant(dq.getData());
    ElementsAttr scales = match::constant(dq.getScales());
    ElementsAttr zps = dq.getZeroPoints() ? match::constant(dq.getZeroPoints()) : ElementsAttr();
    if (!data || !scales || (dq.getZeroPoints() && !zps))
      return user->emitOpError("quantized weights must be constants");
    auto type = cast<RankedTensorType>(dq.getData().getType());
    int64_t K = type.getDimSize(0), N = type.getDimSize(1), group = dq.getGroupSize();
    info.bits = type.getElementType().isInteger(4) ? 4 : 8;
    info.group = group;
    info.zeroPoints = zeroPoints || zps;
    // w8a8: the verifier has checked i8, per column, no zero points.
    info.int8Activations = dq.getActivationBits().has_value();
    SmallVector<Attribute> keyParts{data, scales, b.getBoolAttr(info.zeroPoints),
                                    b.getBoolAttr(info.int8Activations)};
    if (zps)
      keyParts.push_back(zps);
    Attribute key = b.getArrayAttr(keyParts);
    if (auto it = packedQ.find(key); it != packedQ.end()) {
      // Another dequantize of the same constants (a GLU whose gate and up are
      // equal): it shares the packing, and must be erased with the first.
      if (!llvm::is_contained(quantized, dq))
        quantized.push_back(dq);
      return it->second;
    }
    int64_t size = info.q8a8() ? kiln_uk_packed_q8a8_size(K, N)
                   : info.int8Activations && !kiln_uk_qa8_fits(K, group)
                       ? 0
                       : kiln_uk_packed_q_size(K, N, info.bits, group, info.zeroPoints);
    if (size <= 0)
      return user->emitOpError() << "no quantized kernel takes " << info.bits
                                 << "-bit weights [" << K << ", " << N << "] in groups of "
                                 << group << (info.int8Activations ? " with int8 activations" : "");
    Attribute shared = cache ? cache->lookup(key) : Attribute();
    if (!shared) {
      std::vector<char> ds, ss, zs;
      std::optional<ArrayRef<char>> qBytes = onnx::rawBytes(data, ds);
      std::optional<ArrayRef<char>> sBytes = onnx::rawBytes(scales, ss);
      std::optional<ArrayRef<char>> zBytes = zps ? onnx::rawBytes(zps, zs) : std::nullopt;
      if (!qBytes || !sBytes || (zps && !zBytes))
        return user->emitOpError("quantized weight data is missing");
      SmallVector<int8_t> zeros;
      const int8_t *z = zBytes ? reinterpret_cast<const int8_t *>(zBytes->data()) : nullptr;
      if (info.zeroPoints && !z) {
        zeros.assign((K / group) * N, 0);
        z = zeros.data();
      }
      auto blob = HeapAsmResourceBlob::allocate(size_t(size), 64);
      auto *out = reinterpret_cast<uint8_t *>(blob.getMutableData().data());
      if (info.q8a8())
        kiln_uk_pack_q8a8(reinterpret_cast<const int8_t *>(qBytes->data()),
                          reinterpret_cast<const uint16_t *>(sBytes->data()), K, N, out);
      else
        kiln_uk_pack_q(reinterpret_cast<const int8_t *>(qBytes->data()),
                       reinterpret_cast<const uint16_t *>(sBytes->data()), z, K, N, info.bits,
                       group, out);
      auto ptype = RankedTensorType::get({size}, b.getIntegerType(8));
      std::string name = "qpacked" + std::to_string(packedQ.size());
      if (auto res = dyn_cast<DenseResourceElementsAttr>(data))
        name = (res.getRawHandle().getKey() + ".packed").str();
      shared = DenseResourceElementsAttr::get(ptype, name, std::move(blob));
      if (cache)
        (*cache)[key] = shared;
    }
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointAfterValue(w);
    auto typed = cast<TypedAttr>(shared);
    Value p = arith::ConstantOp::create(b, w.getLoc(), typed.getType(), typed);
    packedQ[key] = p;
    quantized.push_back(dq);
    return p;
  }

  /// Frees the unpacked weights nobody reads any more.
  void releaseUnpacked() {
    SmallVector<Value> keep;
    for (Value w : originals) {
      Operation *op = w.getDefiningOp();
      if (!op || !w.use_empty()) {
        keep.push_back(w);
        continue;
      }
      packedOf.erase(w);
      eraseConstant(op);
    }
    originals = std::move(keep);
    SmallVector<llm::DequantizeOp> live;
    for (llm::DequantizeOp dq : quantized) {
      if (dq->use_empty())
        eraseWithInputs(dq);
      else
        live.push_back(dq);
    }
    quantized = std::move(live);
  }

  /// Erases `op`, which nobody reads, then what fed only it: constants
  /// (their blobs freed when no other function holds them) and the
  /// dequantize of a 2:4 weight's int8 values.
  static void eraseWithInputs(Operation *op) {
    SmallVector<Value> operands(op->getOperands());
    op->erase();
    for (Value v : operands) {
      Operation *def = v.getDefiningOp();
      if (!def || !v.use_empty())
        continue;
      if (isa<arith::ConstantOp>(def))
        eraseConstant(def);
      else if (isa<llm::DequantizeOp>(def))
        eraseWithInputs(def);
    }
  }

  /// The 2:4 sparse weight `sp` (llm.sparse_24 of constant values, or of
  /// an int8 llm.dequantize with per-column scales) packed for the 2:4
  /// kernels (pack_s24.c); bits: 32 (f32 values) or 8.
  FailureOr<Value> packedS24(llm::Sparse24Op sp, Operation *user, int32_t &bits) {
    auto rtype = cast<RankedTensorType>(sp.getType());
    int64_t K = rtype.getDimSize(0), N = rtype.getDimSize(1);
    ElementsAttr idx = match::constant(sp.getIndices());
    auto dq = sp.getValues().getDefiningOp<llm::DequantizeOp>();
    if (dq && dq.getActivationBits())
      return user->emitOpError("no 2:4 kernel takes int8 activations (w8a8)");
    ElementsAttr values = match::constant(dq ? dq.getData() : sp.getValues());
    ElementsAttr scales = dq ? match::constant(dq.getScales()) : ElementsAttr();
    if (!idx || !values || (dq && (!scales || dq.getZeroPoints() ||
                                   !cast<RankedTensorType>(dq.getData().getType())
                                        .getElementType()
                                        .isInteger(8) ||
                                   dq.getGroupSize() != K / 2)))
      return user->emitOpError("2:4 sparse weights must be constant f32 values, or int8 "
                               "values with one scale per column, and constant indices");
    bits = dq ? 8 : 32;
    Attribute key = b.getArrayAttr({idx, values, scales ? Attribute(scales) : b.getUnitAttr()});
    if (auto it = packedQ.find(key); it != packedQ.end())
      return it->second;
    int64_t size = kiln_uk_packed_s24_size(K, N, bits);
    if (size <= 0)
      return user->emitOpError() << "no 2:4 kernel takes a weight [" << K << ", " << N << "]";
    Attribute shared = cache ? cache->lookup(key) : Attribute();
    if (!shared) {
      std::vector<char> is, vs, ss;
      SmallVector<float> fs;
      std::optional<ArrayRef<char>> iBytes = onnx::rawBytes(idx, is);
      const void *vdata = nullptr;
      if (dq) {
        if (std::optional<ArrayRef<char>> v = onnx::rawBytes(values, vs))
          vdata = v->data();
      } else if (std::optional<ArrayRef<float>> v = match::floatData(values, fs);
                 v && (int64_t)v->size() == K / 2 * N) {
        vdata = v->data();
      }
      std::optional<ArrayRef<char>> sBytes = dq ? onnx::rawBytes(scales, ss) : std::nullopt;
      if (!iBytes || !vdata || (dq && !sBytes))
        return user->emitOpError("2:4 sparse weight data is missing");
      auto blob = HeapAsmResourceBlob::allocate(size_t(size), 64);
      kiln_uk_pack_s24(vdata, reinterpret_cast<const int8_t *>(iBytes->data()),
                       sBytes ? reinterpret_cast<const uint16_t *>(sBytes->data()) : nullptr, K, N,
                       bits, reinterpret_cast<uint8_t *>(blob.getMutableData().data()));
      auto ptype = RankedTensorType::get({size}, b.getIntegerType(8));
      std::string name = "s24packed" + std::to_string(packedQ.size());
      if (auto res = dyn_cast<DenseResourceElementsAttr>(idx))
        name = (res.getRawHandle().getKey() + ".packed").str();
      shared = DenseResourceElementsAttr::get(ptype, name, std::move(blob));
      if (cache)
        (*cache)[key] = shared;
    }
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointAfterValue(sp.getResult());
    auto typed = cast<TypedAttr>(shared);
    Value p = arith::ConstantOp::create(b, sp.getLoc(), typed.getType(), typed);
    packedQ[key] = p;
    sparse.push_back(sp);
    return p;
  }

  /// Erases the 2:4 weights nobody reads any more, with their constants
  /// (and the dequantize of int8 values).
  void releaseSparse() {
    SmallVector<llm::Sparse24Op> live;
    for (llm::Sparse24Op sp : sparse) {
      if (sp->use_empty())
        eraseWithInputs(sp);
      else
        live.push_back(sp);
    }
    sparse = std::move(live);
  }

  /// The GLU half of a gated MLP with 2:4 sparse gate and up weights.
  FailureOr<Value> s24Glu(llm::GatedMlpOp g, llm::Sparse24Op gate, llm::Sparse24Op up) {
    int32_t gb = 0, ub = 0;
    FailureOr<Value> gp = packedS24(gate, g, gb), upk = packedS24(up, g, ub);
    if (failed(gp) || failed(upk))
      return failure();
    if (gb != ub)
      return g.emitOpError("gate and up weights must be 2:4 sparse alike");
    Value x = g.getInput();
    int64_t F = cast<RankedTensorType>(gate.getType()).getDimSize(1);
    Args a{b};
    a.ptr(0).dims(0, leading(x)).dims(0, {lastDim(x)}).ptr(1).ptr(2).i64(F).i32(gb)
        .i32(*llm::activationCode(g.getActivation())).ptr(3);
    return call(g.getLoc(), "kiln_uk_matmul_glu_s24_f32", {x, *gp, *upk}, emptyWithLast(x, F), a);
  }

  /// act(x @ w + bias) + residual on a destination shaped like x but N wide.
  /// The weight picks the kernel: f32 panels, an llm.dequantize (quantized
  /// kernel, with its bits, group and zero points) or an llm.sparse_24 (2:4
  /// kernel, with its value bits).
  FailureOr<Value> matmul(Operation *op, Value x, Value w, Value bias,
                          Value residual, int32_t act) {
    StringRef callee = "kiln_uk_matmul_f32";
    Args scheme{b}; // the kernel's weight-format arguments, after N
    FailureOr<Value> wp = failure();
    if (auto dq = w.getDefiningOp<llm::DequantizeOp>()) {
      QuantInfo info;
      wp = packedQuant(dq, op, false, info);
      if (info.q8a8()) {
        callee = "kiln_uk_matmul_q8a8_f32";
      } else {
        scheme.i32(info.bits).i64(info.group).i32(info.zeroPoints ? 1 : 0);
        callee = info.int8Activations ? "kiln_uk_matmul_qa8_f32" : "kiln_uk_matmul_q_f32";
      }
    } else if (auto sp = w.getDefiningOp<llm::Sparse24Op>()) {
      int32_t bits = 0;
      wp = packedS24(sp, op, bits);
      scheme.i32(bits);
      callee = "kiln_uk_matmul_s24_f32";
    } else {
      wp = packed(w, op);
      if (weights == FloatWeights::F16)
        callee = "kiln_uk_matmul_h_f32";
      else if (weights == FloatWeights::BF16)
        callee = "kiln_uk_matmul_bf16_f32";
    }
    if (failed(wp))
      return failure();
    int64_t N = cast<RankedTensorType>(w.getType()).getDimSize(1);
    Value out = emptyWithLast(x, N);
    SmallVector<Value> ins{x, *wp};
    if (bias)
      ins.push_back(bias);
    if (residual)
      ins.push_back(residual);
    int64_t outIdx = ins.size();
    Args a{b};
    a.ptr(0).dims(0, leading(x)).dims(0, {lastDim(x)}).ptr(1).i64(N);
    a.list.append(scheme.list.begin(), scheme.list.end());
    if (bias)
      a.ptr(2);
    else
      a.null();
    if (residual)
      a.ptr(bias ? 3 : 2);
    else
      a.null();
    a.i32(act).ptr(outIdx);
    return call(op->getLoc(), callee, ins, out, a);
  }

  /// The GLU half of a gated MLP with quantized gate and up weights.
  FailureOr<Value> quantGlu(llm::GatedMlpOp g, llm::DequantizeOp gate, llm::DequantizeOp up) {
    if (gate.getData().getType() != up.getData().getType() ||
        gate.getGroupSize() != up.getGroupSize() ||
        gate.getActivationBits() != up.getActivationBits())
      return g.emitOpError("gate and up weights must be quantized alike");
    bool zp = gate.getZeroPoints() || up.getZeroPoints();
    QuantInfo gi, ui;
    FailureOr<Value> gp = packedQuant(gate, g, zp, gi), upk = packedQuant(up, g, zp, ui);
    if (failed(gp) || failed(upk))
      return failure();
    Value x = g.getInput();
    int64_t F = cast<RankedTensorType>(gate.getType()).getDimSize(1);
    Args a{b};
    if (gi.q8a8()) {
      a.ptr(0).dims(0, leading(x)).dims(0, {lastDim(x)}).ptr(1).ptr(2).i64(F)
          .i32(*llm::activationCode(g.getActivation())).ptr(3);
      return call(g.getLoc(), "kiln_uk_matmul_glu_q8a8_f32", {x, *gp, *upk},
                  emptyWithLast(x, F), a);
    }
    a.ptr(0).dims(0, leading(x)).dims(0, {lastDim(x)}).ptr(1).ptr(2).i64(F).i32(gi.bits)
        .i64(gi.group).i32(zp ? 1 : 0).i32(*llm::activationCode(g.getActivation())).ptr(3);
    StringRef callee =
        gi.int8Activations ? "kiln_uk_matmul_glu_qa8_f32" : "kiln_uk_matmul_glu_q_f32";
    return call(g.getLoc(), callee, {x, *gp, *upk}, emptyWithLast(x, F), a);
  }

  FailureOr<Value> lower(Operation *op) {
    Location loc = op->getLoc();
    if (auto e = dyn_cast<llm::EmbeddingOp>(op)) {
      auto t = cast<RankedTensorType>(e.getType());
      SmallVector<Value> sizes;
      for (int64_t i = 0; i + 1 < t.getRank(); ++i)
        sizes.push_back(t.isDynamicDim(i) ? dim(e.getIds(), i) : Value());
      sizes.push_back(Value());
      Value out = empty(t, sizes);
      SmallVector<Value> ins{e.getTable(), e.getIds()};
      Args a{b};
      SmallVector<int64_t> idDims;
      for (int64_t i = 0; i < cast<RankedTensorType>(e.getIds().getType()).getRank(); ++i)
        idDims.push_back(i);
      a.ptr(0).dims(0, {0}).dims(0, {1}).ptr(1).dims(1, idDims);
      if (e.getPosTable()) {
        ins.push_back(e.getPosTable());
        ins.push_back(e.getPositions());
        a.ptr(2).dims(2, {0}).ptr(3);
      } else {
        a.null().i64(0).null();
      }
      a.ptr(ins.size());
      return call(loc, "kiln_uk_embedding_f32", ins, out, a);
    }
    if (auto n = dyn_cast<llm::RmsNormOp>(op)) {
      Value x = n.getInput();
      Args a{b};
      a.ptr(0).dims(0, leading(x)).dims(0, {lastDim(x)}).ptr(1)
          .f32(n.getEpsilon().convertToFloat()).ptr(2);
      return call(loc, "kiln_uk_rms_norm_f32", {x, n.getWeight()}, emptyLike(x), a);
    }
    if (auto n = dyn_cast<llm::LayerNormOp>(op)) {
      Value x = n.getInput();
      SmallVector<Value> ins{x, n.getWeight()};
      Args a{b};
      a.ptr(0).dims(0, leading(x)).dims(0, {lastDim(x)}).ptr(1);
      if (n.getBias()) {
        ins.push_back(n.getBias());
        a.ptr(2);
      } else {
        a.null();
      }
      a.f32(n.getEpsilon().convertToFloat()).ptr(ins.size());
      return call(loc, "kiln_uk_layer_norm_f32", ins, emptyLike(x), a);
    }
    if (auto m = dyn_cast<llm::MatmulOp>(op))
      return matmul(op, m.getInput(), m.getWeight(), m.getBias(),
                    m.getResidual(), *llm::activationCode(m.getActivation()));
    if (auto g = dyn_cast<llm::GatedMlpOp>(op)) {
      Value x = g.getInput();
      auto gq = g.getGate().getDefiningOp<llm::DequantizeOp>();
      auto uq = g.getUp().getDefiningOp<llm::DequantizeOp>();
      if (bool(gq) != bool(uq))
        return g.emitOpError("gate and up weights must both be quantized or both f32");
      Value h;
      auto gs = g.getGate().getDefiningOp<llm::Sparse24Op>();
      auto us = g.getUp().getDefiningOp<llm::Sparse24Op>();
      if (bool(gs) != bool(us))
        return g.emitOpError("gate and up weights must both be 2:4 sparse or both not");
      if (gs) {
        FailureOr<Value> glu = s24Glu(g, gs, us);
        if (failed(glu))
          return failure();
        h = *glu;
      } else if (gq) {
        FailureOr<Value> glu = quantGlu(g, gq, uq);
        if (failed(glu))
          return failure();
        h = *glu;
      } else {
        FailureOr<Value> gp = packed(g.getGate(), op), up = packed(g.getUp(), op);
        if (failed(gp) || failed(up))
          return failure();
        int64_t F = cast<RankedTensorType>(g.getGate().getType()).getDimSize(1);
        Args a{b};
        a.ptr(0).dims(0, leading(x)).dims(0, {lastDim(x)}).ptr(1).ptr(2).i64(F)
            .i32(*llm::activationCode(g.getActivation())).ptr(3);
        const char *glu = weights == FloatWeights::F16    ? "kiln_uk_matmul_glu_h_f32"
                          : weights == FloatWeights::BF16 ? "kiln_uk_matmul_glu_bf16_f32"
                                                          : "kiln_uk_matmul_glu_f32";
        h = call(loc, glu,
                 {x, *gp, *up}, emptyWithLast(x, F), a);
      }
      return matmul(op, h, g.getDown(), Value(), g.getResidual(), 0);
    }
    if (auto g = dyn_cast<llm::GeluMlpOp>(op)) {
      int32_t act = g.getApproximate() == "tanh" ? 1 : 3;
      FailureOr<Value> h =
          matmul(op, g.getInput(), g.getFc(), g.getFcBias(), Value(), act);
      if (failed(h))
        return failure();
      return matmul(op, *h, g.getProj(), g.getProjBias(), g.getResidual(), 0);
    }
    if (auto s = dyn_cast<llm::SplitHeadsOp>(op)) {
      Value x = s.getInput();
      auto t = cast<RankedTensorType>(s.getType());
      Value out = empty(t, {t.isDynamicDim(0) ? dim(x, 0) : Value(), Value(),
                            t.isDynamicDim(2) ? dim(x, 1) : Value(), Value()});
      Args a{b};
      a.ptr(0).dims(0, {0}).dims(0, {1}).i64(t.getDimSize(1)).i64(t.getDimSize(3)).ptr(1);
      return call(loc, "kiln_uk_split_heads_f32", {x}, out, a);
    }
    if (auto m = dyn_cast<llm::MergeHeadsOp>(op)) {
      Value x = m.getInput();
      auto t = cast<RankedTensorType>(m.getType());
      Value out = empty(t, {t.isDynamicDim(0) ? dim(x, 0) : Value(),
                            t.isDynamicDim(1) ? dim(x, 2) : Value(), Value()});
      Args a{b};
      a.ptr(0).dims(0, {0}).dims(0, {1}).dims(0, {2}).dims(0, {3}).ptr(1);
      return call(loc, "kiln_uk_merge_heads_f32", {x}, out, a);
    }
    if (auto r = dyn_cast<llm::RotaryOp>(op)) {
      Value x = r.getInput();
      Args a{b};
      a.ptr(0).dims(0, {0}).dims(0, {1}).dims(0, {2}).dims(0, {3}).ptr(1).ptr(2)
          .dims(1, {0}).ptr(3).ptr(4);
      return call(loc, "kiln_uk_rotary_f32",
                  {x, r.getCos(), r.getSin(), r.getPositions()}, emptyLike(x), a);
    }
    if (auto k = dyn_cast<llm::KvAppendOp>(op)) {
      Value past = k.getPast(), cur = k.getNewValue();
      auto t = cast<RankedTensorType>(k.getType());
      Value total = arith::AddIOp::create(b, loc, dim(past, 2), dim(cur, 2));
      Value out = empty(t, {t.isDynamicDim(0) ? dim(cur, 0) : Value(),
                            t.isDynamicDim(1) ? dim(cur, 1) : Value(), total,
                            t.isDynamicDim(3) ? dim(cur, 3) : Value()});
      Args a{b};
      a.ptr(0).ptr(1).dims(1, {0}).dims(1, {1}).dims(0, {2}).dims(1, {2})
          .dims(1, {3}).ptr(2);
      return call(loc, "kiln_uk_kv_append_f32", {past, cur}, out, a);
    }
    if (auto at = dyn_cast<llm::AttentionOp>(op)) {
      SmallVector<Value> ins{at.getQuery(), at.getKey(), at.getValue()};
      Args a{b};
      a.ptr(0).ptr(1).ptr(2);
      if (at.getMask()) {
        ins.push_back(at.getMask());
        a.ptr(3);
      } else {
        a.null();
      }
      a.dims(0, {0}).dims(0, {1}).dims(1, {1}).dims(0, {2}).dims(1, {2})
          .dims(0, {3}).f32(at.getScale().convertToFloat())
          .i32(at.getCausal() ? 1 : 0).ptr(ins.size());
      return call(loc, "kiln_uk_attention_f32", ins, emptyLike(at.getQuery()), a);
    }
    if (auto w = dyn_cast<llm::KvCacheWriteOp>(op)) {
      // The pool is the destination itself: the call writes the new rows
      // into it (in place when the pool is a function argument).
      Args a{b};
      a.ptr(0).ptr(1).dims(0, {1}).dims(0, {2}).dims(0, {3}).dims(2, {0, 1}).ptr(2);
      bool int8 = cast<RankedTensorType>(w.getCache().getType()).getElementType().isInteger(8);
      return call(loc, int8 ? "kiln_uk_kv_cache_write_q8" : "kiln_uk_kv_cache_write_f32",
                  {w.getNewValue(), w.getSlots()}, w.getCache(), a);
    }
    if (auto at = dyn_cast<llm::PagedAttentionOp>(op)) {
      Args a{b};
      a.ptr(0).ptr(1).ptr(2).ptr(3).ptr(4).ptr(5)
          .dims(4, {0}).dims(3, {1}).dims(0, {1}).dims(1, {2}).dims(0, {2}).dims(0, {3})
          .dims(1, {0}).dims(1, {1}).f32(at.getScale().convertToFloat())
          .i32(at.getCausal() ? 1 : 0).ptr(6);
      bool int8 = cast<RankedTensorType>(at.getKeyCache().getType()).getElementType().isInteger(8);
      return call(loc, int8 ? "kiln_uk_paged_attention_q8" : "kiln_uk_paged_attention_f32",
                  {at.getQuery(), at.getKeyCache(), at.getValueCache(), at.getBlockTables(),
                   at.getSeqLens(), at.getQueryStart()},
                  emptyLike(at.getQuery()), a);
    }
    return op->emitOpError("has no CPU lowering");
  }

  func::FuncOp fn;
  OpBuilder b;
  PackCache *cache;
  /// How f32 weights are packed (LowerLlmOptions::floatWeights).
  FloatWeights weights;
  llvm::DenseMap<Value, Value> packedOf;
  SmallVector<Value> originals;
  /// Packed quantized weights by (data, scales, zero points) in this function.
  llvm::DenseMap<Attribute, Value> packedQ;
  /// Dequantize ops whose weight has been packed, erased once unread.
  SmallVector<llm::DequantizeOp> quantized;
  /// 2:4 sparse weights that have been packed, erased once unread.
  SmallVector<llm::Sparse24Op> sparse;
};

} // namespace

LogicalResult lowerLlmToUkernels(func::FuncOp fn, PackCache *cache,
                                 const LowerLlmOptions &options) {
  return Lowerer(fn, cache, options).run();
}

} // namespace kiln
