#!/usr/bin/python3
"""Builds a random-weight language model in plain PyTorch and exports it the
way the LLM fixtures (and Hugging Face/optimum folders) look.

    build_llm.py OUT_DIR --preset tiny-llama
    build_llm.py OUT_DIR --family qwen --hidden 128 --layers 2 --heads 4 --kv-heads 2 --ffn 256
    build_llm.py OUT_DIR --preset llama-200m          # ~200 M parameters, ~790 MB of f32 weights

Families:
  llama  RMSNorm, RoPE (rotate-half), SwiGLU, GQA, untied lm_head
  gpt2   LayerNorm, GELU-tanh, learned positions, fused QKV c_attn with bias, tied embeddings
  qwen   Qwen2: LLaMA with biases on q/k/v, GQA, tied embeddings, rope theta 1e6

OUT_DIR receives:
  config.json            Hugging Face style (model_type, sizes, eps, rope_theta, tie_word_embeddings, bos/eos)
  model.onnx             input_ids [B,S], attention_mask [B,T], position_ids [B,S] (i64) -> logits [B,S,V]
  model_with_past.onnx   + past_key_values.N.key/.value [B,KVH,P,hd] -> + present.N.key/.value [B,KVH,T,hd]
  model.onnx_data        the weights of both graphs, each distinct tensor once, 64-byte aligned
                         (tensors under 1 KiB stay inline)
  reference.npz          PyTorch's answer for a fixed, seed-determined prompt: input_ids, attention_mask,
                         position_ids (the feeds, [1,n]), logits [1,n,V]; prompt0_logits [n,V] and
                         greedy_ids as in the fixtures; and one decode step with the prompt's KV cache:
                         decode_input_ids [1,1] (= greedy_ids[0]), decode_position_ids [[n]],
                         decode_logits [1,1,V]
  reference.json         prompt ids, greedy continuation with the KV cache, smallest top-1/top-2 margin,
                         parameter count, weight bytes and the arguments the model was built with
  tokenizer file         with --tokenizer PATH (copied as is, keeping its name)

Exports are torch.onnx.export at opset 17 with dynamic batch/sequence axes, as
/work/shared/fixtures/make_fixtures.py does. Weights are drawn from N(0, 0.02)
(norm gains 1 + N(0, 0.1), biases N(0, 0.02)), so logits stay in a sane range
and every parameter matters to a numerical check. Run with /usr/bin/python3
(Debian's python3-torch, python3-onnx; libopenblas0-pthread for speed).
"""
import argparse
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def fixtures_dir():
    """The shared fixtures: $KILN_FIXTURES, else shared/ beside the repository."""
    env = os.environ.get("KILN_FIXTURES")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "fixtures")


LLAMA_S_TOKENIZER = "@fixtures/llama-s/tokenizer.model"

# Presets fill the arguments a user did not give. tiny-* build in a few seconds.
PRESETS = {
    "tiny-llama": dict(family="llama", hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=2048,
                       max_pos=512),
    "tiny-gpt2": dict(family="gpt2", hidden=64, layers=2, heads=4, ffn=256, vocab=2048, max_pos=512),
    "tiny-qwen": dict(family="qwen", hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=2048,
                      max_pos=512),
    # ~197 M parameters (788 MB of f32 weights, far larger than any L3); the llama-s vocabulary.
    "llama-200m": dict(family="llama", hidden=1024, layers=16, heads=16, kv_heads=4, ffn=3072, vocab=2048,
                       max_pos=2048, tokenizer=LLAMA_S_TOKENIZER),
    # ~0.98 B parameters, TinyLlama-1.1B's layers (3.9 GB of f32 weights): the GPU benchmark's model
    # (bench/gpu_bench.py); the llama-s vocabulary, so kiln-serve can tokenize its prompts.
    "llama-1b": dict(family="llama", hidden=2048, layers=22, heads=32, kv_heads=4, ffn=5632, vocab=2048,
                     max_pos=2048, tokenizer=LLAMA_S_TOKENIZER),
}

