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

from e2e_checks import Checks, greedy_ids, last_line, perplexity, run

PPL_REL_TOL = 0.005
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

        for k, prompt in enumerate(ref["prompts"]):
            ids, error = greedy_ids(args.bin_dir, art, prompt, 1, extra=extra)
            if error:
                checks.report(f"greedy {k}", False, error)
                continue
            want = prompt["greedy_48"]
            first = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), None)
            if first is None and len(ids) != len(want):
                first = min(len(ids), len(want))
            checks.report(f"greedy {k}", first is None,
                          f"{len(want)} tokens equal greedy_48" if first is None else
                          f"token {first} differs: {ids[first:first + 4]} vs {want[first:first + 4]}")

        if args.perplexity:
            got, error = perplexity(args.bin_dir, art, fixture, ref, 1, extra=extra)
            if error:
                checks.report("perplexity", False, error)
            else:
                want = ref["valid_perplexity"]
                rel = abs(got["perplexity"] - want) / want
                checks.report("perplexity", rel <= PPL_REL_TOL,
                              f"{got['perplexity']:.4f} vs {want:.4f} ({rel * 100:.3f} %)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
