#!/usr/bin/python3
"""An LLM fixture with activation outlier channels and the same function.

    /usr/bin/python3 python/make_outlier_llm.py FIXTURE_DIR OUT_DIR [--factor 30] [--channels 4]

Large language models grow a few hidden channels whose normalized
activations are far larger than the rest (Dettmers et al. 2022, Xiao et al.
2023); per-token int8 activation quantization (w8a8) then spends its range on
them. The small fixtures have none, so this script puts some in without
changing the model's function: for every RMSNorm / LayerNorm whose output
only feeds MatMuls with constant weights, the norm's weight (and bias) on
--channels channels is multiplied by --factor and the same rows of those
weights divided by it. The f32 model computes the same logits (up to
rounding); the activations entering q/k/v and the MLP's first projections
carry outliers. OUT_DIR gets model.onnx (weights inline) and the fixture's
other files (config, tokenizer, references) as they are.
"""
import argparse
import os
import shutil

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("fixture")
    p.add_argument("out_dir")
    p.add_argument("--factor", type=float, default=30.0)
    p.add_argument("--channels", type=int, default=4)
    args = p.parse_args()

    model = onnx.load(os.path.join(args.fixture, "model.onnx"))
    inits = {i.name: i for i in model.graph.initializer}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    changed = 0
    for name, init in list(inits.items()):
        if len(init.dims) != 1:
            continue
        weight = numpy_helper.to_array(init).astype(np.float32).copy()
        # A LayerNormalization node (weight and bias inputs), or a decomposed
        # RMSNorm whose last node multiplies by the weight.
        nodes = [n for n in consumers.get(name, []) if n.op_type in ("Mul", "LayerNormalization")]
        if len(nodes) != 1:
            continue
        norm = nodes[0]
        if norm.op_type == "LayerNormalization" and norm.input[1] != name:
            continue  # its bias
        out = norm.output[0]
        bias_name = None
        if norm.op_type == "LayerNormalization" and len(norm.input) > 2 and norm.input[2] in inits:
            bias_name = norm.input[2]
        readers = consumers.get(out, [])
        if not readers or any(r.op_type != "MatMul" or r.input[0] != out or r.input[1] not in inits for r in readers):
            continue
        # The channels where the norm's weight is largest already: outliers
        # grow where a model would grow them.
        chans = np.argsort(-np.abs(weight))[: args.channels]
        weight[chans] *= args.factor
        init.CopyFrom(numpy_helper.from_array(weight, name))
        if bias_name:
            bias = numpy_helper.to_array(inits[bias_name]).astype(np.float32).copy()
            bias[chans] *= args.factor
            inits[bias_name].CopyFrom(numpy_helper.from_array(bias, bias_name))
        for r in readers:
            w = numpy_helper.to_array(inits[r.input[1]]).astype(np.float32).copy()
            w[chans, :] /= args.factor
            inits[r.input[1]].CopyFrom(numpy_helper.from_array(w, r.input[1]))
        changed += 1
    if not changed:
        raise SystemExit("make_outlier_llm: no norm feeding constant MatMuls only")
    os.makedirs(args.out_dir, exist_ok=True)
    for f in os.listdir(args.fixture):
        if f.startswith("model") or os.path.isdir(os.path.join(args.fixture, f)):
            continue
        shutil.copy(os.path.join(args.fixture, f), os.path.join(args.out_dir, f))
    onnx.save(model, os.path.join(args.out_dir, "model.onnx"))
    print(f"make_outlier_llm: {changed} norms, {args.channels} channels x {args.factor:g} each")


if __name__ == "__main__":
    main()
