#!/usr/bin/env bash
# One LoRA r=8 (q,k,v,o) training step of SmolLM2-135M-Instruct in PyTorch + PEFT, float32,
# 2 threads, 8 sequences × 128 random tokens: full-sequence causal-LM loss, loss on the last 2
# tokens only (full logits), and the same with logits only at the scored rows. Median of 5 steps
# after 2 warm-up steps, peak RSS; each variant in its own process (scripts/bench_peft_step.py).
#
#   scripts/bench-peft-step.sh                       all three variants (~3-5 min on an idle machine)
#   scripts/bench-peft-step.sh --json out.json       also write the figures as JSON
#   scripts/bench-peft-step.sh --variants full       one variant
#   BENCH_THREADS=1 scripts/bench-peft-step.sh       another thread count (default 2)
#   BENCH_NICE=-10 scripts/bench-peft-step.sh        run under `nice -n -10` (root only)
#
# The machine is shared: with other processes on the 2 cores the step slows down many times, so
# the load average and CPU pressure before and after are printed.
# Uses the pinned torch venv (scripts/python-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-assets.sh >/dev/null
source scripts/python-env.sh
torch_venv
export BENCH_THREADS="${BENCH_THREADS:-2}"
export OMP_NUM_THREADS="$BENCH_THREADS" OPENBLAS_NUM_THREADS="$BENCH_THREADS" MKL_NUM_THREADS="$BENCH_THREADS" TQDM_DISABLE=1
NICE=()
[[ -n "${BENCH_NICE:-}" ]] && NICE=(nice -n "$BENCH_NICE")
"${NICE[@]}" "$TORCH_PY" scripts/bench_peft_step.py assets/smollm2 SmolLM2-135M-Instruct.Q4_1.gguf "$@"
