#!/usr/bin/python3
"""An LLM fixture on Vulkan: kiln-compile builds the artifact for a Vulkan target
(one SPIR-V module) and the runtime tools run it with --device=vulkan (Mesa's
lavapipe in CI, any GPU with a Vulkan driver elsewhere).

    check_vulkan.py --fixture ../shared/fixtures/llama-s --bin-dir build/bin
                    [--target vulkan-spirv] [--device vulkan] [--perplexity]
                    [--quantize w4g32,kv8]

Checks (one line each, then "N passed, N failed"; exit 1 on any failure):
  prefill          (with --prefill-check) kiln-perplexity of the fixtures' valid.txt's first
                   3000 bytes in windows of 64 (prompts of 16 rows and more: attention and
                   matmuls in their block forms) within PREFILL_REL_TOL of the host's
  compile          the artifact's executable is SPIR-V (magic 0x07230203)
  greedy k         kiln-generate --temperature 0 --max-tokens 48 --device vulkan on
                   every reference prompt: the ids equal greedy_48 exactly
  perplexity       (with --perplexity) within 0.5 % of valid_perplexity

With --quantize SCHEME both the Vulkan and a host artifact are compiled with
it, and the greedy check compares the two: on every reference prompt the
first QUANT_AGREE of 48 tokens are the same on both devices (the kernels
dequantize the same packed weights; only the order of the sums differs).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

from e2e_checks import Checks, check_greedy_exact, check_perplexity_close, greedy_ids, last_line, run

SPIRV_MAGIC = (0x07230203).to_bytes(4, "little")
QUANT_AGREE = 40
PREFILL_REL_TOL = 2e-4
PREFILL_BYTES = 3000


def check_greedy_like_host(checks, args, art, host_art, ref, extra):
    for k, prompt in enumerate(ref["prompts"]):
        ids, error = greedy_ids(args.bin_dir, art, prompt, 1, extra=extra)
        want, host_error = greedy_ids(args.bin_dir, host_art, prompt, 1)
        if error or host_error:
            checks.report(f"greedy {k}", False, error or f"host: {host_error}")
            continue
        same = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), min(len(ids), len(want)))
        checks.report(f"greedy {k}", same >= QUANT_AGREE,
                      f"{args.quantize}: the first {same} of {len(want)} tokens equal the host's")


def check_prefill_like_host(checks, args, art, host_art, fixture, work):
    text = os.path.join(work, "prefill.txt")
    with open(os.path.join(os.path.dirname(fixture), "valid.txt"), "rb") as f:
        data = f.read(PREFILL_BYTES)
    with open(text, "wb") as f:
        f.write(data[:len(data.decode("utf-8", "ignore").encode("utf-8"))])
    got = {}
    for name, a, extra in (("vulkan", art, ["--device", args.device]), ("host", host_art, [])):
        rc, out, err = run([os.path.join(args.bin_dir, "kiln-perplexity"), a, "--text", text,
                            "--window", "64", "--json", *extra])
        if rc != 0:
            checks.report("prefill", False, f"{name}: {last_line(err)}")
            return
        got[name] = json.loads(out.strip().splitlines()[-1])["perplexity"]
    rel = abs(got["vulkan"] - got["host"]) / got["host"]
    checks.report("prefill", rel <= PREFILL_REL_TOL,
                  f"windows of 64: {got['vulkan']:.6f} vs the host's {got['host']:.6f} ({rel:.1e})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--model", default="model.onnx")
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--target", default="vulkan-spirv")
    ap.add_argument("--device", default="vulkan")
    ap.add_argument("--perplexity", action="store_true")
    ap.add_argument("--quantize", default=None, help="kiln-compile --quantize for both devices")
    ap.add_argument("--prefill-check", action="store_true",
                    help="compare windows of 64 tokens' perplexity with the host's")
    args = ap.parse_args()

    fixture = os.path.abspath(args.fixture)
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    extra = ["--device", args.device]
    checks = Checks()
    work = tempfile.mkdtemp(prefix="kiln-vulkan.")
    try:
        art = os.path.join(work, "model.kiln")
        quant = [f"--quantize={args.quantize}"] if args.quantize else []
        rc, _, err = run([os.path.join(args.bin_dir, "kiln-compile"),
                          os.path.join(fixture, args.model), f"--target={args.target}", *quant, "-o", art])
        if rc != 0:
            checks.report("compile", False, last_line(err))
            return checks.finish()
        host_art = os.path.join(work, "host.kiln")
        if args.quantize or args.prefill_check:
            rc, _, err = run([os.path.join(args.bin_dir, "kiln-compile"),
                              os.path.join(fixture, args.model), *quant, "-o", host_art])
            if rc != 0:
                checks.report("compile host", False, last_line(err))
                return checks.finish()
        with open(art, "rb") as f:
            blob = f.read()
        checks.report("compile", SPIRV_MAGIC in blob, f"{args.target}: SPIR-V module in the artifact")

        if args.quantize:
            check_greedy_like_host(checks, args, art, host_art, ref, extra)
        else:
            check_greedy_exact(checks, args.bin_dir, art, ref, 1, extra=extra)
        if args.prefill_check:
            check_prefill_like_host(checks, args, art, host_art, fixture, work)
        if args.perplexity:
            check_perplexity_close(checks, args.bin_dir, art, fixture, ref, 1, extra=extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
