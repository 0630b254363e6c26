//===- OnnxOps.td - onnx dialect ops -----------------------*- tablegen -*-===//
#ifndef KILN_ONNX_OPS
#define KILN_ONNX_OPS

include "OnnxBase.td"

def ONNX_NoValueOp : ONNX_Op<"NoValue", [Pure]> {
  let summary = "An absent optional input or output";
  let description = [{
    Stands for an optional ONNX input that the node leaves empty.

    ```mlir
    %none = onnx.NoValue : () -> none
    %y = onnx.Clip %x, %none, %max : (tensor<4xf32>, none, tensor<f32>) -> tensor<4xf32>
    ```
  }];
  let results = (outs NoneType:$none);
}

include "OnnxOpsGen.td"

#endif // KILN_ONNX_OPS
