#!/usr/bin/env bash
# Renders a report written by `lorta monitor score --report REPORT.html` (LoRTAReport) with
# headless Chromium: a PNG screenshot, and optionally the DOM Chromium parsed.
#
#   scripts/render-report.sh REPORT.html OUT.png [DOM.html]
#
# Installs nothing. Needs `chromium` (Debian: apt-get install chromium, or
# scripts/install-deps.sh, which installs it in its second list); another binary can be named
# with CHROMIUM=/path/to/chrome. Chromium runs with a throwaway HOME and profile (nothing is
# written into the repository or your profile), without sandbox and GPU, and is killed after
# RENDER_TIMEOUT seconds (default 120). Window size: RENDER_WINDOW (default 1200,3000).
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 REPORT.html OUT.png [DOM.html]" >&2
  exit 2
fi
report=$1 out=$2 dom=${3:-}
if [ ! -f "$report" ]; then
  echo "render-report: $report does not exist" >&2
  exit 2
fi
browser=${CHROMIUM:-}
if [ -z "$browser" ]; then
  browser=$(command -v chromium || command -v chromium-browser || true)
fi
if [ -z "$browser" ] || [ ! -x "$browser" ]; then
  echo "render-report: chromium is not installed; on Debian: sudo apt-get install chromium" >&2
  echo "  (or run scripts/install-deps.sh; or set CHROMIUM=/path/to/chrome)" >&2
  exit 3
fi
abs() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac; }
url="file://$(abs "$report")"
out=$(abs "$out")
scratch=$(mktemp -d "${TMPDIR:-/tmp}/render-report.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export HOME="$scratch" XDG_CONFIG_HOME="$scratch/config" XDG_CACHE_HOME="$scratch/cache"
timeout_s=${RENDER_TIMEOUT:-120}
flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
       --no-default-browser-check --disable-extensions --hide-scrollbars
       "--user-data-dir=$scratch/profile" "--crash-dumps-dir=$scratch/crash")
if [ -n "$dom" ]; then
  timeout -k 10 "$timeout_s" "$browser" "${flags[@]}" --dump-dom "$url" > "$dom" 2> "$scratch/dom.log" || {
    echo "render-report: chromium --dump-dom failed:" >&2; tail -20 "$scratch/dom.log" >&2; exit 1; }
fi
rm -f "$out"
timeout -k 10 "$timeout_s" "$browser" "${flags[@]}" "--window-size=${RENDER_WINDOW:-1200,3000}" \
  "--screenshot=$out" "$url" > "$scratch/shot.log" 2>&1 || {
  echo "render-report: chromium --screenshot failed:" >&2; tail -20 "$scratch/shot.log" >&2; exit 1; }
if [ ! -s "$out" ]; then
  echo "render-report: chromium wrote no screenshot:" >&2; tail -20 "$scratch/shot.log" >&2; exit 1
fi
echo "render-report: $out"
