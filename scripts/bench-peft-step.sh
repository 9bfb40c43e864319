#!/usr/bin/env bash
# One LoRA r=8 (q,k,v,o) training step of SmolLM2-135M-Instruct in PyTorch + PEFT, float32,
# 2 threads, 8 sequences × 128 random tokens: full-sequence causal-LM loss, loss on the last 2
# tokens only (full logits), and the same with logits only at the scored rows. Median of 5 steps
# after 2 warm-up steps, peak RSS; each variant in its own process (scripts/bench_peft_step.py).
# Then ours in the same run (`bash scripts/bench.sh llama-train`: LoRA and LoRTA r=8, loss on all
# tokens and on the last 2) and the ratios to PyTorch's full-loss step.
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
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"${NICE[@]}" "$TORCH_PY" scripts/bench_peft_step.py assets/smollm2 SmolLM2-135M-Instruct.Q4_1.gguf "$@" | tee "$WORK/torch.txt"
# Ours in the same run (lorta-bench llama-train: the same model, batch and adapters), and the
# ratios to PyTorch's full-loss step when that variant ran.
LORTA_NUM_THREADS="$BENCH_THREADS" "${NICE[@]}" bash scripts/bench.sh llama-train | tee "$WORK/ours.txt"
python3 - "$WORK/torch.txt" "$WORK/ours.txt" <<'PY'
import re, sys
torch, ours = open(sys.argv[1]).read(), open(sys.argv[2]).read()
m = re.search(r", full\s+step median ([0-9.]+) s.*?peak RSS ([0-9.]+) MB", torch)
if not m:
    sys.exit(0)   # the full-loss variant was not run
t, rss_t = float(m.group(1)), float(m.group(2))
print(f"ratios to PyTorch + PEFT's full-loss LoRA step ({t:.3f} s, peak RSS {rss_t:.0f} MB):")
for name in ["LoRA r=8", "LoRTA r=8"]:
    for loss in ["loss on all tokens", "loss on last 2"]:
        o = float(re.search(re.escape(name) + r" q,k,v,o.*?" + loss + r":\s+([0-9.]+) ms", ours).group(1)) / 1000
        print(f"  ours {name:9s} {loss:18s} {o:.3f} s ({o / t:.2f}x)")
rss = float(re.search(r"peak RSS ([0-9.]+) MB", ours).group(1))
print(f"  peak RSS {rss:.0f} MB ({rss / rss_t:.2f}x)")
PY
