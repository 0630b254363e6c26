"""A 64x64 elementwise Add, big enough for the vectorizer: make_add.py OUT.onnx"""
import sys

import onnx
from onnx import TensorProto, helper

g = helper.make_graph(
    [helper.make_node("Add", ["a", "b"], ["c"], name="add")], "add64",
    [helper.make_tensor_value_info("a", TensorProto.FLOAT, [64, 64]),
     helper.make_tensor_value_info("b", TensorProto.FLOAT, [64, 64])],
    [helper.make_tensor_value_info("c", TensorProto.FLOAT, [64, 64])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.save(m, sys.argv[1])
