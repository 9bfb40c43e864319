#!/usr/bin/env bash
# Installs the system packages swift-lorta needs (Debian). Idempotent: does nothing when present.
set -euo pipefail
# Needed to build and use the library and the CLI.
pkgs=(libopenblas-dev liblapacke-dev libomp-dev pkg-config)
# The scripts' Python: the standard library for the small helpers, venvs with pinned packages
# for the rest (scripts/python-env.sh).
pkgs+=(python3 python3-venv)
# Needed only for the optional LoRTADistributed product and `lorta-mpi` (data-parallel training,
# sharded statistics) and their test (scripts/test-mpi.sh); the core library does not use MPI.
pkgs+=(openmpi-bin libopenmpi-dev)
# Needed only for the report test (MonitorReport suite, headless rendering of an HTML report
# through scripts/render-report.sh). Without it that one test is skipped; the library does not
# use it. Set LORTA_SKIP_REPORT_DEPS=1 to leave it out.
report_pkgs=(chromium)
if [ "${LORTA_SKIP_REPORT_DEPS:-0}" != "1" ]; then
  pkgs+=("${report_pkgs[@]}")
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all present (${pkgs[*]})"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
