#!/usr/bin/env bash
# Out-of-distribution detection on scikit-learn's bundled digits data set (issue 4, "Real data").
#
# Fetches one pinned scikit-learn wheel into assets/digits/ (git-ignored) with pip, verifies its
# SHA-256, builds `lorta` (release), and runs scripts/digits_ood.py, which extracts
# sklearn/datasets/data/digits.csv.gz from the wheel, builds the split (fit on classes 0-8,
# score held-out rows of 0-8 against all of class 9; see the script's docstring), runs
# `lorta detect` for every method and scikit-learn's EmpiricalCovariance / LedoitWolf / OAS
# Mahalanobis distances, and prints the AUROCs side by side.
#
# Python: the pinned science venv (scripts/python-env.sh: numpy, scipy, scikit-learn; made on the
# first run, network access then). The wheel is fetched with that venv's pip.
#
# Usage: scripts/digits-ood.sh           (LORTA=/path/to/lorta to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null

SKLEARN_VERSION=1.9.1
WHEEL=scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
WHEEL_SHA256=52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df
DIR=assets/digits
# shellcheck disable=SC1091
source scripts/python-env.sh
science_venv

mkdir -p "$DIR"
if [[ ! -f "$DIR/$WHEEL" ]] || ! echo "$WHEEL_SHA256  $DIR/$WHEEL" | sha256sum --check --status; then
    rm -f "$DIR/$WHEEL"
    echo "fetching $WHEEL with pip" >&2
    # The platform/ABI pins select exactly this wheel file whatever the local Python is.
    "$SCIENCE_PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
        --python-version 3.11 --implementation cp --abi cp311 \
        "scikit-learn==$SKLEARN_VERSION" -d "$DIR"
fi
if ! echo "$WHEEL_SHA256  $DIR/$WHEEL" | sha256sum --check --status; then
    echo "error: $DIR/$WHEEL does not have the pinned SHA-256 $WHEEL_SHA256" >&2
    exit 1
fi
echo "wheel $DIR/$WHEEL: SHA-256 verified" >&2

if [[ -z "${LORTA:-}" ]]; then
    # shellcheck disable=SC1091
    source scripts/blas-env.sh
    swift build -c release --product lorta >&2
    LORTA="$(swift build -c release --show-bin-path)/lorta"
fi

"$SCIENCE_PY" scripts/digits_ood.py --wheel "$DIR/$WHEEL" --work "$DIR/work" --lorta "$LORTA"
