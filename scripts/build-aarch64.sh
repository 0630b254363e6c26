#!/usr/bin/env bash
# Cross-builds the kiln runtime and its tools (kiln-run, kiln-generate,
# kiln-perplexity, kiln-serve) for aarch64 Linux into build-aarch64/, with
# Debian's gcc-aarch64-linux-gnu and cmake/toolchains/aarch64-linux-gnu.cmake.
# No LLVM or MLIR: artifacts come from the x86-64 kiln-compile with
# --target=aarch64-generic or aarch64-neon-dotprod. Needs
# `scripts/setup.sh` (which installs the arm64 libraries) first.
# Usage: scripts/build-aarch64.sh [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KILN_AARCH64_BUILD_DIR:-build-aarch64}
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  cmake -G Ninja -S . -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
    -DKILN_RUNTIME_ONLY=ON -DKILN_BUILD_TESTS=OFF \
    "$@"
fi
cmake --build "$BUILD_DIR" -j "${KILN_JOBS:-$(nproc)}" \
  --target kiln-run kiln-generate kiln-perplexity kiln-serve
