#!/usr/bin/env bash
# Builds the DocC documentation of the LoRTA library (Sources/LoRTA/LoRTA.docc plus the doc
# comments) and of the optional LoRTADistributed library (doc comments) with swift-docc-plugin
# and fails on any warning: unresolvable ``symbol`` links, documented parameters that do not
# exist, undocumented parameters of a documented function, broken <doc:…> links.
# The archives land in .build/plugins/Swift-DocC/outputs/.
#
# Usage: bash scripts/check-docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
start=$(date +%s)
status=0
# --warnings-as-errors is passed through to `docc convert`; it turns every warning into an
# error and makes docc (and so the plugin) exit non-zero.
swift package generate-documentation --target LoRTA --warnings-as-errors 2>&1 | tee "$log" || status=$?
# The optional MPI layer's own documentation (needs Open MPI, like its build).
swift package generate-documentation --target LoRTADistributed --warnings-as-errors 2>&1 | tee -a "$log" || status=$?
# Belt and braces: a warning printed by the plugin or the symbol-graph build (not by docc)
# would not be turned into an error by the flag above.
if grep -Eq '(^|[^a-z])(warning|error):' "$log"; then
  count=$(grep -Ec '(^|[^a-z])(warning|error):' "$log" || true)
  echo "check-docs: FAILED: $count documentation warning(s)/error(s) (see above)" >&2
  [[ $status -ne 0 ]] || status=1
fi
echo "check-docs: $(( $(date +%s) - start )) s"
if [[ $status -ne 0 ]]; then
  echo "check-docs: FAILED (exit $status)" >&2
  exit "$status"
fi
echo "check-docs: OK, no documentation warnings"
