#!/usr/bin/env bash
# The test command: installs system packages, builds, runs every test suite, then checks that
# another package can depend on swift-lorta by version.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/fetch-assets.sh
source scripts/blas-env.sh
echo "test: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}"
swift build --build-tests
swift test --skip-build --no-parallel
bash scripts/check-embedding.sh
