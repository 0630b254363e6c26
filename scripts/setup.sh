#!/usr/bin/env bash
# Installs every Debian package kiln needs. Idempotent: re-running only
# installs what is missing. Run as root (or with sudo available).
set -euo pipefail

PKGS=(
  # build
  cmake ninja-build ccache g++ git pkg-config
  # LLVM / MLIR 22 (see TOOLCHAIN.md: mlir-tblgen lives in mlir-22-tools)
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 lld-22
  # ONNX importer and the conformance data
  libonnx-dev libprotobuf-dev protobuf-compiler libonnx-testdata
  # artifact
  libflatbuffers-dev flatbuffers-compiler libxxhash-dev
  # tools
  libcli11-dev nlohmann-json3-dev libfmt-dev
  # tests
  libgtest-dev libgmock-dev googletest
  # python: test-model generators and the conformance runner
  python3 python3-onnx python3-numpy
)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all packages present"
fi
