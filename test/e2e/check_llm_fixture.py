#!/usr/bin/python3
"""End-to-end check of one LLM fixture: compile it with kiln-compile, then hold
kiln-generate, kiln-run and kiln-perplexity to the fixture's PyTorch references.

    check_llm_fixture.py --fixture ../shared/fixtures/llama-s --model model_with_past.onnx
                         [--bin-dir build/bin] [--threads 2] [--keep]

Checks (one line each, then "N passed, N failed"; exit 1 on any failure):
  compile          kiln-compile FIXTURE/MODEL (tokenizer and config.json are picked up
                   beside the ONNX file): the default paged `forward`, and again with
                   --kv-cache=concat (the `main` with past/present tensors)
  generate k       kiln-generate --json --temperature 0 --max-tokens 48 --ignore-eos
                   --prompt TEXT: prompt_ids == reference prompt_ids, ids == greedy_48
                   exactly, text == greedy_48_text; prompt 0 again with --speculative ngram;
                   prompt 1 on an artifact compiled with --speculative=layer-skip:1 (its
                   draft_forward proposes by default; its defaults, adaptive k and
                   stopping below probability 0.5, then a fixed k = 3 that never
                   stops); with --draft, prompt 2 on an
                   artifact with that draft model compiled in
  logits k         kiln-run on the prompt's ids from an empty cache: logits within
                   1e-3 max-abs of reference.npz prompt{k}_logits, through `forward`
                   (pools of 16-token blocks in reversed order, every row's logits
                   asked for) and through the concat `main`
  perplexity       kiln-perplexity --json on ../valid.txt: within 0.5% relative of
                   valid_perplexity, over valid_tokens_scored ids
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

import e2e_checks

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOGITS_TOL = 1e-3
PPL_REL_TOL = 0.005
TIMEOUT_S = 1800


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def report(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), flush=True)


def run(cmd):
    """e2e_checks.run with this script's longer timeout."""
    return e2e_checks.run(cmd, TIMEOUT_S)


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def failure(rc, out, err):
    why = "timed out" if rc is None else f"exit {rc}"
    return f"{why}: {last_line(err) or last_line(out) or '(no output)'}"


def past_shapes(fixture):
    """[(name, [1, kv_heads, 0, head_dim])] for every past input of model_with_past.onnx."""
    import onnx
    model = onnx.load(os.path.join(fixture, "model_with_past.onnx"), load_external_data=False)
    shapes = []
    for inp in model.graph.input:
        if inp.name.startswith("past_key_values."):
            dims = inp.type.tensor_type.shape.dim
            shapes.append((inp.name, [1, dims[1].dim_value, 0, dims[3].dim_value]))
    return shapes


