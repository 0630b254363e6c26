#!/usr/bin/python3
"""End-to-end check of pre-quantized ONNX models: quantize an LLM fixture with
python/make_quantized_onnx.py (QDQ int8 or MatMulNBits int4), compile it with
kiln-compile, and hold kiln to ONNX Runtime running the same quantized file.

    check_quantized_onnx.py --fixture ../shared/fixtures/llama-s --format qdq|matmulnbits
                            [--bin-dir build/bin] [--threads 2] [--keep]

Checks (one line each, then "N passed, N failed"; exit 1 on any failure, 77 =
skipped when node or bench/node_modules/onnxruntime-node is missing):
  quantize         make_quantized_onnx.py FIXTURE/model_with_past.onnx (LM head left f32)
  raised           kiln-compile --report: every quantized weight became an llm.dequantize
  compile          the paged `forward` and, with --kv-cache=concat, the `main`
  logits k         kiln-run on reference prompt k from an empty cache, through `main`
                   and through `forward`: logits within LOGITS_TOL max-abs of ONNX
                   Runtime's prefill logits (test/e2e/ort_reference.mjs, basic graph
                   optimizations: at `all` ONNX Runtime quantizes the activations of a
                   DequantizeLinear -> MatMul at run time, not what the graph says)
  generate k       kiln-generate --prompt-ids, 48 greedy ids, --ignore-eos: the same ids
                   as ONNX Runtime's greedy decode with its KV cache
  perplexity       kiln-perplexity on ../valid.txt (the fixture's protocol), within
                   PPL_REL_MAX of the f32 model's reference perplexity
Both sides read the same integer weights: the generator rounds scales to values
f16 holds, so kiln's f16 scales lose nothing.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_llm_fixture as fixture_checks  # noqa: E402
from check_llm_fixture import Checks, failure, past_shapes, run  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
GENERATOR = os.path.join(REPO, "python", "make_quantized_onnx.py")
ORT_SCRIPT = os.path.join(HERE, "ort_reference.mjs")
LOGITS_TOL = 1e-3
# Quantization changes the model: how much worse than f32 it may get on valid.txt.
PPL_REL_MAX = {"qdq": 0.02, "matmulnbits": 0.25}


def ort_reference(model, ids, threads, work, k):
    """ONNX Runtime's prefill logits [n, V] and 48 greedy ids, or an error line."""
    npy = os.path.join(work, f"ort_logits{k}.npy")
    cmd = ["node", ORT_SCRIPT, "--model", model, "--threads", str(threads), "--prompt-ids", ",".join(map(str, ids)),
           "--decode", "48", "--logits-out", npy]
    rc, out, err = run(cmd)
    if rc != 0:
        return None, None, failure(rc, out, err)
    return np.load(npy)[0], json.loads(out.strip().splitlines()[-1])["generated_ids"], None


def check_generate_ids(checks, bin_dir, art, k, ids, want, threads):
    name = f"generate prompt{k} (48 greedy ids == ONNX Runtime's)"
    cmd = [os.path.join(bin_dir, "kiln-generate"), art, "--json", "--temperature", "0", "--max-tokens", "48",
           "--ignore-eos", "--threads", str(threads), "--prompt-ids", ",".join(map(str, ids))]
    rc, out, err = run(cmd)
    if rc != 0:
        return checks.report(name, False, failure(rc, out, err))
    got = json.loads(out).get("ids") or []
    if got != want:
        return checks.report(name, False, fixture_checks.first_difference(got, want))
    checks.report(name, True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixture", required=True)
    p.add_argument("--format", required=True, choices=("qdq", "matmulnbits"))
    p.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    if shutil.which("node") is None or not os.path.isdir(os.path.join(REPO, "bench", "node_modules",
                                                                      "onnxruntime-node")):
        print("skipped: needs node and bench/node_modules/onnxruntime-node (cd bench && npm ci)")
        return 77

    fixture = os.path.abspath(args.fixture)
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    work = tempfile.mkdtemp(prefix=f"kiln-e2e-quant-{os.path.basename(fixture)}-{args.format}-")
    model = os.path.join(work, "q", "model_with_past.onnx")
    checks = Checks()
    fixture_checks.LOGITS_TOL = LOGITS_TOL  # check_logits compares against ONNX Runtime here
    print(f"== {os.path.basename(fixture)} {args.format} (work folder {work})", flush=True)
    try:
        rc, out, err = run([sys.executable, GENERATOR, os.path.join(fixture, "model_with_past.onnx"), model,
                            "--format", args.format])
        checks.report("quantize", rc == 0, last_or(out) if rc == 0 else failure(rc, out, err))
        if rc != 0:
            return 1
        quantized = int(re.search(r": (\d+) MatMul weights quantized", out).group(1))

        art, concat = os.path.join(work, "model.kiln"), os.path.join(work, "model-concat.kiln")
        rc, out, err = run([os.path.join(args.bin_dir, "kiln-compile"), model, "-o", art, "--report"])
        checks.report("compile", rc == 0, "" if rc == 0 else failure(rc, out, err))
        m = re.search(r"dequantize\(int\d, \w+\) x(\d+)", out)
        raised = int(m.group(1)) if m else 0
        checks.report("raised", raised == quantized, f"{raised} of {quantized} quantized weights are llm.dequantize")
        rc2, out2, err2 = run([os.path.join(args.bin_dir, "kiln-compile"), model, "--kv-cache=concat", "-o", concat])
        checks.report("compile --kv-cache=concat", rc2 == 0, "" if rc2 == 0 else failure(rc2, out2, err2))

        pasts = past_shapes(os.path.dirname(model))
        for k, prompt in enumerate(ref["prompts"]):
            logits, ids, why = ort_reference(model, prompt["prompt_ids"], args.threads, work, k)
            if why:
                checks.report(f"ONNX Runtime prompt{k}", False, why)
                continue
            if rc2 == 0:
                fixture_checks.check_logits(checks, args.bin_dir, concat, k, prompt, logits, pasts, work,
                                            args.threads, paged=False)
            if rc == 0:
                fixture_checks.check_logits(checks, args.bin_dir, art, k, prompt, logits, pasts, work,
                                            args.threads, paged=True)
                check_generate_ids(checks, args.bin_dir, art, k, prompt["prompt_ids"], ids, args.threads)
        if rc == 0:
            proto = ref["perplexity_protocol"]
            text = os.path.normpath(os.path.join(fixture, proto["text"]))
            rc3, out3, err3 = run([os.path.join(args.bin_dir, "kiln-perplexity"), art, "--text", text, "--window",
                                   str(proto["window"]), "--threads", str(args.threads), "--json"])
            if rc3 != 0:
                checks.report("perplexity", False, failure(rc3, out3, err3))
            else:
                got, f32 = json.loads(out3)["perplexity"], ref["valid_perplexity"]
                rel = got / f32 - 1
                checks.report("perplexity", np.isfinite(got) and rel <= PPL_REL_MAX[args.format],
                              f"{got:.3f} vs f32 {f32:.3f} ({100 * rel:+.2f}%, at most "
                              f"+{100 * PPL_REL_MAX[args.format]:.0f}%)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


def last_or(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[0] if lines else ""


if __name__ == "__main__":
    sys.exit(main())
