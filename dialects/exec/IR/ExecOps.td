//===- ExecOps.td - The exec dialect: host schedules -------*- tablegen -*-===//
//
// The host side of a compiled model: which buffers to allocate, which
// kernels to dispatch on them, and the index arithmetic on dims in between.
// It is serialized into the artifact as a flat instruction list; the runtime
// executes it. Tensor values here stand for device buffers.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_EXEC_OPS
#define KILN_EXEC_OPS

include "mlir/IR/OpBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Exec_Dialect : Dialect {
  let name = "exec";
  let summary = "Host schedules: buffers, dims and kernel dispatches";
  let description = [{
    A function marked `exec.entry` is a host schedule. Functions marked
    `exec.kernel` are device kernels; their first two arguments are the
    workgroup id and count, the rest are bindings.
  }];
  let cppNamespace = "::kiln::exec";
}

class Exec_Op<string mnemonic, list<Trait> traits = []>
    : Op<Exec_Dialect, mnemonic, traits>;

def Exec_ConstantOp : Exec_Op<"constant", [Pure]> {
  let summary = "A read-only buffer holding model weights";
  let description = [{
    Weights stay in the artifact's constants section and are mapped, not
    copied, by the runtime.

    ```mlir
    %w = exec.constant dense_resource<w0> : tensor<16x16xf32>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Exec_AllocOp : Exec_Op<"alloc", []> {
  let summary = "Allocates a device buffer";
  let description = [{
    One index operand per dynamic dim of the result type.

    ```mlir
    %b = exec.alloc(%n) : tensor<?x4xf32>
    ```
  }];
  let arguments = (ins Variadic<Index>:$dynamic_dims);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "`(` $dynamic_dims `)` attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Exec_DimOp : Exec_Op<"dim", [Pure]> {
  let summary = "Reads one dim of a buffer's shape";
  let description = [{
    ```mlir
    %n = exec.dim %x, 0 : tensor<?x4xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$source, I64Attr:$index);
  let results = (outs Index:$result);
  let assemblyFormat = "$source `,` $index attr-dict `:` type($source)";
  let hasVerifier = 1;
}

def Exec_DispatchOp : Exec_Op<"dispatch", [AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "Runs a kernel over workgroups";
  let description = [{
    Runs kernel `@callee` with `inputs` as read bindings and `outs` as
    written bindings; the results are the `outs`, updated. The runtime picks
    the workgroup count (threads on the CPU).

    ```mlir
    %r = exec.dispatch @kernel_0(%x, %w) outs(%b : tensor<4xf32>) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$callee,
                       Variadic<AnyRankedTensor>:$inputs,
                       Variadic<AnyRankedTensor>:$outs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    $callee `(` $inputs `)` `outs` `(` $outs `:` type($outs) `)` attr-dict `:`
    functional-type($inputs, $results)
  }];
  let hasVerifier = 1;
}

def Exec_ReshapeOp : Exec_Op<"reshape", [Pure]> {
  let summary = "Views a buffer with another shape of the same size";
  let description = [{
    ```mlir
    %v = exec.reshape %b(%n) : tensor<2x?xf32> -> tensor<?xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$source, Variadic<Index>:$dynamic_dims);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $source `(` $dynamic_dims `)` attr-dict `:` type($source) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Exec_CopyOp : Exec_Op<"copy", [AllTypesMatch<["source", "result"]>]> {
  let summary = "A fresh buffer holding a copy of another";
  let description = [{
    Used where an entry point returns one of its inputs or a constant.

    ```mlir
    %c = exec.copy %x : tensor<4xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$source);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$source attr-dict `:` type($result)";
}

#endif // KILN_EXEC_OPS