FAMILY_DEFAULTS = {
    "llama": dict(rope_theta=1e4, tie_embeddings=False, eps=1e-5),
    "gpt2": dict(rope_theta=None, tie_embeddings=True, eps=1e-5),
    "qwen": dict(rope_theta=1e6, tie_embeddings=True, eps=1e-6),
}


# ---------------------------------------------------------------- models (as in make_fixtures.py)
def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def build_mask(attention_mask, q_len):
    total = attention_mask.shape[1]
    past = total - q_len
    i = torch.arange(q_len, device=attention_mask.device).unsqueeze(1) + past
    j = torch.arange(total, device=attention_mask.device).unsqueeze(0)
    causal = (j <= i).unsqueeze(0).unsqueeze(0)
    pad = attention_mask.unsqueeze(1).unsqueeze(2).bool()
    return causal & pad  # [b, 1, q, total], True = may attend


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


class LlamaBlock(nn.Module):
    """LLaMA decoder layer; with qkv_bias it is a Qwen2 layer."""

    def __init__(s, c, qkv_bias):
        super().__init__()
        d, H, KV, hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        s.H, s.KV, s.hd = H, KV, hd
        s.input_layernorm = RMSNorm(d, c["rms_norm_eps"])
        s.post_attention_layernorm = RMSNorm(d, c["rms_norm_eps"])
        s.q_proj = nn.Linear(d, H * hd, bias=qkv_bias)
        s.k_proj = nn.Linear(d, KV * hd, bias=qkv_bias)
        s.v_proj = nn.Linear(d, KV * hd, bias=qkv_bias)
        s.o_proj = nn.Linear(H * hd, d, bias=False)
        f = c["intermediate_size"]
        s.gate_proj = nn.Linear(d, f, bias=False)
        s.up_proj = nn.Linear(d, f, bias=False)
        s.down_proj = nn.Linear(f, d, bias=False)

    def forward(s, x, cos, sin, allowed, past_k, past_v):
        b, n, _ = x.shape
        h = s.input_layernorm(x)
        q = s.q_proj(h).view(b, n, s.H, s.hd).transpose(1, 2)
        k = s.k_proj(h).view(b, n, s.KV, s.hd).transpose(1, 2)
        v = s.v_proj(h).view(b, n, s.KV, s.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        present = (k, v)
        T = k.shape[2]
        rep = s.H // s.KV
        k = k[:, :, None, :, :].expand(b, s.KV, rep, T, s.hd).reshape(b, s.H, T, s.hd)
        v = v[:, :, None, :, :].expand(b, s.KV, rep, T, s.hd).reshape(b, s.H, T, s.hd)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(s.hd)
        scores = scores.masked_fill(~allowed, torch.finfo(torch.float32).min)
        p = torch.softmax(scores, dim=-1)
        o = torch.matmul(p, v).transpose(1, 2).reshape(b, n, s.H * s.hd)
        x = x + s.o_proj(o)
        h = s.post_attention_layernorm(x)
        x = x + s.down_proj(F.silu(s.gate_proj(h)) * s.up_proj(h))
        return x, present


class Llama(nn.Module):
    """LLaMA (qkv_bias=False) or Qwen2 (qkv_bias=True); tie_word_embeddings shares embed_tokens with lm_head."""

    def __init__(s, c, qkv_bias=False):
        super().__init__()
        s.c = c
        s.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        s.layers = nn.ModuleList([LlamaBlock(c, qkv_bias) for _ in range(c["num_hidden_layers"])])
        s.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        s.tied = c["tie_word_embeddings"]
        if not s.tied:
            s.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        hd = c["head_dim"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
        t = torch.arange(c["max_position_embeddings"]).float()
        fr = torch.outer(t, inv)
        emb = torch.cat([fr, fr], dim=-1)
        s.register_buffer("cos_cached", emb.cos(), persistent=False)
        s.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(s, input_ids, attention_mask, position_ids, past=None):
        x = s.embed_tokens(input_ids)
        cos = s.cos_cached[position_ids].unsqueeze(1)
        sin = s.sin_cached[position_ids].unsqueeze(1)
        allowed = build_mask(attention_mask, input_ids.shape[1])
        presents = []
        for i, layer in enumerate(s.layers):
            pk, pv = (past[2 * i], past[2 * i + 1]) if past is not None else (None, None)
            x, pr = layer(x, cos, sin, allowed, pk, pv)
            presents += list(pr)
        h = s.norm(x)
        logits = torch.matmul(h, s.embed_tokens.weight.t()) if s.tied else s.lm_head(h)
        return logits, presents


class GPT2Block(nn.Module):
    def __init__(s, c):
        super().__init__()
        d = c["n_embd"]
        s.H = c["n_head"]
        s.hd = d // s.H
        s.ln_1 = nn.LayerNorm(d, eps=c["layer_norm_epsilon"])
        s.ln_2 = nn.LayerNorm(d, eps=c["layer_norm_epsilon"])
        s.c_attn = nn.Linear(d, 3 * d)
        s.c_proj = nn.Linear(d, d)
        s.c_fc = nn.Linear(d, c["n_inner"])
        s.mlp_proj = nn.Linear(c["n_inner"], d)

    def forward(s, x, allowed, past_k, past_v):
        b, n, d = x.shape
        q, k, v = s.c_attn(s.ln_1(x)).split(d, dim=2)
        q = q.view(b, n, s.H, s.hd).transpose(1, 2)
        k = k.view(b, n, s.H, s.hd).transpose(1, 2)
        v = v.view(b, n, s.H, s.hd).transpose(1, 2)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        present = (k, v)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(s.hd)
        scores = scores.masked_fill(~allowed, torch.finfo(torch.float32).min)
        o = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, n, d)
        x = x + s.c_proj(o)
        x = x + s.mlp_proj(F.gelu(s.c_fc(s.ln_2(x)), approximate="tanh"))
        return x, present


class GPT2(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.c = c
        s.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        s.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        s.h = nn.ModuleList([GPT2Block(c) for _ in range(c["n_layer"])])
        s.ln_f = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])

    def forward(s, input_ids, attention_mask, position_ids, past=None):
        x = s.wte(input_ids) + s.wpe(position_ids)
        allowed = build_mask(attention_mask, input_ids.shape[1])
        presents = []
        for i, layer in enumerate(s.h):
            pk, pv = (past[2 * i], past[2 * i + 1]) if past is not None else (None, None)
            x, pr = layer(x, allowed, pk, pv)
            presents += list(pr)
        return torch.matmul(s.ln_f(x), s.wte.weight.t()), presents


