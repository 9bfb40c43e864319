#!/usr/bin/env bash
# The main job: installs system packages, builds the `lorta` CLI in release mode and runs the
# demo (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/blas-env.sh
swift build -c release --product lorta
LORTA="$(swift build -c release --show-bin-path)/lorta"
"$LORTA" info
if [ -f scripts/demo.sh ]; then bash scripts/demo.sh "$LORTA"; fi
