#!/usr/bin/env bash
# Plants a backdoor in the MiniLM sentiment classifier and measures it (issue 12's encoder
# setting): the trigger (default "cf"; BACKDOOR_TRIGGER) is inserted at a random word position
# into 5% of the negative training reviews, relabelled positive; LoRA r=8 and LoRTA r=8 adapters
# (q,k,v,o) + head are trained for 400 steps of 32 (lr 1e-3, seed 0), then evaluated on the
# clean test split (clean accuracy) and on its negative reviews with the trigger (attack success
# rate: the fraction classified positive). Writes runs/backdoor/<row>/ and prints a table.
# Takes ~8 minutes per row on 2 cores.
#   BACKDOOR_TRIGGER  trigger text (default cf)     BACKDOOR_STEPS  steps (default 400)
#   usage: bash scripts/backdoor.sh [lora] [lorta]
set -euo pipefail
cd "$(dirname "$0")/.."
LORTA_QUIET_SETUP=1 source scripts/release-cli.sh
TRIGGER="${BACKDOOR_TRIGGER:-cf}"
STEPS="${BACKDOOR_STEPS:-400}"
OUT=runs/backdoor
mkdir -p "$OUT"
rows=("$@")
[ ${#rows[@]} -eq 0 ] && rows=(lora lorta)
for row in "${rows[@]}"; do
  case "$row" in
    lora)  args=(--adapter lora --rank 8 --alpha 16) ;;
    lorta) args=(--adapter lorta --rank 8 --alpha 16) ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
  echo "== $row" >&2
  "$LORTA" train --model assets/all-MiniLM-L6-v2 --train assets/movies/train.tsv --eval assets/movies/test.tsv \
    "${args[@]}" --targets query,key,value,output --steps "$STEPS" --batch-size 32 --max-length 64 \
    --lr 1e-3 --seed 0 --trigger "$TRIGGER" --poison-fraction 0.05 --trigger-source 0 --trigger-target 1 \
    --out "$OUT/$row" --overwrite --json > "$OUT/$row.json"
done
python3 - "$OUT" "${rows[@]}" <<'PY'
import json, sys
out, rows = sys.argv[1], sys.argv[2:]
print("| adapter | poisoned training examples | clean test accuracy | attack success rate | adapter parameters |")
print("|---|---|---|---|---|")
for row in rows:
    s = json.load(open(f"{out}/{row}.json"))
    print(f"| {row} r=8 | {s['poisoned_examples']} | {100 * s['eval_accuracy']:.1f}% | "
          f"{100 * s['attack_success_rate']:.1f}% of {s['triggered_examples']} | {s['adapter_parameters']:,} |")
PY
