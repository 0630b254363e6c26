//===- ExecDialect.cpp - The exec dialect ---------------------------------===//
#include "dialects/exec/IR/ExecDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace kiln::exec;

#include "ExecDialect.cpp.inc"

void ExecDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "ExecOps.cpp.inc"
      >();
}

#define GET_OP_CLASSES
#include "ExecOps.cpp.inc"

LogicalResult ConstantOp::verify() {
  auto type = cast<RankedTensorType>(getType());
  if (!type.hasStaticShape())
    return emitOpError("constant must have a static shape");
  if (cast<ShapedType>(getValue().getType()).getShape() != type.getShape())
    return emitOpError("value shape does not match the result type");
  return success();
}

LogicalResult AllocOp::verify() {
  auto type = cast<RankedTensorType>(getType());
  if ((int64_t)getDynamicDims().size() != type.getNumDynamicDims())
    return emitOpError("expects ")
           << type.getNumDynamicDims() << " dynamic dims, got "
           << getDynamicDims().size();
  return success();
}

LogicalResult ReshapeOp::verify() {
  auto in = cast<RankedTensorType>(getSource().getType());
  auto out = cast<RankedTensorType>(getType());
  if ((int64_t)getDynamicDims().size() != out.getNumDynamicDims())
    return emitOpError("expects ")
           << out.getNumDynamicDims() << " dynamic dims, got "
           << getDynamicDims().size();
  if (in.getElementType() != out.getElementType())
    return emitOpError("element types differ");
  if (in.hasStaticShape() && out.hasStaticShape() &&
      in.getNumElements() != out.getNumElements())
    return emitOpError("element counts differ: ")
           << in.getNumElements() << " vs " << out.getNumElements();
  return success();
}

LogicalResult DimOp::verify() {
  int64_t rank = cast<RankedTensorType>(getSource().getType()).getRank();
  if (getIndex() < 0 || getIndex() >= rank)
    return emitOpError("dim ") << getIndex() << " out of range for rank "
                               << rank;
  return success();
}

LogicalResult DispatchOp::verify() {
  if (getOuts().size() != getResults().size())
    return emitOpError("has ") << getOuts().size() << " outs but "
                               << getResults().size() << " results";
  for (auto [o, r] : llvm::zip(getOuts(), getResults()))
    if (o.getType() != r.getType())
      return emitOpError("result type ")
             << r.getType() << " differs from its out " << o.getType();
  return success();
}

LogicalResult
DispatchOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto fn = symbolTable.lookupNearestSymbolFrom<func::FuncOp>(*this,
                                                              getCalleeAttr());
  if (!fn)
    return emitOpError("no kernel named ") << getCallee();
  if (!fn->hasAttr(kKernelAttr))
    return emitOpError("callee @") << getCallee() << " is not a kernel";
  unsigned expected = kNumWorkgroupArgs + getInputs().size() + getOuts().size();
  if (fn.getNumArguments() != expected)
    return emitOpError("kernel takes ")
           << fn.getNumArguments() << " arguments, dispatch binds "
           << expected;
  return success();
}
