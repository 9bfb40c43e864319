#!/usr/bin/env bash
# Data parallelism on this machine (issue 14): MiniLM LoRTA (r=8, q,k,v,o) training steps with
# 1 process × 2 threads vs 2 MPI ranks × 1 thread (same global batch 32, micro-batch 16, so both
# give the same bits), the share of the 2-rank step spent in the gradient exchange, and the
# allgather cost of the gradient sizes of docs/distributed.md (LoRTA/LoRA × MiniLM/SmolLM2).
# Release builds; rounds alternate the two configurations (the machine is shared and noisy).
# ~3 min after the release build.
# Usage: bash scripts/bench-mpi.sh [STEPS=12] [ROUNDS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
steps="${1:-12}"; rounds="${2:-2}"
source scripts/blas-env.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
swift build -c release --product lorta >/dev/null
swift build -c release --product lorta-mpi >/dev/null
bin="$(swift build -c release --show-bin-path)"
work="$(mktemp -d /tmp/lorta-bench-mpi.XXXXXX)"
trap 'rm -rf "$work"' EXIT
args=(--model assets/all-MiniLM-L6-v2 --train assets/movies/train.tsv --adapter lorta --rank 8 --alpha 16
      --batch-size 32 --micro-batch-size 16 --max-length 64 --steps "$steps" --seed 1 --quiet --json)
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1)
for r in $(seq 1 "$rounds"); do
  "$bin/lorta" train "${args[@]}" --threads 2 --out "$work/one-$r" > "$work/one-$r.json"
  OMP_NUM_THREADS=1 "${mpi[@]}" "$bin/lorta-mpi" train "${args[@]}" --threads 1 --out "$work/two-$r" > "$work/two-$r.json"
done
python3 - "$work" "$rounds" <<'PY'
import json, sys, os
work, rounds = sys.argv[1], int(sys.argv[2])
for r in range(1, rounds + 1):
    one = json.load(open(os.path.join(work, f"one-{r}.json")))
    two = json.load(open(os.path.join(work, f"two-{r}.json")))
    total = two["rank0_compute_seconds"] + two["rank0_exchange_seconds"]
    print(f"round {r}: median step 1 process x 2 threads {one['median_step_seconds']*1000:.0f} ms, "
          f"2 ranks x 1 thread {two['median_step_seconds']*1000:.0f} ms "
          f"(ratio {one['median_step_seconds']/two['median_step_seconds']:.2f}); "
          f"rank 0 in the exchange {two['rank0_exchange_seconds']*1000:.1f} ms of {total*1000:.0f} ms "
          f"({100*two['rank0_exchange_seconds']/total:.2f}%), of which transfer (the last-arriving rank's time) "
          f"{two['exchange_transfer_seconds']*1000:.2f} ms ({100*two['exchange_transfer_seconds']/total:.3f}%) "
          f"and the rest waiting for the other rank; {two['exchanges']} exchanges of "
          f"{two['bytes_gathered_per_exchange']} bytes); final loss {one['final_loss']:.6f} vs {two['final_loss']:.6f}")
PY
# Gradient sizes (adapter + head where there is one): MiniLM LoRTA r=8 3,504 + head 770; MiniLM
# LoRA r=8 q,k,v,o 147,456 + 770; SmolLM2 LoRTA r=8 7,000; SmolLM2 LoRA r=8 q,k,v,o 921,600.
for n in 3504 4274 7000 148226 921600; do
  "${mpi[@]}" "$bin/lorta-mpi" bench-allgather --floats "$n" --iterations "$([ $n -gt 200000 ] && echo 200 || echo 2000)"
done
