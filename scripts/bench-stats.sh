#!/usr/bin/env bash
# Benchmark (issue 4): accumulating activation statistics over 100,000 x 384 float32 rows with
# `lorta stats fit` against numpy.cov on the same data, both timed in one run by
# scripts/bench_stats.py (medians of REPEATS runs; see its docstring for what is timed).
# The data (seeded, ~154 MB) is generated once into assets/bench/ (git-ignored).
#
# Usage: scripts/bench-stats.sh [REPEATS] [ROWS]   (LORTA=/path/to/lorta to skip the build)
# Python: the pinned science venv (scripts/python-env.sh).
# numpy uses its own bundled OpenBLAS (not affected by OPENBLAS_CORETYPE from blas-env.sh, which
# only matters for the system OpenBLAS lorta links; lorta's statistics kernel does not call BLAS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
REPEATS="${1:-5}"
ROWS="${2:-100000}"
if [[ -z "${LORTA:-}" ]]; then
    # shellcheck disable=SC1091
    source scripts/blas-env.sh
    swift build -c release --product lorta >&2
    LORTA="$(swift build -c release --show-bin-path)/lorta"
fi
# shellcheck disable=SC1091
source scripts/python-env.sh
science_venv
"$SCIENCE_PY" scripts/bench_stats.py --lorta "$LORTA" --work assets/bench --repeats "$REPEATS" --rows "$ROWS"
