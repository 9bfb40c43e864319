#!/usr/bin/env bash
# The causal-LM quality table on the main job's fixed recipe: SmolLM2-135M-Instruct (GGUF Q4_1),
# the movie-review chat task (scripts/make-sentiment-chat.py), 40 steps of 8 examples, AdamW
# lr 5e-3 constant, weight decay 0.01, seed 0; greedy answers on 100 balanced test reviews.
# Rows (default: all):
#   base       the model without adapter
#   lorta8     LoRTA r=8,  alpha 16,  q,k,v,o
#   lorta32    LoRTA r=32, alpha 64,  q,k,v,o (same scale alpha/r = 2)
#   lora8      LoRA  r=8,  alpha 16,  q,k,v,o
#   lora8-all  LoRA  r=8,  alpha 16,  all seven projections
#   bash scripts/causal-quality.sh [rows...]
# Each row writes runs/causal-quality/<row>/ and <row>.json (the `lorta eval --generate --json`
# summary, with the adapter's parameter count); the table is printed at the end and written to
# runs/causal-quality/table.md. About 6-8 minutes per adapter row on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
LORTA_QUIET_SETUP=1 source scripts/release-cli.sh
SMOL=assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
OUT=runs/causal-quality
mkdir -p "$OUT"
python3 scripts/make-sentiment-chat.py assets/movies/train.tsv "$OUT/train.jsonl" >/dev/null
python3 scripts/make-sentiment-chat.py assets/movies/test.tsv "$OUT/test.jsonl" --limit 100 --balanced >/dev/null
rows=("$@")
[ ${#rows[@]} -eq 0 ] && rows=(base lorta8 lorta32 lora8 lora8-all)
qkvo=q_proj,k_proj,v_proj,o_proj
for row in "${rows[@]}"; do
  case "$row" in
    base)      args=() ;;
    lorta8)    args=(--adapter lorta --rank 8 --alpha 16 --targets "$qkvo") ;;
    lorta32)   args=(--adapter lorta --rank 32 --alpha 64 --targets "$qkvo") ;;
    lora8)     args=(--adapter lora --rank 8 --alpha 16 --targets "$qkvo") ;;
    lora8-all) args=(--adapter lora --rank 8 --alpha 16 --targets "$qkvo,gate_proj,up_proj,down_proj") ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
  echo "== $row" >&2
  adapter=()
  if [ "$row" != base ]; then
    "$LORTA" train --model "$SMOL" --train "$OUT/train.jsonl" "${args[@]}" --steps 40 --batch-size 8 --lr 5e-3 \
      --seed 0 --out "$OUT/$row" --overwrite --json --quiet > "$OUT/$row.train.json"
    adapter=(--adapter "$OUT/$row")
  fi
  "$LORTA" eval --model "$SMOL" "${adapter[@]}" --data "$OUT/test.jsonl" --generate --json > "$OUT/$row.json"
done
python3 - "$OUT" "${rows[@]}" <<'PY'
import json, os, sys
out, rows = sys.argv[1], sys.argv[2:]
lines = ["| row | greedy answers correct | response loss | adapter parameters | median s/step |", "|---|---|---|---|---|"]
for row in rows:
    e = json.load(open(os.path.join(out, row + ".json")))
    t = json.load(open(os.path.join(out, row + ".train.json"))) if row != "base" else {}
    lines.append(f"| {row} | {100 * e['accuracy']:.1f}% ({e['correct']}/{e['answers']}) | {e['loss']:.4f} | "
                 f"{t.get('adapter_parameters', 0):,} | {t.get('median_step_seconds', 0):.2f} |")
table = "\n".join(lines)
print(table)
open(os.path.join(out, "table.md"), "w").write(table + "\n")
PY
