#!/usr/bin/env bash
# Checks the Hugging Face (safetensors) loader on the real model: writes SmolLM2-135M-Instruct
# as a Hugging Face directory with transformers (`save_pretrained`, float32, ~540 MB, into
# assets/smollm2-hf/ unless it exists; scripts/fixtures/check_llama_hf_dir.py), then runs the
# test that compares our tokenization, logits and greedy continuations from that directory with
# the transformers fixtures (LlamaModelTests.smolLM2HuggingFaceDirectoryMatchesTransformers).
# Installs torch/transformers/gguf into TORCH_VENV the first time (scripts/python-env.sh,
# several GB). About 3 minutes once the environment exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
bash scripts/fetch-assets.sh >/dev/null
source scripts/python-env.sh
torch_venv
OUT=assets/smollm2-hf
if [[ ! -f "$OUT/model.safetensors" ]]; then
  "$TORCH_PY" scripts/fixtures/check_llama_hf_dir.py "$OUT"
fi
source scripts/blas-env.sh
swift build --build-tests
LORTA_SMOLLM2_HF="$(pwd)/$OUT" swift test --skip-build --no-parallel --filter smolLM2HuggingFaceDirectoryMatchesTransformers
