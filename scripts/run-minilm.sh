#!/usr/bin/env bash
# The encoder job (see README): installs system packages and the pinned assets, builds the
# `lorta` CLI in release mode, fine-tunes a LoRTA adapter on all-MiniLM-L6-v2 for movie-review
# sentiment (a classification head on the mean-pooled embedding), evaluates it, exports the
# merged model and evaluates that, and runs the merge/unmerge demo.
#   LORTA_RUN_DIR   output folder (default runs/lorta-movies)
#   LORTA_STEPS     training steps (default 300: a few minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-cli.sh
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
