#!/usr/bin/env bash
# Which K make OpenBLAS's sgemm give different bits with 1 and 2 threads, for each of its x86
# cores this CPU can run (README, "Determinism and numerics"): scripts/openblas-bits.c, run once
# per OPENBLAS_CORETYPE. About a minute on 2 cores.
#   bash scripts/openblas-bits.sh [CORE...]     default: Cooperlake SkylakeX Haswell
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
BIN="$(mktemp -d)/openblas-bits"
trap 'rm -rf "$(dirname "$BIN")"' EXIT
cc -O2 -o "$BIN" scripts/openblas-bits.c $(pkg-config --cflags --libs openblas)
cores=("$@")
[ ${#cores[@]} -eq 0 ] && cores=(Cooperlake SkylakeX Haswell)
for core in "${cores[@]}"; do
  OPENBLAS_CORETYPE="$core" "$BIN"
done