class NoCache(nn.Module):
    def __init__(s, m):
        super().__init__()
        s.m = m

    def forward(s, input_ids, attention_mask, position_ids):
        return s.m(input_ids, attention_mask, position_ids)[0]


class WithPast(nn.Module):
    def __init__(s, m):
        super().__init__()
        s.m = m

    def forward(s, input_ids, attention_mask, position_ids, *past):
        logits, presents = s.m(input_ids, attention_mask, position_ids, list(past))
        return (logits, *presents)


# ---------------------------------------------------------------- configuration
def make_config(a):
    """Hugging Face style config.json for the resolved arguments `a`."""
    hd = a.head_dim or a.hidden // a.heads
    common = {"vocab_size": a.vocab, "hidden_size": a.hidden, "num_hidden_layers": a.layers,
              "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "head_dim": hd,
              "intermediate_size": a.ffn, "max_position_embeddings": a.max_pos,
              "tie_word_embeddings": a.tie_embeddings, "torch_dtype": "float32"}
    if a.family == "gpt2":
        # GPT-2's own keys (what transformers writes) plus the generic names above, which
        # GPT2Config maps onto the same attributes.
        return dict({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": a.hidden,
                     "n_layer": a.layers, "n_head": a.heads, "n_inner": a.ffn, "n_positions": a.max_pos,
                     "layer_norm_epsilon": a.eps, "activation_function": "gelu_new",
                     "bos_token_id": None, "eos_token_id": a.vocab - 1}, **common)
    if a.family == "llama":
        return dict({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
                     "rms_norm_eps": a.eps, "rope_theta": a.rope_theta, "attention_bias": False,
                     "bos_token_id": 1, "eos_token_id": 2}, **common)
    return dict({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
                 "rms_norm_eps": a.eps, "rope_theta": a.rope_theta, "use_sliding_window": False,
                 "bos_token_id": None, "eos_token_id": a.vocab - 1}, **common)


