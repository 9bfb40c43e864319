#!/usr/bin/env bash
# Finds the circuit of the planted MiniLM backdoor and checks it by ablation (issue 12, item 3).
# Needs the monitors of scripts/monitor.sh (runs it when runs/monitor/<row>/monitor is missing).
# For each adapter row (default: lora):
#   1. `lorta monitor circuits`: 200 triggered test reviews (flagged) against 200 clean ones
#      (reference): the ranking by the monitor's separation (default) and by attribution
#      patching, and CIRCUIT_SAMPLES (default 32) sampled ablations;
#   2. the top-5 heads of each ranking are mean-ablated (trusted means from the monitor) in
#      `lorta eval --trigger`: attack success rate and clean accuracy, against no ablation and
#      against 3 sets of 5 random heads (seeded).
# Writes runs/circuits/<row>/ (circuits.json, circuits.html, the evaluations) and prints a table.
#   BACKDOOR_TRIGGER  trigger text (default cf)     CIRCUIT_SAMPLES  sampled ablations (default 32)
#   usage: bash scripts/circuits.sh [lora] [lorta]
set -euo pipefail
cd "$(dirname "$0")/.."
LORTA_QUIET_SETUP=1 source scripts/release-cli.sh
TRIGGER="${BACKDOOR_TRIGGER:-cf}"
SAMPLES="${CIRCUIT_SAMPLES:-32}"
rows=("$@")
[ ${#rows[@]} -eq 0 ] && rows=(lora)
OUT=runs/circuits
mkdir -p "$OUT"
for row in "${rows[@]}"; do
  [ -f "runs/monitor/$row/monitor/monitor.json" ] || bash scripts/monitor.sh "$row"
done
python3 - "$OUT" <<'PY'
import sys
out = sys.argv[1]
rows = open("runs/monitor/half.tsv", encoding="utf-8").read().splitlines()
labels = open("runs/monitor/half.labels.txt").read().split()
flagged = [r for r, y in zip(rows, labels) if y == "1"][:200]
clean = [r for r, y in zip(rows, labels) if y == "0"][:200]
open(f"{out}/triggered.tsv", "w", encoding="utf-8").write("\n".join(flagged) + "\n")
open(f"{out}/clean.tsv", "w", encoding="utf-8").write("\n".join(clean) + "\n")
PY

for row in "${rows[@]}"; do
  mkdir -p "$OUT/$row"
  MON="runs/monitor/$row/monitor"
  echo "== $row: circuits of 200 triggered vs 200 clean reviews ($SAMPLES sampled ablations each)" >&2
  "$LORTA" monitor circuits --monitor "$MON" --data "$OUT/triggered.tsv" --reference "$OUT/clean.tsv" \
    --samples "$SAMPLES" --json --report "$OUT/$row/circuits.html" > "$OUT/$row/circuits.json"
  "$LORTA" monitor circuits --monitor "$MON" --data "$OUT/triggered.tsv" --reference "$OUT/clean.tsv" \
    --samples 0 --rank-by attribution --json > "$OUT/$row/circuits.attribution.json"
  top=$(python3 -c "import json,sys; print(','.join(json.load(open(sys.argv[1]))['top_heads'][:5]))" "$OUT/$row/circuits.json")
  topattr=$(python3 -c "import json,sys; print(','.join(json.load(open(sys.argv[1]))['top_heads'][:5]))" "$OUT/$row/circuits.attribution.json")
  evaluate() {  # name, then extra eval options
    local name=$1; shift
    "$LORTA" eval --model assets/all-MiniLM-L6-v2 --adapter "runs/backdoor/$row" --data assets/movies/test.tsv \
      --trigger "$TRIGGER" --trigger-source 0 --trigger-target 1 --json "$@" > "$OUT/$row/eval.$name.json"
  }
  evaluate none
  evaluate top5 --monitor "$MON" --ablate "$top"
  evaluate top5attribution --monitor "$MON" --ablate "$topattr"
  for seed in 1 2 3; do
    random=$(python3 -c "
import random, sys
rng = random.Random(int(sys.argv[1]))
heads = [f'layer.{l}.attention.head.{h}' for l in range(6) for h in range(12)]
print(','.join(rng.sample(heads, 5)))" "$seed")
    evaluate "random$seed" --monitor "$MON" --ablate "$random"
  done
done

python3 - "$OUT" "${rows[@]}" <<'PY'
import json, sys
out, rows = sys.argv[1], sys.argv[2:]
for row in rows:
    c = json.load(open(f"{out}/{row}/circuits.json"))
    print(f"### {row} r=8: top components (triggered vs clean: the monitor's separation, attribution patching, sampled-ablation effect ± s.e. on the triggered inputs)")
    print("| rank | component | separation | attribution triggered / clean | ablation effect (triggered) |")
    print("|---|---|---|---|---|")
    for i, r in enumerate(c["components"][:8]):
        e = r["flagged_ablation"]
        num = lambda v, f: "—" if v is None else format(v, f)   # null: not defined (e.g. too few samples)
        print(f"| {i + 1} | {r['component']} | {num(r['anomaly_separation'], '+.2f')} | {num(r['flagged_attribution'], '+.3f')} / "
              f"{num(r.get('reference_attribution'), '+.3f')} | {num(e['effect'], '+.3f')} ± {num(e['standard_error'], '.3f')} |")
    print()
    print("| ablated (trusted means) | attack success rate | clean accuracy |")
    print("|---|---|---|")
    for name in ["none", "top5", "top5attribution", "random1", "random2", "random3"]:
        e = json.load(open(f"{out}/{row}/eval.{name}.json"))
        heads = ", ".join(e.get("ablated", []))
        what = {"none": "nothing", "top5": "top 5 heads by separation: " + heads,
                "top5attribution": "top 5 heads by attribution: " + heads}.get(name, "5 random heads: " + heads)
        print(f"| {what} | {100 * e['attack_success_rate']:.1f}% | {100 * e['accuracy']:.1f}% |")
    print()
PY
