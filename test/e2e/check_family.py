#!/usr/bin/python3
"""Compiles a model built by python/build_llm.py with kiln-compile, runs it with
kiln-run and compares the logits with PyTorch's (reference.npz).

    check_family.py --preset tiny-llama [--bin-dir build/bin] [--tol 1e-3]
    check_family.py --model-dir DIR      [--bin-dir build/bin] [--tol 1e-3]
    check_family.py --preset tiny-qwen --target vulkan-spirv --device vulkan
    check_family.py --preset tiny-llama --prompt-len 40 --target PROFILE.json --device vulkan
    check_family.py --preset tiny-llama --quantize f16 --tol 5e-3 --target vulkan-spirv --device vulkan

Checks, each within --tol (max absolute difference):
  model.onnx            the prompt's logits [1, n, V]
  model_with_past.onnx  the prompt's logits from an empty past ([1, KVH, 0, hd]), then one
                        decode step fed the prompt's present.N.* as past (decode_logits)

Exit status: 0 all agree; 1 a mismatch or a tool failure, an unsupported op
included. With KILN_E2E_ALLOW_UNSUPPORTED=1 in the environment (for a branch
that adds a family the compiler does not cover yet), an op or form kiln-compile
reports as unsupported exits 77 instead, ctest's skip (SKIP_RETURN_CODE).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP = 77


class Skip(Exception):
    pass


def run(cmd, what):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        msg = (r.stderr.strip() or r.stdout.strip() or f"exit {r.returncode}").splitlines()[-1]
        unsupported = "unsupported" in msg or "not supported" in msg
        if what == "kiln-compile" and unsupported and os.environ.get("KILN_E2E_ALLOW_UNSUPPORTED") == "1":
            raise Skip(msg)
        raise RuntimeError(f"{what} failed: {msg}")
    return r


# --target / --device of the run (main): the compile target and the HAL driver.
TARGET = "host"
DEVICE = "cpu"
QUANTIZE = []  # kiln-compile --quantize=... (--quantize)


def compile_model(bin_dir, onnx_path, art, kv_cache="concat"):
    run([os.path.join(bin_dir, "kiln-compile"), onnx_path, f"--kv-cache={kv_cache}",
         f"--target={TARGET}", *QUANTIZE, "-o", art], "kiln-compile")


def kiln_run(bin_dir, art, feeds, work, tag):
    in_dir = os.path.join(work, f"{tag}_in")
    out_dir = os.path.join(work, f"{tag}_out")
    os.makedirs(in_dir, exist_ok=True)
    os.makedirs(out_dir, exist_ok=True)
    cmd = [os.path.join(bin_dir, "kiln-run"), art, "--threads", "2", f"--device={DEVICE}",
           "-o", out_dir]
    for name, arr in feeds.items():
        path = os.path.join(in_dir, f"{name}.npy")
        np.save(path, arr)
        cmd += ["-i", f"{name}={path}"]
    run(cmd, "kiln-run")
    outs = {}
    for f in os.listdir(out_dir):
        if f.endswith(".npy"):
            outs[f[:-4]] = np.load(os.path.join(out_dir, f))
    return outs


def compare(name, got, want, tol):
    if got is None:
        return f"{name}: no output"
    if got.shape != want.shape:
        return f"{name}: shape {list(got.shape)}, expected {list(want.shape)}"
    err = float(np.abs(got.astype(np.float64) - want).max())
    print(f"  {name}: max |diff| {err:.2e} (tol {tol:g})", flush=True)
    return None if err <= tol and np.isfinite(got).all() else f"{name}: max |diff| {err:.3g} > {tol:g}"


def check(model_dir, bin_dir, tol, work):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    ref = np.load(os.path.join(model_dir, "reference.npz"))
    layers = cfg["num_hidden_layers"]
    kvh, hd = cfg["num_key_value_heads"], cfg["head_dim"]
    n = ref["input_ids"].shape[1]
    prompt = {"input_ids": ref["input_ids"], "attention_mask": ref["attention_mask"],
              "position_ids": ref["position_ids"]}
    errors = []

    # kiln gives a cache-less export a KV cache (past_key_values.N.* in,
    # present.N.* out), so both artifacts take an empty past for the prompt.
    names = [f"{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    feeds = dict(prompt)
    for nm in names:
        feeds[f"past_key_values.{nm}"] = np.zeros((1, kvh, 0, hd), dtype=np.float32)

    art = os.path.join(work, "model.kiln")
    compile_model(bin_dir, os.path.join(model_dir, "model.onnx"), art)
    outs = kiln_run(bin_dir, art, feeds, work, "nocache")
    errors.append(compare("model.onnx logits", outs.get("logits"), ref["logits"], tol))

    art = os.path.join(work, "model_with_past.kiln")
    compile_model(bin_dir, os.path.join(model_dir, "model_with_past.onnx"), art)
    outs = kiln_run(bin_dir, art, feeds, work, "prefill")
    errors.append(compare("model_with_past.onnx prefill logits", outs.get("logits"), ref["logits"], tol))
    present = {nm: outs.get(f"present.{nm}") for nm in names}
    bad = [nm for nm, v in present.items() if v is None or v.shape != (1, kvh, n, hd)]
    if bad:
        errors.append(f"present.{bad[0]}: missing or not [1, {kvh}, {n}, {hd}]")
    else:
        feeds = {"input_ids": ref["decode_input_ids"], "attention_mask": np.ones((1, n + 1), dtype=np.int64),
                 "position_ids": ref["decode_position_ids"]}
        for nm in names:
            feeds[f"past_key_values.{nm}"] = present[nm]
        outs = kiln_run(bin_dir, art, feeds, work, "decode")
        errors.append(compare("model_with_past.onnx decode-step logits", outs.get("logits"),
                              ref["decode_logits"], tol))

    # The paged `forward` (the default compile): one flattened batch of two
    # sequences in 4-token blocks handed out interleaved, the first the
    # prompt plus the decode token (its last row is the decode step), the
    # second the prompt alone; logits of every row.
    if np.all(ref["attention_mask"] == 1) and int(ref["decode_position_ids"].reshape(-1)[0]) == n:
        art = os.path.join(work, "model_with_past.paged.kiln")
        compile_model(bin_dir, os.path.join(model_dir, "model_with_past.onnx"), art, kv_cache="paged")
        bs = 4
        a = np.concatenate([ref["input_ids"][0], ref["decode_input_ids"].reshape(-1)]).astype(np.int32)
        b = ref["input_ids"][0].astype(np.int32)
        na, nb = len(a), len(b)
        blocks_a, blocks_b = (na + bs - 1) // bs, (nb + bs - 1) // bs
        table_a = [2 * i for i in range(blocks_a)]
        table_b = [2 * i + 1 for i in range(blocks_b)]
        m = max(blocks_a, blocks_b)
        tables = np.full((2, m), -1, np.int32)
        tables[0, :blocks_a], tables[1, :blocks_b] = table_a, table_b
        slots = [table_a[i // bs] * bs + i % bs for i in range(na)] + [table_b[i // bs] * bs + i % bs for i in range(nb)]
        num_blocks = 2 * m
        pfeeds = {"tokens": np.concatenate([a, b]), "positions": np.concatenate([np.arange(na), np.arange(nb)]).astype(np.int32),
                  "query_start": np.array([0, na, na + nb], np.int32), "seq_lens": np.array([na, nb], np.int32),
                  "block_tables": tables, "slot_mapping": np.array(slots, np.int32),
                  "logits_indices": np.arange(na + nb, dtype=np.int32)}
        for i in range(layers):
            for kind in ("k", "v"):
                pfeeds[f"{kind}_cache.{i}"] = np.zeros((num_blocks, bs, kvh, hd), np.float32)
        outs = kiln_run(bin_dir, art, pfeeds, work, "paged")
        got = outs.get("logits")
        if got is None or got.shape[0] != na + nb:
            errors.append(f"paged forward: logits missing or not [{na + nb}, V]")
        else:
            errors.append(compare("paged forward, sequence 0 prompt rows", got[None, :n], ref["logits"], tol))
            errors.append(compare("paged forward, sequence 0 decode row", got[None, n:n + 1], ref["decode_logits"], tol))
            errors.append(compare("paged forward, sequence 1 (batched) rows", got[None, na:], ref["logits"], tol))
    else:
        errors.append("reference has padding or a decode position != prompt length: the paged check needs neither")
    return [e for e in errors if e]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="build this python/build_llm.py preset into a temporary folder first")
    src.add_argument("--model-dir", help="a folder written by python/build_llm.py")
    p.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"))
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--prompt-len", type=int, default=None,
                   help="with --preset: build_llm.py --prompt-len (16 rows and more take the GPU's tile kernels)")
    p.add_argument("--quantize", default=None,
                   help="kiln-compile --quantize, a weight scheme (e.g. f16; give a --tol its error fits)")
    p.add_argument("--build-args", default="",
                   help="with --preset: more build_llm.py arguments, e.g. '--hidden 48 --vocab 2000'")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--target", default="host", help="kiln-compile --target")
    p.add_argument("--device", default="cpu", help="kiln-run --device")
    a = p.parse_args()
    global TARGET, DEVICE, QUANTIZE
    TARGET, DEVICE = a.target, a.device
    QUANTIZE = [f"--quantize={a.quantize}"] if a.quantize else []

    work = tempfile.mkdtemp(prefix="kiln-e2e-family-")
    label = (a.preset or a.model_dir) + ("" if a.target == "host" else f" on {a.target}")
    try:
        model_dir = a.model_dir
        if a.preset:
            model_dir = os.path.join(work, a.preset)
            r = subprocess.run([sys.executable, os.path.join(REPO, "python", "build_llm.py"), model_dir,
                                "--preset", a.preset, "--threads", "2",
                                *([f"--prompt-len={a.prompt_len}"] if a.prompt_len else []),
                                *a.build_args.split()],
                               capture_output=True, text=True)
            if r.returncode:
                print(f"check_family: building {a.preset} failed:\n{r.stderr}", file=sys.stderr)
                return 1
        errors = check(model_dir, a.bin_dir, a.tol, work)
    except Skip as e:
        print(f"check_family: {label}: SKIPPED, kiln-compile does not support this model yet: {e}")
        return SKIP
    except (RuntimeError, OSError, KeyError) as e:
        print(f"check_family: {label}: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if a.keep:
            print(f"check_family: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if errors:
        for e in errors:
            print(f"check_family: {label}: FAILED: {e}", file=sys.stderr)
        return 1
    print(f"check_family: {label}: kiln agrees with PyTorch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
