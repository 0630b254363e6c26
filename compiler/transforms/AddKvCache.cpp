//===- AddKvCache.cpp - Give a cache-less export a KV cache ----------------===//
#include "compiler/transforms/RaiseLlm.h"

#include "dialects/llm/IR/LlmDialect.h"

#include "mlir/IR/Builders.h"

using namespace mlir;

namespace kiln {

int addKvCache(func::FuncOp fn) {
  SmallVector<llm::AttentionOp> todo;
  fn.walk([&](llm::AttentionOp a) {
    if (!a.getKey().getDefiningOp<llm::KvAppendOp>() &&
        !a.getValue().getDefiningOp<llm::KvAppendOp>())
      todo.push_back(a);
  });
  if (todo.empty())
    return 0;
  MLIRContext *ctx = fn.getContext();
  Block &body = fn.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  SmallVector<Value> results(ret.getOperands());
  SmallVector<Attribute> resultAttrs;
  for (unsigned i = 0; i < fn.getNumResults(); ++i)
    resultAttrs.push_back(fn.getResultAttrDict(i) ? Attribute(fn.getResultAttrDict(i))
                                                  : DictionaryAttr::get(ctx));
  OpBuilder b(ctx);
  auto named = [&](StringRef name, ArrayRef<StringRef> dims) {
    SmallVector<NamedAttribute> attrs;
    attrs.push_back(b.getNamedAttr("onnx.name", b.getStringAttr(name)));
    SmallVector<Attribute> d;
    for (StringRef s : dims)
      d.push_back(b.getStringAttr(s));
    attrs.push_back(b.getNamedAttr("onnx.dim_names", b.getArrayAttr(d)));
    return DictionaryAttr::get(ctx, attrs);
  };
  int layer = 0;
  for (llm::AttentionOp a : todo) {
    SmallVector<Value> kv;
    for (auto [which, cur] : llvm::enumerate(SmallVector<Value>{a.getKey(), a.getValue()})) {
      auto ct = cast<RankedTensorType>(cur.getType());
      auto pastType = RankedTensorType::get(
          {ct.getDimSize(0), ct.getDimSize(1), ShapedType::kDynamic, ct.getDimSize(3)},
          ct.getElementType());
      std::string suffix = which == 0 ? "key" : "value";
      std::string inName = "past_key_values." + std::to_string(layer) + "." + suffix;
      std::string outName = "present." + std::to_string(layer) + "." + suffix;
      unsigned argIndex = fn.getNumArguments();
      (void)fn.insertArgument(argIndex, pastType,
                              named(inName, {"batch_size", "", "past_sequence_length", ""}),
                              fn.getLoc());
      b.setInsertionPoint(a);
      auto app = llm::KvAppendOp::create(b, a.getLoc(), pastType,
                                         fn.getArgument(argIndex), cur);
      kv.push_back(app);
      results.push_back(app);
      resultAttrs.push_back(
          named(outName, {"batch_size", "", "total_sequence_length", ""}));
    }
    a.getKeyMutable().assign(kv[0]);
    a.getValueMutable().assign(kv[1]);
    ++layer;
  }
  ret->setOperands(results);
  SmallVector<Type> resultTypes;
  for (Value v : results)
    resultTypes.push_back(v.getType());
  fn.setType(FunctionType::get(ctx, fn.getArgumentTypes(), resultTypes));
  fn.setAllResultAttrs(resultAttrs);
  return layer;
}

} // namespace kiln
