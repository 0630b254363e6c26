#!/usr/bin/python3
"""Checks python/build_llm.py: tiny models of every family build in seconds, both
ONNX graphs pass onnx.checker and have the fixture's interface, the weights are
shared external data, config.json is Hugging Face style, builds are
deterministic per seed, and reference.npz holds PyTorch's logits for the
reference prompt. Where bench/node_modules has onnxruntime-node, ONNX Runtime's
logits for the exported model_with_past.onnx must match the reference too (an
implementation independent of PyTorch).

    /usr/bin/python3 test/e2e/test_builders.py [-v]
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
from onnx import numpy_helper

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDER = os.path.join(REPO, "python", "build_llm.py")
ORT_SCRIPT = os.path.join(REPO, "bench", "ort_llm_bench.mjs")
HAVE_ORT = (os.path.isdir(os.path.join(REPO, "bench", "node_modules", "onnxruntime-node"))
            and shutil.which("node") is not None)

FAMILY_TYPE = {"llama": "llama", "gpt2": "gpt2", "qwen": "qwen2"}


def build(out, *args):
    r = subprocess.run([sys.executable, BUILDER, out, "--threads", "2", *args], capture_output=True, text=True)
    if r.returncode:
        raise AssertionError(f"build_llm.py {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def load_json(path):
    with open(path) as f:
        return json.load(f)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class BuilderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kiln-e2e-builders-")
        cls.dirs = {}
        for fam in ("llama", "gpt2", "qwen"):
            d = os.path.join(cls.tmp, f"tiny-{fam}")
            build(d, "--preset", f"tiny-{fam}")
            cls.dirs[fam] = d

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check_folder(self, d, family):
        for f in ("config.json", "model.onnx", "model_with_past.onnx", "model.onnx_data", "reference.npz",
                  "reference.json"):
            self.assertTrue(os.path.isfile(os.path.join(d, f)), f)
        cfg = load_json(os.path.join(d, "config.json"))
        self.assertEqual(cfg["model_type"], FAMILY_TYPE[family])
        for k in ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size",
                  "num_hidden_layers", "vocab_size", "tie_word_embeddings", "eos_token_id", "bos_token_id"):
            self.assertIn(k, cfg)
        self.assertIn("layer_norm_epsilon" if family == "gpt2" else "rms_norm_eps", cfg)
        if family != "gpt2":
            self.assertIn("rope_theta", cfg)
        L, kvh, hd, V = (cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["vocab_size"])

        data_size = os.path.getsize(os.path.join(d, "model.onnx_data"))
        for name in ("model.onnx", "model_with_past.onnx"):
            path = os.path.join(d, name)
            onnx.checker.check_model(path)
            m = onnx.load(path, load_external_data=False)
            self.assertEqual(m.opset_import[0].version, 17)
            ins = [i.name for i in m.graph.input]
            outs = [o.name for o in m.graph.output]
            self.assertEqual(ins[:3], ["input_ids", "attention_mask", "position_ids"])
            self.assertEqual(outs[0], "logits")
            if name == "model.onnx":
                self.assertEqual(len(ins), 3)
                self.assertEqual(len(outs), 1)
            else:
                self.assertEqual(ins[3:], [f"past_key_values.{i}.{kv}" for i in range(L) for kv in ("key", "value")])
                self.assertEqual(outs[1:], [f"present.{i}.{kv}" for i in range(L) for kv in ("key", "value")])
                past = m.graph.input[3].type.tensor_type.shape.dim
                self.assertEqual([x.dim_value or x.dim_param for x in past],
                                 ["batch_size", kvh, "past_sequence_length", hd])
            logits = [x.dim_value or x.dim_param for x in m.graph.output[0].type.tensor_type.shape.dim]
            self.assertEqual(logits, ["batch_size", "sequence_length", V])
            n_ext = 0
            for t in m.graph.initializer:
                if t.data_location != onnx.TensorProto.EXTERNAL:
                    continue
                ext = {e.key: e.value for e in t.external_data}
                self.assertEqual(ext["location"], "model.onnx_data")
                off, length = int(ext["offset"]), int(ext["length"])
                self.assertEqual(off % 64, 0, t.name)
                self.assertLessEqual(off + length, data_size, t.name)
                n_ext += 1
            self.assertGreater(n_ext, 2 * L)
        # Both graphs share one data file: it holds each tensor once, not twice.
        full = onnx.load(os.path.join(d, "model_with_past.onnx"))
        inits = sum(numpy_helper.to_array(t).nbytes for t in full.graph.initializer)
        self.assertLess(data_size, 1.2 * inits)

        ref = np.load(os.path.join(d, "reference.npz"))
        meta = load_json(os.path.join(d, "reference.json"))
        ids = meta["prompts"][0]["prompt_ids"]
        n = len(ids)
        self.assertEqual(ref["input_ids"].tolist(), [ids])
        self.assertEqual(ref["logits"].shape, (1, n, V))
        self.assertEqual(ref["logits"].dtype, np.float32)
        self.assertTrue(np.isfinite(ref["logits"]).all())
        std = float(ref["logits"].std())
        self.assertTrue(0.01 < std < 10, f"logits std {std}")
        if cfg["bos_token_id"] is not None:
            self.assertEqual(ids[0], cfg["bos_token_id"])
        return cfg

    def test_families(self):
        for fam, d in self.dirs.items():
            with self.subTest(family=fam):
                cfg = self.check_folder(d, fam)
                m = onnx.load(os.path.join(d, "model_with_past.onnx"), load_external_data=False)
                ops = {n.op_type for n in m.graph.node}
                names = {t.name for t in m.graph.initializer}
                if fam == "gpt2":
                    self.assertTrue(cfg["tie_word_embeddings"])
                    self.assertIn("Tanh", ops)                    # GELU-tanh
                    self.assertTrue(any("c_attn.bias" in x for x in names))
                    self.assertTrue(any("wpe" in x for x in names))
                else:
                    self.assertIn("Sigmoid", ops)                 # SiLU of the gated MLP
                    self.assertEqual(any("q_proj.bias" in x for x in names), fam == "qwen")
                    # The head is the embedding (transposed) exactly when the family ties them.
                    full = onnx.load(os.path.join(d, "model_with_past.onnx"))
                    arrs = [numpy_helper.to_array(t) for t in full.graph.initializer]
                    V, D = cfg["vocab_size"], cfg["hidden_size"]
                    emb = next(a for a in arrs if a.shape == (V, D))
                    head = next(a for a in arrs if a.shape == (D, V))
                    self.assertEqual(np.array_equal(head, emb.T), fam == "qwen")
                    self.assertLess(cfg["num_key_value_heads"], cfg["num_attention_heads"])
                if fam == "qwen":
                    self.assertEqual(cfg["rope_theta"], 1e6)
                    self.assertTrue(cfg["tie_word_embeddings"])

    def test_explicit_sizes_and_tokenizer(self):
        d = os.path.join(self.tmp, "custom")
        tok = os.path.join(self.tmp, "tokenizer.model")
        with open(tok, "wb") as f:
            f.write(b"not really a tokenizer")
        build(d, "--family", "llama", "--hidden", "48", "--layers", "1", "--heads", "6", "--kv-heads", "2",
              "--head-dim", "16", "--ffn", "96", "--vocab", "300", "--max-pos", "64", "--rope-theta", "5e5",
              "--tie-embeddings", "--seed", "7", "--tokenizer", tok)
        cfg = self.check_folder(d, "llama")
        self.assertEqual((cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
                          cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"],
                          cfg["vocab_size"], cfg["max_position_embeddings"], cfg["rope_theta"],
                          cfg["tie_word_embeddings"]), (48, 1, 6, 2, 16, 96, 300, 64, 5e5, True))
        with open(os.path.join(d, "tokenizer.model"), "rb") as f:
            self.assertEqual(f.read(), b"not really a tokenizer")

    def test_bad_arguments(self):
        for args in (["--family", "gpt2", "--heads", "4", "--kv-heads", "2"],
                     ["--family", "llama", "--heads", "4", "--kv-heads", "3"],
                     ["--hidden", "64"]):
            r = subprocess.run([sys.executable, BUILDER, os.path.join(self.tmp, "bad"), *args],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("error", r.stderr)

    def test_deterministic_per_seed(self):
        again = os.path.join(self.tmp, "again")
        other = os.path.join(self.tmp, "other")
        build(again, "--preset", "tiny-llama")
        build(other, "--preset", "tiny-llama", "--seed", "1")
        first = self.dirs["llama"]
        self.assertEqual(sha(os.path.join(first, "model.onnx_data")), sha(os.path.join(again, "model.onnx_data")))
        a, b = np.load(os.path.join(first, "reference.npz")), np.load(os.path.join(again, "reference.npz"))
        np.testing.assert_array_equal(a["logits"], b["logits"])
        self.assertNotEqual(sha(os.path.join(first, "model.onnx_data")), sha(os.path.join(other, "model.onnx_data")))

    @unittest.skipUnless(HAVE_ORT, "onnxruntime-node not installed in bench/ (scripts/setup.sh)")
    def test_onnxruntime_agrees(self):
        for fam, d in self.dirs.items():
            with self.subTest(family=fam):
                meta = load_json(os.path.join(d, "reference.json"))["prompts"][0]
                out = os.path.join(self.tmp, f"{fam}_ort_logits.npy")
                greedy_key = next(k for k in meta if k.startswith("greedy_"))
                r = subprocess.run(["node", ORT_SCRIPT, "--model", os.path.join(d, "model_with_past.onnx"),
                                    "--threads", "1", "--prompt-ids", ",".join(map(str, meta["prompt_ids"])),
                                    "--decode", str(len(meta[greedy_key])), "--reps", "0", "--logits-out", out],
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                res = json.loads(r.stdout.strip().splitlines()[-1])
                ref = np.load(os.path.join(d, "reference.npz"))["logits"]
                got = np.load(out)
                self.assertEqual(got.shape, ref.shape)
                self.assertLess(float(np.abs(got - ref).max()), 1e-4)
                # Greedy paths agree where no step is a near tie.
                if meta["min_top2_margin"] > 1e-2:
                    self.assertEqual(res["generated_ids"], meta[greedy_key])


if __name__ == "__main__":
    unittest.main()
