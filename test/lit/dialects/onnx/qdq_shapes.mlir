// RUN: kiln-opt --kiln-onnx-refine-shapes %s | FileCheck %s

// Activation fake quantization keeps shapes: static QDQ exports often carry
// no shapes for these values, and the refinement fills them in.
// CHECK-LABEL: func @qdq_infers
// CHECK: onnx.QuantizeLinear {{.*}} -> tensor<2x?x8xui8>
// CHECK: onnx.DequantizeLinear {{.*}} -> tensor<2x?x8xf32>
func.func @qdq_infers(%x: tensor<2x?x8xf32>, %s: tensor<f32>, %z: tensor<ui8>) -> tensor<*xf32> {
  %q = onnx.QuantizeLinear %x, %s, %z : (tensor<2x?x8xf32>, tensor<f32>, tensor<ui8>) -> tensor<*xui8>
  %d = onnx.DequantizeLinear %q, %s, %z : (tensor<*xui8>, tensor<f32>, tensor<ui8>) -> tensor<*xf32>
  return %d : tensor<*xf32>
}
