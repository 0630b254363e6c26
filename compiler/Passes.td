//===- Passes.td - kiln compiler passes --------------------*- tablegen -*-===//
#ifndef KILN_COMPILER_PASSES
#define KILN_COMPILER_PASSES

include "mlir/Pass/PassBase.td"

def ConvertOnnxToLinalgPass : Pass<"kiln-convert-onnx-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower onnx ops to linalg, tensor, arith and math";
  let description = [{
    Applies every `populateOnnx*Patterns` set of compiler/conversion/OnnxToLinalg
    in one partial conversion. Unsigned integer types become signless; the
    entry function's arguments and results record their runtime dtype in an
    `exec.dtype` attribute first. An op no pattern accepts is reported as
    `unsupported op '<Op>' for lowering`.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect", "mlir::linalg::LinalgDialect",
    "mlir::tensor::TensorDialect", "mlir::math::MathDialect",
    "mlir::scf::SCFDialect", "mlir::bufferization::BufferizationDialect"
  ];
}

def FormDispatchesPass : Pass<"kiln-form-dispatches", "mlir::ModuleOp"> {
  let summary = "Group tensor work into kernels and build the exec host schedule";
  let description = [{
    Each op computing a tensor is a root; elementwise consumers that only it
    feeds join its group. Every group is outlined into an `exec.kernel`
    function taking (workgroup id, workgroup count, inputs..., outs...), and
    the entry function becomes an `exec` host schedule of allocs, dims,
    constants and dispatches.
  }];
  let dependentDialects = [
    "kiln::exec::ExecDialect", "mlir::bufferization::BufferizationDialect"
  ];
}

#endif // KILN_COMPILER_PASSES
