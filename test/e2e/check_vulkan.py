#!/usr/bin/python3
"""An LLM fixture on Vulkan: kiln-compile builds the artifact for a Vulkan target
(one SPIR-V module) and the runtime tools run it with --device=vulkan (Mesa's
lavapipe in CI, any GPU with a Vulkan driver elsewhere).

    check_vulkan.py --fixture ../shared/fixtures/llama-s --bin-dir build/bin
                    [--target vulkan-spirv] [--device vulkan] [--perplexity]

Checks (one line each, then "N passed, N failed"; exit 1 on any failure):
  compile          the artifact's executable is SPIR-V (magic 0x07230203)
  greedy k         kiln-generate --temperature 0 --max-tokens 48 --device vulkan on
                   every reference prompt: the ids equal greedy_48 exactly
  perplexity       (with --perplexity) within 0.5 % of valid_perplexity
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

from e2e_checks import Checks, check_greedy_exact, check_perplexity_close, last_line, run

SPIRV_MAGIC = (0x07230203).to_bytes(4, "little")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--model", default="model.onnx")
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--target", default="vulkan-spirv")
    ap.add_argument("--device", default="vulkan")
    ap.add_argument("--perplexity", action="store_true")
    args = ap.parse_args()

    fixture = os.path.abspath(args.fixture)
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    extra = ["--device", args.device]
    checks = Checks()
    work = tempfile.mkdtemp(prefix="kiln-vulkan.")
    try:
        art = os.path.join(work, "model.kiln")
        rc, _, err = run([os.path.join(args.bin_dir, "kiln-compile"),
                          os.path.join(fixture, args.model), f"--target={args.target}", "-o", art])
        if rc != 0:
            checks.report("compile", False, last_line(err))
            return checks.finish()
        with open(art, "rb") as f:
            blob = f.read()
        checks.report("compile", SPIRV_MAGIC in blob, f"{args.target}: SPIR-V module in the artifact")

        check_greedy_exact(checks, args.bin_dir, art, ref, 1, extra=extra)
        if args.perplexity:
            check_perplexity_close(checks, args.bin_dir, art, fixture, ref, 1, extra=extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
