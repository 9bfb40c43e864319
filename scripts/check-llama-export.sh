#!/usr/bin/env bash
# Checks LlamaModel.export on SmolLM2-135M-Instruct against transformers and gguf-py: a Swift
# test (LlamaExportTests.exportSmolLM2ForThePythonCheck) writes the Q4_1 asset as a Hugging Face
# float32 directory, F32 and Q8_0 GGUF files and an F32 GGUF with one replaced matrix into
# OUT (default /tmp/lorta-export-check, ~1.6 GB), then scripts/check_llama_export.py compares
# them with the source (weights bit for bit, logits, tokenizer ids, the replaced matrix).
# Installs torch/transformers/gguf into TORCH_VENV the first time (scripts/python-env.sh).
# A few minutes once the environment exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
OUT="${1:-/tmp/lorta-export-check}"
bash scripts/fetch-assets.sh >/dev/null
source scripts/python-env.sh
torch_venv
source scripts/blas-env.sh
mkdir -p "$OUT"
swift build --build-tests
LORTA_EXPORT_OUT="$OUT" swift test --skip-build --filter exportSmolLM2ForThePythonCheck
"$TORCH_PY" scripts/check_llama_export.py "$OUT" assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
