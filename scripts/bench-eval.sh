#!/usr/bin/env bash
# `lorta eval` throughput against the same forward in PyTorch + PEFT, in one run (2 threads):
# all-MiniLM-L6-v2 with a LoRA r=8 adapter on q,k,v,o (unmerged in both) and a linear head over
# mean pooling, the movie-review test set (2,114 examples), batches of 64 padded to their longest
# row (at most 64 tokens), tokenization included. Alternates PyTorch and ours, ROUNDS each
# (default 3), and prints the medians and their ratio.
#
#   bash scripts/bench-eval.sh [ROUNDS]
#
# Uses the pinned torch venv (scripts/python-env.sh; several GB the first time) and a release
# build of lorta. The machine is shared: the load average before and after is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
bash scripts/install-deps.sh >/dev/null
bash scripts/fetch-assets.sh >/dev/null
source scripts/blas-env.sh
source scripts/python-env.sh
torch_venv
swift build -c release --product lorta 2>&1 | tail -1
LORTA="$(swift build -c release --show-bin-path)/lorta"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2 TQDM_DISABLE=1
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
MODEL=assets/all-MiniLM-L6-v2 DATA=assets/movies/test.tsv
# An adapter directory for lorta eval: one training step makes the LoRA files and the head.
"$LORTA" train --model "$MODEL" --train assets/movies/train.tsv --adapter lora --rank 8 --alpha 16 \
  --steps 1 --batch-size 8 --threads 2 --out "$WORK/run" >"$WORK/train.log" 2>&1 || { cat "$WORK/train.log"; exit 1; }
echo "before: load average $(cut -d' ' -f1-3 /proc/loadavg)"
ours=()
for r in $(seq "$ROUNDS"); do
  "$TORCH_PY" -W ignore scripts/bench_eval_torch.py "$MODEL" "$DATA" 1 | tail -1 | tee "$WORK/torch.$r"
  rate=$("$LORTA" eval --model "$MODEL" --adapter "$WORK/run" --data "$DATA" --threads 2 --json \
         | "$TORCH_PY" -c 'import json, sys; print("%.1f" % json.load(sys.stdin)["examples_per_second"])')
  echo "ours round $r: $rate examples/s"
  ours+=("$rate")
done
echo "after:  load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$TORCH_PY" - "$WORK" "$ROUNDS" "${ours[@]}" <<'PY'
import re, statistics, sys
work, rounds, ours = sys.argv[1], int(sys.argv[2]), [float(x) for x in sys.argv[3:]]
torch = [float(re.search(r"median ([0-9.]+) examples/s", open(f"{work}/torch.{r}").read()).group(1))
         for r in range(1, rounds + 1)]
t, o = statistics.median(torch), statistics.median(ours)
print(f"lorta eval, MiniLM + LoRA r=8, movie test set: ours {o:.1f} examples/s, PyTorch + PEFT {t:.1f} "
      f"examples/s: {o / t:.2f}x (target >= 1.5x)")
PY
