#!/usr/bin/env python3
"""Writes the small pre-quantized ONNX models of quantized_onnx.test, with
onnx.helper and the quantizers of python/make_quantized_onnx.py, and the
numpy reference outputs of the ones the test runs.

Usage: make_quantized_models.py OUT_DIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "python"))
import make_quantized_onnx as mq  # noqa: E402

OUT = sys.argv[1]
rng = np.random.default_rng(7)


def save(name, nodes, inputs, outputs, inits, contrib=False):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    ops = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if contrib else [])
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(OUT, name + ".onnx"))


def ref(name, y):
    """numpy's output of model `name` on x.npy."""
    np.save(os.path.join(OUT, name + "_y.npy"), y.astype(np.float32))


def x_info(k):
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", k])


def y_info(n):
    return helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", n])


def nbits_node(K, N, bs, inputs, **kw):
    return helper.make_node("MatMulNBits", inputs, ["y"], name="mm", domain="com.microsoft", K=K, N=N, bits=4,
                            block_size=bs, **kw)


def main():
    os.makedirs(OUT, exist_ok=True)
    x = rng.standard_normal((1, 3, 64)).astype(np.float32)
    np.save(os.path.join(OUT, "x.npy"), x)

    # MatMulNBits, packed zero points [N, ceil(n_blocks/2)], 2-D scales.
    K, N, bs = 64, 16, 32
    w = rng.standard_normal((K, N)).astype(np.float32)
    t = mq.quantize_nbits(w, bs)
    inits = [numpy_helper.from_array(t["B"], "w_Q4"), numpy_helper.from_array(t["scales"], "w_scales"),
             numpy_helper.from_array(t["zero_points"], "w_zero_points")]
    save("nbits", [nbits_node(K, N, bs, ["x", "w_Q4", "w_scales", "w_zero_points"], accuracy_level=4)],
         [x_info(K)], [y_info(N)], inits, contrib=True)
    ref("nbits", x @ mq.dequantize_nbits(t, K))

    # No zero points (8), 1-D scales [N * n_blocks], a bias, block 16.
    bs2 = 16
    t2 = mq.quantize_nbits(w, bs2)
    bias = rng.standard_normal(N).astype(np.float32)
    inits = [numpy_helper.from_array(t2["B"], "B"), numpy_helper.from_array(t2["scales"].reshape(-1), "s"),
             numpy_helper.from_array(bias, "bias")]
    save("nbits_bias", [nbits_node(K, N, bs2, ["x", "B", "s", "", "", "bias"])], [x_info(K)], [y_info(N)],
         inits, contrib=True)
    codes2 = t2["codes"].astype(np.float32)
    ref("nbits_bias", x @ ((codes2 - 8) * t2["scale_kn"][np.arange(K) // bs2]) + bias)

    # A g_idx that reorders the blocks: not llm.dequantize's layout. It stays
    # onnx.MatMulNBits and is lowered through linalg; reference in numpy.
    g_idx = ((np.arange(K) // bs + 1) % (K // bs)).astype(np.int32)
    inits = [numpy_helper.from_array(t["B"], "w_Q4"), numpy_helper.from_array(t["scales"], "w_scales"),
             numpy_helper.from_array(t["zero_points"], "w_zero_points"), numpy_helper.from_array(g_idx, "g_idx")]
    save("nbits_gidx", [nbits_node(K, N, bs, ["x", "w_Q4", "w_scales", "w_zero_points", "g_idx"])],
         [x_info(K)], [y_info(N)], inits, contrib=True)
    codes = t["codes"].astype(np.float32)
    w_g = (codes - t["zp"][g_idx].astype(np.float32)) * t["scale_kn"][g_idx]
    ref("nbits_gidx", x @ w_g)

    # bits = 8: a clear error.
    inits = [numpy_helper.from_array(np.zeros((N, 2, 32), np.uint8), "B8"),
             numpy_helper.from_array(np.ones((N, 2), np.float32), "s8")]
    save("nbits_bits8", [helper.make_node("MatMulNBits", ["x", "B8", "s8"], ["y"], name="mm8", domain="com.microsoft",
                                          K=K, N=N, bits=8, block_size=32)],
         [x_info(K)], [y_info(N)], inits, contrib=True)

    # QDQ: int8 per output channel (axis 1), zero point 0.
    q, scale = mq.quantize_int8_per_channel(w)
    inits = [numpy_helper.from_array(q, "w_quantized"), numpy_helper.from_array(scale, "w_scale"),
             numpy_helper.from_array(np.zeros(N, np.int8), "w_zero_point")]
    save("qdq", [helper.make_node("DequantizeLinear", ["w_quantized", "w_scale", "w_zero_point"], ["w_dq"], axis=1),
                 helper.make_node("MatMul", ["x", "w_dq"], ["y"], name="mm")],
         [x_info(K)], [y_info(N)], inits)
    ref("qdq", x @ (q.astype(np.float32) * scale))

    # QDQ: uint8 stored [N, K] (per-channel on axis 0, zero point 128 + j),
    # DequantizeLinear then Transpose.
    qu = rng.integers(0, 256, (N, K), dtype=np.uint8)
    zu = (120 + np.arange(N)).astype(np.uint8)
    su = mq.f16_exact(np.full(N, 0.01, np.float32))
    inits = [numpy_helper.from_array(qu, "wt_quantized"), numpy_helper.from_array(su, "wt_scale"),
             numpy_helper.from_array(zu, "wt_zero_point")]
    save("qdq_uint8_nk", [helper.make_node("DequantizeLinear", ["wt_quantized", "wt_scale", "wt_zero_point"],
                                           ["wt_dq"], axis=0),
                          helper.make_node("Transpose", ["wt_dq"], ["w_dq"], perm=[1, 0]),
                          helper.make_node("MatMul", ["x", "w_dq"], ["y"], name="mm")],
         [x_info(K)], [y_info(N)], inits)
    w_u = ((qu.astype(np.float32) - zu[:, None]) * su[:, None]).T
    ref("qdq_uint8_nk", x @ w_u)

    # Static quantization: the activation goes through QuantizeLinear /
    # DequantizeLinear (uint8, per tensor) too.
    inits += [numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
              numpy_helper.from_array(np.array(128, np.uint8), "x_zero_point")]
    save("qdq_static", [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero_point"], ["x_q"]),
                        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero_point"], ["x_dq"]),
                        helper.make_node("DequantizeLinear", ["wt_quantized", "wt_scale", "wt_zero_point"],
                                         ["wt_dq"], axis=0),
                        helper.make_node("Transpose", ["wt_dq"], ["w_dq"], perm=[1, 0]),
                        helper.make_node("MatMul", ["x_dq", "w_dq"], ["y"], name="mm")],
         [x_info(K)], [y_info(N)], inits)
    x_dq = (np.clip(np.rint(x / np.float32(0.05)) + 128, 0, 255) - 128) * np.float32(0.05)
    ref("qdq_static", x_dq @ w_u)

    # Near miss: the quantized weight is a graph input, not a constant.
    g = [helper.make_node("DequantizeLinear", ["wq", "w_scale"], ["w_dq"], axis=1),
         helper.make_node("MatMul", ["x", "w_dq"], ["y"], name="mm")]
    save("qdq_runtime_weight", g,
         [x_info(K), helper.make_tensor_value_info("wq", TensorProto.INT8, [K, N])], [y_info(N)],
         [numpy_helper.from_array(scale, "w_scale")])
    np.save(os.path.join(OUT, "wq.npy"), q)
    ref("qdq_runtime_weight", x @ (q.astype(np.float32) * scale))


if __name__ == "__main__":
    main()
