#!/usr/bin/python3
"""Accuracy of kiln-compile --quantize on an LLM fixture, by the fixture's own protocol.

    python3 test/e2e/check_quantized.py --fixture ../shared/fixtures/llama-s [--bin-dir build/bin]
        [--schemes w8,w4g32] [--threads 2]

For each scheme (`+` joins schemes: w4g32+kv8 is --quantize=w4g32,kv8): compile
model.onnx with --quantize=SCHEME, then
  perplexity   kiln-perplexity --json on reference.json's perplexity_protocol
               text and window, relative to the f32 reference valid_perplexity:
               w8 <= +1 %, kv8 <= +1 %, w4gN <= +6 % (issue 8's targets; a
               combination is held to its weight scheme's limit);
  greedy       (w8 only) kiln-generate --temperature 0 --max-tokens 48 on every
               reference prompt: at least 40 of the 48 ids equal greedy_48,
               position by position;
  size         the artifact holds the weights as --report counts them after
               quantization (integers, scales, zero points, the f32 embedding
               and head) plus what the f32 artifact holds besides its weights
               (code, norms), within 2 %: no f32 copy of a weight is left.
Prints one line per check and `N passed, N failed`; exit 1 on any failure.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

TIMEOUT_S = 900
PPL_LIMIT = {"w8": 0.01, "w4": 0.06, "kv": 0.01}


def run(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {TIMEOUT_S} s"


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def report(self, name, ok, detail):
        print(f"{'PASS' if ok else 'FAIL'}: {name}: {detail}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fixture", required=True)
    p.add_argument("--bin-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
    p.add_argument("--schemes", default="w8,w4g32,kv8,w4g32+kv8")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    ref = json.load(open(os.path.join(args.fixture, "reference.json")))
    proto = ref["perplexity_protocol"]
    text = os.path.normpath(os.path.join(args.fixture, proto["text"]))
    model = os.path.join(args.fixture, "model.onnx")
    checks = Checks()
    f32_bytes = None
    with tempfile.TemporaryDirectory(prefix="kiln-e2e-quant-") as work:
        rc, _, err = run([os.path.join(args.bin_dir, "kiln-compile"), model, "-o", os.path.join(work, "f32.kiln")])
        if rc == 0:
            f32_bytes = os.path.getsize(os.path.join(work, "f32.kiln"))
        for scheme in args.schemes.split(","):
            family = scheme[:2]
            art = os.path.join(work, scheme + ".kiln")
            rc, out, err = run([os.path.join(args.bin_dir, "kiln-compile"), model,
                                "--quantize=" + scheme.replace("+", ","), "--report", "-o", art])
            if rc != 0:
                checks.report(f"{scheme} compile", False, last_line(err))
                continue
            total = re.search(r"total: ([0-9.]+) MiB -> ([0-9.]+) MiB", out)
            if family == "kv":
                pass  # weights stay f32: nothing to hold the size to
            elif not total:
                checks.report(f"{scheme} size", False, "--report printed no 'total: A MiB -> B MiB' line")
            elif f32_bytes:
                # What the f32 artifact holds besides its weights (kernel code,
                # norms, biases) is the allowance beside the quantized weights.
                before, after = float(total.group(1)) * 2**20, float(total.group(2)) * 2**20
                overhead = max(f32_bytes - before, 0)
                size = os.path.getsize(art)
                checks.report(f"{scheme} size", size <= (after + overhead) * 1.02,
                              f"artifact {size / 2**20:.2f} MiB; weights after quantization {after / 2**20:.2f} MiB "
                              f"+ the f32 artifact's {overhead / 2**20:.2f} MiB besides its weights")
            rc, out, err = run([os.path.join(args.bin_dir, "kiln-perplexity"), art, "--text", text, "--window",
                                str(proto["window"]), "--threads", str(args.threads), "--json"])
            if rc != 0:
                checks.report(f"{scheme} perplexity", False, last_line(err))
            else:
                got = json.loads(out)
                want = ref["valid_perplexity"]
                rel = (got["perplexity"] - want) / want
                ok = rel <= PPL_LIMIT[family] and got["tokens"] == ref["valid_tokens_scored"]
                checks.report(f"{scheme} perplexity", ok,
                              f"{got['perplexity']:.4f} vs f32 {want:.4f} ({100 * rel:+.3f} %, limit "
                              f"+{100 * PPL_LIMIT[family]:.0f} %), {got['tokens']} tokens")
            if family != "w8":
                continue
            for k, prompt in enumerate(ref["prompts"]):
                rc, out, err = run([os.path.join(args.bin_dir, "kiln-generate"), art, "--json", "--temperature", "0",
                                    "--max-tokens", "48", "--ignore-eos", "--threads", str(args.threads),
                                    "--prompt", prompt["text"]])
                if rc != 0:
                    checks.report(f"{scheme} greedy prompt{k}", False, last_line(err))
                    continue
                ids = json.loads(out).get("ids") or []
                same = sum(1 for a, b in zip(ids, prompt["greedy_48"]) if a == b)
                checks.report(f"{scheme} greedy prompt{k}", same >= 40 and len(ids) == 48,
                              f"{same} of 48 ids equal the f32 reference (need 40)")
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
