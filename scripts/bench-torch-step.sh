#!/usr/bin/env bash
# One LoRA r=8 training step on all-MiniLM-L6-v2 (B=32 × 64 tokens, 2 threads): PyTorch + PEFT
# (scripts/bench_torch_step.py) and ours (lorta-bench bert-train), in one run.
# Installs torch, transformers and peft from PyPI into a virtual environment (several GB) the
# first time: TORCH_VENV (default /tmp/lorta-torch-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-assets.sh >/dev/null
VENV="${TORCH_VENV:-/tmp/lorta-torch-venv}"
if ! "$VENV/bin/python" -c "import torch, transformers, peft" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch transformers peft
fi
"$VENV/bin/python" scripts/bench_torch_step.py assets/all-MiniLM-L6-v2 assets/movies/train.tsv
bash scripts/bench.sh bert-train
