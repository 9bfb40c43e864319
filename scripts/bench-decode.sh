#!/usr/bin/env bash
# Greedy decoding of SmolLM2-135M-Instruct (Q4_1 GGUF) with the two decode arithmetics of
# quantized weights, in one run: LORTA_DECODE=float (the default: exactly the dequantized
# weights) and LORTA_DECODE=int8 (activations rounded to int8 per block of 32, integer dot
# products: llama.cpp's arithmetic). Rounds alternate the two; prints decode tokens/s per round,
# the medians and their ratio, and how many of the greedy tokens the two agree on before they
# first differ (the rounding changes the logits slightly, so long greedy runs part eventually).
#
#   bash scripts/bench-decode.sh [ROUNDS=3] [TOKENS=128]
#   LORTA=path/to/lorta bash scripts/bench-decode.sh    another CLI (default: release build here)
#   LORTA_NUM_THREADS=1 bash scripts/bench-decode.sh    another thread count (default: all cores)
#
# Prompt: scripts/bench-llm-prompt.txt (128 tokens), as scripts/bench-llm.sh. About 1 minute
# after the release build. Figures from a shared machine: compare the ratio of one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
ROUNDS="${1:-3}"
TOKENS="${2:-128}"
bash scripts/fetch-assets.sh >/dev/null
if [[ -z "${LORTA:-}" ]]; then
  # shellcheck disable=SC1091
  source scripts/blas-env.sh
  swift build -c release --product lorta >/dev/null
  LORTA="$(swift build -c release --show-bin-path)/lorta"
fi
MODEL=assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  for mode in float int8; do
    LORTA_DECODE=$mode "$LORTA" generate --model "$MODEL" --prompt-file scripts/bench-llm-prompt.txt \
      --max-tokens "$TOKENS" --json >"$WORK/$mode-$r.json" 2>/dev/null
  done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK" "$ROUNDS" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
runs = {m: [json.load(open(f"{work}/{m}-{r}.json")) for r in range(1, rounds + 1)] for m in ("float", "int8")}
speed = {m: [o["tokens_per_second"] for o in runs[m]] for m in runs}
for m in runs:
    print(f"{m:<6} decode tokens/s per round: " + ", ".join(f"{v:.1f}" for v in speed[m])
          + f"   median {statistics.median(speed[m]):.1f}")
print(f"int8 / float (medians): {statistics.median(speed['int8']) / statistics.median(speed['float']):.2f}x")
a, b = runs["float"][0]["tokens"], runs["int8"][0]["tokens"]
same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"greedy tokens identical for the first {same} of {len(a)} (float) / {len(b)} (int8)")
PY
