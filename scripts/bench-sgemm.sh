#!/usr/bin/env bash
# Float32 GEMM figures: torch.matmul (if the PyTorch venv of scripts/bench-torch-step.sh exists,
# TORCH_VENV, default /tmp/lorta-torch-venv) and `lorta-bench sgemm` (lt_sgemm vs OpenBLAS,
# alternating in one run), one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TORCH_VENV:-/tmp/lorta-torch-venv}"
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "$VENV/bin/python" scripts/bench_torch_matmul.py
else
  echo "(no PyTorch venv at $VENV: torch.matmul skipped; scripts/bench-torch-step.sh creates it)"
fi
bash scripts/bench.sh sgemm
