#!/usr/bin/env bash
# The decoder kernels (RMSNorm, SwiGLU, RoPE, causal GQA attention with a cache) against
# transformers' float32 Llama code and a float64 reference, on random SmolLM2-shaped inputs:
# builds the C kernels into a shared library and calls them from Python (ctypes).
# Installs torch and transformers into TORCH_VENV (default /tmp/lorta-torch-venv) the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TORCH_VENV:-/tmp/lorta-torch-venv}"
if ! "$VENV/bin/python" -c "import torch, transformers, numpy" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch transformers numpy
fi
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
for f in CKernels/src/*.c; do
  clang -c -O3 -fopenmp -fno-math-errno -fPIC -ICKernels/include $(pkg-config --cflags openblas) "$f" -o "$OUT/$(basename "$f" .c).o"
done
clang -shared "$OUT"/*.o -o "$OUT/libltkernels.so" $(pkg-config --libs openblas) -llapacke -l:libomp5.so -lm
"$VENV/bin/python" scripts/decoder_vs_torch.py "$OUT/libltkernels.so"
