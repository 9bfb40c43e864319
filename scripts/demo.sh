#!/usr/bin/env bash
# Demo run by scripts/run.sh: merges the PEFT LoRA adapter of the test fixtures into its tiny
# BERT-shaped base checkpoint, then takes it out again, printing the JSON summaries.
# Usage: scripts/demo.sh PATH_TO_LORTA
set -euo pipefail
cd "$(dirname "$0")/.."
LORTA="${1:?usage: demo.sh PATH_TO_LORTA}"
fx=Tests/LoRTATests/Fixtures/merge
out="$(mktemp -d /tmp/lorta-demo.XXXXXX)"
trap 'rm -rf "$out"' EXIT
echo "== lorta merge (PEFT LoRA adapter, r=2, targets query,value,attention.output.dense) =="
"$LORTA" merge --base "$fx/base.safetensors" --adapter "$fx/adapter" --out "$out/merged.safetensors" --json
echo "== lorta merge --unmerge =="
"$LORTA" merge --base "$out/merged.safetensors" --adapter "$fx/adapter" --out "$out/restored.safetensors" --unmerge
