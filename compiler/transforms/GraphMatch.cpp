//===- GraphMatch.cpp - Small structural matchers over onnx graphs ---------===//
#include "compiler/transforms/GraphMatch.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/DialectResourceBlobManager.h"

using namespace mlir;

namespace kiln::match {

Operation *def(Value v, StringRef name) {
  Operation *op = v ? v.getDefiningOp() : nullptr;
  if (!op || op->getName().getDialectNamespace() != "onnx" ||
      op->getName().stripDialect() != name)
    return nullptr;
  return op;
}

Value skipNoops(Value v) {
  while (v) {
    Operation *op = v.getDefiningOp();
    if (!op)
      return v;
    if (def(v, "Identity")) {
      v = op->getOperand(0);
      continue;
    }
    if (def(v, "Cast")) {
      auto in = dyn_cast<ShapedType>(op->getOperand(0).getType());
      auto out = dyn_cast<ShapedType>(v.getType());
      if (in && out && in.getElementType() == out.getElementType()) {
        v = op->getOperand(0);
        continue;
      }
    }
    return v;
  }
  return v;
}

ElementsAttr constant(Value v) {
  if (!v)
    return {};
  if (Operation *op = def(v, "Constant"))
    return op->getAttrOfType<ElementsAttr>("value");
  if (auto c = v.getDefiningOp<arith::ConstantOp>())
    return dyn_cast<ElementsAttr>(c.getValue());
  return {};
}

ElementsAttr weight(Value v, int64_t rank) {
  ElementsAttr a = constant(v);
  if (!a || cast<ShapedType>(a.getType()).getRank() != rank)
    return {};
  return a;
}

std::optional<ArrayRef<float>> floatData(ElementsAttr attr,
                                         SmallVectorImpl<float> &storage) {
  if (!attr || !cast<ShapedType>(attr.getType()).getElementType().isF32())
    return std::nullopt;
  if (auto res = dyn_cast<DenseResourceElementsAttr>(attr)) {
    AsmResourceBlob *blob = res.getRawHandle().getBlob();
    if (!blob)
      return std::nullopt;
    ArrayRef<char> bytes = blob->getData();
    return ArrayRef<float>(reinterpret_cast<const float *>(bytes.data()),
                           bytes.size() / sizeof(float));
  }
  if (auto dense = dyn_cast<DenseElementsAttr>(attr)) {
    storage.clear();
    for (const APFloat &f : dense.getValues<APFloat>())
      storage.push_back(f.convertToFloat());
    return ArrayRef<float>(storage);
  }
  return std::nullopt;
}

std::optional<double> scalarFloat(Value v) {
  auto dense = dyn_cast_or_null<DenseElementsAttr>(constant(skipNoops(v)));
  if (!dense || !isa<FloatType>(dense.getElementType()))
    return std::nullopt;
  if (!dense.isSplat() && dense.getNumElements() != 1)
    return std::nullopt;
  return (*dense.getValues<APFloat>().begin()).convertToDouble();
}

RankedTensorType ranked(Value v) {
  return v ? dyn_cast<RankedTensorType>(v.getType()) : RankedTensorType();
}

SmallVector<int64_t> intList(Operation *op, StringRef name) {
  SmallVector<int64_t> out;
  if (auto arr = op->getAttrOfType<ArrayAttr>(name))
    for (Attribute a : arr)
      if (auto i = dyn_cast<IntegerAttr>(a))
        out.push_back(i.getInt());
  if (auto arr = op->getAttrOfType<DenseI64ArrayAttr>(name))
    out.append(arr.asArrayRef().begin(), arr.asArrayRef().end());
  return out;
}

SmallVector<int64_t> axesOf(Operation *op) {
  SmallVector<int64_t> axes = intList(op, "axes");
  if (axes.empty() && op->getNumOperands() > 1)
    if (auto v = evalInts(op->getOperand(1)))
      for (auto a : *v)
        if (a)
          axes.push_back(*a);
  return axes;
}

int64_t intAttr(Operation *op, StringRef name, int64_t dflt) {
  if (auto a = op->getAttrOfType<IntegerAttr>(name))
    return a.getInt();
  return dflt;
}

double floatAttr(Operation *op, StringRef name, double dflt) {
  if (auto a = op->getAttrOfType<FloatAttr>(name))
    return a.getValueAsDouble();
  return dflt;
}

using Ints = SmallVector<std::optional<int64_t>>;

static std::optional<Ints> evalBinary(Operation *op) {
  auto a = evalInts(op->getOperand(0)), b = evalInts(op->getOperand(1));
  if (!a || !b)
    return std::nullopt;
  size_t n = std::max(a->size(), b->size());
  if ((a->size() != n && a->size() != 1) || (b->size() != n && b->size() != 1))
    return std::nullopt;
  Ints out;
  StringRef kind = op->getName().stripDialect();
  for (size_t i = 0; i < n; ++i) {
    auto x = (*a)[a->size() == 1 ? 0 : i], y = (*b)[b->size() == 1 ? 0 : i];
    if (!x || !y) {
      out.push_back(std::nullopt);
      continue;
    }
    if (kind == "Add")
      out.push_back(*x + *y);
    else if (kind == "Sub")
      out.push_back(*x - *y);
    else if (kind == "Mul")
      out.push_back(*x * *y);
    else if (*y != 0)
      out.push_back(llvm::divideFloorSigned(*x, *y));
    else
      out.push_back(std::nullopt);
  }
  return out;
}

std::optional<Ints> evalInts(Value v) {
  v = skipNoops(v);
  if (!v)
    return std::nullopt;
  if (auto dense = dyn_cast_or_null<DenseElementsAttr>(constant(v))) {
    if (!isa<IntegerType>(dense.getElementType()) || dense.getNumElements() > 64)
      return std::nullopt;
    Ints out;
    for (const APInt &i : dense.getValues<APInt>())
      out.push_back(i.getSExtValue());
    return out;
  }
  Operation *op = v.getDefiningOp();
  if (!op || op->getName().getDialectNamespace() != "onnx")
    return std::nullopt;
  StringRef kind = op->getName().stripDialect();
  if (kind == "Shape") {
    auto t = ranked(op->getOperand(0));
    if (!t)
      return std::nullopt;
    Ints out;
    for (int64_t d : t.getShape())
      out.push_back(ShapedType::isDynamic(d) ? std::nullopt
                                             : std::optional<int64_t>(d));
    int64_t start = intAttr(op, "start", 0), end = intAttr(op, "end", INT64_MAX);
    int64_t r = t.getRank();
    if (start < 0)
      start += r;
    if (end < 0)
      end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, start, r);
    return Ints(out.begin() + start, out.begin() + end);
  }
  if (kind == "Gather") {
    auto data = evalInts(op->getOperand(0));
    auto idx = evalInts(op->getOperand(1));
    if (!data || !idx)
      return std::nullopt;
    Ints out;
    for (auto i : *idx) {
      if (!i)
        return std::nullopt;
      int64_t j = *i < 0 ? *i + (int64_t)data->size() : *i;
      if (j < 0 || j >= (int64_t)data->size())
        return std::nullopt;
      out.push_back((*data)[j]);
    }
    return out;
  }
  if (kind == "Unsqueeze" || kind == "Squeeze" || kind == "Reshape" ||
      kind == "Flatten")
    return evalInts(op->getOperand(0));
  if (kind == "Concat") {
    Ints out;
    for (Value o : op->getOperands()) {
      auto part = evalInts(o);
      if (!part)
        return std::nullopt;
      out.append(part->begin(), part->end());
    }
    return out;
  }
  if (kind == "Add" || kind == "Sub" || kind == "Mul" || kind == "Div")
    return evalBinary(op);
  return std::nullopt;
}

std::optional<int64_t> evalInt(Value v) {
  auto ints = evalInts(v);
  if (!ints || ints->size() != 1)
    return std::nullopt;
  return (*ints)[0];
}

} // namespace kiln::match