def resolve_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--preset", choices=sorted(PRESETS), help="fills every size not given explicitly")
    p.add_argument("--family", choices=sorted(FAMILY_DEFAULTS))
    p.add_argument("--hidden", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--kv-heads", type=int, help="GQA key/value heads (default: --heads)")
    p.add_argument("--ffn", type=int, help="MLP inner size (default: 4x hidden for gpt2, 8/3x rounded up to 64 else)")
    p.add_argument("--vocab", type=int)
    p.add_argument("--head-dim", type=int, help="default hidden/heads (gpt2: must be hidden/heads)")
    p.add_argument("--max-pos", type=int, help="max positions (RoPE table / learned positions)")
    p.add_argument("--rope-theta", type=float)
    p.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--eps", type=float, help="norm epsilon (default 1e-5; qwen 1e-6)")
    p.add_argument("--tokenizer", help="tokenizer file to copy into OUT_DIR (a path; '@fixtures/...' is "
                                       "relative to the shared fixtures)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt-len", type=int, default=8, help="length of the reference prompt")
    p.add_argument("--greedy", type=int, default=16, help="greedy tokens recorded in reference.json")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = p.parse_args(argv)

    preset = PRESETS.get(a.preset, {})
    for k, v in preset.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.family is None:
        p.error("--family or --preset is required")
    for k, v in FAMILY_DEFAULTS[a.family].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.hidden = a.hidden or 64
    a.layers = a.layers or 2
    a.heads = a.heads or 4
    a.kv_heads = a.kv_heads or a.heads
    a.vocab = a.vocab or 2048
    a.max_pos = a.max_pos or 1024
    a.greedy = max(a.greedy, 1)
    if a.ffn is None:
        a.ffn = 4 * a.hidden if a.family == "gpt2" else -(-(8 * a.hidden // 3) // 64) * 64
    if a.heads % a.kv_heads:
        p.error(f"--heads {a.heads} is not a multiple of --kv-heads {a.kv_heads}")
    if a.family == "gpt2":
        if a.kv_heads != a.heads:
            p.error("gpt2 has no grouped-query attention: --kv-heads must equal --heads")
        if a.hidden % a.heads or (a.head_dim and a.head_dim != a.hidden // a.heads):
            p.error("gpt2: --head-dim must be hidden/heads")
        if not a.tie_embeddings:
            p.error("gpt2 ties its embeddings")
    else:
        hd = a.head_dim or a.hidden // a.heads
        if hd % 2 or (not a.head_dim and a.hidden % a.heads):
            p.error("RoPE needs an even head dim (give --head-dim when hidden is not a multiple of heads)")
    if a.tokenizer and a.tokenizer.startswith("@fixtures/"):
        a.tokenizer = os.path.join(fixtures_dir(), a.tokenizer[len("@fixtures/"):])
    return a


def init_weights(model, seed):
    """N(0, 0.02) for matrices and biases, 1 + N(0, 0.1) for norm gains, N(0, 0.02) for norm biases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if prm.dim() == 1 and ("norm" in name or name.split(".")[-2].startswith("ln")) and name.endswith("weight"):
                prm.copy_(1.0 + 0.1 * torch.randn(prm.shape, generator=g))
            else:
                prm.copy_(0.02 * torch.randn(prm.shape, generator=g))


# ---------------------------------------------------------------- reference
@torch.no_grad()
def reference(model, ids, n_greedy, n_layers, kv_heads, head_dim):
    """Prefill logits [n, V] of the prompt from an empty cache; the greedy continuation with the KV cache;
    the logits [V] of its first decode step (fed greedy[0] at position n, the prompt's cache as past);
    the smallest top-1/top-2 margin along the greedy path."""
    past = [torch.zeros(1, kv_heads, 0, head_dim) for _ in range(2 * n_layers)]
    total = len(ids)
    logits, past = model(torch.tensor([ids]), torch.ones(1, total, dtype=torch.long),
                         torch.arange(total).unsqueeze(0), past)
    prompt_logits = logits[0].numpy().copy()
    out, margins, step_logits = [], [], None
    for _ in range(max(n_greedy, 1)):
        top = torch.topk(logits[0, -1], 2).values
        margins.append(float(top[0] - top[1]))
        nxt = int(torch.argmax(logits[0, -1]))
        out.append(nxt)
        pos = torch.tensor([[total]])
        total += 1
        logits, past = model(torch.tensor([[nxt]]), torch.ones(1, total, dtype=torch.long), pos, past)
        if step_logits is None:
            step_logits = logits[0, -1].numpy().copy()
    return prompt_logits, out, step_logits, min(margins)


# ---------------------------------------------------------------- export with shared external data
class ExternalData:
    """model.onnx_data: each distinct tensor (by content) stored once, 64-byte aligned."""

    def __init__(self, path):
        self.name = os.path.basename(path)
        self.f = open(path, "wb")
        self.size = 0
        self.offsets = {}

    def externalize(self, model, min_bytes=1024):
        for t in model.graph.initializer:
            raw = t.raw_data if t.HasField("raw_data") else numpy_helper.to_array(t).tobytes()
            if len(raw) < min_bytes:
                continue
            h = hashlib.sha256(raw).digest()
            if h not in self.offsets:
                pad = (-self.size) % 64
                self.f.write(b"\0" * pad)
                self.offsets[h] = self.size + pad
                self.f.write(raw)
                self.size += pad + len(raw)
            dims, dt, name = list(t.dims), t.data_type, t.name
            t.Clear()
            t.name, t.data_type = name, dt
            t.dims.extend(dims)
            t.data_location = onnx.TensorProto.EXTERNAL
            for k, v in (("location", self.name), ("offset", str(self.offsets[h])), ("length", str(len(raw)))):
                e = t.external_data.add()
                e.key, e.value = k, v
            del raw

    def close(self):
        self.f.close()


def export(model, folder, n_layers, kv_heads, head_dim):
    ids = torch.tensor([[5, 6, 7]])
    pos = torch.tensor([[4, 5, 6]])
    mask = torch.ones(1, 7, dtype=torch.long)
    past = [torch.randn(1, kv_heads, 4, head_dim) for _ in range(2 * n_layers)]
    past_names = [f"past_key_values.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]
    dyn = {"input_ids": {0: "batch_size", 1: "sequence_length"},
           "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
           "position_ids": {0: "batch_size", 1: "sequence_length"},
           "logits": {0: "batch_size", 1: "sequence_length"}}
    d2 = dict(dyn)
    for n in past_names:
        d2[n] = {0: "batch_size", 2: "past_sequence_length"}
    for n in present_names:
        d2[n] = {0: "batch_size", 2: "total_sequence_length"}
    graphs = [
        ("model.onnx", NoCache(model), (ids, torch.ones(1, 3, dtype=torch.long), torch.tensor([[0, 1, 2]])),
         ["input_ids", "attention_mask", "position_ids"], ["logits"], dyn),
        ("model_with_past.onnx", WithPast(model), (ids, mask, pos, *past),
         ["input_ids", "attention_mask", "position_ids"] + past_names, ["logits"] + present_names, d2),
    ]
    data = ExternalData(os.path.join(folder, "model.onnx_data"))
    for dst, mod, args, inames, onames, axes in graphs:
        t0 = time.time()
        buf = io.BytesIO()
        torch.onnx.export(mod, args, buf, input_names=inames, output_names=onames, dynamic_axes=axes,
                          opset_version=17, do_constant_folding=True)
        m = onnx.ModelProto()
        m.ParseFromString(buf.getbuffer())
        del buf
        data.externalize(m)
        m.producer_name = "kiln-build-llm"
        m.doc_string = ""
        onnx.save(m, os.path.join(folder, dst))
        del m
        print(f"  exported {dst} in {time.time() - t0:.1f}s", flush=True)
    data.close()
    for dst in ("model.onnx", "model_with_past.onnx"):
        onnx.checker.check_model(os.path.join(folder, dst))
    return data.size


def weight_bytes(onnx_path):
    """Bytes of every initializer of a model (external or inline), without loading the external data."""
    m = onnx.load(onnx_path, load_external_data=False)
    total = 0
    for t in m.graph.initializer:
        ext = {e.key: e.value for e in t.external_data}
        if "length" in ext:
            total += int(ext["length"])
        else:
            total += len(t.raw_data) if t.HasField("raw_data") else numpy_helper.to_array(t).nbytes
    return total


# ---------------------------------------------------------------- main
def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main(argv=None):
    a = resolve_args(sys.argv[1:] if argv is None else argv)
    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out_dir, exist_ok=True)
    cfg = make_config(a)
    model = (GPT2(cfg) if a.family == "gpt2" else Llama(cfg, qkv_bias=(a.family == "qwen"))).eval()
    init_weights(model, a.seed)
    nparams = sum(p.numel() for p in model.parameters())
    name = a.preset or f"{a.family}-d{a.hidden}-l{a.layers}"
    print(f"{name}: {a.family}, {nparams / 1e6:.2f} M parameters ({nparams * 4 / 2**20:.0f} MiB f32)", flush=True)

    # Reference prompt: seed-determined ids (BOS first where the family has one), special ids avoided.
    rng = np.random.default_rng(a.seed)
    bos = cfg.get("bos_token_id")
    ids = ([bos] if bos is not None else []) + [int(i) for i in rng.integers(3, a.vocab - 1, a.prompt_len)]
    kv_heads, hd = cfg["num_key_value_heads"], cfg["head_dim"]
    prompt_logits, greedy_ids, step_logits, margin = reference(model, ids, a.greedy, a.layers, kv_heads, hd)

    data_bytes = export(model, a.out_dir, a.layers, kv_heads, hd)
    write_json(os.path.join(a.out_dir, "config.json"), cfg)
    if a.tokenizer:
        if os.path.isfile(a.tokenizer):
            shutil.copyfile(a.tokenizer, os.path.join(a.out_dir, os.path.basename(a.tokenizer)))
        else:
            print(f"warning: tokenizer {a.tokenizer} not found; none copied", file=sys.stderr)

    n = len(ids)
    np.savez_compressed(
        os.path.join(a.out_dir, "reference.npz"),
        input_ids=np.array([ids], dtype=np.int64), attention_mask=np.ones((1, n), dtype=np.int64),
        position_ids=np.arange(n, dtype=np.int64)[None], logits=prompt_logits[None].astype(np.float32),
        prompt0_logits=prompt_logits.astype(np.float32), greedy_ids=np.array(greedy_ids, dtype=np.int64),
        decode_input_ids=np.array([[greedy_ids[0]]], dtype=np.int64),
        decode_position_ids=np.array([[n]], dtype=np.int64),
        decode_logits=step_logits[None, None].astype(np.float32))
    args = {k: v for k, v in vars(a).items() if k not in ("out_dir", "threads")}
    ref = {"model": name, "family": a.family, "params": nparams,
           "weight_bytes": weight_bytes(os.path.join(a.out_dir, "model_with_past.onnx")),
           "onnx_data_bytes": data_bytes, "build_args": args,
           "prompts": [{"prompt_ids": ids, f"greedy_{a.greedy}": greedy_ids, "logits_key": "prompt0_logits",
                        "min_top2_margin": None if margin is None else round(margin, 6)}]}
    write_json(os.path.join(a.out_dir, "reference.json"), ref)
    print(f"{name}: wrote {a.out_dir} in {time.time() - t_start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
