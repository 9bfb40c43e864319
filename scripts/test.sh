#!/usr/bin/env bash
# The test command: installs system packages, builds, runs every test suite, a fuzzing smoke and the
# sanitizers, checks that the DocC documentation builds without warnings, that another package
# can depend on swift-lorta by version (and compile the README's Swift snippets), and that the
# README's cheap commands work as written.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/fetch-assets.sh
source scripts/blas-env.sh
echo "test: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}"
swift build --build-tests
# --no-parallel is required: suites switch the process-wide thread count and instruction set
# (Runtime.withThreadCount / withInstructionSet) and read a process-wide diagnostic
# (lt_debug_threads_seen), so tests running at the same time would disturb each other.
swift test --skip-build --no-parallel
# Data-parallel training (bitwise equal to one process, LoRA and LoRTA, resume with another
# number of processes, a failing rank) and sharded statistics, 2 ranks under mpirun on loopback.
bash scripts/test-mpi.sh
# Fuzzing smoke: every libFuzzer harness (Fuzz/) under ASan for a few seconds from its committed
# seeds, debug build (docs/architecture.md, "Fuzzing and sanitizers"). scripts/sanitize.sh is not run here.
LORTA_FUZZ_CONFIGURATION=debug bash scripts/fuzz.sh "${LORTA_FUZZ_SMOKE_SECONDS:-2}"
# Sanitizers: every suite again under AddressSanitizer (Swift and C) and UndefinedBehaviorSanitizer
# (C), except the four suites that run the real SmolLM2, which take 53 of the 60 minutes under
# ASan (run `bash scripts/sanitize.sh` for everything). Measured on the shared 2-core machine:
# build 16 min, tests 7.5 min (docs/architecture.md, "Fuzzing and sanitizers").
bash scripts/sanitize.sh --skip 'LlamaModelTests|GenerateCLITests|LlamaExportHFToGGUFTests|QuantMatmulTests'
# The DocC documentation must build with zero warnings (broken links, undocumented parameters).
bash scripts/check-docs.sh
bash scripts/check-embedding.sh
# The README's commands: every script it names is classified (run here or by hand), every
# `lorta …` line uses existing options, and the cheap commands run (scripts/check-readme.sh).
bash scripts/check-readme.sh
