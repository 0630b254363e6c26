//===- RaiseLlm.cpp - onnx transformer graphs -> llm ops -------------------===//
//
// Recognizes the blocks a transformer export is made of — embeddings,
// RMSNorm/LayerNorm, linear layers (+bias, +activation, +residual), gated
// and GELU MLPs, head split/merge, rotary embeddings, the KV-cache concat and
// scaled-dot-product attention with GQA and causal/padding masks — by the
// structure of the graph (op kinds, data flow, constants, static dims),
// never by names, and replaces them with llm ops. The mask and shape
// arithmetic the export built around them becomes dead and is erased.
//
// Matching runs in sweeps over the entry function: each sweep raises what it
// can in program order, then shapes are re-inferred so that the next sweep
// sees the static head sizes that raising made known.
//
//===----------------------------------------------------------------------===//
#include "compiler/transforms/RaiseLlm.h"

#include "compiler/transforms/GraphMatch.h"
#include "dialects/llm/IR/LlmDialect.h"
#include "dialects/onnx/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"

#include <cmath>

using namespace mlir;
using namespace kiln::match;

namespace kiln {
namespace {

constexpr int64_t kDyn = ShapedType::kDynamic;

RankedTensorType withLastDim(RankedTensorType t, int64_t n) {
  SmallVector<int64_t> shape(t.getShape());
  shape.back() = n;
  return RankedTensorType::get(shape, t.getElementType());
}

bool isF32(Value v) {
  auto t = ranked(v);
  return t && t.getElementType().isF32();
}

/// A new constant op holding `data` (as a resource blob when large).
Value makeConstant(OpBuilder &b, Location loc, RankedTensorType type,
                   ArrayRef<float> data, StringRef name) {
  ElementsAttr attr;
  if (data.size() > 16) {
    auto blob = HeapAsmResourceBlob::allocateAndCopyInferAlign<float>(data);
    attr = DenseResourceElementsAttr::get(type, name, std::move(blob));
  } else {
    attr = DenseElementsAttr::get(type, data);
  }
  OperationState st(loc, "onnx.Constant");
  st.addAttribute("value", attr);
  st.addTypes(type);
  return b.create(st)->getResult(0);
}

/// Records what was raised, for --report.
struct Tally {
  llvm::StringMap<int> raised;
  void note(StringRef what) { ++raised[what]; }
};

class Raiser {
public:
  Raiser(func::FuncOp fn, Tally &tally)
      : fn(fn), tally(tally), rewriter(fn.getContext()) {}

  /// One sweep in program order; true if anything changed.
  bool sweep() {
    bool changed = false;
    SmallVector<Operation *> ops;
    fn.walk([&](Operation *op) {
      if (op->getName().getDialectNamespace() == "onnx")
        ops.push_back(op);
    });
    erased.clear();
    for (Operation *op : ops) {
      if (erased.contains(op))
        continue;
      if (op->use_empty() && op->getNumResults() > 0)
        continue;
      rewriter.setInsertionPoint(op);
      Operation *raised = tryRaise(op);
      if (!raised)
        continue;
      changed = true;
      // Replaced ops may still have other users; erase only what is dead.
      eraseDead(op);
    }
    return changed;
  }

private:
  Operation *tryRaise(Operation *op) {
    StringRef k = op->getName().stripDialect();
    if (k == "Gather")
      return raiseEmbedding(op);
    if (k == "Mul")
      return raiseRmsNorm(op);
    if (k == "LayerNormalization")
      return raiseLayerNorm(op);
    if (k == "MatMul")
      return raiseMatmul(op);
    if (k == "Add") {
      if (Operation *r = raiseEmbeddingPositions(op))
        return r;
      if (Operation *r = raiseBias(op))
        return r;
      if (Operation *r = raiseRotary(op))
        return r;
      return raiseResidual(op);
    }
    if (k == "Split")
      return raiseSplitLinear(op);
    if (k == "Transpose")
      return raiseSplitHeads(op);
    if (k == "Reshape")
      return raiseMergeHeads(op);
    if (k == "Concat")
      return raiseKvAppend(op);
    return nullptr;
  }

  Operation *replace(Operation *op, Operation *with, StringRef what) {
    op->getResult(0).replaceAllUsesWith(with->getResult(0));
    tally.note(what);
    return with;
  }

  // --- embedding ----------------------------------------------------------
  Operation *raiseEmbedding(Operation *op) {
    ElementsAttr table = weight(op->getOperand(0), 2);
    auto ids = ranked(op->getOperand(1));
    if (!table || intAttr(op, "axis", 0) != 0 || !ids ||
        !ids.getElementType().isInteger(64) || !isF32(op->getOperand(0)))
      return nullptr;
    auto tt = cast<RankedTensorType>(op->getOperand(0).getType());
    SmallVector<int64_t> shape(ids.getShape());
    shape.push_back(tt.getDimSize(1));
    auto type = RankedTensorType::get(shape, tt.getElementType());
    auto e = llm::EmbeddingOp::create(rewriter, op->getLoc(), type,
                                      op->getOperand(0), op->getOperand(1),
                                      Value(), Value());
    return replace(op, e, "embedding");
  }

