#!/usr/bin/python3
"""Long row reductions as ONNX node tests: make_reduction_cases.py OUT_DIR

Writes test_*/model.onnx with test_data_set_0/{input,output}_0.pb (numpy's
results), the layout of the ONNX node tests, so that
test/conformance/run_node_tests.py --data-dir OUT_DIR runs them on any
target and device. The rows are long enough for the GPU targets to give
each output a whole workgroup (targets/gpu/GpuCooperativeReductions.cpp),
except in the cases named *_short* and *_max* (one invocation per output).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def case(out_dir, name, node, shape, out_shape, x, y, inits=()):
    d = os.path.join(out_dir, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    graph = helper.make_graph([node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, os.path.join(d, "model.onnx"))
    with open(os.path.join(d, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    with open(os.path.join(d, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y.astype(np.float32), "y").SerializeToString())


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(0)
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    x = normal(40, 1000)
    case(out, "test_row_sum", helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0),
         [40, 1000], [40], x, x.sum(1), [axes])
    x = normal(40, 700)
    case(out, "test_row_sum_dynamic", helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0),
         ["n", "k"], ["n"], x, x.sum(1), [axes])
    x = normal(40, 300)
    case(out, "test_row_mean", helper.make_node("ReduceMean", ["x"], ["y"], keepdims=1, axes=[1]),
         [40, 300], [40, 1], x, x.mean(1, keepdims=True))
    x = normal(3, 40, 200)
    case(out, "test_sum_square_two_axes", helper.make_node("ReduceSumSquare", ["x"], ["y"], keepdims=0, axes=[0, 2]),
         [3, 40, 200], [40], x, (x * x).sum((0, 2)))
    x = normal(40, 500)
    case(out, "test_row_l2", helper.make_node("ReduceL2", ["x"], ["y"], keepdims=0, axes=[1]),
         [40, 500], [40], x, np.sqrt((x * x).sum(1)))
    case(out, "test_row_max", helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0, axes=[1]),
         [40, 500], [40], x, x.max(1))
    x = normal(200, 8)
    case(out, "test_row_sum_short", helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0),
         [200, 8], [200], x, x.sum(1), [axes])


if __name__ == "__main__":
    main()
