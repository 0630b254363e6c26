#!/usr/bin/python3
"""An LLM fixture on aarch64: kiln-compile (this machine) builds the artifact for
an aarch64 target, and the aarch64 runtime runs it, under qemu-user on an x86-64
machine or natively on an ARM board.

    check_aarch64.py --fixture ../shared/fixtures/llama-s --bin-dir build/bin
                     --run-bin-dir build-aarch64/bin [--run-prefix qemu-aarch64]
                     [--target aarch64-generic] [--quantize w8] [--perplexity]
                     [--same-as-host]

Checks (one line each, then "N passed, N failed"; exit 1 on any failure):
  compile          the artifact's kernels are an AArch64 ELF (elf-aarch64)
  greedy k         kiln-generate --temperature 0 --max-tokens 48 on every reference
                   prompt: the ids equal greedy_48 exactly, or with --same-as-host
                   the ids of the same model and --quantize compiled for this
                   machine and run here (a scheme whose kernels give bitwise the
                   same results on both, e.g. w4g32a8: sdot there, AVX2 or the
                   generic loop here, but not the f32 model's greedy_48)
  perplexity       (with --perplexity) within 0.5 % of valid_perplexity
"""
import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile

from e2e_checks import (Checks, check_greedy_exact, check_perplexity_close, greedy_ids, last_line,
                        report_same_ids, run)



def check_greedy_as_host(checks, args, fixture, ref, art, prefix, work):
    """One check per reference prompt: the aarch64 run's greedy ids equal the host's."""
    host_art = os.path.join(work, "host.kiln")
    cmd = [os.path.join(args.bin_dir, "kiln-compile"), os.path.join(fixture, args.model), "-o", host_art]
    if args.quantize:
        cmd.append(f"--quantize={args.quantize}")
    rc, _, err = run(cmd)
    if rc != 0:
        checks.report("compile for the host", False, last_line(err))
        return
    for k, prompt in enumerate(ref["prompts"]):
        want, error = greedy_ids(args.bin_dir, host_art, prompt, args.threads)
        ids, error2 = (None, error) if error else greedy_ids(args.run_bin_dir, art, prompt, args.threads, prefix)
        if error or error2:
            checks.report(f"greedy {k}", False, error or error2)
            continue
        report_same_ids(checks, f"greedy {k}", ids, want, "the host's")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--model", default="model.onnx")
    ap.add_argument("--bin-dir", required=True, help="kiln-compile's directory")
    ap.add_argument("--run-bin-dir", required=True, help="the aarch64 runtime tools' directory")
    ap.add_argument("--run-prefix", default="qemu-aarch64",
                    help="command that runs an aarch64 program here ('' on an ARM machine)")
    ap.add_argument("--target", default="aarch64-generic")
    ap.add_argument("--quantize", default="")
    ap.add_argument("--perplexity", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--same-as-host", action="store_true")
    args = ap.parse_args()

    fixture = os.path.abspath(args.fixture)
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    prefix = shlex.split(args.run_prefix)
    for tool in ("kiln-generate", "kiln-perplexity"):
        if not os.access(os.path.join(args.run_bin_dir, tool), os.X_OK):
            print(f"check_aarch64.py: error: no {tool} in {args.run_bin_dir} "
                  "(cross-build the runtime: scripts/build-aarch64.sh)", file=sys.stderr)
            return 1
    checks = Checks()
    work = tempfile.mkdtemp(prefix="kiln-aarch64.")
    try:
        art = os.path.join(work, "model.kiln")
        cmd = [os.path.join(args.bin_dir, "kiln-compile"), os.path.join(fixture, args.model),
               f"--target={args.target}", "-o", art]
        if args.quantize:
            cmd.append(f"--quantize={args.quantize}")
        rc, _, err = run(cmd)
        if rc != 0:
            checks.report("compile", False, last_line(err))
            return checks.finish()
        with open(art, "rb") as f:
            blob = f.read()
        # The kernels' shared object sits in the artifact: its ELF header says
        # EM_AARCH64 (183) at offset 18.
        at = blob.find(b"\x7fELF")
        machine = int.from_bytes(blob[at + 18:at + 20], "little") if at >= 0 else -1
        checks.report("compile", machine == 183,
                      f"{args.target}{' ' + args.quantize if args.quantize else ''}: "
                      f"kernels ELF e_machine {machine} (183 = AArch64)")

        if args.same_as_host:
            check_greedy_as_host(checks, args, fixture, ref, art, prefix, work)
        else:
            check_greedy_exact(checks, args.run_bin_dir, art, ref, args.threads, prefix)
        if args.perplexity:
            check_perplexity_close(checks, args.run_bin_dir, art, fixture, ref, args.threads, prefix)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
