#!/usr/bin/env python3
"""Writes the small ONNX models the importer and tool tests use.

Usage: make_test_models.py OUT_DIR
Each model is tiny and built with onnx.helper; bad models are derived from
good ones (empty, truncated, random bytes, a dangling input).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(model, out, name, **kw):
    model.ir_version = 8
    onnx.save(model, os.path.join(out, name), **kw)


def opset(v=17):
    return [helper.make_opsetid("", v)]


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1)

    # add: symbolic dims keep their names; 1-D broadcast.
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"], name="add0")], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    save(helper.make_model(g, opset_imports=opset()), out, "add.onnx")

    # weights: a large initializer becomes a dense_resource blob.
    w = rng.standard_normal((8, 8)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm0")], "weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=opset())
    save(m, out, "weights.onnx")
    np.save(os.path.join(out, "weights_w.npy"), w)
    # The same model with its weights in an external file beside it.
    save(onnx.load(os.path.join(out, "weights.onnx")), out, "weights_ext.onnx",
         save_as_external_data=True, all_tensors_to_one_file=True,
         location="weights_ext.bin", size_threshold=0)

    # unsupported: an op kiln has no lowering for in the default domain and
    # one from a custom domain.
    g = helper.make_graph(
        [helper.make_node("Foo", ["x"], ["y"], name="custom0", domain="com.example")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=opset() + [helper.make_opsetid("com.example", 1)])
    save(m, out, "custom_domain.onnx")

    # opset 11 model: imported through version conversion.
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu0")], "old",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    save(helper.make_model(g, opset_imports=opset(11)), out, "opset11.onnx")

    # Bad models.
    good = open(os.path.join(out, "add.onnx"), "rb").read()
    open(os.path.join(out, "empty.onnx"), "wb").close()
    open(os.path.join(out, "truncated.onnx"), "wb").write(good[: len(good) // 2])
    open(os.path.join(out, "random.onnx"), "wb").write(rng.bytes(512))
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "nowhere"], ["y"], name="dangling0")],
        "dangling",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    save(helper.make_model(g, opset_imports=opset()), out, "dangling.onnx")

    # A graph output, with a newline in its name, that no node produces:
    # the error must still be one line.
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu0")], "ctrl",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("bad\nname", TensorProto.FLOAT, [2])])
    save(helper.make_model(g, opset_imports=opset()), out, "ctrl_name.onnx")

    # The same with a byte that is not UTF-8 in the name (as a corrupt file
    # has): the error must still be one line of valid UTF-8. The helper
    # takes only str names, so the byte goes into the serialized model.
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu0")], "utf8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("badXname", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=opset())
    m.ir_version = 8
    with open(os.path.join(out, "bad_utf8_name.onnx"), "wb") as f:
        f.write(m.SerializeToString().replace(b"badXname", b"bad\xffname"))

    # Inputs for kiln-run tests.
    np.save(os.path.join(out, "x_2x4.npy"), rng.standard_normal((2, 4)).astype(np.float32))
    np.save(os.path.join(out, "x_2x5.npy"), rng.standard_normal((2, 5)).astype(np.float32))
    np.save(os.path.join(out, "b_4.npy"), rng.standard_normal(4).astype(np.float32))
    np.save(os.path.join(out, "b_4_i32.npy"), np.arange(4, dtype=np.int32))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
