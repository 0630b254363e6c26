#!/usr/bin/env bash
# One command: set up this machine, build kiln, run every test (GoogleTest,
# lit, end-to-end, ONNX conformance) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# The runtime builds alone, without LLVM or MLIR on the include or link path.
KILN_BUILD_DIR=build-runtime-only bash scripts/build.sh -DKILN_RUNTIME_ONLY=ON \
  -DKILN_BUILD_TESTS=OFF
cd build
ctest --output-on-failure -j "${KILN_TEST_JOBS:-2}" "$@"
