# Sourced by the scripts that run the CLI: installs the system packages and the pinned assets,
# sets the OpenBLAS environment, builds `lorta` in release mode and sets LORTA to its path.
# With LORTA_QUIET_SETUP=1 the install, fetch and build output is discarded.
if [[ "${LORTA_QUIET_SETUP:-0}" == 1 ]]; then
  bash scripts/install-deps.sh >/dev/null
  bash scripts/fetch-assets.sh >/dev/null
  source scripts/blas-env.sh
  swift build -c release --product lorta >/dev/null
else
  bash scripts/install-deps.sh
  bash scripts/fetch-assets.sh
  source scripts/blas-env.sh
  swift build -c release --product lorta
fi
LORTA="$(swift build -c release --show-bin-path)/lorta"
