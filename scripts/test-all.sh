#!/usr/bin/env bash
# One command: set up this machine, build kiln, run every test (GoogleTest,
# lit, end-to-end, ONNX conformance) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j "${KILN_TEST_JOBS:-2}" "$@"
