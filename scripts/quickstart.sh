#!/usr/bin/env bash
# One command: set up this machine, build kiln, compile the bundled example
# model for this machine's CPU, run it and print its outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
mkdir -p build/example
/usr/bin/python3 python/make_example.py build/example
./build/bin/kiln-compile build/example/mlp.onnx -o build/example/mlp.kiln --verbose
./build/bin/kiln-run build/example/mlp.kiln --input x=build/example/x.npy \
  --output-dir build/example/out
/usr/bin/python3 - <<'PY'
import numpy as np
y = np.load("build/example/out/y.npy")
ref = np.load("build/example/y_ref.npy")
print("y =", np.array2string(y, precision=4))
print("max |kiln - numpy| =", float(np.abs(y - ref).max()))
PY
