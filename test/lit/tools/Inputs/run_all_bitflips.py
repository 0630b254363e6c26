"""Runs kiln-run on every flip_*.kiln in DIR with the given inputs: each run
must end with exit code 1 and a one-line error, or (for a flip in padding
that no checksum covers) succeed; never a signal, never a multi-line error."""
import glob
import os
import subprocess
import sys

d = sys.argv[1]
files = sorted(glob.glob(os.path.join(d, "flip_*.kiln")))
bad = []
for f in files:
    args = ["kiln-run", f, "--output-dir", os.path.join(d, "out")]
    for i in sys.argv[2:]:
        args += ["--input", i]
    p = subprocess.run(args, capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    if p.returncode == 0:
        continue
    if p.returncode != 1 or len(lines) != 1 or "error" not in lines[0]:
        bad.append((f, p.returncode, p.stderr.strip()[:200]))
for b in bad:
    print("BAD", *b)
print(f"{len(files) - len(bad)} of {len(files)} corrupted artifacts handled cleanly")
sys.exit(1 if bad else 0)
