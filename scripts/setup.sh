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
  # kiln-serve: Boost.Beast/Asio (header-only) for HTTP
  libboost1.81-dev
  # LLM tokenizers: SentencePiece, and PCRE2 for byte-level BPE pre-tokenizer regexes
  libsentencepiece-dev libpcre2-dev
  # tests
  libgtest-dev libgmock-dev googletest
  # kiln-serve tests: promtool checks the /metrics exposition
  prometheus
  # microbenchmarks (bench/ukernels_bench.cc)
  libbenchmark-dev
  # python: test-model generators and the conformance runner
  python3 python3-onnx python3-numpy
  # LLM model builders (python/build_llm.py); without OpenBLAS torch uses the reference BLAS
  python3-torch libopenblas0-pthread
  # the fixtures' widen.py (llama-wide, the bandwidth-bound LLM) encodes with SentencePiece
  python3-sentencepiece
  # vulkan: headers (the driver dlopens libvulkan.so.1), the loader, Mesa's
  # lavapipe (a Vulkan 1.3 device on the CPU, for CI), spirv-val / spirv-as
  # (lit tests, the driver's test kernels), vulkaninfo to see the devices
  libvulkan-dev libvulkan1 mesa-vulkan-drivers spirv-tools vulkan-tools
  # aarch64: the runtime's cross compiler, and qemu-user to run it here
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user
)
# The aarch64 runtime's libraries, from Debian's arm64 multiarch packages
# (cmake/toolchains/aarch64-linux-gnu.cmake). libonnx-dev:arm64 cannot sit
# next to the host's (both ship /usr/lib/libonnxifi.so), so only the library:
# the headers are the host's.
ARM64_PKGS=(libprotobuf-dev:arm64 libonnx1:arm64 libpcre2-dev:arm64 libxxhash-dev:arm64)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: adding the arm64 architecture (aarch64 cross build)"
  $SUDO dpkg --add-architecture arm64
  missing+=("${ARM64_PKGS[@]}")
else
  for p in "${ARM64_PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
fi

if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all packages present"
fi

# libsentencepiece0 is not multiarch in Debian 12: installing the arm64 one
# would remove the host's. It is unpacked, not installed, into
# KILN_AARCH64_LIBS (the toolchain file's default), with the -dev symlink.
AARCH64_LIBS=${KILN_AARCH64_LIBS:-${HOME:-/root}/.cache/kiln/aarch64-libs}
if [[ ! -e "$AARCH64_LIBS/usr/lib/aarch64-linux-gnu/libsentencepiece.so" ]]; then
  echo "setup: unpacking libsentencepiece0:arm64 into $AARCH64_LIBS"
  deb_dir=$(mktemp -d)
  (cd "$deb_dir" && apt-get download -qq libsentencepiece0:arm64)
  mkdir -p "$AARCH64_LIBS"
  dpkg-deb -x "$deb_dir"/libsentencepiece0_*_arm64.deb "$AARCH64_LIBS"
  ln -sf libsentencepiece.so.0 "$AARCH64_LIBS/usr/lib/aarch64-linux-gnu/libsentencepiece.so"
  rm -rf "$deb_dir"
fi

# The LLM benchmark's ONNX Runtime baseline (bench/package.json). Node and npm
# may come from another repository (nodesource bundles npm): install Debian's
# only when there is no npm at all.
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bench"
if [[ -f "$BENCH_DIR/package-lock.json" && ! -d "$BENCH_DIR/node_modules/onnxruntime-node" ]]; then
  echo "setup: npm ci in bench/ (onnxruntime-node)"
  # ONNXRUNTIME_NODE_INSTALL=skip: the postinstall would try to download CUDA libraries.
  # Not fatal: only the benchmark (and one optional cross-check) needs it.
  (cd "$BENCH_DIR" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error) ||
    echo "setup: warning: npm ci failed in bench/; the ONNX Runtime baseline is unavailable" >&2
fi
SERVE_TEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/test/serve"
if [[ -f "$SERVE_TEST_DIR/package-lock.json" && ! -d "$SERVE_TEST_DIR/node_modules/openai" ]]; then
  echo "setup: npm ci in test/serve/ (openai)"
  # Not fatal here: only the kiln-serve end-to-end tests need it (they fail, naming this step).
  (cd "$SERVE_TEST_DIR" && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "setup: warning: npm ci failed in test/serve/; the e2e-serve-openai test will fail" >&2
fi
