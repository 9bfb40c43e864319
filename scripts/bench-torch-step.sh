#!/usr/bin/env bash
# One LoRA r=8 training step on all-MiniLM-L6-v2 (B=32 × 64 tokens, 2 threads): PyTorch + PEFT
# (scripts/bench_torch_step.py) and ours (lorta-bench bert-train), in one run.
# Uses the pinned torch venv (scripts/python-env.sh: torch, transformers, peft; several GB the
# first time).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-assets.sh >/dev/null
source scripts/python-env.sh
torch_venv
"$TORCH_PY" scripts/bench_torch_step.py assets/all-MiniLM-L6-v2 assets/movies/train.tsv
bash scripts/bench.sh bert-train
