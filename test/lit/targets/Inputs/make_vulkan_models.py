"""Small models for the vulkan-spirv lit test: make_vulkan_models.py OUT_DIR

softmax.onnx  Softmax over [N, 16] with N dynamic (dims from push constants)
pad.onnx      Pad [4, 8] -> [6, 10]: a gather, one invocation per element
reduce.onnx   ReduceSum over axis 1 of [3, 2, 2], keepdims: kernels of several
              loop nests (one workgroup, barriers between them)
exp64.onnx    Exp on f64 [8] (needs the Float64 capability)
fullsum.onnx  ReduceSum of [1000] to a scalar: one output, a long reduction
"""
import os
import sys

import onnx
from onnx import TensorProto, helper


def save(graph, name):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, os.path.join(sys.argv[1], name))


save(helper.make_graph(
    [helper.make_node("Softmax", ["x"], ["y"], axis=1, name="softmax")], "softmax",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])]), "softmax.onnx")

pads = helper.make_tensor("pads", TensorProto.INT64, [4], [1, 1, 1, 1])
save(helper.make_graph(
    [helper.make_node("Pad", ["x", "pads"], ["y"], mode="constant", name="pad")], "pad",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 10])], [pads]), "pad.onnx")

axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
save(helper.make_graph(
    [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1, name="reduce")], "reduce",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 2, 2])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 1, 2])], [axes]), "reduce.onnx")

save(helper.make_graph(
    [helper.make_node("Exp", ["x"], ["y"], name="exp")], "exp64",
    [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [8])],
    [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [8])]), "exp64.onnx")

save(helper.make_graph(
    [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0, name="fullsum")], "fullsum",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1000])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])]), "fullsum.onnx")
