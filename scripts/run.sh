#!/usr/bin/env bash
# The main job (see README): installs system packages and the pinned assets, builds the `lorta`
# CLI in release mode, and fine-tunes SmolLM2-135M-Instruct (GGUF Q4_1) with a LoRTA adapter
# (r = 8 on q,k,v,o: 7,000 numbers for the whole model) on an instruction task built from the
# movie-review data — answer "positive" or "negative" to a review in a chat prompt. It measures
# the accuracy of greedy answers before and after, exports the merged model as a Q8_0 GGUF and
# answers a review with it. The encoder job (MiniLM classifier) is scripts/run-minilm.sh.
#   LORTA_RUN_DIR   output folder (default runs/smollm2-sentiment)
#   LORTA_STEPS     training steps (default 40)
#   LORTA_EVAL      balanced test reviews answered before and after (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-cli.sh
OUT="${LORTA_RUN_DIR:-runs/smollm2-sentiment}"
SMOL=assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$OUT"
"$LORTA" info --model "$SMOL"
echo "== the task: movie reviews as chat prompts (scripts/make-sentiment-chat.py)"
python3 scripts/make-sentiment-chat.py assets/movies/train.tsv "$OUT/train.jsonl"
python3 scripts/make-sentiment-chat.py assets/movies/test.tsv "$OUT/test.jsonl" --limit "${LORTA_EVAL:-100}" --balanced
echo "== base model: greedy answers to the test prompts"
"$LORTA" eval --model "$SMOL" --data "$OUT/test.jsonl" --generate
echo "== fine-tuning a LoRTA adapter"
"$LORTA" train --model "$SMOL" --train "$OUT/train.jsonl" --eval "$OUT/test.jsonl" \
  --adapter lorta --rank 8 --alpha 16 --targets q_proj,k_proj,v_proj,o_proj --steps "${LORTA_STEPS:-40}" \
  --batch-size 8 --lr 5e-3 --seed 0 --out "$OUT/adapter" --overwrite
echo "== adapted model: greedy answers to the same prompts"
"$LORTA" eval --model "$SMOL" --adapter "$OUT/adapter" --data "$OUT/test.jsonl" --generate
echo "== merged into a Q8_0 GGUF ($OUT/merged.q8_0.gguf), and asked directly"
"$LORTA" merge --model "$SMOL" --adapter "$OUT/adapter" --out "$OUT/merged.q8_0.gguf" --format gguf --type q8_0 --overwrite
"$LORTA" generate --model "$OUT/merged.q8_0.gguf" --max-tokens 4 --chat "Is the sentiment of this movie review positive or negative? Answer with one word.

Review: A tedious, joyless slog that wastes a talented cast on a script with nothing to say."
