#!/usr/bin/python3
"""Writes test/e2e/calibration.txt: text sampled from the f32 fixtures themselves.

    python3 test/e2e/make_calibration_text.py [--bin-dir build/bin] [--samples 32] [--out FILE]

kiln-compile --calibration needs text like what the model will see. The
evaluation text (../shared/fixtures/valid.txt) must not be it, and the
fixtures' training corpus (Debian's fortunes) is not in the repository, so
the calibration text is the models' own: `--samples` continuations per
fixture (llama-s and gpt2-s, alternating) of short English openings, sampled
at temperature 1 for 256 tokens (through end-of-text ids, which become blank
lines) with fixed seeds. It is in the fixtures' distribution and shares no
text with valid.txt. Takes about three minutes on 2 cores; the output is
committed so that tests do not depend on sampling.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

OPENINGS = ["The", "A", "I", "You", "When", "If", "Why", "There", "My", "It", "What", "In", "He", "She", "We",
            "Never", "Always", "Life", "Love", "Time", "People", "Nothing", "Every", "One", "Do", "All", "Some",
            "Computers", "Money", "Today", "Man", "Women", "God", "Work", "Happiness", "Friends", "How", "Q:",
            "Most", "No", "Be", "To", "This", "Those", "After", "Before", "Once", "Good", "Bad", "Nobody"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin-dir", default=os.path.join(here, "..", "..", "build", "bin"))
    p.add_argument("--fixtures", default=os.path.join(here, "..", "..", "..", "shared", "fixtures"))
    p.add_argument("--samples", type=int, default=32, help="samples per fixture")
    p.add_argument("--out", default=os.path.join(here, "calibration.txt"))
    args = p.parse_args()
    texts = []
    with tempfile.TemporaryDirectory(prefix="kiln-calibration-text-") as work:
        arts = []
        for fixture in ("llama-s", "gpt2-s"):
            art = os.path.join(work, fixture + ".kiln")
            subprocess.run([os.path.join(args.bin_dir, "kiln-compile"),
                            os.path.join(args.fixtures, fixture, "model.onnx"), "-o", art], check=True)
            arts.append(art)
        for i in range(args.samples * len(arts)):
            art = arts[i % len(arts)]
            opening = OPENINGS[(i // len(arts)) % len(OPENINGS)]
            out = subprocess.run([os.path.join(args.bin_dir, "kiln-generate"), art, "--json", "--prompt", opening,
                                  "--temperature", "1.0", "--max-tokens", "256", "--ignore-eos",
                                  "--seed", str(1000 + i), "--threads", "2"],
                                 capture_output=True, text=True, check=True).stdout
            text = json.loads(out)["text"].replace("<|endoftext|>", "\n\n")
            texts.append((opening + " " + text.lstrip()).strip())
    with open(args.out, "w") as f:
        f.write("\n\n".join(texts) + "\n")
    print(f"wrote {args.out}: {len(texts)} samples, {sum(len(t) for t in texts)} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
