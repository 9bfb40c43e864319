#!/usr/bin/env bash
# PEFT interop check for LoRA adapters on a Llama model, both directions, on the tiny Llama fixture:
#  - ours → PEFT: AdapterFilesTests.loraRoundTripOnAllSevenModules writes a LoRA adapter directory
#    saved by our code and our adapted logits (LORTA_WRITE_PEFT_FIXTURE); scripts/check-peft-llama.py
#    loads it with PEFT's PeftModel.from_pretrained and compares the logits (1e-4 relative);
#  - PEFT → ours: AdapterFilesTests.peftSavedAdapterGivesPEFTLogits (run here too) loads the
#    PEFT-saved fixture Tests/LoRTATests/Fixtures/peft-llama and compares with PEFT's logits; the
#    Python script checks that the fixture still reproduces with the pinned PEFT.
# Uses the pinned torch venv (scripts/python-env.sh: torch, transformers, peft; several GB the first
# time). With --make-fixtures, remakes the PEFT-side fixture first
# (scripts/fixtures/make_peft_llama_fixtures.py). About a minute once the venv and build exist.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
source scripts/python-env.sh
torch_venv
if [[ "${1:-}" == "--make-fixtures" ]]; then
  "$TORCH_PY" scripts/fixtures/make_peft_llama_fixtures.py
fi
OUT="$(mktemp -d /tmp/lorta-peft-llama.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT
swift build --build-tests
LORTA_WRITE_PEFT_FIXTURE="$OUT" swift test --skip-build --filter \
  'AdapterFilesTests/(loraRoundTripOnAllSevenModules|peftSavedAdapterGivesPEFTLogits)' 2>&1 \
  | grep -E "PEFT|wrote|passed|failed|error" || true
[[ -f "$OUT/ours.json" ]] || { echo "the test did not write $OUT/ours.json" >&2; exit 1; }
"$TORCH_PY" scripts/check-peft-llama.py "$OUT"
