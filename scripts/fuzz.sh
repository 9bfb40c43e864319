#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer (the harnesses are in Fuzz/, one binary,
# `lorta-fuzz <harness>`; see docs/architecture.md, "Fuzzing and sanitizers").
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
#
# Builds Fuzz/ with -sanitize=fuzzer,address (Swift) and -fsanitize=address (C kernels), then
# runs each harness (default: all) for SECONDS (default 60) on its committed seed corpus
# Fuzz/corpus/<harness>/ (with the dictionary Fuzz/dictionaries/<harness>.dict, if any) plus a working corpus Fuzz/.build/fuzz-corpus/<harness>/ (new inputs
# land there, never in the committed seeds). SECONDS=0 only replays the seeds and the working
# corpus once (-runs=0). Prints executions, corpus size and crashes per harness; crash, leak,
# timeout and out-of-memory inputs are kept in Fuzz/crashes/<harness>/ and the script exits 1.
# Logs: Fuzz/.build/fuzz-logs/<harness>.log. Reproduce a crash with
#   SWIFT_BACKTRACE=enable=no Fuzz/.build/release/lorta-fuzz <harness> Fuzz/crashes/<harness>/<file>
# (`lorta-fuzz --list` names the harnesses; `lorta-fuzz --make-seeds Fuzz/corpus` remakes the seeds.)
# Extra libFuzzer options: LORTA_FUZZ_OPTIONS (e.g. "-max_len=65536 -only_ascii=1");
# LORTA_FUZZ_CONFIGURATION=debug builds without optimization (faster to build, slower to run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
shift || true
case "$seconds" in '' | *[!0-9]*) echo "fuzz: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;; esac

source scripts/blas-env.sh
# Swift's crash reporter would hold the pipe open after libFuzzer has reported; libFuzzer and
# ASan print the stack themselves.
export SWIFT_BACKTRACE=enable=no
# One kernel thread: the harnesses' inputs are small and the machine is shared.
export LORTA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# No leak detection (see -detect_leaks=0 below), neither while fuzzing nor at exit.
export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

# release (default) for fuzzing; debug compiles in about half the CPU time, for a CI smoke.
configuration=${LORTA_FUZZ_CONFIGURATION:-release}
case "$configuration" in debug | release) ;; *) echo "fuzz: LORTA_FUZZ_CONFIGURATION must be debug or release" >&2; exit 2 ;; esac

start=$(date +%s)
echo "fuzz: building Fuzz/ ($configuration, -sanitize=fuzzer,address)"
# `sed` drops the linker's harmless "cannot export local symbol" notes about ASan's helpers.
(cd Fuzz && swift build -c "$configuration" --product lorta-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address 2>&1) | sed '/[Cc]annot export local symbol/d'
binary=$root/Fuzz/.build/$configuration/lorta-fuzz
built=$(date +%s)
echo "fuzz: build took $((built - start)) s"

if [ $# -gt 0 ]; then harnesses=("$@"); else mapfile -t harnesses < <("$binary" --list | cut -f1); fi

logs=$root/Fuzz/.build/fuzz-logs
mkdir -p "$logs"
failed=()
printf '%-22s %10s %8s %8s %s\n' harness executions corpus seconds result
for h in "${harnesses[@]}"; do
  seeds=$root/Fuzz/corpus/$h
  work=$root/Fuzz/.build/fuzz-corpus/$h
  crashes=$root/Fuzz/crashes/$h
  [ -d "$seeds" ] || { echo "fuzz: no seed corpus $seeds" >&2; exit 2; }
  mkdir -p "$work" "$crashes"
  # No leak detection: LeakSanitizer does not see references held by Swift globals (a closure
  # stored in a main.swift global is reported as leaked), so every harness would "leak" its
  # set-up state. Leaks are not what these harnesses look for; -rss_limit_mb catches growth.
  options=(-timeout=20 -rss_limit_mb=2048 -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$crashes/")
  # Swift's string comparisons are not instrumented: a dictionary of the parser's keys helps.
  [ -f "$root/Fuzz/dictionaries/$h.dict" ] && options+=(-dict="$root/Fuzz/dictionaries/$h.dict")
  if [ "$seconds" -eq 0 ]; then options+=(-runs=0); else options+=(-max_total_time="$seconds"); fi
  t0=$(date +%s)
  status=0
  # shellcheck disable=SC2086
  "$binary" "$h" "${options[@]}" ${LORTA_FUZZ_OPTIONS:-} "$work" "$seeds" >"$logs/$h.log" 2>&1 || status=$?
  t1=$(date +%s)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$h.log" | tail -1)
  units=$(grep -Eo 'corp: [0-9]+' "$logs/$h.log" | tail -1 | grep -Eo '[0-9]+' || true)
  artifacts=$(grep -Eo "(Test unit|artifact) written to [^ ]+" "$logs/$h.log" | sed 's/.* to //' || true)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $status)"
    failed+=("$h")
  fi
  printf '%-22s %10s %8s %8s %s\n' "$h" "${execs:-?}" "${units:-?}" "$((t1 - t0))" "$result"
  if [ "$status" -ne 0 ]; then
    grep -E '^==[0-9]+==ERROR|^SUMMARY|Fatal error|deadly signal|ERROR: libFuzzer' "$logs/$h.log" | head -5 | sed 's/^/    /'
    for a in $artifacts; do echo "    input kept: $a"; done
    echo "    log: $logs/$h.log"
  fi
done
end=$(date +%s)
echo "fuzz: ${#harnesses[@]} harnesses, ${seconds} s each; build $((built - start)) s, total $((end - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
