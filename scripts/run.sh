#!/usr/bin/env bash
# The main job (see README): installs system packages and the pinned assets, builds the `lorta`
# CLI in release mode, fine-tunes a LoRTA adapter on all-MiniLM-L6-v2 for movie-review sentiment,
# evaluates it, exports the merged model and evaluates that, runs the merge/unmerge demo, then
# chats with SmolLM2-135M-Instruct (GGUF Q4_1) and measures its perplexity on movie sentences.
#   LORTA_RUN_DIR   output folder (default runs/lorta-movies)
#   LORTA_STEPS     training steps (default 300: a few minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/fetch-assets.sh
source scripts/blas-env.sh
swift build -c release --product lorta
LORTA="$(swift build -c release --show-bin-path)/lorta"
"$LORTA" info
OUT="${LORTA_RUN_DIR:-runs/lorta-movies}"
MODEL=assets/all-MiniLM-L6-v2
"$LORTA" train --model "$MODEL" --train assets/movies/train.tsv --eval assets/movies/test.tsv \
  --adapter lorta --rank 8 --alpha 16 --targets query,key,value,output --steps "${LORTA_STEPS:-300}" \
  --batch-size 32 --lr 1e-3 --seed 0 --out "$OUT" --overwrite
echo "== evaluating the saved adapter"
"$LORTA" eval --model "$MODEL" --adapter "$OUT" --data assets/movies/test.tsv
echo "== exporting the merged model to $OUT-merged and evaluating it (head only, no adapter)"
"$LORTA" merge --model "$MODEL" --adapter "$OUT" --out "$OUT-merged" --overwrite
"$LORTA" eval --model "$OUT-merged" --adapter "$OUT-merged" --data assets/movies/test.tsv
if [ -f scripts/demo.sh ]; then bash scripts/demo.sh "$LORTA"; fi
SMOL=assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
echo "== SmolLM2-135M-Instruct (causal LM, GGUF Q4_1)"
"$LORTA" info --model "$SMOL"
"$LORTA" generate --model "$SMOL" --chat "What is the capital of France?" --max-tokens 64
"$LORTA" generate --model "$SMOL" --chat "Write a one-sentence review of a movie you liked." \
  --max-tokens 64 --temperature 0.7 --top-p 0.9 --seed 1
cut -f2 assets/movies/test.tsv | head -200 > "$OUT-perplexity.txt"
"$LORTA" perplexity --model "$SMOL" --data "$OUT-perplexity.txt" --context 128 --batch-size 4
