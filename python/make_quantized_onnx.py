#!/usr/bin/python3
"""Writes a weight-quantized copy of an f32 ONNX model, in the two forms that
ONNX Runtime's tools and optimum produce and kiln imports (docs/compression.md,
"Pre-quantized ONNX models"):

    /usr/bin/python3 python/make_quantized_onnx.py IN.onnx OUT.onnx --format qdq|matmulnbits
        [--block-size 32] [--quantize-head] [--check-ort] [--threads 2]

--format qdq          every MatMul whose second input is a constant 2-D f32
                      weight [K, N] reads it through DequantizeLinear(q int8
                      [K, N], scale f32 [N], zero_point int8 [N] = 0, axis=1):
                      symmetric int8, one scale per output channel, weight-only
                      (activations stay f32).
--format matmulnbits  every such MatMul becomes com.microsoft::MatMulNBits
                      (bits=4, block_size --block-size along K, asymmetric:
                      per block a scale and a packed 4-bit zero point,
                      round-to-nearest), as ONNX Runtime's MatMulNBits quantizer
                      writes it.

The LM head (the MatMul whose result is a graph output, or whose weight the
embedding Gather also reads) stays f32 unless --quantize-head; embeddings are
Gathers and are never quantized. Scales are rounded to values that f16 holds
exactly, so a runtime that keeps f16 scales (kiln) reads the same weights as
ONNX Runtime, which keeps f32. Only the standard `onnx` package and numpy are
used, not onnxruntime's Python quantization tools.

config.json and the tokenizer beside IN are copied beside OUT when missing, so
that OUT's folder is a model folder kiln-compile and the tests can use. OUT is
one file unless the weights would pass protobuf's 2 GB limit; then they go to
OUT_data as external data.

--check-ort runs IN and OUT in ONNX Runtime (test/e2e/ort_reference.mjs with
onnxruntime-node from bench/node_modules; needs a model_with_past.onnx-style
interface) on a fixed prompt and prints the prefill logits' max-abs
difference and how many of 16 greedy ids agree: what quantizing cost.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORT_SCRIPT = os.path.join(REPO, "test", "e2e", "ort_reference.mjs")
PROTOBUF_LIMIT = 2 * 1024 ** 3 - 64 * 1024 ** 2  # leave room for the graph itself


# ----------------------------------------------------------- quantizers
def f16_exact(scale):
    """Scales rounded to the nearest f16 value (as f32), never 0 or inf."""
    s = np.asarray(scale, np.float32).astype(np.float16)
    s = np.where(np.isfinite(s), s, np.float16(65504.0))
    s = np.where(s > 0, s, np.float16(2.0 ** -24))
    return s.astype(np.float32)


def quantize_int8_per_channel(w):
    """w [K, N] f32 -> (q int8 [K, N], scale f32 [N]): symmetric, q in -127..127."""
    w = np.asarray(w, np.float32)
    amax = np.abs(w).max(axis=0)
    scale = f16_exact(np.where(amax > 0, amax / 127.0, 1.0))
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


def quantize_nbits(w, block_size=32):
    """w [K, N] f32 -> MatMulNBits tensors (bits 4, asymmetric, round to nearest):
    B uint8 [N, n_blocks, block_size / 2], scales f32 [N, n_blocks], zero_points
    uint8 [N, ceil(n_blocks / 2)] (packed, low nibble first), and the codes
    [K, N] and zero points [n_blocks, N] for reference."""
    w = np.asarray(w, np.float32)
    K, N = w.shape
    nb = (K + block_size - 1) // block_size
    wp = np.zeros((nb * block_size, N), np.float32)
    wp[:K] = w
    blocks = wp.reshape(nb, block_size, N)
    # The range of each block includes 0, so that 0 is exact (as ONNX
    # Runtime's RTN quantizer does); padding rows are 0 too.
    lo = np.minimum(blocks.min(axis=1), 0.0)
    hi = np.maximum(blocks.max(axis=1), 0.0)
    scale = f16_exact(np.where(hi > lo, (hi - lo) / 15.0, 1.0))       # [nb, N]
    zp = np.clip(np.rint(-lo / scale), 0, 15).astype(np.uint8)          # [nb, N]
    q = np.clip(np.rint(blocks / scale[:, None, :]) + zp[:, None, :], 0, 15).astype(np.uint8)
    q = q.reshape(nb * block_size, N)                                    # [Kp, N]
    codes = q.T.reshape(N, nb, block_size)                               # [N, nb, bs]
    packed = (codes[:, :, 0::2] | (codes[:, :, 1::2] << 4)).astype(np.uint8)
    zpt = zp.T                                                           # [N, nb]
    if nb % 2:
        zpt = np.concatenate([zpt, np.zeros((N, 1), np.uint8)], axis=1)
    zpacked = (zpt[:, 0::2] | (zpt[:, 1::2] << 4)).astype(np.uint8)     # [N, ceil(nb/2)]
    return dict(B=packed, scales=np.ascontiguousarray(scale.T), zero_points=zpacked,
                codes=q[:K], zp=zp, scale_kn=scale)


def dequantize_nbits(t, K):
    """The f32 weight [K, N] that quantize_nbits' tensors stand for."""
    bs = t["B"].shape[2] * 2
    codes = t["codes"].astype(np.float32)
    g = np.arange(K) // bs
    return (codes - t["zp"][g].astype(np.float32)) * t["scale_kn"][g]


