#!/usr/bin/python3
"""Distil a small draft LLM from a compiled target, for speculative decoding (kiln-compile --draft).

    /usr/bin/python3 python/distill_draft.py TARGET.kiln TEXT.txt OUT_DIR --target-config config.json
        [--tokenizer tokenizer.model] [--hidden 128] [--layers 2]
        [--heads 4] [--kv-heads 2] [--steps 300] [--window 128] [--temperature 2.0] [--alpha 0.5]

1. The target's soft labels: the text is tokenized by the artifact's tokenizer
   (kiln-generate --max-tokens 0 --json on each chunk) and cut into windows of
   --window ids; kiln-run runs the target's paged `forward` over each window
   from an empty cache and returns the logits of every position.
2. A LLaMA-style draft (python/build_llm.py's model, the target's vocabulary,
   BOS/EOS ids and context length) is trained with Adam on
   alpha * T^2 * KL(target_T || draft_T) + (1 - alpha) * cross-entropy on the
   next ids, T = --temperature.
3. It is exported like build_llm.py's models (model.onnx and
   model_with_past.onnx, opset 17, external data), with config.json and the
   target's tokenizer file, so that `kiln-compile target.onnx --draft
   OUT_DIR/model_with_past.onnx` takes it.

Debian's python3-torch (with OpenBLAS) runs it on the CPU.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_llm  # noqa: E402  (the model classes and the exporter)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"distill_draft: {' '.join(cmd[:2])}: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return r.stdout


def tokenize(bin_dir, art, text, chunk_chars=2000):
    """Ids of `text` by the artifact's tokenizer, chunk by chunk (no BOS inside)."""
    ids = []
    for i in range(0, len(text), chunk_chars):
        out = json.loads(run([os.path.join(bin_dir, "kiln-generate"), art, "--prompt", text[i:i + chunk_chars],
                              "--max-tokens", "0", "--json"]))
        ids += out["prompt_ids"][1:] if ids else out["prompt_ids"]
    return ids


def target_logits(bin_dir, art, window, kv_heads, head_dim, layers, work):
    """Logits [n, V] of every position of `window`, from an empty cache, through `forward`."""
    n, bs = len(window), 16
    blocks = (n + bs - 1) // bs
    feeds = {"tokens": np.array(window, np.int32), "positions": np.arange(n, dtype=np.int32),
             "query_start": np.array([0, n], np.int32), "seq_lens": np.array([n], np.int32),
             "block_tables": np.arange(blocks, dtype=np.int32)[None], "slot_mapping": np.arange(n, dtype=np.int32),
             "logits_indices": np.arange(n, dtype=np.int32)}
    for i in range(layers):
        for kind in ("k", "v"):
            feeds[f"{kind}_cache.{i}"] = np.zeros((blocks, bs, kv_heads, head_dim), np.float32)
    cmd = [os.path.join(bin_dir, "kiln-run"), art, "--function", "forward", "-o", work]
    for name, arr in feeds.items():
        path = os.path.join(work, f"in_{name}.npy")
        np.save(path, arr)
        cmd += ["-i", f"{name}={path}"]
    run(cmd)
    return np.load(os.path.join(work, "logits.npy"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="the target compiled to the paged forward (.kiln)")
    p.add_argument("text", help="training text (UTF-8)")
    p.add_argument("out_dir")
    p.add_argument("--target-config", required=True, help="the target's config.json")
    p.add_argument("--tokenizer", help="the target's tokenizer file, copied beside the draft")
    p.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"))
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8, help="windows per step")
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--windows", type=int, default=64, help="windows of the text to label")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the KL term (1 - alpha: cross-entropy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.time()

    tcfg = json.load(open(a.target_config))
    vocab = tcfg["vocab_size"]
    t_layers, t_kvh = tcfg["num_hidden_layers"], tcfg["num_key_value_heads"]
    t_hd = tcfg.get("head_dim") or tcfg["hidden_size"] // tcfg["num_attention_heads"]

    # 1. Soft labels from the target.
    ids = tokenize(a.bin_dir, a.target, open(a.text, encoding="utf-8").read())
    windows = [ids[i:i + a.window] for i in range(0, len(ids) - a.window, a.window)][:a.windows]
    if not windows:
        sys.exit("distill_draft: the text is shorter than one window")
    print(f"distill_draft: {len(ids)} ids, labelling {len(windows)} windows of {a.window} with the target",
          flush=True)
    work = tempfile.mkdtemp(prefix="kiln-distill-")
    try:
        labels = np.stack([target_logits(a.bin_dir, a.target, w, t_kvh, t_hd, t_layers, work) for w in windows])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    x = torch.tensor(np.array(windows), dtype=torch.long)
    soft = torch.from_numpy(labels)
    print(f"  labelled in {time.time() - t0:.0f} s", flush=True)

    # 2. The draft, trained on the target's distributions.
    args = build_llm.resolve_args([a.out_dir, "--family", "llama", "--hidden", str(a.hidden), "--layers",
                                   str(a.layers), "--heads", str(a.heads), "--kv-heads", str(a.kv_heads),
                                   "--vocab", str(vocab), "--max-pos", str(tcfg.get("max_position_embeddings", 1024))])
    cfg = build_llm.make_config(args)
    cfg["bos_token_id"], cfg["eos_token_id"] = tcfg.get("bos_token_id"), tcfg.get("eos_token_id")
    model = build_llm.Llama(cfg)
    build_llm.init_weights(model, a.seed)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    n = a.window
    mask = torch.ones(a.batch, n, dtype=torch.long)
    pos = torch.arange(n).unsqueeze(0).expand(a.batch, n)
    hd = cfg["head_dim"]
    T = a.temperature
    for step in range(a.steps):
        idx = torch.randint(0, len(windows), (a.batch,))
        past = [torch.zeros(a.batch, a.kv_heads, 0, hd) for _ in range(2 * a.layers)]
        logits, _ = model(x[idx], mask, pos, past)
        kl = F.kl_div(F.log_softmax(logits / T, -1), F.log_softmax(soft[idx] / T, -1), log_target=True,
                      reduction="batchmean") * T * T / n
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), x[idx][:, 1:].reshape(-1))
        loss = a.alpha * kl + (1 - a.alpha) * ce
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == a.steps - 1:
            agree = (logits.argmax(-1) == soft[idx].argmax(-1)).float().mean().item()
            print(f"  step {step}: loss {loss.item():.3f} (kl {kl.item():.3f}, ce {ce.item():.3f}), "
                  f"top-1 agreement with the target {100 * agree:.1f} %", flush=True)

    # 3. Export for kiln-compile --draft.
    model.eval()
    os.makedirs(a.out_dir, exist_ok=True)
    build_llm.export(model, a.out_dir, a.layers, a.kv_heads, hd)
    build_llm.write_json(os.path.join(a.out_dir, "config.json"), cfg)
    if a.tokenizer:
        shutil.copyfile(a.tokenizer, os.path.join(a.out_dir, os.path.basename(a.tokenizer)))
    print(f"distill_draft: wrote {a.out_dir} in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
