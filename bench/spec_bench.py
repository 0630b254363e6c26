#!/usr/bin/python3
"""Speculative decoding on llama-wide: each mode against no speculation, batch 1, one run.

    /usr/bin/python3 bench/spec_bench.py [--threads 2] [--max-tokens 128] [--skip-layers 1]
        [--k 4] [--skip-k 2] [--rounds 3] [--concurrency 8] [--write docs/speculative.md]

Builds llama-wide with ../shared/fixtures/widen.py into the cache dir on first
use (about a minute), compiles it three ways (plain; --draft llama-draft;
--speculative=layer-skip:N), then runs kiln-generate on the four fixture prompts
(greedy, --ignore-eos, --max-tokens tokens, --warmup 1) in every mode, back to
back per prompt, --rounds times, and reports decode tok/s, the median ratio
to no speculation in the same round, the acceptance rate
(accepted / drafted ids) and tokens per target pass, and checks that every
mode's ids equal the plain run's. Targets (issue 10, batch 1 on this CPU):
draft model >= 1.6x, layer skip >= 1.15x, prompt lookup >= 1.0x.

Then the same modes in kiln-serve (--speculative MODE): --concurrency
requests at once (the four prompts, round robin; greedy, ignore_eos,
--max-tokens ids), after one warm-up request; generated ids / wall time,
acceptance and ids per target pass from /metrics (each pass of a sequence
emits 1 + its kept proposals, so passes = generated - kept), and whether
every completion's text equals the run without speculation.
"""
import argparse
import datetime
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["Linux is", "A computer is", "The best way to", "Love is"]


def fixtures_dir():
    return os.environ.get("KILN_FIXTURES") or os.path.join(os.path.dirname(REPO), "shared", "fixtures")


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kiln")


