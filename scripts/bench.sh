#!/usr/bin/env bash
# Benchmarks (release build of the Benchmarks/ package). Usage: scripts/bench.sh [all|gemm-core|lora|lorta|lorta-merge|bert|bert-train|decoder-attention|quant-matmul|sgemm|llama|llama-train]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
source scripts/blas-env.sh
cd Benchmarks
swift build -c release --product lorta-bench 2>&1 | tail -1
"$(swift build -c release --show-bin-path)/lorta-bench" "${1:-all}"
