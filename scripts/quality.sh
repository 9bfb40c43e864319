#!/usr/bin/env bash
# The quality table of the training issue, on its fixed recipe: all-MiniLM-L6-v2, movie
# sentences (80/20 split), 300 steps, batch 32, every sequence padded to 64 tokens, AdamW lr 1e-3
# constant, weight decay 0, mean pooling + linear head, Q,K,V,O of all 6 layers, LoRTA C factors
# initialised to ones. Rows: LoRA r=8 (alpha 16), LoRTA r=8 (alpha 16), head alone, then LoRTA at
# ranks 32 and 64 (alpha = 2r, the same scale alpha/r = 2 as r=8).
#   bash scripts/quality.sh [rows...]     rows: lora lorta head lorta32 lorta64 (default: all)
#   QUALITY_SEED=1 bash scripts/quality.sh lora     another seed (init + shuffling); rows get a -s1 suffix
# Each run writes runs/quality/<row>/ (adapter, head, checkpoint, training_summary.json); the
# table is printed at the end and written to runs/quality/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
LORTA_QUIET_SETUP=1 source scripts/release-cli.sh
STEPS="${QUALITY_STEPS:-300}"
SEED="${QUALITY_SEED:-0}"
SUFFIX=""; [ "$SEED" != 0 ] && SUFFIX="-s$SEED"
OUT=runs/quality
mkdir -p "$OUT"
rows=("$@")
[ ${#rows[@]} -eq 0 ] && rows=(lora lorta head lorta32 lorta64)
for row in "${rows[@]}"; do
  case "$row" in
    lora)    args=(--adapter lora --rank 8 --alpha 16) ;;
    lorta)   args=(--adapter lorta --rank 8 --alpha 16) ;;
    head)    args=(--adapter none) ;;
    lorta32) args=(--adapter lorta --rank 32 --alpha 64) ;;
    lorta64) args=(--adapter lorta --rank 64 --alpha 128) ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
  echo "== $row" >&2
  "$LORTA" train --model assets/all-MiniLM-L6-v2 --train assets/movies/train.tsv --eval assets/movies/test.tsv \
    "${args[@]}" --targets query,key,value,output --lorta-c-init 1 --steps "$STEPS" --batch-size 32 \
    --max-length 64 --padding fixed --lr 1e-3 --schedule constant --weight-decay 0 --seed "$SEED" \
    --out "$OUT/$row$SUFFIX" --overwrite --json > "$OUT/$row$SUFFIX.json"
done
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
lines = ["| row | test accuracy | trainable parameters (adapter + head) | median s/step | peak RSS MB | final loss |",
         "|---|---|---|---|---|---|"]
names = sorted(f[:-5] for f in os.listdir(out) if f.endswith(".json"))
order = ["lora", "lorta", "head", "lorta32", "lorta64"]
for row in sorted(names, key=lambda n: (order.index(n.split("-")[0]) if n.split("-")[0] in order else 99, n)):
    p = os.path.join(out, row + ".json")
    s = json.load(open(p))
    lines.append(f"| {row} | {100*s['eval_accuracy']:.2f}% | {s['adapter_parameters']} + {s['trainable_parameters']-s['adapter_parameters']} "
                 f"| {s['median_step_seconds']:.3f} | {s['peak_rss_mb']:.0f} | {s['final_loss']:.4f} |")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "table.md"), "w").write(text + "\n")
PY
