//===- OnnxBase.td - The onnx dialect ----------------------*- tablegen -*-===//
//
// The entry dialect of kiln: one op per ONNX operator, opset-independent (the
// importer converts older opsets to 17). Optional inputs and outputs that are
// absent are values of type `none`.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_ONNX_BASE
#define KILN_ONNX_BASE

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def ONNX_Dialect : Dialect {
  let name = "onnx";
  let summary = "ONNX operators as MLIR ops";
  let description = [{
    One op per ONNX operator of the default domain at opset 17. Tensors use
    builtin ranked tensor types; symbolic dimensions are dynamic and keep their
    ONNX names in the `onnx.dim_names` argument attribute of the function.
    Unsigned ONNX types map to `uiN`, bool to `i1`.
  }];
  let cppNamespace = "::kiln::onnx";
  let hasConstantMaterializer = 1;
}

class ONNX_Op<string mnemonic, list<Trait> traits = []>
    : Op<ONNX_Dialect, mnemonic, traits> {
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
}

#endif // KILN_ONNX_BASE
