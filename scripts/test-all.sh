#!/usr/bin/env bash
# One command: set up this machine, build kiln (and its runtime for aarch64),
# run every test (GoogleTest, lit, end-to-end, ONNX conformance on x86-64 and
# on aarch64 under qemu-user) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# The runtime builds alone, without LLVM or MLIR on the include or link path.
KILN_BUILD_DIR=build-runtime-only bash scripts/build.sh -DKILN_RUNTIME_ONLY=ON \
  -DKILN_BUILD_TESTS=OFF
# The runtime cross-built for aarch64, run under qemu-user by the aarch64
# conformance and fixture tests.
bash scripts/build-aarch64.sh
cd build
ctest --output-on-failure -j "${KILN_TEST_JOBS:-2}" "$@"
