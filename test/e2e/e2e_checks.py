"""What the e2e check scripts share (check_quantized.py, check_pruned.py,
check_calibrated.py): running a tool, counting checks, the fixture's
perplexity protocol, greedy ids and the artifact-size check."""
import json
import os
import re
import subprocess
import sys

TIMEOUT_S = 900


def run(cmd, timeout_s=TIMEOUT_S):
    """(exit code or None on timeout, stdout, stderr)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {timeout_s} s"


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


class Checks:
    """One `PASS: name: detail` / `FAIL: ...` line per check, then the summary."""

    def __init__(self):
        self.passed = self.failed = 0

    def report(self, name, ok, detail):
        print(f"{'PASS' if ok else 'FAIL'}: {name}: {detail}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def finish(self):
        """Prints `N passed, N failed`; the exit code."""
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def perplexity(bin_dir, art, fixture, ref, threads, prefix=(), extra=()):
    """kiln-perplexity --json on reference.json's perplexity_protocol: (result dict, None) or (None, error).
    `prefix` runs the tool through another program (e.g. qemu-aarch64); `extra`
    are more flags (e.g. --device vulkan)."""
    proto = ref["perplexity_protocol"]
    text = os.path.normpath(os.path.join(fixture, proto["text"]))
    # A whole valid.txt takes 23 minutes on lavapipe on 2 cores.
    rc, out, err = run([*prefix, os.path.join(bin_dir, "kiln-perplexity"), art, "--text", text, "--window",
                        str(proto["window"]), "--threads", str(threads), "--json", *extra], timeout_s=3600)
    if rc != 0:
        return None, last_line(err)
    return json.loads(out), None


def greedy_ids(bin_dir, art, prompt, threads, prefix=(), extra=()):
    """kiln-generate --temperature 0 --max-tokens 48 on a reference prompt: (ids, None) or (None, error)."""
    rc, out, err = run([*prefix, os.path.join(bin_dir, "kiln-generate"), art, "--json", "--temperature", "0",
                        "--max-tokens", "48", "--ignore-eos", "--threads", str(threads), "--prompt", prompt["text"],
                        *extra])
    if rc != 0:
        return None, last_line(err)
    return json.loads(out).get("ids") or [], None


PPL_REL_TOL = 0.005


def report_same_ids(checks, name, ids, want, what):
    """One check: `ids` equal `want` (what: where want comes from), else the first difference."""
    first = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), None)
    if first is None and len(ids) != len(want):
        first = min(len(ids), len(want))
    checks.report(name, first is None,
                  f"{len(want)} tokens equal {what}" if first is None else
                  f"token {first} differs: {ids[first:first + 4]} vs {what} {want[first:first + 4]}")


def check_greedy_exact(checks, bin_dir, art, ref, threads, prefix=(), extra=()):
    """One check per reference prompt: greedy ids equal greedy_48 exactly."""
    for k, prompt in enumerate(ref["prompts"]):
        ids, error = greedy_ids(bin_dir, art, prompt, threads, prefix, extra)
        if error:
            checks.report(f"greedy {k}", False, error)
            continue
        report_same_ids(checks, f"greedy {k}", ids, prompt["greedy_48"], "greedy_48")


def check_perplexity_close(checks, bin_dir, art, fixture, ref, threads, prefix=(), extra=()):
    """Perplexity within PPL_REL_TOL of the reference's valid_perplexity."""
    got, error = perplexity(bin_dir, art, fixture, ref, threads, prefix, extra)
    if error:
        checks.report("perplexity", False, error)
        return
    want = ref["valid_perplexity"]
    rel = abs(got["perplexity"] - want) / want
    checks.report("perplexity", rel <= PPL_REL_TOL,
                  f"{got['perplexity']:.4f} vs {want:.4f} ({rel * 100:.3f} %)")


def check_size(checks, name, art, report, f32_bytes, what):
    """The artifact holds the weights as --report's total counts them after `what` plus what the f32
    artifact holds besides its weights (code, norms), within 2 %: no f32 copy of a weight is left."""
    total = re.search(r"total: ([0-9.]+) MiB -> ([0-9.]+) MiB", report)
    if not total:
        checks.report(name, False, "--report printed no 'total: A MiB -> B MiB' line")
        return
    if not f32_bytes:
        return
    before, after = float(total.group(1)) * 2**20, float(total.group(2)) * 2**20
    overhead = max(f32_bytes - before, 0)
    size = os.path.getsize(art)
    checks.report(name, size <= (after + overhead) * 1.02,
                  f"artifact {size / 2**20:.2f} MiB; weights after {what} {after / 2**20:.2f} MiB "
                  f"+ the f32 artifact's {overhead / 2**20:.2f} MiB besides its weights")
