#!/usr/bin/python3
"""Generic-model kernels for the GPU targets as ONNX node tests: make_gpu_cases.py OUT_DIR

Writes test_*/model.onnx with test_data_set_0/{input,output}_0.pb (numpy's
results), the layout of the ONNX node tests, so that
test/conformance/run_node_tests.py --data-dir OUT_DIR runs them on any
target and device.
  test_row_*, test_sum_square_*  long row reductions (sums, max with and
      without NaN, Softmax's two kernels): a workgroup per output
      (targets/gpu/GpuCooperativeReductions.cpp), except *_short (one
      invocation per output); test_row_layer_norm_nodes is a LayerNorm
      written as ReduceMean, Sub, Mul..., whose reductions start from a
      kernel input through a temporary that each tile copies in and out
      itself (targets/gpu/GpuPrivatizeTiles.cpp)
  test_matmul_*, test_gemm_*  matmuls in 16 x 16 output tiles staged
      through workgroup memory (targets/gpu/GpuCooperativeMatmul.cpp), with
      partial tiles at the edges, their elementwise epilogue (Gemm's bias,
      alpha and beta; an Add and a Relu after a batched MatMul) applied as
      each output is stored, transposed operands (Gemm's transA, transB) and
      MatMul of rank 4 (linalg.generic contractions) alike
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def case(out_dir, name, node, shape, out_shape, x, y, inits=(), more=()):
    """One case: input x (and `more`: (name, array) pairs), output y; node
    may be a list of nodes."""
    d = os.path.join(out_dir, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(v.shape)) for n, v in more]
    graph = helper.make_graph(node if isinstance(node, list) else [node], name, inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, os.path.join(d, "model.onnx"))
    for i, (n, v) in enumerate([("x", x)] + list(more)):
        with open(os.path.join(d, "test_data_set_0", f"input_{i}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(v, n).SerializeToString())
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
    x = normal(40, 500)
    x[3, 17] = np.nan
    x[29, 499] = np.nan
    case(out, "test_row_max_nan", helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0, axes=[1]),
         [40, 500], [40], x, x.max(1))
    x = normal(40, 1000)
    e = np.exp(x - x.max(1, keepdims=True))
    case(out, "test_row_softmax", helper.make_node("Softmax", ["x"], ["y"], axis=1), [40, 1000], [40, 1000], x,
         e / e.sum(1, keepdims=True))
    x = normal(40, 1000)
    mu = x.mean(1, keepdims=True)
    var = ((x - mu) ** 2).mean(1, keepdims=True)
    eps = numpy_helper.from_array(np.array(1e-5, np.float32), "eps")
    case(out, "test_row_layer_norm_nodes",
         [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
          helper.make_node("Sub", ["x", "m"], ["d"]),
          helper.make_node("Mul", ["d", "d"], ["d2"]),
          helper.make_node("ReduceMean", ["d2"], ["v"], axes=[1], keepdims=1),
          helper.make_node("Add", ["v", "eps"], ["ve"]),
          helper.make_node("Sqrt", ["ve"], ["s"]),
          helper.make_node("Div", ["d", "s"], ["y"])],
         [40, 1000], [40, 1000], x, (x - mu) / np.sqrt(var + 1e-5), [eps])
    x = normal(40, 500)
    case(out, "test_row_max", helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0, axes=[1]),
         [40, 500], [40], x, x.max(1))
    x, w = normal(70, 300), normal(300, 50)
    case(out, "test_matmul_edges", helper.make_node("MatMul", ["x", "w"], ["y"]), [70, 300], [70, 50], x, x @ w,
         more=[("w", w)])
    x, w = normal(3, 33, 64), normal(3, 64, 20)
    case(out, "test_matmul_batched", helper.make_node("MatMul", ["x", "w"], ["y"]), [3, 33, 64], [3, 33, 20],
         x, x @ w, more=[("w", w)])
    x, w = normal(5, 7), normal(7, 9)
    case(out, "test_matmul_one_tile", helper.make_node("MatMul", ["x", "w"], ["y"]), [5, 7], [5, 9], x, x @ w,
         more=[("w", w)])
    x, w, bias = normal(40, 64), normal(64, 24), normal(24)
    case(out, "test_matmul_bias", helper.make_node("Gemm", ["x", "w", "bias"], ["y"]), [40, 64], [40, 24], x,
         x @ w + bias, more=[("w", w), ("bias", bias)])
    x, w, c = normal(40, 64), normal(64, 24), normal(40, 24)
    case(out, "test_gemm_alpha_beta", helper.make_node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0),
         [40, 64], [40, 24], x, 0.5 * (x @ w) + 2.0 * c, more=[("w", w), ("c", c)])
    x, w, bias = normal(3, 33, 64), normal(3, 64, 20), normal(20)
    case(out, "test_matmul_add_relu_batched",
         [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "bias"], ["u"]),
          helper.make_node("Relu", ["u"], ["y"])],
         [3, 33, 64], [3, 33, 20], x, np.maximum(x @ w + bias, 0), more=[("w", w), ("bias", bias)])
    x, w, bias = normal(40, 64), normal(24, 64), normal(24)
    case(out, "test_gemm_transb", helper.make_node("Gemm", ["x", "w", "bias"], ["y"], transB=1), [40, 64],
         [40, 24], x, x @ w.T + bias, more=[("w", w), ("bias", bias)])
    x, w = normal(64, 40), normal(64, 24)
    case(out, "test_gemm_transa", helper.make_node("Gemm", ["x", "w"], ["y"], transA=1), [64, 40], [40, 24], x,
         x.T @ w, more=[("w", w)])
    x, w = normal(2, 3, 17, 40), normal(2, 3, 40, 20)
    case(out, "test_matmul_4d", helper.make_node("MatMul", ["x", "w"], ["y"]), [2, 3, 17, 40], [2, 3, 17, 20],
         x, x @ w, more=[("w", w)])
    x = normal(200, 8)
    case(out, "test_row_sum_short", helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0),
         [200, 8], [200], x, x.sum(1), [axes])


if __name__ == "__main__":
    main()