  /// token embedding + position embedding -> one embedding op.
  Operation *raiseEmbeddingPositions(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value a, Value b) {
      auto ea = a.getDefiningOp<llm::EmbeddingOp>();
      auto eb = b.getDefiningOp<llm::EmbeddingOp>();
      if (!ea || !eb || ea.getPosTable() || eb.getPosTable() ||
          ea.getType() != eb.getType() || !a.hasOneUse() || !b.hasOneUse())
        return false;
      auto e = llm::EmbeddingOp::create(rewriter, op->getLoc(), ea.getType(),
                                        ea.getTable(), ea.getIds(),
                                        eb.getTable(), eb.getIds());
      result = replace(op, e, "embedding+positions");
      return true;
    });
    return result;
  }

  // --- norms --------------------------------------------------------------
  /// weight * (x * 1/sqrt(mean(x^2, -1) + eps)), in any operand order, with
  /// the reciprocal as Div(1, .) or Reciprocal(.), or x / sqrt(.).
  Operation *raiseRmsNorm(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value w, Value normed) {
      ElementsAttr wAttr = weight(w, 1);
      if (!wAttr || !isF32(w))
        return false;
      Value x;
      std::optional<double> eps;
      auto matchInvRms = [&](Value inv, Value xCand) {
        Value sq;
        if (Operation *d = def(inv, "Div")) {
          auto one = scalarFloat(d->getOperand(0));
          if (!one || *one != 1.0)
            return false;
          sq = d->getOperand(1);
        } else if (Operation *r = def(inv, "Reciprocal")) {
          sq = r->getOperand(0);
        } else {
          return false;
        }
        return matchSqrtMean(sq, xCand, eps);
      };
      if (Operation *m = def(normed, "Mul")) {
        eitherOrder(m, [&](Value a, Value inv) {
          if (!matchInvRms(inv, a))
            return false;
          x = a;
          return true;
        });
      } else if (Operation *d = def(normed, "Div")) {
        if (matchSqrtMean(d->getOperand(1), d->getOperand(0), eps))
          x = d->getOperand(0);
      }
      auto xt = ranked(x);
      if (!x || !xt || !isF32(x) || xt.getRank() < 1 ||
          xt.getShape().back() != cast<ShapedType>(wAttr.getType()).getDimSize(0))
        return false;
      auto n = llm::RmsNormOp::create(rewriter, op->getLoc(), xt, x, w,
                                      rewriter.getF32FloatAttr(*eps));
      result = replace(op, n, "rms_norm");
      return true;
    });
    return result;
  }

  /// sqrt(mean(x*x or x^2, last axis, keepdims) + eps)
  bool matchSqrtMean(Value sq, Value x, std::optional<double> &eps) {
    Operation *s = def(sq, "Sqrt");
    if (!s)
      return false;
    Operation *add = def(s->getOperand(0), "Add");
    if (!add)
      return false;
    bool ok = eitherOrder(add, [&](Value mean, Value e) {
      auto ev = scalarFloat(e);
      Operation *rm = def(mean, "ReduceMean");
      if (!ev || !rm || intAttr(rm, "keepdims", 1) != 1)
        return false;
      auto xt = ranked(x);
      auto axes = axesOf(rm);
      if (!xt || axes.size() != 1 ||
          (axes[0] != -1 && axes[0] != xt.getRank() - 1))
        return false;
      Value p = rm->getOperand(0);
      bool squared = false;
      if (Operation *pw = def(p, "Pow")) {
        auto two = scalarFloat(pw->getOperand(1));
        squared = pw->getOperand(0) == x && two && *two == 2.0;
      } else if (Operation *m = def(p, "Mul")) {
        squared = m->getOperand(0) == x && m->getOperand(1) == x;
      }
      if (!squared)
        return false;
      eps = *ev;
      return true;
    });
    return ok;
  }

  Operation *raiseLayerNorm(Operation *op) {
    Value x = op->getOperand(0), w = op->getOperand(1), b = op->getOperand(2);
    auto xt = ranked(x);
    int64_t axis = intAttr(op, "axis", -1);
    if (!xt || !isF32(x) || !weight(w, 1) ||
        (axis != -1 && axis != xt.getRank() - 1) || !op->getResult(1).use_empty() ||
        !op->getResult(2).use_empty())
      return nullptr;
    if (b && !isa<NoneType>(b.getType()) && !weight(b, 1))
      return nullptr;
    if (b && isa<NoneType>(b.getType()))
      b = Value();
    auto n = llm::LayerNormOp::create(
        rewriter, op->getLoc(), xt, x, w, b,
        rewriter.getF32FloatAttr(floatAttr(op, "epsilon", 1e-5)));
    return replace(op, n, "layer_norm");
  }

  // --- linear layers and MLPs ----------------------------------------------
  Operation *raiseMatmul(Operation *op) {
    if (def(skipNoops(op->getOperand(0)), "Softmax"))
      return raiseAttention(op);
    Value x = op->getOperand(0), w = op->getOperand(1);
    auto xt = ranked(x);
    ElementsAttr wAttr = weight(w, 2);
    if (!xt || !wAttr || !isF32(x) || !isF32(w) || xt.getRank() < 2)
      return nullptr;
    auto wt = cast<RankedTensorType>(w.getType());
    if (xt.getShape().back() != wt.getDimSize(0))
      return nullptr;
    auto type = withLastDim(xt, wt.getDimSize(1));
    if (Operation *g = raiseGatedMlp(op, x, w))
      return g;
    auto m = llm::MatmulOp::create(rewriter, op->getLoc(), type, x, w, Value(),
                                   Value(), rewriter.getStringAttr("none"));
    return replace(op, m, "matmul");
  }

  static bool isPlainMatmul(Value v) {
    auto m = v.getDefiningOp<llm::MatmulOp>();
    return m && !m.getBias() && !m.getResidual() && m.getActivation() == "none";
  }

  /// down(silu(x @ gate) * (x @ up)), silu(g) written g * sigmoid(g).
  Operation *raiseGatedMlp(Operation *op, Value h, Value down) {
    Operation *mul = def(h, "Mul");
    Operation *result = nullptr;
    eitherOrder(mul, [&](Value act, Value up) {
      Operation *silu = def(act, "Mul");
      Value g;
      eitherOrder(silu, [&](Value a, Value s) {
        Operation *sig = def(s, "Sigmoid");
        if (!sig || sig->getOperand(0) != a)
          return false;
        g = a;
        return true;
      });
      if (!g || !isPlainMatmul(g) || !isPlainMatmul(up))
        return false;
      auto gm = g.getDefiningOp<llm::MatmulOp>();
      auto um = up.getDefiningOp<llm::MatmulOp>();
      if (gm.getInput() != um.getInput() ||
          gm.getWeight().getType() != um.getWeight().getType())
        return false;
      auto dt = cast<RankedTensorType>(down.getType());
      auto gt = cast<RankedTensorType>(gm.getWeight().getType());
      if (dt.getDimSize(0) != gt.getDimSize(1) ||
          dt.getDimSize(1) != gt.getDimSize(0))
        return false;
      auto x = gm.getInput();
      auto mlp = llm::GatedMlpOp::create(rewriter, op->getLoc(), x.getType(), x,
                                         gm.getWeight(), um.getWeight(), down,
                                         Value(), rewriter.getStringAttr("silu"));
      result = replace(op, mlp, "gated_mlp");
      return true;
    });
    return result;
  }

  /// matmul + bias vector, then (when the matmul feeds it) GELU activation.
  Operation *raiseBias(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value mm, Value bias) {
      auto m = mm.getDefiningOp<llm::MatmulOp>();
      ElementsAttr bAttr = weight(bias, 1);
      if (!m || m.getBias() || m.getResidual() || m.getActivation() != "none" ||
          !bAttr || !mm.hasOneUse())
        return false;
      auto wt = cast<RankedTensorType>(m.getWeight().getType());
      if (cast<ShapedType>(bAttr.getType()).getDimSize(0) != wt.getDimSize(1))
        return false;
      Value out = op->getResult(0);
      auto nm = llm::MatmulOp::create(rewriter, op->getLoc(), m.getType(),
                                      m.getInput(), m.getWeight(), bias, Value(),
                                      rewriter.getStringAttr("none"));
      m->getResult(0).replaceAllUsesWith(nm.getResult());
      m->erase();
      out.replaceAllUsesWith(nm.getResult());
      tally.note("matmul+bias");
      result = nm;
      // gelu(matmul) -> activation epilogue.
      if (Operation *g = raiseGelu(nm))
        result = g;
      return true;
    });
    return result;
  }

  /// 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) on the single
  /// user chain of `m`; folds it into m's activation.
  Operation *raiseGelu(llm::MatmulOp m) {
    Value x = m.getResult();
    // Find the outermost Mul whose value is gelu(x): walk users of x.
    for (Operation *u : x.getUsers()) {
      if (u->getNumResults() != 1 || !def(u->getResult(0), "Mul"))
        continue;
      // u = x * (1 + tanh(...)) ; root = 0.5 * u (either order)
      Value inner;
      eitherOrder(u, [&](Value a, Value onePlus) {
        if (a != x)
          return false;
        Operation *add = def(onePlus, "Add");
        bool ok = eitherOrder(add, [&](Value one, Value th) {
          auto c = scalarFloat(one);
          Operation *t = def(th, "Tanh");
          return c && *c == 1.0 && t && isGeluTanhArg(t->getOperand(0), x);
        });
        if (ok)
          inner = u->getResult(0);
        return ok;
      });
      if (!inner || !inner.hasOneUse())
        continue;
      Operation *root = *inner.getUsers().begin();
      bool half = def(root->getResult(0), "Mul") &&
                  eitherOrder(root, [&](Value a, Value c) {
                    auto h = scalarFloat(c);
                    return a == inner && h && *h == 0.5;
                  });
      if (!half)
        continue;
      m.setActivation("gelu_tanh");
      root->getResult(0).replaceAllUsesWith(x);
      eraseDead(root);
      tally.note("gelu");
      return m;
    }
    return nullptr;
  }

  /// sqrt(2/pi) * (x + 0.044715 * x^3), x^3 as Pow(x,3) or x*(x*x).
  bool isGeluTanhArg(Value v, Value x) {
    Operation *mul = def(v, "Mul");
    return eitherOrder(mul, [&](Value c, Value sum) {
      auto k = scalarFloat(c);
      if (!k || std::abs(*k - 0.7978845608) > 1e-4)
        return false;
      Operation *add = def(sum, "Add");
      return eitherOrder(add, [&](Value a, Value cubeTerm) {
        if (a != x)
          return false;
        Operation *cm = def(cubeTerm, "Mul");
        return eitherOrder(cm, [&](Value c2, Value cube) {
          auto k2 = scalarFloat(c2);
          return k2 && std::abs(*k2 - 0.044715) < 1e-6 && isCube(cube, x);
        });
      });
    });
  }

  bool isCube(Value v, Value x) {
    if (Operation *p = def(v, "Pow")) {
      auto e = scalarFloat(p->getOperand(1));
      return p->getOperand(0) == x && e && *e == 3.0;
    }
    Operation *m = def(v, "Mul");
    return eitherOrder(m, [&](Value a, Value sq) {
      Operation *s = def(sq, "Mul");
      return a == x && s && s->getOperand(0) == x && s->getOperand(1) == x;
    });
  }

  /// x + f(x) where f is a matmul/MLP used only here: the residual epilogue.
  /// A matmul with bias whose input is a GELU matmul with bias becomes a
  /// gelu_mlp first.
  Operation *raiseResidual(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value res, Value f) {
      Operation *producer = f.getDefiningOp();
      if (!producer || !f.hasOneUse() || !isF32(res) || ranked(res) != ranked(f))
        return false;
      if (auto m = dyn_cast<llm::MatmulOp>(producer)) {
        if (m.getResidual())
          return false;
        auto fc = m.getInput().getDefiningOp<llm::MatmulOp>();
        if (fc && m.getBias() && fc.getBias() && !fc.getResidual() &&
            fc.getActivation() == "gelu_tanh" && fc->hasOneUse() &&
            m.getActivation() == "none") {
          auto mlp = llm::GeluMlpOp::create(
              rewriter, op->getLoc(), m.getType(), fc.getInput(), fc.getWeight(),
              fc.getBias(), m.getWeight(), m.getBias(), res,
              rewriter.getStringAttr("tanh"));
          m->getResult(0).replaceAllUsesWith(mlp.getResult());
          result = replace(op, mlp, "gelu_mlp+residual");
          return true;
        }
        m.getResidualMutable().assign(res);
        op->getResult(0).replaceAllUsesWith(m.getResult());
        tally.note("residual");
        result = m;
        return true;
      }
      if (auto g = dyn_cast<llm::GatedMlpOp>(producer)) {
        if (g.getResidual())
          return false;
        g.getResidualMutable().assign(res);
        op->getResult(0).replaceAllUsesWith(g.getResult());
        tally.note("residual");
        result = g;
        return true;
      }
      return false;
    });
    return result;
  }

  /// Split(x @ W + b) along the output features -> one matmul per part, the
  /// weight and bias cut at compile time (fused QKV projections).
  Operation *raiseSplitLinear(Operation *op) {
    auto m = op->getOperand(0).getDefiningOp<llm::MatmulOp>();
    if (!m || m.getResidual() || m.getActivation() != "none" ||
        !m->hasOneUse())
      return nullptr;
    auto type = m.getType();
    int64_t axis = intAttr(op, "axis", 0);
    if (axis < 0)
      axis += type.getRank();
    if (axis != type.getRank() - 1)
      return nullptr;
    auto wt = cast<RankedTensorType>(m.getWeight().getType());
    int64_t K = wt.getDimSize(0), N = wt.getDimSize(1);
    SmallVector<int64_t> sizes;
    if (op->getNumOperands() > 1 && !isa<NoneType>(op->getOperand(1).getType())) {
      auto v = evalInts(op->getOperand(1));
      if (!v)
        return nullptr;
      for (auto s : *v) {
        if (!s)
          return nullptr;
        sizes.push_back(*s);
      }
    } else {
      int64_t parts = op->getNumResults();
      if (N % parts)
        return nullptr;
      sizes.assign(parts, N / parts);
    }
    int64_t total = 0;
    for (int64_t s : sizes)
      total += s;
    if (total != N || (int64_t)sizes.size() != op->getNumResults())
      return nullptr;
    SmallVector<float> wStore, bStore;
    auto wData = floatData(constant(m.getWeight()), wStore);
    std::optional<ArrayRef<float>> bData;
    if (m.getBias())
      bData = floatData(constant(m.getBias()), bStore);
    if (!wData || (int64_t)wData->size() != K * N || (m.getBias() && !bData))
      return nullptr;
    int64_t offset = 0;
    Operation *first = nullptr;
    for (auto [i, n] : llvm::enumerate(sizes)) {
      SmallVector<float> part(K * n);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < n; ++j)
          part[k * n + j] = (*wData)[k * N + offset + j];
      auto pwt = RankedTensorType::get({K, n}, rewriter.getF32Type());
      std::string base = "split" + std::to_string(splitCounter);
      Value pw = makeConstant(rewriter, op->getLoc(), pwt, part,
                              base + ".w" + std::to_string(i));
      Value pb;
      if (bData)
        pb = makeConstant(rewriter, op->getLoc(),
                          RankedTensorType::get({n}, rewriter.getF32Type()),
                          bData->slice(offset, n), base + ".b" + std::to_string(i));
      auto pm = llm::MatmulOp::create(rewriter, op->getLoc(),
                                      withLastDim(type, n), m.getInput(), pw, pb,
                                      Value(), rewriter.getStringAttr("none"));
      op->getResult(i).replaceAllUsesWith(pm.getResult());
      if (!first)
        first = pm;
      offset += n;
    }
    ++splitCounter;
    tally.note("split-linear");
    return first;
  }

  // --- attention layout ----------------------------------------------------
  /// Transpose(Reshape(x [B,S,H*hd] -> [B,S,H,hd]), perm [0,2,1,3]).
  Operation *raiseSplitHeads(Operation *op) {
    // [0,2,3,1] is the head split fused with the keys' transpose for q @ k^T.
    auto perm = intList(op, "perm");
    bool keysT = perm == SmallVector<int64_t>{0, 2, 3, 1};
    if (perm != SmallVector<int64_t>{0, 2, 1, 3} && !keysT)
      return nullptr;
    Operation *r = def(op->getOperand(0), "Reshape");
    if (!r)
      return nullptr;
    Value x = r->getOperand(0);
    auto xt = ranked(x);
    auto shape = evalInts(r->getOperand(1));
    if (!xt || !isF32(x) || xt.getRank() != 3 || !shape || shape->size() != 4 ||
        xt.isDynamicDim(2))
      return nullptr;
    if (!keepsDim(r->getOperand(1), 0, xt) || !keepsDim(r->getOperand(1), 1, xt))
      return nullptr;
    int64_t D = xt.getDimSize(2);
    auto h = (*shape)[2], hd = (*shape)[3];
    if (h && *h == -1 && hd && *hd > 0 && D % *hd == 0)
      h = D / *hd;
    if (hd && *hd == -1 && h && *h > 0 && D % *h == 0)
      hd = D / *h;
    if (!h || !hd || *h <= 0 || *hd <= 0 || *h * *hd != D)
      return nullptr;
    auto type = RankedTensorType::get({xt.getDimSize(0), *h, xt.getDimSize(1), *hd},
                                      xt.getElementType());
    auto s = llm::SplitHeadsOp::create(rewriter, op->getLoc(), type, x,
                                       rewriter.getI64IntegerAttr(*h));
    if (!keysT)
      return replace(op, s, "split_heads");
    OperationState st(op->getLoc(), "onnx.Transpose");
    st.addOperands(s.getResult());
    st.addAttribute("perm", rewriter.getI64ArrayAttr({0, 1, 3, 2}));
    st.addTypes(RankedTensorType::get({type.getDimSize(0), *h, *hd, type.getDimSize(2)},
                                      type.getElementType()));
    Operation *t = rewriter.create(st);
    op->getResult(0).replaceAllUsesWith(t->getResult(0));
    tally.note("split_heads");
    return t;
  }

  /// Element `i` of a reshape target keeps dim i of `x`: 0 (ONNX's "copy"),
  /// x's static size, or Shape(y)[i] of some y.
  bool keepsDim(Value shape, int64_t i, RankedTensorType xt) {
    auto vals = evalInts(shape);
    if (vals && (*vals)[i] &&
        (*(*vals)[i] == 0 || (!xt.isDynamicDim(i) && *(*vals)[i] == xt.getDimSize(i))))
      return true;
    Operation *concat = def(skipNoops(shape), "Concat");
    if (!concat || concat->getNumOperands() <= (unsigned)i)
      return false;
    Value piece = skipNoops(concat->getOperand(i));
    if (Operation *u = def(piece, "Unsqueeze"))
      piece = skipNoops(u->getOperand(0));
    Operation *g = def(piece, "Gather");
    if (!g || !def(skipNoops(g->getOperand(0)), "Shape"))
      return false;
    auto idx = evalInt(g->getOperand(1));
    return idx && *idx == i;
  }

  /// Reshape(Transpose(a [B,H,S,hd], perm [0,2,1,3]) -> [B,S,H*hd]).
  Operation *raiseMergeHeads(Operation *op) {
    Operation *t = def(op->getOperand(0), "Transpose");
    if (!t || intList(t, "perm") != SmallVector<int64_t>{0, 2, 1, 3})
      return nullptr;
    Value a = t->getOperand(0);
    auto at = ranked(a);
    auto shape = evalInts(op->getOperand(1));
    if (!at || !isF32(a) || at.getRank() != 4 || at.isDynamicDim(1) ||
        at.isDynamicDim(3) || !shape || shape->size() != 3)
      return nullptr;
    int64_t D = at.getDimSize(1) * at.getDimSize(3);
    auto last = (*shape)[2];
    if (!last || (*last != D && *last != -1))
      return nullptr;
    // Dims 0 and 1 of the target must be B and S (of the transposed tensor).
    auto tt = RankedTensorType::get({at.getDimSize(0), at.getDimSize(2),
                                     at.getDimSize(1), at.getDimSize(3)},
                                    at.getElementType());
    if (!keepsDim(op->getOperand(1), 0, tt) || !keepsDim(op->getOperand(1), 1, tt))
      return nullptr;
    auto type = RankedTensorType::get({at.getDimSize(0), at.getDimSize(2), D},
                                      at.getElementType());
    auto m = llm::MergeHeadsOp::create(rewriter, op->getLoc(), type, a);
    return replace(op, m, "merge_heads");
  }

  // --- rotary ---------------------------------------------------------------
  /// x * cos + rotate_half(x) * sin, with cos/sin = Unsqueeze(Gather(table,
  /// positions), 1) and rotate_half(x) = Concat(-x[.., hd/2:], x[.., :hd/2]).
  Operation *raiseRotary(Operation *op) {
    Operation *result = nullptr;
    eitherOrder(op, [&](Value a, Value b) {
      Operation *ma = def(a, "Mul"), *mb = def(b, "Mul");
      if (!ma || !mb)
        return false;
      Value x, cosT, sinT, pos, pos2;
      bool okA = eitherOrder(ma, [&](Value xv, Value c) {
        auto t = ranked(xv);
        if (!t || t.getRank() != 4 || t.isDynamicDim(3) || !isF32(xv))
          return false;
        if (!tableLookup(c, cosT, pos))
          return false;
        x = xv;
        return true;
      });
      if (!okA)
        return false;
      bool okB = eitherOrder(mb, [&](Value rh, Value s) {
        return isRotateHalf(rh, x) && tableLookup(s, sinT, pos2);
      });
      if (!okB || pos != pos2 || cosT.getType() != sinT.getType())
        return false;
      auto xt = ranked(x);
      if (cast<RankedTensorType>(cosT.getType()).getDimSize(1) != xt.getDimSize(3))
        return false;
      auto r = llm::RotaryOp::create(rewriter, op->getLoc(), xt, x, cosT, sinT, pos);
      result = replace(op, r, "rotary");
      return true;
    });
    return result;
  }

  /// Unsqueeze(Gather(table [P, hd], positions [B,S]), axes=[1]).
  bool tableLookup(Value v, Value &table, Value &positions) {
    Operation *u = def(v, "Unsqueeze");
    if (!u)
      return false;
    auto axes = axesOf(u);
    if (axes != SmallVector<int64_t>{1})
      return false;
    // The row lookup may already be raised to an embedding.
    Value t, p;
    if (auto e = u->getOperand(0).getDefiningOp<llm::EmbeddingOp>()) {
      if (e.getPosTable())
        return false;
      t = e.getTable();
      p = e.getIds();
    } else if (Operation *g = def(u->getOperand(0), "Gather")) {
      if (intAttr(g, "axis", 0) != 0)
        return false;
      t = g->getOperand(0);
      p = g->getOperand(1);
    } else {
      return false;
    }
    auto pt = ranked(p);
    if (!weight(t, 2) || !isF32(t) || !pt || pt.getRank() != 2 ||
        !pt.getElementType().isInteger(64))
      return false;
    table = t;
    positions = p;
    return true;
  }

  bool isRotateHalf(Value v, Value x) {
    Operation *c = def(v, "Concat");
    auto xt = ranked(x);
    if (!c || c->getNumOperands() != 2 || !xt)
      return false;
    int64_t axis = intAttr(c, "axis", 0);
    if (axis != -1 && axis != 3)
      return false;
    int64_t hd = xt.getDimSize(3), half = hd / 2;
    Operation *neg = def(c->getOperand(0), "Neg");
    return neg && isLastDimSlice(neg->getOperand(0), x, half, hd) &&
           isLastDimSlice(c->getOperand(1), x, 0, half);
  }

  bool isLastDimSlice(Value v, Value x, int64_t start, int64_t end) {
    Operation *s = def(v, "Slice");
    if (!s || s->getOperand(0) != x || s->getNumOperands() < 3)
      return false;
    auto starts = evalInts(s->getOperand(1)), ends = evalInts(s->getOperand(2));
    if (!starts || !ends || starts->size() != 1 || ends->size() != 1 ||
        !(*starts)[0] || !(*ends)[0])
      return false;
    if (s->getNumOperands() > 3 && !isa<NoneType>(s->getOperand(3).getType())) {
      auto axes = evalInts(s->getOperand(3));
      if (!axes || axes->size() != 1 || !(*axes)[0] ||
          (*(*axes)[0] != -1 && *(*axes)[0] != 3))
        return false;
    }
    if (s->getNumOperands() > 4 && !isa<NoneType>(s->getOperand(4).getType())) {
      auto steps = evalInts(s->getOperand(4));
      if (!steps || steps->size() != 1 || (*steps)[0] != std::optional<int64_t>(1))
        return false;
    }
    int64_t hd = ranked(x).getDimSize(3);
    int64_t e = *(*ends)[0];
    if (e < 0)
      e += hd;
    return *(*starts)[0] == start && std::min(e, hd) == end;
  }

  // --- KV cache and attention ----------------------------------------------
  Operation *raiseKvAppend(Operation *op) {
    if (op->getNumOperands() != 2)
      return nullptr;
    Value past = op->getOperand(0), cur = op->getOperand(1);
    auto pt = ranked(past), ct = ranked(cur);
    int64_t axis = intAttr(op, "axis", 0);
    if (!pt || !ct || pt.getRank() != 4 || ct.getRank() != 4 || !isF32(past) ||
        !isF32(cur) || (axis != 2 && axis != -2))
      return nullptr;
    if (ct.isDynamicDim(1) || ct.isDynamicDim(3))
      return nullptr; // the new entries must come from raised heads
    auto type = RankedTensorType::get(
        {ct.getDimSize(0), ct.getDimSize(1), kDyn, ct.getDimSize(3)},
        ct.getElementType());
    auto k = llm::KvAppendOp::create(rewriter, op->getLoc(), type, past, cur);
    op->getResult(0).replaceAllUsesWith(k.getResult());
    tally.note("kv_append");
    return k;
  }

  /// Undoes GQA's repeat_kv: Reshape(Expand(Unsqueeze(k, 2), ..), ..) -> k.
  Value stripRepeatKv(Value v) {
    Operation *r = def(v, "Reshape");
    if (!r)
      return v;
    Operation *e = def(r->getOperand(0), "Expand");
    if (!e)
      return v;
    Operation *u = def(e->getOperand(0), "Unsqueeze");
    if (!u)
      return v;
    auto axes = evalInts(u->getOperand(1));
    if (!axes || axes->size() != 1 || (*axes)[0] != std::optional<int64_t>(2))
      return v;
    auto kt = ranked(u->getOperand(0));
    if (!kt || kt.getRank() != 4)
      return v;
    return u->getOperand(0);
  }

  Operation *raiseAttention(Operation *pv) {
    Value v = stripRepeatKv(pv->getOperand(1));
    Value p = skipNoops(pv->getOperand(0));
    Operation *sm = def(p, "Softmax");
    if (!sm)
      return nullptr;
    int64_t axis = intAttr(sm, "axis", -1);
    if (axis != -1 && axis != 3)
      return nullptr;
    Value s = sm->getOperand(0);
    // Mask: Where(cond, -big, scores) or Add(scores, additive).
    Value scores = s, maskCond;
    bool additive = false;
    if (Operation *w = def(s, "Where")) {
      auto fill = scalarFloat(w->getOperand(1));
      if (!fill || *fill > -1e4)
        return nullptr;
      maskCond = w->getOperand(0);
      scores = w->getOperand(2);
    } else if (Operation *a = def(s, "Add")) {
      Value sc, m;
      eitherOrder(a, [&](Value x, Value y) {
        if (!def(x, "Div") && !def(x, "Mul") && !def(x, "MatMul"))
          return false;
        sc = x;
        m = y;
        return true;
      });
      if (!sc)
        return nullptr;
      scores = sc;
      maskCond = m;
      additive = true;
    }
    // Scale: Div(qk, c) | Mul(qk, c) | qk.
    double scale = 1.0;
    Value qk = scores;
    if (Operation *d = def(scores, "Div")) {
      auto c = scalarFloat(d->getOperand(1));
      if (!c || *c == 0)
        return nullptr;
      scale = 1.0 / *c;
      qk = d->getOperand(0);
    } else if (Operation *m = def(scores, "Mul")) {
      bool ok = eitherOrder(m, [&](Value x, Value c) {
        auto cv = scalarFloat(c);
        if (!cv || !def(x, "MatMul"))
          return false;
        scale = *cv;
        qk = x;
        return true;
      });
      if (!ok)
        return nullptr;
    }
    Operation *qkm = def(qk, "MatMul");
    if (!qkm)
      return nullptr;
    Operation *kT = def(qkm->getOperand(1), "Transpose");
    if (!kT || intList(kT, "perm") != SmallVector<int64_t>{0, 1, 3, 2})
      return nullptr;
    Value q = qkm->getOperand(0), k = stripRepeatKv(kT->getOperand(0));
    auto qt = ranked(q), kt = ranked(k), vt = ranked(v);
    if (!qt || !kt || !vt || qt.getRank() != 4 || kt.getRank() != 4 ||
        vt.getRank() != 4 || qt.isDynamicDim(1) || kt.isDynamicDim(1) ||
        qt.isDynamicDim(3) || !isF32(q) || !isF32(k) || !isF32(v))
      return nullptr;
    if (kt.getDimSize(1) == 0 || qt.getDimSize(1) % kt.getDimSize(1) ||
        kt.getDimSize(3) != qt.getDimSize(3) || vt.getDimSize(1) != kt.getDimSize(1))
      return nullptr;
    Value mask;
    bool causal = false;
    if (maskCond && !analyzeMask(maskCond, additive, mask, causal))
      return nullptr;
    auto a = llm::AttentionOp::create(rewriter, pv->getLoc(), qt, q, k, v, mask,
                                      rewriter.getF32FloatAttr(scale),
                                      causal ? rewriter.getUnitAttr() : UnitAttr());
    pv->getResult(0).replaceAllUsesWith(a.getResult());
    tally.note(causal ? (mask ? "attention(causal+padding)" : "attention(causal)")
                      : (mask ? "attention(padding)" : "attention"));
    return a;
  }

  /// A mask is understood when it is computed only from an i64 [B, T]
  /// argument (the padding mask) and index arithmetic; a comparison of
  /// positions in it (j <= i + past) makes it causal. Anything else — float
  /// tensors, large constants — and the attention is left alone.
  bool analyzeMask(Value cond, bool additive, Value &mask, bool &causal) {
    llvm::SetVector<Value> work;
    work.insert(cond);
    for (unsigned i = 0; i < work.size(); ++i) {
      Value v = work[i];
      if (auto arg = dyn_cast<BlockArgument>(v)) {
        auto t = ranked(arg);
        if (!t || t.getRank() != 2 || !t.getElementType().isInteger(64))
          return false;
        if (mask && mask != arg)
          return false;
        mask = arg;
        continue;
      }
      Operation *op = v.getDefiningOp();
      if (!op || op->getName().getDialectNamespace() != "onnx")
        return false;
      StringRef k = op->getName().stripDialect();
      if (k == "Shape")
        continue; // sizes only, not data
      if (k == "Constant") {
        auto c = constant(v);
        if (!c || c.getNumElements() > 64)
          return false;
        continue;
      }
      static const llvm::StringSet<llvm::MallocAllocator> allowed = {
          "Cast", "Not", "And", "Or", "Equal", "Unsqueeze", "Squeeze", "Expand",
          "Reshape", "Range", "Gather", "Concat", "Add", "Sub", "Mul", "Div",
          "Where", "Slice", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
          "Trilu", "ConstantOfShape", "Min", "Max"};
      if (!allowed.contains(k))
        return false;
      if (k == "Less" || k == "LessOrEqual" || k == "Greater" ||
          k == "GreaterOrEqual" || k == "Trilu")
        causal = true;
      // Float data is only allowed as the -inf/0 fill of an additive mask.
      for (Type t : op->getResultTypes())
        if (auto st = dyn_cast<ShapedType>(t);
            st && isa<FloatType>(st.getElementType()) && !additive)
          return false;
      for (Value o : op->getOperands())
        if (!isa<NoneType>(o.getType()))
          work.insert(o);
    }
    return mask || causal;
  }

  /// Erases `op` if dead, then producers that became dead, remembering
  /// them so the sweep does not visit freed ops.
  void eraseDead(Operation *op) {
    if (!op || erased.contains(op) || !op->use_empty() ||
        op->hasTrait<OpTrait::IsTerminator>() || !isMemoryEffectFree(op))
      return;
    SmallVector<Operation *> producers;
    for (Value o : op->getOperands())
      if (Operation *d = o.getDefiningOp())
        producers.push_back(d);
    erased.insert(op);
    op->erase();
    for (Operation *d : producers)
      eraseDead(d);
  }

  func::FuncOp fn;
  Tally &tally;
  IRRewriter rewriter;
  llvm::DenseSet<Operation *> erased;
  int splitCounter = 0;
};

} // namespace

LogicalResult raiseLlm(func::FuncOp fn, RaiseReport &report) {
  Tally tally;
  MLIRContext *ctx = fn.getContext();
  for (int round = 0; round < 8; ++round) {
    Raiser raiser(fn, tally);
    bool changed = raiser.sweep();
    // Dead shape arithmetic and masks go; shapes are re-inferred so that
    // the next sweep sees the head sizes that raising made static.
    PassManager pm(ctx);
    pm.addPass(createCanonicalizerPass());
    if (auto refine = onnx::createRefineShapesPass())
      pm.addPass(std::move(refine));
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    if (failed(pm.run(fn->getParentOfType<ModuleOp>())))
      return failure();
    if (!changed)
      break;
  }
  for (auto &e : tally.raised)
    report.raised[e.getKey().str()] += e.getValue();
  return success();
}

} // namespace kiln
