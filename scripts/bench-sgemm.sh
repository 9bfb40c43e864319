#!/usr/bin/env bash
# Float32 GEMM figures: torch.matmul on the same shapes (scripts/bench_torch_matmul.py, in the
# pinned torch venv of scripts/python-env.sh; several GB the first time) and `lorta-bench sgemm`
# (lt_sgemm vs OpenBLAS, alternating in one run), one after the other.
#   LORTA_SKIP_TORCH=1   skip the torch.matmul table (no venv needed)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${LORTA_SKIP_TORCH:-0}" != 1 ]]; then
  source scripts/python-env.sh
  torch_venv
  "$TORCH_PY" scripts/bench_torch_matmul.py
fi
bash scripts/bench.sh sgemm