def first_difference(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"first difference at {i}: got {g}, want {w}"
    return f"lengths differ: got {len(got)}, want {len(want)}"


def check_generate(checks, bin_dir, art, k, prompt, threads, extra=()):
    name = f"generate prompt{k} {prompt['text']!r}" + (f" {' '.join(extra)}" if extra else "")
    cmd = [os.path.join(bin_dir, "kiln-generate"), art, "--json", "--temperature", "0", "--max-tokens", "48",
           "--ignore-eos", "--threads", str(threads), "--prompt", prompt["text"]] + list(extra)
    rc, out, err = run(cmd)
    if rc != 0:
        return checks.report(name, False, failure(rc, out, err))
    try:
        got = json.loads(out)
    except json.JSONDecodeError as e:
        return checks.report(name, False, f"stdout is not one JSON line ({e}): {last_line(out)!r}")
    if got.get("prompt_ids") != prompt["prompt_ids"]:
        return checks.report(name, False, f"prompt_ids {got.get('prompt_ids')} != reference {prompt['prompt_ids']}")
    if got.get("ids") != prompt["greedy_48"]:
        return checks.report(name, False, "ids != greedy_48, " + first_difference(got.get("ids") or [], prompt["greedy_48"]))
    if got.get("text") != prompt["greedy_48_text"]:
        return checks.report(name, False, f"text {got.get('text')!r} != greedy_48_text {prompt['greedy_48_text']!r}")
    checks.report(name, True, "48 ids and text identical")


def check_logits(checks, bin_dir, art, k, prompt, want, pasts, work, threads, paged):
    name = f"logits prompt{k}" + (" (paged forward)" if paged else " (concat main)")
    ids = np.array([prompt["prompt_ids"]], dtype=np.int64)
    n = ids.shape[1]
    if paged:
        # One sequence from an empty cache, its blocks deliberately out of
        # order, logits of every row.
        bs = 16
        blocks = (n + bs - 1) // bs
        table = np.arange(blocks, dtype=np.int32)[::-1].copy()
        slots = np.array([table[i // bs] * bs + i % bs for i in range(n)], dtype=np.int32)
        feeds = {"tokens": ids[0].astype(np.int32), "positions": np.arange(n, dtype=np.int32),
                 "query_start": np.array([0, n], np.int32), "seq_lens": np.array([n], np.int32),
                 "block_tables": table[None, :], "slot_mapping": slots,
                 "logits_indices": np.arange(n, dtype=np.int32)}
        for past, shape in pasts:  # past_key_values.N.key -> k_cache.N
            layer, kind = past.split(".")[1:3]
            pool = ("k_cache." if kind == "key" else "v_cache.") + layer
            feeds[pool] = np.zeros((blocks, bs, shape[1], shape[3]), np.float32)
    else:
        feeds = {"input_ids": ids, "attention_mask": np.ones((1, n), np.int64),
                 "position_ids": np.arange(n, dtype=np.int64)[None, :]}
        for past, shape in pasts:
            feeds[past] = np.zeros(shape, np.float32)
    k = f"{k}{'p' if paged else 'c'}"
    in_dir, out_dir = os.path.join(work, f"in{k}"), os.path.join(work, f"out{k}")
    os.makedirs(in_dir, exist_ok=True)

    def kiln_run(names):
        cmd = [os.path.join(bin_dir, "kiln-run"), art, "--threads", str(threads), "-o", out_dir]
        for feed in names:
            path = os.path.join(in_dir, f"{feed}.npy")
            np.save(path, feeds[feed])
            cmd += ["-i", f"{feed}={path}"]
        return run(cmd)

    rc, out, err = kiln_run(list(feeds))
    note = ""
    if rc != 0 and "has no input 'past_key_values" in err:
        # An artifact without a cache cannot serve kiln-generate (that check
        # fails on its own), but its logits can still be compared.
        rc, out, err = kiln_run(["input_ids", "attention_mask", "position_ids"])
        note = " (artifact has no past inputs)"
    if rc != 0:
        return checks.report(name, False, failure(rc, out, err))
    path = os.path.join(out_dir, "logits.npy")
    if not os.path.exists(path):
        return checks.report(name, False, "kiln-run wrote no logits.npy")
    got = np.load(path)
    if paged:
        got = got[None]  # [n, V] -> [1, n, V]
    if got.shape != (1,) + want.shape:
        return checks.report(name, False, f"logits shape {got.shape}, want {(1,) + want.shape}")
    diff = float(np.max(np.abs(got[0].astype(np.float64) - want.astype(np.float64))))
    checks.report(name, diff <= LOGITS_TOL, f"max |diff| {diff:.3g} (tolerance {LOGITS_TOL}){note}")


def check_perplexity(checks, bin_dir, art, fixture, ref, threads):
    name = "perplexity valid.txt"
    proto = ref["perplexity_protocol"]
    text = os.path.normpath(os.path.join(fixture, proto["text"]))
    cmd = [os.path.join(bin_dir, "kiln-perplexity"), art, "--text", text, "--window", str(proto["window"]),
           "--threads", str(threads), "--json"]
    rc, out, err = run(cmd)
    if rc != 0:
        return checks.report(name, False, failure(rc, out, err))
    try:
        got = json.loads(out)
    except json.JSONDecodeError as e:
        return checks.report(name, False, f"stdout is not one JSON line ({e}): {last_line(out)!r}")
    want = ref["valid_perplexity"]
    rel = abs(got["perplexity"] - want) / want
    ok = rel <= PPL_REL_TOL and got["tokens"] == ref["valid_tokens_scored"]
    checks.report(name, ok, f"{got['perplexity']:.4f} vs {want:.4f} ({100 * rel:.3f}% off, tolerance "
                            f"{100 * PPL_REL_TOL}%), {got['tokens']} ids scored vs {ref['valid_tokens_scored']}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixture", required=True, help="fixture folder (config.json, reference.json, ...)")
    p.add_argument("--model", required=True, help="model.onnx or model_with_past.onnx")
    p.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="keep the work folder (artifact, npy files)")
    p.add_argument("--draft", help="a draft model (same tokenizer): also compile it in with --draft and check that "
                                   "greedy output is unchanged with it proposing")
    args = p.parse_args()

    fixture = os.path.abspath(args.fixture)
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    npz = np.load(os.path.join(fixture, "reference.npz"))
    work = tempfile.mkdtemp(prefix=f"kiln-e2e-{os.path.basename(fixture)}-")
    art = os.path.join(work, "model.kiln")
    checks = Checks()
    print(f"== {os.path.basename(fixture)}/{args.model} (work folder {work})", flush=True)
    try:
        rc, out, err = run([os.path.join(args.bin_dir, "kiln-compile"), os.path.join(fixture, args.model), "-o", art])
        checks.report(f"compile {args.model}", rc == 0, "" if rc == 0 else failure(rc, out, err))
        concat = os.path.join(work, "model-concat.kiln")
        rc2, out2, err2 = run([os.path.join(args.bin_dir, "kiln-compile"), os.path.join(fixture, args.model),
                               "--kv-cache=concat", "-o", concat])
        checks.report(f"compile {args.model} --kv-cache=concat", rc2 == 0, "" if rc2 == 0 else failure(rc2, out2, err2))
        pasts = past_shapes(fixture)
        if rc2 == 0:
            for k, prompt in enumerate(ref["prompts"]):
                check_logits(checks, args.bin_dir, concat, k, prompt, npz[prompt["logits_key"]], pasts, work,
                             args.threads, paged=False)
        if rc == 0:
            for k, prompt in enumerate(ref["prompts"]):
                check_generate(checks, args.bin_dir, art, k, prompt, args.threads)
            # Speculative decoding by prompt lookup, and by a layer-skip draft
            # compiled in (used by default), leaves greedy output as it is.
            check_generate(checks, args.bin_dir, art, 0, ref["prompts"][0], args.threads,
                           ["--speculative", "ngram", "--num-speculative-tokens", "4"])
            spec = os.path.join(work, "model-layer-skip.kiln")
            rc3, out3, err3 = run([os.path.join(args.bin_dir, "kiln-compile"), os.path.join(fixture, args.model),
                                   "--speculative=layer-skip:1", "-o", spec])
            checks.report(f"compile {args.model} --speculative=layer-skip:1", rc3 == 0,
                          "" if rc3 == 0 else failure(rc3, out3, err3))
            if rc3 == 0:
                # The defaults (adaptive k, stopping after an unsure id), then
                # a fixed k that never stops.
                check_generate(checks, args.bin_dir, spec, 1, ref["prompts"][1], args.threads,
                               ["--num-speculative-tokens", "3"])
                check_generate(checks, args.bin_dir, spec, 1, ref["prompts"][1], args.threads,
                               ["--num-speculative-tokens", "3", "--no-adaptive-speculation",
                                "--draft-min-probability", "0"])
            if args.draft:
                with_draft = os.path.join(work, "model-draft.kiln")
                rc4, out4, err4 = run([os.path.join(args.bin_dir, "kiln-compile"), os.path.join(fixture, args.model),
                                       "--draft", args.draft, "-o", with_draft])
                checks.report(f"compile {args.model} --draft {os.path.basename(os.path.dirname(args.draft))}",
                              rc4 == 0, "" if rc4 == 0 else failure(rc4, out4, err4))
                if rc4 == 0:
                    check_generate(checks, args.bin_dir, with_draft, 2, ref["prompts"][2], args.threads,
                                   ["--num-speculative-tokens", "4"])
            for k, prompt in enumerate(ref["prompts"]):
                check_logits(checks, args.bin_dir, art, k, prompt, npz[prompt["logits_key"]], pasts, work,
                             args.threads, paged=True)
            check_perplexity(checks, args.bin_dir, art, fixture, ref, args.threads)
        else:
            # Nothing else can run; count them so the summary shows what is missing.
            for what in [f"generate prompt{k}" for k in range(len(ref["prompts"]))] + \
                        [f"logits prompt{k}" for k in range(len(ref["prompts"]))] + ["perplexity valid.txt"]:
                checks.report(what, False, "not run: no artifact")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
