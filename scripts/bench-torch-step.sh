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
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"; }
echo "before: $(load)"
"$TORCH_PY" scripts/bench_torch_step.py assets/all-MiniLM-L6-v2 assets/movies/train.tsv | tee "$WORK/torch.txt"
bash scripts/bench.sh bert-train | tee "$WORK/ours.txt"
echo "after: $(load)"
# The ratios of this run: ours (forward + backward) over PyTorch's step, on each GEMM backend.
python3 - "$WORK/torch.txt" "$WORK/ours.txt" <<'PY'
import re, sys
torch = open(sys.argv[1]).read()
t = float(re.search(r"step median ([0-9.]+) s", torch).group(1))
rss_t = float(re.search(r"peak RSS ([0-9.]+) MB", torch).group(1))
ours = open(sys.argv[2]).read()
print(f"ratios to PyTorch's LoRA r=8 step ({t:.3f} s), GEMM lorta / frozen weights packed / GEMM openblas:")
for name in ["LoRA r=8 (", "LoRTA r=8 ("]:
    m = re.search(re.escape(name) + r".*?, 64 tokens\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+) ms", ours)
    cols = [float(m.group(k)) / 1000 for k in (1, 2, 3)]
    print(f"  {name[:-2]:10s} " + " / ".join(f"{c:.3f} s ({c / t:.2f}x)" for c in cols))
rss = float(re.search(r"peak RSS \(median per configuration\): lorta ([0-9.]+) MB", ours).group(1))
print(f"  peak RSS   {rss:.0f} MB vs {rss_t:.0f} MB ({rss / rss_t:.2f}x)")
PY
