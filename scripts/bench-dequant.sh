#!/usr/bin/env bash
# Throughput of the GGML block decoders (CKernels/src/quant_internal.h) per type and ISA variant.
# Usage: scripts/bench-dequant.sh      (needs clang: the Swift toolchain's, or any recent one)
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
clang -O3 -fno-math-errno -ICKernels/include -ICKernels/src scripts/bench_dequant.c -o "$out/bench_dequant"
"$out/bench_dequant"