# ------------------------------------------------------------ the graph
def tensor_bytes(t):
    ext = {e.key: e.value for e in t.external_data}
    if "length" in ext:
        return int(ext["length"])
    if t.HasField("raw_data"):
        return len(t.raw_data)
    return numpy_helper.to_array(t).nbytes


def consumers(graph):
    users = {}
    for node in graph.node:
        for i in node.input:
            users.setdefault(i, []).append(node)
    return users


def head_matmuls(graph, users):
    """MatMul nodes that are the LM head: their result reaches a graph output
    through layout-only ops, or their weight is also an embedding table."""
    outputs = {o.name for o in graph.output}
    passthrough = {"Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze", "Transpose"}
    by_output = {o: n for n in graph.node for o in n.output}
    heads = set()
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        v, seen = node.output[0], 0
        while seen < 8:
            if v in outputs:
                heads.add(id(node))
                break
            us = users.get(v, [])
            if len(us) != 1 or us[0].op_type not in passthrough:
                break
            v = us[0].output[0]
            seen += 1
        # Tied weights: the same table (or its Transpose) feeds a Gather.
        w = node.input[1]
        src = by_output.get(w)
        if src is not None and src.op_type == "Transpose":
            w = src.input[0]
        if any(u.op_type == "Gather" and u.input[0] == w for u in users.get(w, [])):
            heads.add(id(node))
    return heads


