#!/usr/bin/env bash
# The decoder kernels (RMSNorm, SwiGLU, RoPE, causal GQA attention with a cache) against
# transformers' float32 Llama code and a float64 reference, on random SmolLM2-shaped inputs:
# builds the C kernels into a shared library and calls them from Python (ctypes).
# Uses the pinned torch venv (scripts/python-env.sh; several GB the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
torch_venv
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
for f in CKernels/src/*.c; do
  clang -c -O3 -fopenmp -fno-math-errno -fPIC -ICKernels/include $(pkg-config --cflags openblas) "$f" -o "$OUT/$(basename "$f" .c).o"
done
clang -shared "$OUT"/*.o -o "$OUT/libltkernels.so" $(pkg-config --libs openblas) -llapacke -l:libomp5.so -lm
"$TORCH_PY" scripts/decoder_vs_torch.py "$OUT/libltkernels.so"