def log(msg):
    print(f"[spec_bench] {msg}", file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--k", type=int, default=4, help="ids proposed per step (n-gram, draft model)")
    p.add_argument("--skip-layers", type=int, default=1, help="layers the layer-skip draft keeps")
    p.add_argument("--skip-k", type=int, default=2, help="ids proposed per step by the layer-skip draft that never stops")
    p.add_argument("--rounds", type=int, default=3, help="batch-1 rounds (the median ratio is reported)")
    p.add_argument("--concurrency", type=int, default=8, help="requests at once in kiln-serve (0: skip)")
    p.add_argument("--write", help="write the report into this markdown file (between markers)")
    args = p.parse_args()

    wide_root = os.path.join(cache_dir(), "models", "llama-wide")
    wide = os.path.join(wide_root, "llama-wide")
    if not os.path.isfile(os.path.join(wide, "model_with_past.onnx")):
        log("building llama-wide with widen.py (about a minute)")
        os.makedirs(wide_root, exist_ok=True)
        subprocess.run(["/usr/bin/python3", os.path.join(fixtures_dir(), "widen.py"), "llama-wide"], cwd=wide_root,
                       check=True)
    model = os.path.join(wide, "model_with_past.onnx")
    draft = os.path.join(fixtures_dir(), "llama-draft", "model_with_past.onnx")
    out = os.path.join(cache_dir(), "bench")
    os.makedirs(out, exist_ok=True)
    arts = {"plain": [], "draft": ["--draft", draft], "skip": [f"--speculative=layer-skip:{args.skip_layers}"]}
    for name, extra in arts.items():
        path = os.path.join(out, f"llama-wide-{name}.kiln")
        log(f"kiln-compile {os.path.basename(model)} {' '.join(extra)}")
        subprocess.run([os.path.join(args.bin_dir, "kiln-compile"), model, "-o", path] + extra, check=True)
        arts[name] = path

    skip = f"layer skip ({args.skip_layers} of 4 layers)"
    fixed = ["--no-adaptive-speculation"]
    # (label, artifact, --speculative, k, extra flags, also in kiln-serve).
    # A draft's defaults are adaptive k and, for layer skip, stopping after
    # an id the draft gives less than probability 0.5.
    modes = [("none", "plain", "off", args.k, [], True),
             ("prompt lookup (n-gram)", "plain", "ngram", args.k, [], True),
             ("draft model (llama-draft), adaptive k (default)", "draft", "draft", args.k, [], True),
             ("draft model (llama-draft), fixed k", "draft", "draft", args.k, fixed, False),
             (f"{skip}, adaptive k, stops below p 0.5 (default)", "skip", "draft", args.k, [], True),
             (f"{skip}, fixed k, stops below p 0.5", "skip", "draft", args.k, fixed, False),
             (f"{skip}, fixed k, never stops", "skip", "draft", args.skip_k,
              fixed + ["--draft-min-probability", "0"], True)]
    # Rounds; in each, every prompt runs in every mode back to back, so a
    # mode and the baseline see the same machine. A mode's figure is the
    # median over rounds of its ratio to the baseline of the same round.
    results = [{"label": label, "k": k if mode != "off" else 0, "ids": [], "drafted": 0, "accepted": 0,
                "generated": 0, "forwards": 0, "empty": 0, "propose_s": 0.0, "rates": []}
               for label, _, mode, k, _, _ in modes]
    for rnd in range(args.rounds):
        decode_s = [0.0] * len(modes)
        generated = [0] * len(modes)
        for prompt in PROMPTS:
            for m, (label, art, mode, k, extra, _) in enumerate(modes):
                r = subprocess.run([os.path.join(args.bin_dir, "kiln-generate"), arts[art], "--prompt", prompt,
                                    "--max-tokens", str(args.max_tokens), "--ignore-eos", "--json", "--stats",
                                    "--threads", str(args.threads), "--warmup", "1", "--speculative", mode,
                                    "--num-speculative-tokens", str(k)] + extra, capture_output=True, text=True,
                                   check=True)
                st = json.loads(r.stderr.strip().splitlines()[-1])
                decode_s[m] += st["decode_s"]
                generated[m] += st["generated_tokens"] - 1
                if rnd == 0:  # the ids and counts are the same every round
                    res = results[m]
                    res["ids"].append(json.loads(r.stdout)["ids"])
                    res["generated"] += st["generated_tokens"] - 1
                    res["drafted"] += st.get("draft_tokens", 0)
                    res["accepted"] += st.get("accepted_tokens", 0)
                    res["forwards"] += st.get("decode_forwards", st["generated_tokens"] - 1)
                    res["empty"] += st.get("empty_proposals", 0)
                    res["propose_s"] += st.get("propose_s", 0.0)
        for m, res in enumerate(results):
            res["rates"].append(generated[m] / decode_s[m])
        log(f"round {rnd + 1}: " + ", ".join(f"{res['label']} {res['rates'][-1]:.1f}" for res in results))
    for res in results:
        ratios = [rate / none for rate, none in zip(res["rates"], results[0]["rates"])]
        res["vs_none"] = statistics.median(ratios)
        res["tok_s"] = statistics.median(res["rates"])
        res["spread"] = (min(ratios), max(ratios))
        res["per_pass"] = res["generated"] / max(res["forwards"], 1)

    base = results[0]
    L = [f"Measured {datetime.date.today().isoformat()} on "
         f"{open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()} "
         f"({os.cpu_count()} cores), kiln "
         f"{subprocess.run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}: "
         f"`/usr/bin/python3 bench/spec_bench.py {' '.join(sys.argv[1:])}`  ",
         f"`llama-wide` (52 M parameters, 210 MB f32: decode bound by memory bandwidth), batch 1, "
         f"{args.threads} threads, the fixtures' four prompts, greedy, {args.max_tokens} ids each, after a warm-up "
         f"generation in the same process. {args.rounds} rounds; in each, every prompt runs in every mode back to "
         "back. tok/s is the median over rounds; vs none is the median of the rounds' ratios (lowest - highest "
         "in brackets). Adaptive k: `--adaptive-speculation`, k starts at the column's value; \"stops below "
         "p 0.5\": the draft stops proposing after an id it gives less than probability 0.5 "
         "(`--draft-min-probability`); \"(default)\": what kiln-generate and kiln-serve do with that artifact "
         "unless told otherwise.", "",
         "| mode | k | decode tok/s | vs none | acceptance | ids per target pass | target | same ids as none |",
         "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in results:
        rel = r["vs_none"]
        acc = f"{100 * r['accepted'] / r['drafted']:.0f} % ({r['accepted']} / {r['drafted']})" if r["drafted"] else "-"
        target = 1.6 if r["label"].startswith("draft model") else 1.0 if r["label"].startswith("prompt lookup") \
            else 1.15 if r["label"].startswith("layer skip") else None
        tgt = "-" if target is None else f">= {target}x ({'met' if rel >= target else 'missed'})"
        spread = f" ({r['spread'][0]:.2f} - {r['spread'][1]:.2f})" if r is not base else ""
        L.append(f"| {r['label']} | {r['k'] or '-'} | {r['tok_s']:.1f} | {rel:.2f}x{spread} | {acc} | "
                 f"{r['per_pass']:.2f} | "
                 f"{tgt} | {'yes' if r['ids'] == base['ids'] else 'NO'} |")
    ngram = results[1]
    if ngram["forwards"]:
        step_ms = 1e3 / base["tok_s"]
        lookup_us = 1e6 * ngram["propose_s"] / ngram["forwards"]
        L += ["", f"When prompt lookup finds nothing ({ngram['empty']} of its {ngram['forwards']} steps here), the "
              f"step is a plain decode step plus the lookup: {lookup_us:.2f} us per lookup on average (kiln-generate "
              f"--stats propose_s over steps) against {step_ms:.2f} ms per plain decode step, "
              f"{100 * lookup_us / (1e3 * step_ms):.3f} % (target: never more than 5 % slower)."]
    L.append("")
    served = serve_modes(args, arts, modes) if args.concurrency > 0 else []
    if served:
        sbase = served[0]
        L += [f"In `kiln-serve` (continuous batching), {args.concurrency} requests at once, the same prompts round "
              f"robin, greedy, {args.max_tokens} ids each, {args.threads} threads, after a warm-up request, "
              "`--speculative-max-batch 0` (speculate at any batch size; the default, 4, turns it off above 4 "
              "decoding sequences); generated ids per second of wall time:", "",
              "| mode | k | tok/s | vs none | acceptance | ids per target pass | same text as none |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in served:
            acc = f"{100 * r['accepted'] / r['drafted']:.0f} % ({r['accepted']} / {r['drafted']})" if r["drafted"] else "-"
            L.append(f"| {r['label']} | {r['k'] or '-'} | {r['tok_s']:.1f} | {r['tok_s'] / sbase['tok_s']:.2f}x | "
                     f"{acc} | {r['per_pass']:.2f} | {'yes' if r['texts'] == sbase['texts'] else 'NO'} |")
        L.append("")
    text = "\n".join(L) + "\n"
    print(text)
    if args.write:
        begin = "<!-- BEGIN spec_bench.py: generated by bench/spec_bench.py --write; edit the script, not this section -->"
        end = "<!-- END spec_bench.py -->"
        doc = open(args.write).read() if os.path.isfile(args.write) else ""
        if begin in doc and end in doc:
            pre, rest = doc.split(begin, 1)
            doc = pre + begin + "\n" + text + end + rest.split(end, 1)[1]
        else:
            doc = doc.rstrip("\n") + f"\n\n## Benchmark\n\n{begin}\n{text}{end}\n"
        open(args.write, "w").write(doc)
    ok = all(r["ids"] == base["ids"] for r in results) and all(r["texts"] == served[0]["texts"] for r in served)
    return 0 if ok else 1


def serve_modes(args, arts, modes):
    """Each mode in kiln-serve with args.concurrency requests at once."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from serve_bench import Server  # noqa: E402 (a sibling script)

    def complete(port, prompt, out, i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        body = json.dumps({"model": "m", "prompt": prompt, "max_tokens": args.max_tokens, "temperature": 0,
                           "ignore_eos": True})
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = json.loads(r.read())
        c.close()
        if r.status != 200:
            raise RuntimeError(f"kiln-serve answered {r.status}: {data}")
        out[i] = (data["choices"][0]["text"], data["usage"]["completion_tokens"])

    results = []
    for label, art, mode, k, extra, served in modes:
        if not served:
            continue  # keeps the run short
        server = Server(args.bin_dir, arts[art], args.threads,
                        ["--model-name", "m", "--speculative", mode, "--num-speculative-tokens", str(k),
                         "--speculative-max-batch", "0"])
        try:
            warm = [None]
            complete(server.port, PROMPTS[0], warm, 0)
            before = server.metrics()
            out = [None] * args.concurrency
            threads = [threading.Thread(target=complete, args=(server.port, PROMPTS[i % len(PROMPTS)], out, i))
                       for i in range(args.concurrency)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            after = server.metrics()
        finally:
            server.stop()
        delta = {n: after.get(n, 0) - before.get(n, 0) for n in
                 ("kiln_generation_tokens_total", "kiln_spec_decode_draft_tokens_total",
                  "kiln_spec_decode_accepted_tokens_total")}
        generated = sum(n for _, n in out)
        accepted = int(delta["kiln_spec_decode_accepted_tokens_total"])
        results.append({"label": label, "k": k if mode != "off" else 0, "tok_s": generated / wall,
                        "drafted": int(delta["kiln_spec_decode_draft_tokens_total"]), "accepted": accepted,
                        "per_pass": generated / max(generated - accepted, 1), "texts": [t for t, _ in out]})
        log(f"kiln-serve, {label}: {results[-1]['tok_s']:.1f} tok/s")
    return results


if __name__ == "__main__":
    sys.exit(main())