def quantize_model(model, fmt, block_size=32, quantize_head=False, log=print):
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    users = consumers(graph)
    heads = set() if quantize_head else head_matmuls(graph, users)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if fmt == "qdq" and opset < 13:
        raise SystemExit(f"per-channel DequantizeLinear needs opset >= 13, the model has {opset}")
    new_nodes, new_inits, dropped = [], [], set()
    count, skipped_head, before, after = 0, 0, 0, 0
    for node in graph.node:
        w = node.input[1] if node.op_type == "MatMul" and len(node.input) == 2 else None
        t = inits.get(w) if w else None
        if t is None or t.data_type != TensorProto.FLOAT or len(t.dims) != 2:
            new_nodes.append(node)
            continue
        if id(node) in heads:
            skipped_head += 1
            new_nodes.append(node)
            continue
        K, N = t.dims
        if fmt == "matmulnbits" and K < 16:
            new_nodes.append(node)
            continue
        arr = numpy_helper.to_array(t)  # onnx.load resolved external data
        base = w.replace("/", "_")
        count += 1
        before += arr.nbytes
        if fmt == "qdq":
            q, scale = quantize_int8_per_channel(arr)
            names = (f"{base}_quantized", f"{base}_scale", f"{base}_zero_point")
            new_inits += [numpy_helper.from_array(q, names[0]), numpy_helper.from_array(scale, names[1]),
                          numpy_helper.from_array(np.zeros(N, np.int8), names[2])]
            after += q.nbytes + scale.nbytes + N
            dq_out = f"{base}_dequantized_{count}"
            new_nodes.append(helper.make_node("DequantizeLinear", list(names), [dq_out],
                                              name=f"{node.name or base}_DequantizeLinear", axis=1))
            inputs = list(node.input)
            inputs[1] = dq_out
            new_nodes.append(helper.make_node("MatMul", inputs, list(node.output), name=node.name))
        else:
            tq = quantize_nbits(arr, block_size)
            names = (f"{base}_Q4", f"{base}_scales", f"{base}_zero_points")
            new_inits += [numpy_helper.from_array(tq["B"], names[0]),
                          numpy_helper.from_array(tq["scales"], names[1]),
                          numpy_helper.from_array(tq["zero_points"], names[2])]
            after += tq["B"].nbytes + tq["scales"].nbytes + tq["zero_points"].nbytes
            new_nodes.append(helper.make_node(
                "MatMulNBits", [node.input[0], *names], list(node.output), name=node.name or f"{base}_MatMulNBits",
                domain="com.microsoft", K=K, N=N, bits=4, block_size=block_size))
        dropped.add(w)
    # Initializers that only the quantized MatMuls read go away.
    still_used = {i for n in new_nodes for i in n.input}
    keep = [t for t in graph.initializer if t.name not in dropped or t.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(keep + new_inits)
    del graph.node[:]
    graph.node.extend(new_nodes)
    if fmt == "matmulnbits" and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    log(f"{fmt}: {count} MatMul weights quantized ({before / 2**20:.1f} MiB f32 -> {after / 2**20:.1f} MiB)"
        + (f", {skipped_head} LM head left f32 (--quantize-head to include it)" if skipped_head else ""))
    return count


def save(model, out):
    total = sum(tensor_bytes(t) for t in model.graph.initializer)
    data = os.path.basename(out) + "_data"
    if os.path.exists(os.path.join(os.path.dirname(out) or ".", data)):
        os.remove(os.path.join(os.path.dirname(out) or ".", data))
    if total > PROTOBUF_LIMIT:
        onnx.save_model(model, out, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data, size_threshold=1024)
    else:
        for t in model.graph.initializer:  # everything inline: drop stale external references
            if t.data_location == TensorProto.EXTERNAL:
                raise AssertionError(f"{t.name} is still external")
        onnx.save_model(model, out)


def copy_folder_files(src, dst):
    for f in ("config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"):
        s, d = os.path.join(src, f), os.path.join(dst, f)
        if os.path.isfile(s) and not os.path.exists(d) and os.path.abspath(s) != os.path.abspath(d):
            shutil.copyfile(s, d)


# --------------------------------------------------------- ONNX Runtime
def ort_run(model, ids, decode, threads, work):
    """ONNX Runtime's prefill logits [1, n, V] and `decode` greedy ids (or an error string)."""
    npy = os.path.join(work, f"ort_{abs(hash(model))}.npy")
    cmd = ["node", ORT_SCRIPT, "--model", model, "--threads", str(threads), "--prompt-ids",
           ",".join(map(str, ids)), "--decode", str(decode), "--logits-out", npy]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        return None, None, (r.stderr.strip().splitlines() or ["node failed"])[-1]
    return np.load(npy), json.loads(r.stdout.strip().splitlines()[-1])["generated_ids"], None


def check_ort(src, out, threads, log=print):
    if shutil.which("node") is None or not os.path.isdir(os.path.join(REPO, "bench", "node_modules",
                                                                      "onnxruntime-node")):
        log("check-ort: skipped (needs node and bench/node_modules/onnxruntime-node: cd bench && npm ci)")
        return None
    ids = [1, 415, 1307, 42, 7, 1999, 256, 12, 88, 3]
    with tempfile.TemporaryDirectory(prefix="kiln-quant-") as work:
        ref, ref_ids, err = ort_run(src, ids, 16, threads, work)
        got, got_ids, err2 = ort_run(out, ids, 16, threads, work)
    if err or err2:
        log(f"check-ort: ONNX Runtime failed: {err or err2}")
        return False
    diff = float(np.max(np.abs(ref.astype(np.float64) - got.astype(np.float64))))
    spread = float(np.max(np.abs(ref)))
    same = sum(a == b for a, b in zip(ref_ids, got_ids))
    log(f"check-ort: prefill logits max |f32 - quantized| = {diff:.4g} (max |logit| {spread:.3g}); "
        f"greedy ids agree on {same}/{len(ref_ids)} (first difference at "
        f"{next((i for i, (a, b) in enumerate(zip(ref_ids, got_ids)) if a != b), None)})")
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--format", required=True, choices=("qdq", "matmulnbits"))
    p.add_argument("--block-size", type=int, default=32,
                   help="MatMulNBits block along K (a power of two >= 16; default 32)")
    p.add_argument("--quantize-head", action="store_true", help="quantize the LM head too")
    p.add_argument("--check-ort", action="store_true",
                   help="compare ONNX Runtime's logits and greedy ids on IN and OUT")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    if a.block_size < 16 or a.block_size & (a.block_size - 1):
        p.error("--block-size must be a power of two >= 16")
    if os.path.abspath(a.input) == os.path.abspath(a.output):
        p.error("OUT must differ from IN")
    model = onnx.load(a.input)  # external data resolved beside IN
    n = quantize_model(model, a.format, a.block_size, a.quantize_head)
    if n == 0:
        print("warning: no MatMul with a constant 2-D f32 weight: the copy is unchanged", file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    save(model, a.output)
    copy_folder_files(os.path.dirname(os.path.abspath(a.input)), os.path.dirname(os.path.abspath(a.output)))
    onnx.checker.check_model(a.output)
    print(f"wrote {a.output} ({os.path.getsize(a.output) / 2**20:.1f} MiB)")
    if a.check_ort and check_ort(a.input, a.output, a.threads) is False:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
